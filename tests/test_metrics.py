"""PSNR, SSIM (against a plain float64 reference) and RGBA compositing."""
import math

import numpy as np
import pytest
import torch

from hollow_taichi.metrics import psnr, rgba_to_rgb, ssim


def test_psnr_of_known_mse():
    target = torch.zeros(4, 5, 3)
    assert psnr(target + 0.1, target).item() == pytest.approx(20.0)
    noisy = torch.rand(6, 7, 3, generator=torch.Generator().manual_seed(0))
    mse = (noisy.double() - 0.5).square().mean().item()
    assert psnr(noisy, torch.full_like(noisy, 0.5)).item() == pytest.approx(-10 * math.log10(mse))
    assert psnr(noisy, noisy).item() == math.inf


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM straight from Wang et al. (2004): weighted statistics window by window, float64."""
    taps = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    weights = np.outer(taps, taps) / taps.sum() ** 2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    values = []
    for channel in range(x.shape[2]):
        for top in range(x.shape[0] - 10):
            for left in range(x.shape[1] - 10):
                a = x[top:top + 11, left:left + 11, channel]
                b = y[top:top + 11, left:left + 11, channel]
                mean_a, mean_b = (weights * a).sum(), (weights * b).sum()
                var_a = (weights * (a - mean_a) ** 2).sum()
                var_b = (weights * (b - mean_b) ** 2).sum()
                cov = (weights * (a - mean_a) * (b - mean_b)).sum()
                values.append((2 * mean_a * mean_b + c1) * (2 * cov + c2)
                              / ((mean_a ** 2 + mean_b ** 2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_ssim_matches_reference_on_a_random_pair():
    rng = np.random.default_rng(1)
    x = rng.random((16, 19, 3))
    y = np.clip(0.7 * x + 0.3 * rng.random(x.shape), 0, 1)
    expected = reference_ssim(x, y)
    assert 0.2 < expected < 0.95
    value = ssim(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)).item()
    assert value == pytest.approx(expected, abs=1e-6)


def test_ssim_of_identical_images_is_one():
    image = torch.rand(12, 13, 3, generator=torch.Generator().manual_seed(2))
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-12)


def test_metrics_reject_mismatched_or_tiny_images():
    with pytest.raises(ValueError):
        psnr(torch.zeros(4, 4, 3), torch.zeros(4, 5, 3))
    with pytest.raises(ValueError):
        ssim(torch.zeros(10, 12, 3), torch.zeros(10, 12, 3))


def test_rgba_to_rgb_composites_straight_alpha():
    images = torch.tensor([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 255, 51]]], dtype=torch.uint8)
    white = torch.ones(3)
    expected = torch.tensor([[[1.0, 0, 0], [1, 1, 1], [0.8, 0.8, 1.0]]])
    assert torch.allclose(rgba_to_rgb(images, white), expected)
    per_pixel = torch.tensor([[[0.0, 0, 0], [0.0, 0.5, 0], [0, 0, 0]]])
    mixed = rgba_to_rgb(images, per_pixel)
    assert torch.allclose(mixed[0, 1], torch.tensor([0.0, 0.5, 0.0]))
    assert torch.allclose(mixed[0, 2], torch.tensor([0.0, 0.0, 0.2]))
    assert torch.allclose(rgba_to_rgb(images.float() / 255, white), expected)
    rgb = images[..., :3]
    assert torch.equal(rgba_to_rgb(rgb, white), rgb.float() / 255)
