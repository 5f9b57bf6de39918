"""Torch ops over the Taichi kernels: the one module that speaks both torch and Taichi.

Differentiable ops are torch.autograd.Function bridges whose backward runs the Taichi autodiff of
the forward kernel (kernel.grad). Each op object owns the Taichi fields its kernels work on; backward
reloads its inputs into them, so interleaved calls (say, an occupancy update between a forward and
its backward) cannot corrupt a gradient. All tensors live on backend.device().
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import taichi as ti
import torch

from . import backend
from .backend import FieldBuffer, ParameterField
from .kernels import compaction, hash_grid, occupancy_grid, ray_march, saliency_grid, sh_encoding, volume_render


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(device=backend.device(), dtype=torch.float32).contiguous()


def _int32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(device=backend.device(), dtype=torch.int32).contiguous()


# --- hash encoding -----------------------------------------------------------------------------


def level_resolutions(levels: int, base_resolution: int, finest_resolution: int) -> list[int]:
    """Grid resolution per level: a geometric series from base to finest (Instant-NGP)."""
    if levels == 1:
        return [base_resolution]
    growth = math.exp((math.log(finest_resolution) - math.log(base_resolution)) / (levels - 1))
    return [int(math.floor(base_resolution * growth**level)) for level in range(levels)]


class HashEncoder:
    """Multiresolution hash encoding of points in the unit cube.

    Call with positions (N, 3) in [0, 1]^3 and the table parameter (L, T, F), T = 2^log2_table;
    returns features (N, L*F), level-major. Gradients flow to the table and, when positions
    require grad, to the positions.
    """

    def __init__(self, levels: int = 16, features_per_level: int = 2, log2_table: int = 19,
                 base_resolution: int = 16, finest_resolution: int = 2048):
        self.levels = levels
        self.features_per_level = features_per_level
        self.table_size = 1 << log2_table
        self.resolutions = level_resolutions(levels, base_resolution, finest_resolution)
        self.table_shape = (levels, self.table_size, features_per_level)
        self.output_dim = levels * features_per_level
        self._resolutions = ti.field(ti.i32, shape=levels)
        self._resolutions.from_torch(torch.tensor(self.resolutions, dtype=torch.int32))
        self._table = ParameterField(self.table_shape)
        self._positions = FieldBuffer(ti.f32, (3,))
        self._positions_with_grad = FieldBuffer(ti.f32, (3,), needs_grad=True)
        self._features = FieldBuffer(ti.f32, (self.output_dim,), needs_grad=True)

    def addressable_rows(self) -> list[int]:
        """Per level, how many table rows the level can ever read: (res+1)^3 for a dense level (its
        vertices fit the table), the whole table for a hashed one. Rows past a dense level's
        vertices are allocated (one (L, T, F) table) but never read, so they are no parameters."""
        return [min((resolution + 1) ** 3, self.table_size) for resolution in self.resolutions]

    def init_table(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Initial table: U(-1e-4, 1e-4), as Instant-NGP."""
        table = torch.rand(self.table_shape, generator=generator, dtype=torch.float32)
        return ((table * 2 - 1) * 1e-4).to(backend.device())

    def __call__(self, positions: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return _HashEncode.apply(_float32(positions), table, self)

    def forward(self, positions: torch.Tensor, table: torch.Tensor, with_grad: bool) -> torch.Tensor:
        n = positions.shape[0]
        buffer = self._positions_with_grad if with_grad else self._positions
        position_field = buffer.load(positions)
        features = self._features.reserve(n)
        hash_grid.hash_encode(position_field, self._table.sync(table), self._resolutions, features, n)
        return self._features.read(n)

    def backward(self, positions: torch.Tensor, table: torch.Tensor, grad_features: torch.Tensor,
                 with_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        n = positions.shape[0]
        buffer = self._positions_with_grad if with_grad else self._positions
        position_field = buffer.load(positions)
        if with_grad:
            buffer.zero_grad(n)
        features = self._features.reserve(n)
        self._features.load_grad(_float32(grad_features))
        self._table.zero_grad()
        hash_grid.hash_encode.grad(position_field, self._table.sync(table), self._resolutions, features, n)
        grad_positions = buffer.read_grad(n) if with_grad else None
        return self._table.read_grad(), grad_positions


class _HashEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, positions, table, encoder: HashEncoder):
        ctx.encoder = encoder
        ctx.positions_need_grad = positions.requires_grad
        ctx.save_for_backward(positions, table)
        return encoder.forward(positions, table, positions.requires_grad)

    @staticmethod
    def backward(ctx, grad_features):
        positions, table = ctx.saved_tensors
        grad_table, grad_positions = ctx.encoder.backward(positions, table, grad_features,
                                                          ctx.positions_need_grad)
        return grad_positions, grad_table, None


# --- saliency grid -----------------------------------------------------------------------------


class SaliencyScaler:
    """HollowNeRF's saliency: v = sigmoid(trilerp(G, x)) * f.

    Call with positions (N, 3) in [0, 1]^3, features (N, D) and logits G (R, R, R) (a vertex grid
    over the unit cube); returns (v (N, D), p (N,)). Gradients flow to the features and the logits;
    p is an output for inspection and carries none.
    """

    def __init__(self, resolution: int, feature_dim: int):
        self.resolution = resolution
        self.feature_dim = feature_dim
        self._logits = ParameterField((resolution,) * 3)
        self._positions = FieldBuffer(ti.f32, (3,))
        self._features = FieldBuffer(ti.f32, (feature_dim,), needs_grad=True)
        self._scaled = FieldBuffer(ti.f32, (feature_dim,), needs_grad=True)
        self._saliency = FieldBuffer(ti.f32)

    def __call__(self, positions: torch.Tensor, features: torch.Tensor, logits: torch.Tensor):
        return _SaliencyScale.apply(_float32(positions), _float32(features), logits, self)

    def _run(self, positions, features, logits, differentiate: bool):
        n = positions.shape[0]
        args = (self._positions.load(positions), self._logits.sync(logits), self._features.load(features),
                self._scaled.reserve(n), self._saliency.reserve(n), n)
        if differentiate:
            saliency_grid.saliency_scale.grad(*args)
        else:
            saliency_grid.saliency_scale(*args)

    def forward(self, positions, features, logits):
        self._run(positions, features, logits, differentiate=False)
        n = positions.shape[0]
        return self._scaled.read(n), self._saliency.read(n)

    def backward(self, positions, features, logits, grad_scaled):
        n = positions.shape[0]
        self._scaled.reserve(n)
        self._scaled.load_grad(_float32(grad_scaled))
        self._features.reserve(n)
        self._features.zero_grad(n)
        self._logits.zero_grad()
        self._run(positions, features, logits, differentiate=True)
        return self._features.read_grad(n), self._logits.read_grad()


class _SaliencyScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, positions, features, logits, scaler: SaliencyScaler):
        ctx.scaler = scaler
        ctx.save_for_backward(positions, features, logits)
        scaled, saliency = scaler.forward(positions, features, logits)
        ctx.mark_non_differentiable(saliency)
        return scaled, saliency

    @staticmethod
    def backward(ctx, grad_scaled, _grad_saliency):
        positions, features, logits = ctx.saved_tensors
        grad_features, grad_logits = ctx.scaler.backward(positions, features, logits, grad_scaled)
        return None, grad_features, grad_logits, None


