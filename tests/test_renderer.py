"""The renderer's inference path (whole images) against its differentiable training path."""
import dataclasses

import pytest
import torch

from hollow_taichi import backend, ops
from hollow_taichi import renderer as renderer_module

from test_compact import dense_model, random_model, rays_through_box, tiny_config


@pytest.mark.parametrize("method", ["hollow", "ngp"])
def test_inference_renders_what_the_training_path_renders(device, method):
    """infer_rays evaluates the density once per marched sample and the colour only where early
    termination keeps a sample; render_rays culls with a no-grad pass, then runs the whole field."""
    _, _, renderer = random_model(tiny_config(method), seed=2)
    renderer.render_min_transmittance = renderer.compositor.min_transmittance  # render as far as training does
    origins, directions = rays_through_box(128, seed=4)
    background = torch.rand(128, 3, generator=torch.Generator().manual_seed(5)).to(device)
    with torch.no_grad():
        trained = renderer.render_rays(origins, directions, background)
    inferred = renderer.infer_rays(origins, directions, background)
    assert inferred.n_samples == trained.n_samples > 0
    assert (trained.opacity > 0.5).any() and (trained.opacity < 0.5).any()  # a test that can tell
    torch.testing.assert_close(inferred.color, trained.color, atol=1e-5, rtol=0)
    torch.testing.assert_close(inferred.opacity, trained.opacity, atol=1e-5, rtol=0)
    torch.testing.assert_close(inferred.depth, trained.depth, atol=1e-4, rtol=0)


@pytest.mark.parametrize("first_round", [1, 3, 32])
def test_marching_in_rounds_keeps_what_one_pass_keeps(device, monkeypatch, first_round):
    """visible_samples marches in rounds and stops each ray where its light runs out; the samples it
    keeps are those one pass over the whole ray keeps after culling by transmittance."""
    monkeypatch.setattr(renderer_module, "FIRST_ROUND_SAMPLES", first_round)
    _, _, renderer = dense_model("hollow", seed=2)  # light runs out inside the box
    origins, directions = rays_through_box(128, seed=4)
    jitter = torch.rand(128, generator=torch.Generator().manual_seed(6)).to(device)
    one_pass = ops.march_rays(origins, directions, renderer.occupancy.bitfield, renderer.settings, jitter)
    with torch.no_grad():
        sigma = renderer.field.density(one_pass.positions)
    expected = one_pass.select(ops.transmittance(sigma, one_pass) >= renderer.compositor.min_transmittance)

    visible = renderer.visible_samples(origins, directions, jitter)

    assert 0 < expected.n_samples < one_pass.n_samples  # some rays end early, some samples survive
    assert torch.equal(visible.samples.counts, expected.counts)
    assert torch.equal(visible.samples.offsets, expected.offsets)
    assert torch.equal(visible.samples.ray_indices, expected.ray_indices)
    torch.testing.assert_close(visible.samples.t_starts, expected.t_starts, atol=1e-6, rtol=0)
    torch.testing.assert_close(visible.samples.positions, expected.positions, atol=1e-6, rtol=0)
    torch.testing.assert_close(visible.sigma, sigma[ops.transmittance(sigma, one_pass) >= 1e-4], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["hollow", "ngp"])
