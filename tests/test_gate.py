"""The soft zero-skipping gate: zero features decode to exactly zero density, with finite gradients."""
import torch

from hollow_taichi.field import soft_zero_gate


def test_gate_is_zero_for_zero_features_and_one_for_trained_ones():
    features = torch.zeros(3, 32)
    features[1, 5] = 1e-2
    features[2] = 1e-6
    gate = soft_zero_gate(features, alpha=1e4)
    assert gate[0] == 0
    assert gate[1] > 0.999
    assert 0 < gate[2] < 0.1


def test_gated_density_has_finite_gradients_at_zero_features():
    features = torch.zeros(4, 32, requires_grad=True)
    raw = torch.randn(4, requires_grad=True)
    density = soft_zero_gate(features, alpha=1e5) * torch.exp(raw)
    density.sum().backward()
    assert (density == 0).all()
    assert torch.isfinite(raw.grad).all() and (raw.grad == 0).all()  # nothing to learn where the gate is shut
    assert features.grad is None  # the gate passes no gradient to the features (see soft_zero_gate)


def test_paper_gate_passes_its_gradient_to_the_features():
    features = torch.full((2, 4), 1e-4, requires_grad=True)
    soft_zero_gate(features, alpha=1e4, gradient=True).sum().backward()
    assert torch.isfinite(features.grad).all() and (features.grad > 0).all()