# --- spherical harmonics -----------------------------------------------------------------------


def sh_encode(directions: torch.Tensor) -> torch.Tensor:
    """Degree-4 real spherical harmonics of unit directions (N, 3) -> (N, 16). No gradient."""
    directions = _float32(directions)
    coefficients = torch.empty((directions.shape[0], 16), dtype=torch.float32, device=directions.device)
    if directions.shape[0]:
        sh_encoding.sh_encode(directions, coefficients, directions.shape[0])
    return coefficients


# --- packed samples and marching ---------------------------------------------------------------


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


def march_rays(origins: torch.Tensor, directions: torch.Tensor, bitfield: torch.Tensor,
               settings: MarchSettings, jitter: torch.Tensor | None = None) -> PackedSamples:
    """Samples along rays (R, 3) where the occupancy bitfield (uint8, cascades * G^3 / 8) is set.

    jitter (R,) in [0, 1) shifts each ray's first sample by that fraction of a step (training).
    """
    origins, directions = _float32(origins), _float32(directions)
    n_rays = origins.shape[0]
    device = origins.device
    jitter = torch.zeros(n_rays, device=device) if jitter is None else _float32(jitter)
    counts = torch.zeros(n_rays, dtype=torch.int32, device=device)
    offsets = torch.zeros_like(counts)
    scalars = (settings.cascades, settings.grid_resolution, settings.near, settings.cone_angle,
               settings.dt_min, settings.dt_max, settings.max_samples)
    empty_i, empty_f = torch.zeros(1, dtype=torch.int32, device=device), torch.zeros(1, device=device)
    if n_rays:
        ray_march.march_rays(origins, directions, jitter, bitfield, offsets, counts, empty_i, empty_f,
                             empty_f, torch.zeros((1, 3), device=device), n_rays, *scalars, False)
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
        ray_march.march_rays(origins, directions, jitter, bitfield, samples.offsets, counts,
                             samples.ray_indices, samples.t_starts, samples.t_ends, samples.positions,
                             n_rays, *scalars, True)
    return samples