def test_reusing_the_visibility_pass_encoding_changes_no_gradient(device, method):
    """render_rays hands the no-grad pass's encoding to the differentiable field call instead of
    encoding the kept samples again: forward and every gradient (table, logits, MLPs) must be what
    encoding afresh gives, pruned cells included."""
    field, _, renderer = random_model(tiny_config(method), seed=3)
    if method == "hollow":
        cells = (field.saliency_logits.shape[0] - 1,) * 3
        field.prune((torch.rand(cells, generator=torch.Generator().manual_seed(1)) > 0.3).to(device))
    origins, directions = rays_through_box(96, seed=7)
    visible = renderer.visible_samples(origins, directions, keep_encoding=True)
    positions, ray_directions = visible.samples.positions, directions[visible.samples.ray_indices.long()]
    upstream = torch.randn(positions.shape[0], 4, generator=torch.Generator().manual_seed(8)).to(device)

    def gradients(cached):
        field.zero_grad()
        field.table.zero_grad()
        sigma, rgb, _ = field(positions, ray_directions, cached)
        (torch.cat([sigma[:, None], rgb], dim=1) * upstream).sum().backward()
        grads = [field.table.read_grad()] + [p.grad.clone() for p in field.parameters() if p.grad is not None]
        return torch.cat([sigma[:, None], rgb], dim=1).detach(), grads

    fresh, fresh_grads = gradients(None)
    reused, reused_grads = gradients(visible.encoding)
    assert renderer.visible_samples(origins, directions).encoding is None  # only kept when asked for
    assert positions.shape[0] > 0 and fresh_grads[0].abs().sum() > 0
    torch.testing.assert_close(reused, fresh, atol=1e-6, rtol=1e-5)
    assert len(reused_grads) == len(fresh_grads) == 1 + 10 + (method == "hollow")  # table, MLPs, logits
    for reused_grad, fresh_grad in zip(reused_grads, fresh_grads):
        torch.testing.assert_close(reused_grad, fresh_grad, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("method", ["hollow", "ngp"])
def test_backward_grows_no_field_buffer(device, monkeypatch, method):
    """Taichi makes fields only on the thread that started it (on CUDA it asserts otherwise), and
    torch runs CUDA backward passes on a thread of its own: a training step's backward must find
    every buffer it uses already made. Small marching rounds make the kept samples outnumber any
    one round's, so a forward that reuses their encoding must grow the buffers itself."""
    monkeypatch.setattr(renderer_module, "FIRST_ROUND_SAMPLES", 1)
    _, _, renderer = random_model(tiny_config(method), seed=2)
    origins, directions = rays_through_box(128, seed=4)
    result = renderer.render_rays(origins, directions, torch.ones(128, 3, device=device))
    grown = []
    reserve = backend.FieldBuffer.reserve

    def recording_reserve(buffer, n):
        if n > buffer.capacity:
            grown.append(n)
        return reserve(buffer, n)

    monkeypatch.setattr(backend.FieldBuffer, "reserve", recording_reserve)
    result.color.sum().backward()
    assert renderer.field.table.read_grad().abs().sum() > 0 and grown == []


def torch_weights(sigma: torch.Tensor, samples: ops.PackedSamples) -> torch.Tensor:
    """Volume rendering weights (M,) in plain torch, ray by ray: T_s (1 - exp(-sigma_s dt_s))."""
    weights = torch.zeros_like(sigma)
    for offset, count in zip(samples.offsets.tolist(), samples.counts.tolist()):
        rows = slice(offset, offset + count)
        alpha = 1.0 - torch.exp(-sigma[rows] * (samples.t_ends[rows] - samples.t_starts[rows]))
        light = torch.cumprod(torch.cat([alpha.new_ones(1), 1.0 - alpha[:-1]]), dim=0)
        weights[rows] = light * alpha
    return weights


@pytest.mark.parametrize("method", ["hollow", "ngp"])
def test_inference_composites_saliency_with_the_colour_weights(device, method):
    """infer_rays(saliency=True) gives, per ray, sum of weight * p(x) over the samples it keeps, the
    weights those of its colour (a plain-torch reference); ngp models have no saliency."""
    field, _, renderer = random_model(tiny_config(method), seed=2)
    with torch.no_grad():
        field.density_mlp[-1].bias[0] += 2.0
        if field.hollow:  # saliency spread over (0, 1), not random_model's ~e^-8
            field.saliency_logits.copy_(torch.randn(field.saliency_logits.shape, generator=torch.Generator().manual_seed(3)))
    origins, directions = rays_through_box(64, seed=4)
    background = torch.ones(64, 3, device=device)
    result = renderer.infer_rays(origins, directions, background, saliency=True)
    if method == "ngp":
        assert result.saliency is None
        return
    visible = renderer.visible_samples(origins, directions, min_transmittance=renderer.render_min_transmittance)
    p = renderer.field.saliency_at(renderer.field.to_unit(visible.samples.positions))
    expected = torch.zeros(64, device=device).index_add_(0, visible.samples.ray_indices.long(), torch_weights(visible.sigma, visible.samples) * p)
    assert (expected > 0.1).any() and p.min() < p.max()  # a test that can tell
    torch.testing.assert_close(result.saliency, expected, atol=1e-5, rtol=1e-4)
    assert renderer.infer_rays(origins, directions, background).saliency is None  # only when asked


def test_rendering_stops_each_ray_once_little_light_is_left(device):
    """infer_rays stops a ray once its transmittance falls below render_min_transmittance (0.01, as
    Instant-NGP renders): it keeps exactly the samples that still receive that much light, so
    rays that turn opaque stop early, and the colour moves by at most the light left."""
    _, _, renderer = dense_model("ngp", seed=2)
    origins, directions = rays_through_box(128, seed=4)
    background = torch.rand(128, 3, generator=torch.Generator().manual_seed(5)).to(device)
    renderer.render_min_transmittance = renderer.compositor.min_transmittance
    full = renderer.infer_rays(origins, directions, background)
    renderer.render_min_transmittance = 0.01
    early = renderer.infer_rays(origins, directions, background)
    visible = renderer.visible_samples(origins, directions, min_transmittance=0.01)
    all_samples = renderer.visible_samples(origins, directions)
    kept = all_samples.samples.select(ops.transmittance(all_samples.sigma, all_samples.samples) >= 0.01)
    assert torch.equal(visible.samples.counts, kept.counts)
    torch.testing.assert_close(visible.samples.t_starts, kept.t_starts, atol=1e-6, rtol=0)
    stopped = visible.samples.counts < all_samples.samples.counts
    assert stopped.sum() > 10 and early.n_samples < full.n_samples  # a test that can tell
    assert ((early.color - full.color).abs().max(dim=-1).values <= 0.01 + 1e-5).all()


def test_no_sample_nearer_than_the_near_plane(device):
    """Rays starting inside the box (cameras inside a capture's box) keep no sample nearer than
    `near` to their origin, in training and in rendering."""
    _, _, renderer = dense_model("ngp", seed=3)
    renderer.settings = dataclasses.replace(renderer.settings, near=0.3)
    generator = torch.Generator().manual_seed(7)
    origins = 0.3 + 0.4 * torch.rand(64, 3, generator=generator)
    directions = torch.nn.functional.normalize(torch.randn(64, 3, generator=generator), dim=-1)
    jitter = torch.rand(64, generator=generator)
    origins, directions, jitter = origins.to(device), directions.to(device), jitter.to(device)
    for visible in (renderer.visible_samples(origins, directions, jitter),
                    renderer.visible_samples(origins, directions, min_transmittance=0.01)):
        assert visible.samples.n_samples > 0 and (visible.samples.t_starts >= 0.3 - 1e-6).all()
    assert (renderer.visible_samples(origins, directions).samples.t_starts < 0.3 + 0.05).any()  # starts at the plane
