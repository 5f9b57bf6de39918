"""Regularisers on packed samples, in plain torch (autograd differentiates them).

distortion_loss is Mip-NeRF 360's distortion loss (Barron et al. 2022, eq. 15): for a ray whose
samples s have compositing weights w_s, midpoints m_s and lengths d_s,

  L = sum_{i,j} w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 d_i,

small when the ray's weight sits in one short stretch (a surface) and large when it is spread along
the ray (fog, floaters in front of the surface). With the samples sorted by t the double sum is
2 sum_i w_i (m_i W_i - S_i), where W_i and S_i are the sums of w_j and w_j m_j over the ray's samples
j before i: two scans, O(samples) instead of O(samples^2 / rays).
"""
from __future__ import annotations

import torch

from .ops import PackedSamples


def segmented_exclusive_cumsum(values: torch.Tensor, samples: PackedSamples) -> torch.Tensor:
    """For each sample, the sum of `values` (M,) over the earlier samples of its ray, in float64:
    one cumulative sum over all samples, less its value at the ray's first sample (float32 would
    lose the small per-ray sums against the running total of thousands of rays)."""
    values = values.double()
    running = torch.cumsum(values, 0) - values
    return running - running[samples.offsets.long()[samples.ray_indices.long()]]


def compositing_weights(sigma: torch.Tensor, samples: PackedSamples) -> torch.Tensor:
    """w_s = T_s (1 - exp(-sigma_s d_s)), T_s = exp(-optical depth before s): the compositor's weights,
    without its early termination (which drops samples after T < 1e-4, whose weights are below that)."""
    thickness = sigma * (samples.t_ends - samples.t_starts)
    light = torch.exp(-segmented_exclusive_cumsum(thickness, samples)).float()
    return light * -torch.expm1(-thickness)


def distortion_loss(sigma: torch.Tensor, samples: PackedSamples) -> torch.Tensor:
    """Mip-NeRF 360's distortion loss, averaged over the rays (the module's docstring); differentiable
    in sigma (M,). Distances are the marcher's t, in the scene's (NGP) units."""
    if samples.n_rays == 0:
        return sigma.sum() * 0.0
    weights = compositing_weights(sigma, samples)
    midpoints = 0.5 * (samples.t_starts + samples.t_ends)
    lengths = samples.t_ends - samples.t_starts
    weight_before = segmented_exclusive_cumsum(weights, samples)
    moment_before = segmented_exclusive_cumsum(weights * midpoints, samples)
    spread = 2.0 * weights.double() * (midpoints.double() * weight_before - moment_before)
    own = weights.double() ** 2 * lengths.double() / 3.0
    return ((spread + own).sum() / samples.n_rays).float()