# --- compositing -------------------------------------------------------------------------------


class Compositor:
    """Volume rendering of packed samples: see kernels.volume_render for the equations.

    Call with sigma (M,) >= 0, rgb (M, 3), PackedSamples and background (R, 3); returns color
    (R, 3), opacity (R,), depth (R,). Gradients flow to sigma and rgb.
    """

    def __init__(self, min_transmittance: float = 1e-4):
        self.min_transmittance = min_transmittance
        self._sigma = FieldBuffer(ti.f32, needs_grad=True)
        self._rgb = FieldBuffer(ti.f32, (3,), needs_grad=True)
        self._dt = FieldBuffer(ti.f32)
        self._t_mid = FieldBuffer(ti.f32)
        self._ray_index = FieldBuffer(ti.i32)
        self._tau = FieldBuffer(ti.f32, needs_grad=True)
        self._offsets = FieldBuffer(ti.i32)
        self._counts = FieldBuffer(ti.i32)
        self._background = FieldBuffer(ti.f32, (3,))
        self._opacity = FieldBuffer(ti.f32, needs_grad=True)
        self._color = FieldBuffer(ti.f32, (3,), needs_grad=True)
        self._depth = FieldBuffer(ti.f32, needs_grad=True)
        self._out_color = FieldBuffer(ti.f32, (3,), needs_grad=True)

    def __call__(self, sigma: torch.Tensor, rgb: torch.Tensor, samples: PackedSamples,
                 background: torch.Tensor):
        return _Composite.apply(_float32(sigma), _float32(rgb), samples, _float32(background), self)

    def _load(self, sigma, rgb, samples: PackedSamples, background):
        n_rays = samples.n_rays
        self._sigma.load(sigma)
        self._rgb.load(rgb)
        self._dt.load(_float32(samples.t_ends - samples.t_starts))
        self._t_mid.load(_float32((samples.t_starts + samples.t_ends) * 0.5))
        self._ray_index.load(_int32(samples.ray_indices))
        self._tau.reserve(samples.n_samples)
        self._offsets.load(_int32(samples.offsets))
        self._counts.load(_int32(samples.counts))
        self._background.load(background)
        for buffer in (self._opacity, self._color, self._depth, self._out_color):
            buffer.reserve(n_rays)

    def _depth_args(self, n_rays):
        return (self._sigma.field, self._dt.field, self._offsets.field, self._counts.field, self._tau.field, n_rays)

    def _accumulate_args(self, n_samples):
        return (self._sigma.field, self._rgb.field, self._dt.field, self._t_mid.field, self._ray_index.field,
                self._tau.field, self._opacity.field, self._color.field, self._depth.field, n_samples,
                self.min_transmittance)

    def _background_args(self, n_rays):
        return (self._color.field, self._opacity.field, self._background.field, self._out_color.field, n_rays)

    def _forward_kernels(self, n_samples, n_rays):
        for buffer in (self._opacity, self._color, self._depth):
            buffer.zero(n_rays)
        volume_render.optical_depth(*self._depth_args(n_rays))
        volume_render.accumulate(*self._accumulate_args(n_samples))
        volume_render.add_background(*self._background_args(n_rays))

    def forward(self, sigma, rgb, samples: PackedSamples, background):
        self._load(sigma, rgb, samples, background)
        n_rays = samples.n_rays
        self._forward_kernels(samples.n_samples, n_rays)
        return self._out_color.read(n_rays), self._opacity.read(n_rays), self._depth.read(n_rays)

    def backward(self, sigma, rgb, samples: PackedSamples, background, grad_color, grad_opacity, grad_depth):
        n_samples, n_rays = samples.n_samples, samples.n_rays
        self._load(sigma, rgb, samples, background)
        self._forward_kernels(n_samples, n_rays)
        self._out_color.load_grad(_float32(grad_color))
        self._opacity.load_grad(_float32(grad_opacity))
        self._depth.load_grad(_float32(grad_depth))
        self._color.zero_grad(n_rays)
        for buffer in (self._sigma, self._rgb, self._tau):
            buffer.zero_grad(n_samples)
        volume_render.add_background.grad(*self._background_args(n_rays))
        volume_render.accumulate.grad(*self._accumulate_args(n_samples))
        volume_render.optical_depth_adjoint(*self._depth_args(n_rays))
        return self._sigma.read_grad(n_samples), self._rgb.read_grad(n_samples)


