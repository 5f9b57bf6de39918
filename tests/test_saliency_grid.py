"""Saliency scaling v = sigmoid(trilerp(G, x)) * f against a float64 torch reference, every backend."""
import torch

from hollow_taichi import ops


def reference_scale(positions, features, logits):
    resolution = logits.shape[0]
    clamped = positions.clamp(0.0, 1.0)
    # The cell is chosen in float32 as in the kernel, so points on cell faces land alike.
    corner = torch.floor(clamped.float() * (resolution - 1)).clamp(max=resolution - 2).to(positions.dtype)
    fraction = clamped * (resolution - 1) - corner
    corner = corner.long()
    logit = 0.0
    for corner_id in range(8):
        offset = [(corner_id >> d) & 1 for d in range(3)]
        weight = torch.ones(positions.shape[0], dtype=positions.dtype)
        for d in range(3):
            weight = weight * (fraction[:, d] if offset[d] else 1.0 - fraction[:, d])
        logit = logit + weight * logits[corner[:, 0] + offset[0], corner[:, 1] + offset[1], corner[:, 2] + offset[2]]
    saliency = torch.sigmoid(logit)
    return saliency[:, None] * features, saliency


def test_reference_gradients_match_finite_differences():
    positions = torch.rand(5, 3, dtype=torch.float64) * 0.9 + 0.05
    features = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    logits = torch.randn(3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, g: reference_scale(positions, f, g)[0], (features, logits))


def test_saliency_forward_and_gradients(arch):
    generator = torch.Generator().manual_seed(1)
    resolution, width = 5, 6
    scaler = ops.SaliencyScaler(resolution, width)
    positions = torch.cat([
        torch.rand(300, 3, generator=generator),
        torch.randint(0, resolution, (20, 3), generator=generator).float() / (resolution - 1),  # vertices
        torch.tensor([[-0.5, 0.5, 0.5], [1.5, 0.2, 0.9], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]),  # outside, corners
    ])
    features = torch.randn(positions.shape[0], width, generator=generator).requires_grad_()
    logits = (torch.randn(resolution, resolution, resolution, generator=generator) * 2).requires_grad_()
    upstream = torch.randn(positions.shape[0], width, generator=generator)

    scaled, saliency = scaler(positions, features, logits)
    (scaled * upstream).sum().backward()

    features64 = features.detach().double().requires_grad_()
    logits64 = logits.detach().double().requires_grad_()
    expected, expected_saliency = reference_scale(positions.double(), features64, logits64)
    (expected * upstream.double()).sum().backward()

    torch.testing.assert_close(scaled.detach().double(), expected.detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(saliency.double(), expected_saliency.detach(), atol=1e-6, rtol=1e-5)
    assert logits.grad.abs().sum() > 0 and features.grad.abs().sum() > 0
    torch.testing.assert_close(features.grad.double(), features64.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits.grad.double(), logits64.grad, atol=1e-4, rtol=1e-4)
