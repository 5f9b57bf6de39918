"""Compositing over packed samples against a per-ray float64 torch reference, every backend."""
import torch

from hollow_taichi import ops


def packed(counts, generator):
    """PackedSamples for rays with the given sample counts, unit-free t in steps of random length."""
    counts = torch.tensor(counts, dtype=torch.int32)
    offsets = (torch.cumsum(counts, 0) - counts).to(torch.int32)
    ray_indices = torch.repeat_interleave(torch.arange(len(counts), dtype=torch.int32), counts.long())
    steps = torch.rand(int(counts.sum()), generator=generator) * 0.05 + 0.01
    t_ends = torch.zeros_like(steps)
    for r, (start, count) in enumerate(zip(offsets.tolist(), counts.tolist())):
        t_ends[start:start + count] = torch.cumsum(steps[start:start + count], 0) + 0.5
    return ops.PackedSamples(ray_indices, t_ends - steps, t_ends, torch.zeros(len(steps), 3), offsets, counts)


def reference_composite(sigma, rgb, samples, background, min_transmittance):
    colors, opacities, depths = [], [], []
    dt = (samples.t_ends - samples.t_starts).to(sigma.dtype)
    t_mid = ((samples.t_starts + samples.t_ends) / 2).to(sigma.dtype)
    for r, (start, count) in enumerate(zip(samples.offsets.tolist(), samples.counts.tolist())):
        color = torch.zeros(3, dtype=sigma.dtype)
        opacity = torch.zeros((), dtype=sigma.dtype)
        depth = torch.zeros((), dtype=sigma.dtype)
        optical_depth = torch.zeros((), dtype=sigma.dtype)
        for s in range(start, start + count):
            transmittance = torch.exp(-optical_depth)
            if transmittance >= min_transmittance:
                weight = transmittance * (1 - torch.exp(-sigma[s] * dt[s]))
                color = color + weight * rgb[s]
                opacity = opacity + weight
                depth = depth + weight * t_mid[s]
            optical_depth = optical_depth + sigma[s] * dt[s]
        colors.append(color + (1 - opacity) * background[r])
        opacities.append(opacity)
        depths.append(depth)
    return torch.stack(colors), torch.stack(opacities), torch.stack(depths)


def test_reference_gradients_match_finite_differences():
    generator = torch.Generator().manual_seed(0)
    samples = packed([3, 1, 4], generator)
    sigma = (torch.rand(8, dtype=torch.float64) * 20).requires_grad_()
    rgb = torch.rand(8, 3, dtype=torch.float64, requires_grad=True)
    background = torch.rand(3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda s, c: reference_composite(s, c, samples, background, 0.0), (sigma, rgb))


def run_both(sigma, rgb, samples, background, min_transmittance=1e-4):
    upstream = [torch.randn(samples.n_rays, 3), torch.randn(samples.n_rays), torch.randn(samples.n_rays)]
    sigma = sigma.clone().requires_grad_()
    rgb = rgb.clone().requires_grad_()
    outputs = [out.cpu() for out in ops.Compositor(min_transmittance)(sigma, rgb, samples, background)]
    sum(((o * u).sum() for o, u in zip(outputs, upstream))).backward()
    sigma64 = sigma.detach().double().requires_grad_()
    rgb64 = rgb.detach().double().requires_grad_()
    expected = reference_composite(sigma64, rgb64, samples, background.double(), min_transmittance)
    sum(((o * u.double()).sum() for o, u in zip(expected, upstream))).backward()
    return outputs, (sigma.grad, rgb.grad), expected, (sigma64.grad, rgb64.grad)


def test_composite_forward_and_gradients(arch):
    generator = torch.Generator().manual_seed(2)
    counts = [5, 0, 1, 40, 200, 17]  # includes an empty ray and a long one
    samples = packed(counts, generator)
    n = samples.n_samples
    sigma = torch.rand(n, generator=generator) * 30
    rgb = torch.rand(n, 3, generator=generator)
    background = torch.rand(len(counts), 3, generator=generator)
    outputs, grads, expected, expected_grads = run_both(sigma, rgb, samples, background)
    for got, want in zip(outputs, expected):
        torch.testing.assert_close(got.detach().double(), want.detach(), atol=2e-5, rtol=1e-4)
    for got, want in zip(grads, expected_grads):
        assert got.abs().sum() > 0
        torch.testing.assert_close(got.double(), want, atol=1e-4, rtol=1e-3)


