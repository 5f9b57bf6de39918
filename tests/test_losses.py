"""The distortion loss: its O(samples) scans against the double sum it stands for, its weights against
the compositor's, its gradient through the field, and its place in a training step."""
import pytest
import torch
from test_compact import random_model, rays_through_box, tiny_config
from test_renderer import torch_weights
from test_volume_render import packed

from hollow_taichi import ops
from hollow_taichi.config import TrainConfig
from hollow_taichi.errors import RunError
from hollow_taichi.losses import compositing_weights, distortion_loss
from hollow_taichi.scenes import load_scene
from hollow_taichi.trainer import Trainer

from scenes_util import count_differing, tiny_scene, trained_alike


def double_sum(sigma: torch.Tensor, samples: ops.PackedSamples) -> torch.Tensor:
    """Mip-NeRF 360's distortion loss as written, ray by ray: sum_ij w_i w_j |m_i - m_j| + 1/3 sum w_i^2 d_i."""
    weights = torch_weights(sigma, samples)
    midpoints = (samples.t_starts + samples.t_ends).to(sigma.dtype) / 2
    lengths = (samples.t_ends - samples.t_starts).to(sigma.dtype)
    total = sigma.new_zeros(())
    for offset, count in zip(samples.offsets.tolist(), samples.counts.tolist()):
        w, m, d = (values[offset:offset + count] for values in (weights, midpoints, lengths))
        total = total + (w[:, None] * w[None, :] * (m[:, None] - m[None, :]).abs()).sum() + (w**2 * d).sum() / 3
    return total / samples.n_rays


def test_distortion_loss_and_its_gradient_are_the_double_sums():
    generator = torch.Generator().manual_seed(0)
    samples = packed([5, 0, 1, 40, 17], generator)  # an empty ray, a one-sample ray, a long one
    sigma = (torch.rand(samples.n_samples, generator=generator) * 30).requires_grad_()
    sigma64 = sigma.detach().double().requires_grad_()
    loss, expected = distortion_loss(sigma, samples), double_sum(sigma64, samples)
    loss.backward()
    expected.backward()
    torch.testing.assert_close(loss.double(), expected.detach(), atol=1e-7, rtol=1e-5)
    assert sigma.grad.abs().sum() > 0
    torch.testing.assert_close(sigma.grad.double(), sigma64.grad, atol=1e-7, rtol=1e-4)


def test_distortion_loss_is_smaller_for_a_surface_than_for_a_fog():
    """The same opacity spread over a ray's whole length costs more than concentrated in one sample."""
    samples = packed([20], torch.Generator().manual_seed(1))
    dt = samples.t_ends - samples.t_starts
    fog = 0.1 / dt.sum() * torch.ones(20)  # optical depth 0.1 spread along the ray
    surface = torch.zeros(20)
    surface[10] = 0.1 / dt[10]
    assert distortion_loss(surface, samples) < 0.2 * distortion_loss(fog, samples)


def test_compositing_weights_sum_to_the_compositors_opacity(arch):
    generator = torch.Generator().manual_seed(2)
    samples = packed([5, 0, 1, 40, 200, 17], generator)
    sigma = torch.rand(samples.n_samples, generator=generator) * 30
    rgb = torch.rand(samples.n_samples, 3, generator=generator)
    _, opacity, _ = ops.Compositor(0.0)(sigma, rgb, samples, torch.ones(samples.n_rays, 3))
    weights = compositing_weights(sigma, samples)
    per_ray = torch.zeros(samples.n_rays).index_add_(0, samples.ray_indices.long(), weights)
    torch.testing.assert_close(per_ray, opacity.cpu(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, torch_weights(sigma, samples), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["hollow", "ngp"])
def test_distortion_loss_reaches_the_table_and_the_mlps(device, method):
    field, _, renderer = random_model(tiny_config(method), seed=2)
    origins, directions = rays_through_box(128, seed=4)
    background = torch.ones(128, 3, device=device)
    assert renderer.render_rays(origins, directions, background).distortion is None  # only when asked for
    result = renderer.render_rays(origins, directions, background, distortion=True)
    assert result.n_samples > 0 and result.distortion.item() > 0
    result.distortion.backward()
    assert field.table.read_grad().abs().sum() > 0
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0
               for parameter in field.density_mlp.parameters())


def trained_table(tmp_path, distortion_weight: float) -> torch.Tensor:
    config = TrainConfig(scene=str(tiny_scene(tmp_path / "scene")), arch="cpu", steps=3, seed=0,
                         distortion_weight=distortion_weight)
    config.field.log2_table, config.field.saliency_resolution = 12, 8
    trainer = Trainer(load_scene(config.scene), config, tmp_path / f"run{distortion_weight}", progress=False)
    for _ in range(3):
        trainer.train_step()
    return trainer.field.table.read().clone()


def test_a_training_step_adds_the_weighted_distortion_loss(tmp_path, cpu):
    """Same seed, same batches: two runs at weight 0 agree, and a weight changes what the steps learn."""
    without, again = trained_table(tmp_path, 0.0), trained_table(tmp_path, 0.0)
    assert trained_alike(again, without), count_differing(again, without)
    assert not trained_alike(trained_table(tmp_path, 10.0), without)


@pytest.mark.parametrize("weight", ["-0.1", "nan", "inf"])
def test_a_negative_or_non_finite_distortion_weight_is_refused(weight):
    config = TrainConfig(scene="x", steps=1)
    config.override(f"distortion_weight={weight}")
    with pytest.raises(RunError, match="distortion_weight must be a non-negative number"):
        config.validate()