def transmittance(sigma: torch.Tensor, samples: PackedSamples) -> torch.Tensor:
    """T_s (M,): the fraction of light reaching each sample through the ones before it on its ray.

    No gradient: the renderer uses it to drop samples that early termination would ignore.
    """
    sigma = _float32(sigma.detach())
    out = torch.empty_like(sigma)
    if samples.n_samples:
        volume_render.transmittance(sigma, _float32(samples.t_ends - samples.t_starts), _int32(samples.offsets),
                                    _int32(samples.counts), out, samples.n_rays)
    return out


class _Composite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sigma, rgb, samples: PackedSamples, background, compositor: Compositor):
        ctx.compositor = compositor
        ctx.samples = samples
        ctx.save_for_backward(sigma, rgb, background)
        return compositor.forward(sigma, rgb, samples, background)

    @staticmethod
    def backward(ctx, grad_color, grad_opacity, grad_depth):
        sigma, rgb, background = ctx.saved_tensors
        grad_sigma, grad_rgb = ctx.compositor.backward(sigma, rgb, ctx.samples, background,
                                                       grad_color, grad_opacity, grad_depth)
        return grad_sigma, grad_rgb, None, None, None


# --- occupancy grid upkeep ---------------------------------------------------------------------


def occupancy_cell_points(cells: torch.Tensor, jitter: torch.Tensor, grid_resolution: int) -> torch.Tensor:
    """A point (scene space) in each occupancy cell (M,), at fraction jitter (M, 3) across it."""
    cells, jitter = _int32(cells), _float32(jitter)
    points = torch.empty((cells.shape[0], 3), device=cells.device)
    if cells.shape[0]:
        occupancy_grid.cell_points(cells, jitter, points, cells.shape[0], grid_resolution)
    return points


def occupancy_decay_and_splat(density: torch.Tensor, cells: torch.Tensor, values: torch.Tensor,
                              decay: float) -> None:
    """In place: density *= decay everywhere, then density[cells] = max(density[cells], values)."""
    cells, values = _int32(cells), _float32(values)
    occupancy_grid.decay(density, decay)
    if cells.shape[0]:
        occupancy_grid.splat_max(density, cells, values, cells.shape[0])


def occupancy_pack_bits(density: torch.Tensor, bitfield: torch.Tensor, threshold: float) -> None:
    """In place: bit i of bitfield = density[i] > threshold."""
    occupancy_grid.pack_bits(density, bitfield, threshold)


# --- compaction --------------------------------------------------------------------------------


def referenced_rows(kept_cells: torch.Tensor, saliency_cells: int, resolution: int, table_size: int) -> torch.Tensor:
    """Rows (table_size,) bool of one level's table that points in the kept saliency cells can read.

    kept_cells (K, 3) int: coordinates of the kept cells of a grid of saliency_cells^3 cells over the
    unit cube; resolution: the level's grid resolution. See kernels.compaction for which vertices count.
    Cells go in chunks of 1, 2, 4, ... cells, stopping once every row is marked: a hashed level
    fills its table long before its vertices run out, so this bounds the cost at fine resolutions
    (one saliency cell of a coarse grid can hold millions of a fine level's vertices).
    """
    cells = _int32(kept_cells)
    rows = torch.zeros(table_size, dtype=torch.int32, device=cells.device)
    first, chunk = 0, 1
    while first < cells.shape[0] and not rows.all():
        last = min(first + chunk, cells.shape[0])
        compaction.mark_referenced_rows(cells, first, last, saliency_cells, resolution, rows)
        first, chunk = last, 2 * chunk
    return rows.bool()