def test_gradients_of_a_composite_another_one_followed(arch):
    """A compositor's backward reuses what its fields hold only if they still hold that forward's
    inputs: after a second composite on other samples, the first's gradients must be its own."""
    generator = torch.Generator().manual_seed(4)
    first, second = packed([7, 3, 30], generator), packed([12, 1], generator)
    compositor = ops.Compositor()
    sigma = (torch.rand(first.n_samples, generator=generator) * 30).requires_grad_()
    rgb = torch.rand(first.n_samples, 3, generator=generator, requires_grad=True)
    color, _, _ = compositor(sigma, rgb, first, torch.ones(3, 3))
    compositor(torch.rand(second.n_samples, generator=generator) * 30, torch.rand(second.n_samples, 3, generator=generator),
               second, torch.zeros(2, 3))
    upstream = torch.randn(3, 3, generator=generator)
    (color.cpu() * upstream).sum().backward()
    sigma64, rgb64 = sigma.detach().double().requires_grad_(), rgb.detach().double().requires_grad_()
    expected, _, _ = reference_composite(sigma64, rgb64, first, torch.ones(3, 3, dtype=torch.float64), 1e-4)
    (expected * upstream.double()).sum().backward()
    assert sigma.grad.abs().sum() > 0
    torch.testing.assert_close(sigma.grad.cpu().double(), sigma64.grad, atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(rgb.grad.cpu().double(), rgb64.grad, atol=1e-4, rtol=1e-3)


def test_early_termination_stops_contributions(arch):
    generator = torch.Generator().manual_seed(3)
    samples = packed([30], generator)
    sigma = torch.full((30,), 1e4)  # the first sample is opaque
    rgb = torch.rand(30, 3, generator=generator)
    outputs, grads, _, _ = run_both(sigma, rgb, samples, torch.zeros(1, 3))
    color, opacity, _ = outputs
    torch.testing.assert_close(color[0], rgb[0], atol=1e-5, rtol=1e-5)
    assert grads[1][1:].abs().max() == 0  # samples behind the opaque one get no gradient


def test_composite_without_gradient_matches_the_reference(arch):
    """Under torch.no_grad the compositor runs one kernel ray by ray on torch tensors; rays past
    the transmittance threshold (0.05 here) stop there."""
    generator = torch.Generator().manual_seed(6)
    samples = packed([5, 0, 1, 40, 200, 17], generator)
    sigma = torch.rand(samples.n_samples, generator=generator) * 30
    rgb = torch.rand(samples.n_samples, 3, generator=generator)
    background = torch.rand(samples.n_rays, 3, generator=generator)
    expected = reference_composite(sigma.double(), rgb.double(), samples, background.double(), 0.05)
    with torch.no_grad():
        outputs = ops.Compositor(0.05)(sigma, rgb, samples, background)
    for got, want in zip(outputs, expected):
        torch.testing.assert_close(got.cpu().double(), want, atol=2e-5, rtol=1e-4)


def test_empty_batch(arch):
    samples = packed([0, 0], torch.Generator().manual_seed(0))
    background = torch.tensor([[1.0, 0.5, 0.0], [0.2, 0.2, 0.2]])
    color, opacity, depth = (out.cpu() for out in ops.Compositor()(torch.zeros(0), torch.zeros(0, 3), samples, background))
    torch.testing.assert_close(color, background)
    assert opacity.abs().sum() == 0 and depth.abs().sum() == 0


def reference_transmittance(sigma, samples):
    """exp(-sum of sigma * dt over the samples before each one on its ray), in float64."""
    out = torch.empty(samples.n_samples, dtype=torch.float64)
    dt = (samples.t_ends - samples.t_starts).double()
    for start, count in zip(samples.offsets.tolist(), samples.counts.tolist()):
        x = sigma[start:start + count].double() * dt[start:start + count]
        out[start:start + count] = torch.exp(-(torch.cumsum(x, 0) - x))
    return out


def test_transmittance_matches_reference(arch):
    generator = torch.Generator().manual_seed(5)
    samples = packed([0, 1, 7, 30, 4], generator)
    sigma = torch.rand(samples.n_samples, generator=generator) * 40
    torch.testing.assert_close(ops.transmittance(sigma, samples).cpu().double(), reference_transmittance(sigma, samples),
                               rtol=1e-4, atol=1e-6)


def test_select_keeps_packing_and_dropping_occluded_samples_changes_nothing(arch):
    """Dropping samples whose transmittance is below the compositor's threshold (what the renderer
    does before the full field runs) leaves colours, opacity, depth and kept gradients unchanged."""
    generator = torch.Generator().manual_seed(6)
    samples = packed([12, 0, 25, 3, 40], generator)
    sigma = (torch.rand(samples.n_samples, generator=generator) * 300).requires_grad_()
    rgb = torch.rand(samples.n_samples, 3, generator=generator).requires_grad_()
    background = torch.rand(samples.n_rays, 3, generator=generator)
    compositor = ops.Compositor()
    keep = ops.transmittance(sigma, samples).cpu() >= compositor.min_transmittance
    assert 0 < keep.sum() < samples.n_samples
    kept = samples.select(keep)
    assert kept.counts.tolist() == [int(keep[samples.ray_indices == r].sum()) for r in range(samples.n_rays)]
    assert (kept.offsets == torch.cumsum(kept.counts, 0) - kept.counts).all()
    assert (kept.ray_indices == samples.ray_indices[keep]).all()
    full = compositor(sigma, rgb, samples, background)
    sigma_grad, rgb_grad = torch.autograd.grad(sum(out.sum() for out in full), (sigma, rgb))
    sigma_kept = sigma.detach()[keep].requires_grad_()
    rgb_kept = rgb.detach()[keep].requires_grad_()
    culled = compositor(sigma_kept, rgb_kept, kept, background)
    for a, b in zip(full, culled):
        torch.testing.assert_close(a, b)
    culled_grads = torch.autograd.grad(sum(out.sum() for out in culled), (sigma_kept, rgb_kept))
    torch.testing.assert_close(culled_grads[0], sigma_grad[keep])
    torch.testing.assert_close(culled_grads[1], rgb_grad[keep])
    assert (sigma_grad[~keep] == 0).all()
