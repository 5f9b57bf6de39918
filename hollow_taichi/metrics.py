"""Image quality metrics (PSNR, SSIM) and compositing RGBA images onto a background, in torch."""
from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"need two (H, W, C) images of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images (H, W, C) in [0, 1]: -10 log10(MSE); inf if equal.

    Returns a 0-dim float64 tensor.
    """
    _check_pair(pred, target)
    mse = (pred.double() - target.double()).square().mean()
    return -10.0 * torch.log10(mse)


def _gaussian_window(device: torch.device) -> torch.Tensor:
    """(SSIM_WINDOW,) float64 normalized Gaussian taps with standard deviation SSIM_SIGMA."""
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW - 1) / 2
    taps = torch.exp(-offsets.square() / (2 * SSIM_SIGMA ** 2))
    return taps / taps.sum()


def _blur_valid(images: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter without padding: (N, 1, H, W) -> (N, 1, H - 10, W - 10)."""
    images = F.conv2d(images, taps.view(1, 1, -1, 1))
    return F.conv2d(images, taps.view(1, 1, 1, -1))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity of images (H, W, C) in [0, 1] (H, W >= 11), as a 0-dim float64 tensor.

    Wang et al. (2004): 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1,
    population (not sample) covariances; the SSIM map is kept only where the window fits inside
    the image ("valid" region) and averaged over it and over channels. This equals scikit-image's
    structural_similarity(pred, target, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1).
    """
    _check_pair(pred, target)
    if min(pred.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {tuple(pred.shape)}")
    x = pred.double().permute(2, 0, 1).unsqueeze(1)
    y = target.double().permute(2, 0, 1).unsqueeze(1)
    taps = _gaussian_window(x.device)
    mean_x, mean_y = _blur_valid(x, taps), _blur_valid(y, taps)
    var_x = _blur_valid(x * x, taps) - mean_x.square()
    var_y = _blur_valid(y * y, taps) - mean_y.square()
    cov = _blur_valid(x * y, taps) - mean_x * mean_y
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * cov + c2)
    denominator = (mean_x.square() + mean_y.square() + c1) * (var_x + var_y + c2)
    return (numerator / denominator).mean()


def rgba_to_rgb(images: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Composite straight-alpha images (..., 4) onto `background` -> (..., 3) float in [0, 1].

    images: uint8 in [0, 255] or float in [0, 1]; background: (3,) float RGB, or any shape
    broadcastable to (..., 3) (e.g. one random colour per pixel). RGB images (..., 3) are only
    converted to float.
    """
    pixels = images.float() / 255.0 if images.dtype == torch.uint8 else images
    colour = pixels[..., :3]
    if pixels.shape[-1] == 3:
        return colour
    alpha = pixels[..., 3:]
    return colour * alpha + background.to(colour) * (1.0 - alpha)
