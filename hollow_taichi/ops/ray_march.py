"""Packed samples and marching rays through the occupancy grid (kernels.ray_march)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import backend
from ..kernels import ray_march
from .tensors import float32


@dataclass
class PackedSamples:
    """Samples of many rays packed in one array, ray by ray, each ray's sorted by t.

    ray_indices (M,) int32: the ray of each sample; t_starts, t_ends (M,): the interval along the
    ray; positions (M, 3): interval midpoints in scene space; offsets, counts (R,) int32: ray r owns
    samples offsets[r] .. offsets[r] + counts[r] - 1.
    """

    ray_indices: torch.Tensor
    t_starts: torch.Tensor
    t_ends: torch.Tensor
    positions: torch.Tensor
    offsets: torch.Tensor
    counts: torch.Tensor

    @property
    def n_rays(self) -> int:
        return self.counts.shape[0]

    @property
    def n_samples(self) -> int:
        return self.ray_indices.shape[0]

    def select(self, keep: torch.Tensor) -> "PackedSamples":
        """The samples where keep (M,) bool is set, still packed ray by ray (every ray kept, maybe empty)."""
        counts = torch.zeros_like(self.counts)
        ray_indices = self.ray_indices[keep]
        counts.index_add_(0, ray_indices.long(), torch.ones_like(ray_indices))
        return PackedSamples(ray_indices=ray_indices, t_starts=self.t_starts[keep], t_ends=self.t_ends[keep],
                             positions=self.positions[keep], offsets=(torch.cumsum(counts, 0) - counts).to(torch.int32),
                             counts=counts)


@dataclass(frozen=True)
class MarchSettings:
    """Instant-NGP step schedule: dt = clamp(t * cone_angle, dt_min, dt_max)."""

    cascades: int
    grid_resolution: int
    near: float
    cone_angle: float
    dt_min: float
    dt_max: float
    max_samples: int


def ray_starts(origins: torch.Tensor, directions: torch.Tensor, settings: MarchSettings,
               jitter: torch.Tensor | None = None) -> torch.Tensor:
    """t (R,) where marching rays (R, 3) starts: the scene box's entry, not before settings.near,
    shifted by jitter (R,) in [0, 1) of a step (training); +inf for rays that miss the box."""
    origins, directions = float32(origins), float32(directions)
    n_rays = origins.shape[0]
    jitter = torch.zeros(n_rays, device=origins.device) if jitter is None else float32(jitter)
    t_begin = torch.empty(n_rays, device=origins.device)
    if n_rays:
        ray_march.ray_starts(origins, directions, jitter, t_begin, n_rays, settings.cascades, settings.near,
                             settings.cone_angle, settings.dt_min, settings.dt_max)
    return t_begin


def occupancy_blocks(bitfield: torch.Tensor, cascades: int, grid_resolution: int) -> torch.Tensor:
    """(cascades * (G / BLOCK)^3,) uint8: 1 where a block of BLOCK^3 cells of the bitfield (uint8,
    cascades * G^3 / 8) holds an occupied cell, the marcher's way across empty space a block at a time
    (kernels.ray_march). All ones, which skips nothing, unless G is a multiple of 4 * BLOCK."""
    block_res = max(1, grid_resolution // ray_march.BLOCK)
    blocks = torch.ones(cascades * block_res**3, dtype=torch.uint8, device=backend.device())
    if grid_resolution % (4 * ray_march.BLOCK) == 0:
        ray_march.occupancy_blocks(bitfield.to(backend.device()).contiguous(), blocks, grid_resolution)
    return blocks


def march_from(origins: torch.Tensor, directions: torch.Tensor, t_begin: torch.Tensor, bitfield: torch.Tensor,
               settings: MarchSettings, max_samples: int,
               blocks: torch.Tensor | None = None) -> tuple[PackedSamples, torch.Tensor]:
    """At most max_samples samples along each ray (R, 3) from t_begin (R,) where the occupancy
    bitfield (uint8, cascades * G^3 / 8) is set, and t_next (R,): where each ray's marching goes on
    (+inf for a ray that left the box), so that marching can continue in rounds. blocks: the
    bitfield's occupancy_blocks, made here if not given (callers that march one bitfield many times
    keep them: OccupancyGrid.blocks)."""
    if blocks is None:
        blocks = occupancy_blocks(bitfield, settings.cascades, settings.grid_resolution)
    origins, directions, t_begin = float32(origins), float32(directions), float32(t_begin)
    n_rays = origins.shape[0]
    device = origins.device
    counts = torch.zeros(n_rays, dtype=torch.int32, device=device)
    offsets = torch.zeros_like(counts)
    t_first, t_next = torch.empty(n_rays, device=device), torch.full((n_rays,), math.inf, device=device)
    scalars = (settings.cascades, settings.grid_resolution, settings.cone_angle, settings.dt_min, settings.dt_max,
               max_samples)
    empty_i, empty_f = torch.zeros(1, dtype=torch.int32, device=device), torch.zeros(1, device=device)
    if n_rays:
        ray_march.march_rays(origins, directions, t_begin, bitfield, blocks, offsets, counts, t_first, t_next, empty_i,
                             empty_f, empty_f, torch.zeros((1, 3), device=device), n_rays, *scalars, False)
        offsets = (torch.cumsum(counts, 0) - counts).to(torch.int32)
    n_samples = int(counts.sum())
    samples = PackedSamples(
        ray_indices=torch.empty(n_samples, dtype=torch.int32, device=device),
        t_starts=torch.empty(n_samples, device=device),
        t_ends=torch.empty(n_samples, device=device),
        positions=torch.empty((n_samples, 3), device=device),
        offsets=offsets.contiguous(),
        counts=counts,
    )
    if n_samples:
        ray_march.march_rays(origins, directions, t_begin, bitfield, blocks, samples.offsets, counts, t_first, t_next,
                             samples.ray_indices, samples.t_starts, samples.t_ends, samples.positions,
                             n_rays, *scalars, True)
    return samples, t_next


def march_rays(origins: torch.Tensor, directions: torch.Tensor, bitfield: torch.Tensor,
               settings: MarchSettings, jitter: torch.Tensor | None = None,
               blocks: torch.Tensor | None = None) -> PackedSamples:
    """Samples along rays (R, 3) where the occupancy bitfield (uint8, cascades * G^3 / 8) is set,
    up to settings.max_samples a ray, in one pass.

    jitter (R,) in [0, 1) shifts each ray's first sample by that fraction of a step (training);
    blocks: see march_from.
    """
    t_begin = ray_starts(origins, directions, settings, jitter)
    return march_from(origins, directions, t_begin, bitfield, settings, settings.max_samples, blocks)[0]
