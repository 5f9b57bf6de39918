"""Torch ops over the Taichi kernels: the one module that speaks both torch and Taichi.

Differentiable ops are torch.autograd.Function bridges whose backward runs the Taichi autodiff of
the forward kernel (kernel.grad). Each op object owns the Taichi fields its kernels work on; backward
reloads its inputs into them, so interleaved calls (say, an occupancy update between a forward and
its backward) cannot corrupt a gradient. The one exception is the hash table (HashTable): it stays
in its Taichi field for the whole run, its gradient accumulates there, and TableAdam updates it
there. Called under torch.no_grad (rendering, the visibility and occupancy passes), the encoder and
the compositor run kernels on the torch tensors themselves instead, with no copies through fields.
All tensors live on backend.device().
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import taichi as ti
import torch

from . import backend
from .backend import FieldBuffer, ParameterField
from .kernels import adam, compaction, hash_grid, occupancy_grid, ray_march, saliency_grid, sh_encoding, volume_render


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


class HashTable:
    """The hash grid's feature table (L, T, F): one Taichi field, with its gradient, for the whole run.

    The encoder's kernels read it where it is, their autodiff accumulates into its gradient in place,
    and TableAdam updates it in place and resets the gradient; no training step copies the table
    between torch and Taichi. Torch sees it through read() and write() (checkpoints, export, tests).
    """

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.field = ti.field(ti.f32, shape=self.shape, needs_grad=True)
        # Autograd runs a Function's backward only if a tensor input requires grad; the table is no
        # torch tensor, so this empty one stands for it in the graph (see _HashEncode).
        self.grad_anchor = torch.zeros(0, requires_grad=True)

    def numel(self) -> int:
        return math.prod(self.shape)

    def read(self) -> torch.Tensor:
        """A torch copy of the table (L, T, F)."""
        return self.field.to_torch(device=backend.device())

    def write(self, values: torch.Tensor) -> None:
        """Replace the table with `values` (L, T, F)."""
        if tuple(values.shape) != self.shape:
            raise ValueError(f"table of shape {tuple(values.shape)} does not fit {self.shape}")
        self.field.from_torch(_float32(values))

    def read_grad(self) -> torch.Tensor:
        """A torch copy of the gradient accumulated since the last optimizer step (or zero_grad)."""
        return self.field.grad.to_torch(device=backend.device())

    def zero_grad(self) -> None:
        self.field.grad.fill(0)


@dataclass
class Encoding:
    """What the encode op computed for N points: features (N, L*F) (v = p * f for hollow, zero in
    pruned cells), the saliency p (N,) and the unscaled hash features f (N, L*F) (hollow; neither
    pruned; both None for ngp, and f None from a no-grad call not made reusable). A no-grad call's
    Encoding can be handed to a differentiable call on the same points (HashEncoder's cached; for
    hollow one made with reusable=True)."""

    features: torch.Tensor
    saliency: torch.Tensor | None = None
    unscaled: torch.Tensor | None = None

    def select(self, keep: torch.Tensor) -> "Encoding":
        """The rows where keep (N,) bool (or an index tensor) selects."""
        return Encoding(*(None if part is None else part[keep] for part in (self.features, self.saliency, self.unscaled)))


class HashEncoder:
    """Multiresolution hash encoding of points in the unit cube, optionally scaled by HollowNeRF's
    saliency: v = sigmoid(trilerp(G, x)) * f(x).

    Call with positions (N, 3) in [0, 1]^3, a HashTable of shape table_shape and, for the saliency,
    logits G (R, R, R) (a vertex grid over the unit cube); returns an Encoding: features (N, L*F),
    level-major, and for the saliency p (N,) and f (N, L*F), which carry no gradient. Gradients of
    the features accumulate into the table's gradient field and flow to the logits and, when
    positions require grad, to the positions. With `cached`, the Encoding a no-grad call returned
    for the same points, table and logits, the forward reuses it instead of running the kernels.
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
        self._positions = FieldBuffer(ti.f32, (3,))
        self._positions_with_grad = FieldBuffer(ti.f32, (3,), needs_grad=True)
        self._saliency = FieldBuffer(ti.f32, needs_grad=True)
        self._features = FieldBuffer(ti.f32, (self.output_dim,), needs_grad=True)
        self._scaled = FieldBuffer(ti.f32, (self.output_dim,), needs_grad=True)
        self._logits: ParameterField | None = None

    def addressable_rows(self) -> list[int]:
        """Per level, how many table rows the level can ever read: (res+1)^3 for a dense level (its
        vertices fit the table), the whole table for a hashed one. Rows past a dense level's
        vertices are allocated (one (L, T, F) table) but never read, so they are no parameters."""
        return [min((resolution + 1) ** 3, self.table_size) for resolution in self.resolutions]

    def new_table(self, generator: torch.Generator | None = None) -> HashTable:
        """A table initialised U(-1e-4, 1e-4), as Instant-NGP's."""
        table = HashTable(self.table_shape)
        values = torch.rand(self.table_shape, generator=generator, dtype=torch.float32)
        table.write((values * 2 - 1) * 1e-4)
        return table

    def __call__(self, positions: torch.Tensor, table: HashTable, logits: torch.Tensor | None = None,
                 cached: Encoding | None = None, kept: torch.Tensor | None = None, reusable: bool = False) -> Encoding:
        """kept (C, C, C) bool (with logits): the cells of the unit cube whose points keep their
        features; elsewhere v = 0 (HollowNeRF's pruning), in the Encoding's features too.
        reusable: a no-grad call whose Encoding a differentiable call will get as `cached`; with
        logits it then also holds f, which that call's backward reads (other no-grad calls skip f)."""
        # Inputs moved to the device here, where autograd sees it, so gradients return to the caller's device.
        logits = None if logits is None else _float32(logits)
        if cached is None and not torch.is_grad_enabled():
            return self._encode_no_grad(_float32(positions), table, logits, kept, reusable)
        if cached is not None and logits is not None and cached.unscaled is None:
            raise ValueError("a cached Encoding of a hollow encoder must hold f: make it with reusable=True")
        features, saliency, unscaled = _HashEncode.apply(_float32(positions), table.grad_anchor, logits, table,
                                                         self, cached)
        if logits is None:
            return Encoding(features)
        if kept is not None:
            features = features * kept_at(positions, kept)[:, None]
        return Encoding(features, saliency, unscaled)

    def _encode_no_grad(self, positions: torch.Tensor, table: HashTable, logits: torch.Tensor | None,
                        kept: torch.Tensor | None, reusable: bool) -> Encoding:
        """The Encoding of points (N, 3) for a pass without gradient, by kernels that write torch
        tensors in place (the differentiable path copies through Taichi fields); the pruning is
        applied in the same kernel. Hollow: f only if reusable (see __call__)."""
        n, device = positions.shape[0], positions.device
        if logits is None:
            features = torch.empty((n, self.output_dim), device=device)
            if n:
                hash_grid.hash_encode_no_grad(positions, table.field, self._resolutions, features, n)
            return Encoding(features)
        saliency, scaled = torch.empty(n, device=device), torch.empty((n, self.output_dim), device=device)
        unscaled = torch.empty_like(scaled) if reusable else torch.empty((1, 1), device=device)
        kept = torch.ones((1, 1, 1), dtype=torch.bool, device=device) if kept is None else kept
        if n:
            saliency_grid.scaled_hash_encode_no_grad(positions, table.field, self._resolutions, logits.detach(),
                                                     kept.to(torch.uint8), saliency, unscaled, scaled, n, reusable)
        return Encoding(scaled, saliency, unscaled if reusable else None)

    def saliency(self, positions: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """p (N,) = sigmoid(trilerp(logits, x)) at points (N, 3) of the unit cube; no gradient."""
        positions = _float32(positions)
        n = positions.shape[0]
        saliency = torch.empty(n, device=positions.device)
        if n:
            saliency_grid.saliency_no_grad(positions, _float32(logits.detach()), saliency, n)
        return saliency

    def reserve(self, n: int, logits: torch.Tensor | None, with_grad: bool) -> None:
        """Make now every buffer forward and backward passes over n points use, and bring the
        logits' Taichi copy up to date. Taichi makes fields only on the thread that started it (on
        CUDA it asserts otherwise), and torch runs CUDA backward passes on a thread of its own; a
        forward that reuses a cached Encoding runs no kernel, yet must call this."""
        self._position_buffer(with_grad).reserve(n)
        self._features.reserve(n)
        if logits is not None:
            self._saliency.reserve(n)
            self._scaled.reserve(n)
            self._logit_field(logits)

    def _logit_field(self, logits: torch.Tensor):
        """The logits' Taichi copy, refreshed if they changed since the last call."""
        if self._logits is None or self._logits.field.shape != tuple(logits.shape):
            self._logits = ParameterField(tuple(logits.shape))
        return self._logits.sync(logits)

    def _position_buffer(self, with_grad: bool) -> FieldBuffer:
        return self._positions_with_grad if with_grad else self._positions

    def forward(self, positions: torch.Tensor, table: HashTable, logits: torch.Tensor | None,
                with_grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(v (N, L*F), p (N,), f (N, L*F): the unscaled hash features, which backward reads); p and
        f are empty for ngp."""
        n = positions.shape[0]
        self.reserve(n, logits, with_grad)
        position_field = self._position_buffer(with_grad).load(positions)
        hash_grid.hash_encode(position_field, table.field, self._resolutions, self._features.field, n)
        if logits is None:
            empty = torch.empty(0, device=backend.device())
            return self._features.read(n), empty, empty
        saliency_grid.saliency(position_field, self._logits.field, self._saliency.field, n)
        saliency_grid.scale_features(self._saliency.field, self._features.field, self._scaled.field, n)
        return self._scaled.read(n), self._saliency.read(n), self._features.read(n)

    def backward(self, positions: torch.Tensor, table: HashTable, logits: torch.Tensor | None,
                 unscaled: torch.Tensor, grad_features: torch.Tensor,
                 with_grad: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Adds the table's gradient into its field; returns the gradients of positions and logits.
        unscaled: forward's f (hollow), which the scaling's adjoint reads."""
        n = positions.shape[0]
        buffer = self._position_buffer(with_grad)
        position_field = buffer.load(positions)
        if with_grad:
            buffer.zero_grad(n)
        grad_logits = None
        if logits is None:
            features = self._features.reserve(n)
            self._features.load_grad(_float32(grad_features))
        else:
            features, saliency, scaled = self._features.load(unscaled), self._saliency.reserve(n), self._scaled.reserve(n)
            logit_field = self._logit_field(logits)
            saliency_grid.saliency(position_field, logit_field, saliency, n)
            self._scaled.load_grad(_float32(grad_features))
            self._features.zero_grad(n)
            self._saliency.zero_grad(n)
            self._logits.zero_grad()
            saliency_grid.scale_features.grad(saliency, features, scaled, n)
            saliency_grid.saliency.grad(position_field, logit_field, saliency, n)
            grad_logits = self._logits.read_grad()
        _hash_encode_for_backward().grad(position_field, table.field, self._resolutions, features, n)
        return (buffer.read_grad(n) if with_grad else None), grad_logits


def kept_at(positions: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """(N,) bool: whether unit-cube points (N, 3) lie in a cell that kept (C, C, C) bool keeps.

    The cell is found as the kernels find it (float32, clamped: kernels.hash_grid.cell_of), so the
    no-grad encoding prunes exactly the points this does.
    """
    cells = kept.shape[0]
    index = torch.floor(_float32(positions).clamp(0.0, 1.0) * cells).long().clamp(max=cells - 1)
    return kept[index[:, 0], index[:, 1], index[:, 2]]


def _hash_encode_for_backward():
    """The encoding kernel whose autodiff is the backward: on the CPU its one-thread twin (faster
    there: see kernels.hash_grid.hash_encode_one_thread)."""
    return hash_grid.hash_encode_one_thread if backend.active() == "cpu" else hash_grid.hash_encode


class _HashEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, positions, grad_anchor, logits, table: HashTable, encoder: HashEncoder, cached: Encoding | None):
        ctx.encoder, ctx.table = encoder, table
        ctx.positions_need_grad = positions.requires_grad
        if cached is None:
            scaled, saliency, unscaled = encoder.forward(positions, table, logits, positions.requires_grad)
        else:
            encoder.reserve(positions.shape[0], logits, positions.requires_grad)
            empty = torch.empty(0, device=positions.device)
            scaled, saliency, unscaled = (empty if part is None else part.view_as(part)
                                          for part in (cached.features, cached.saliency, cached.unscaled))
        ctx.save_for_backward(positions, logits, unscaled)
        ctx.mark_non_differentiable(saliency, unscaled)
        return scaled, saliency, unscaled

    @staticmethod
    def backward(ctx, grad_features, _grad_saliency, _grad_unscaled):
        positions, logits, unscaled = ctx.saved_tensors
        grad_positions, grad_logits = ctx.encoder.backward(positions, ctx.table, logits, unscaled, grad_features,
                                                           ctx.positions_need_grad)
        return grad_positions, None, grad_logits, None, None, None


class TableAdam:
    """Adam (torch.optim.Adam's update, no weight decay) on a HashTable, in place, in one kernel that
    also resets the table's gradient; the moments are torch tensors, this object's state.

    Every entry is updated every step, as torch's Adam does (entries with zero gradient still move
    by their decaying first moment), so training matches a torch Adam over the table.
    """

    def __init__(self, table: HashTable, lr: float, betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-15):
        self.table = table
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.steps = 0
        self.first_moment = torch.zeros(table.shape, device=backend.device())
        self.second_moment = torch.zeros(table.shape, device=backend.device())

    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1.0 - beta1**self.steps)
        root_bias_correction2 = math.sqrt(1.0 - beta2**self.steps)
        adam.adam_step(self.table.field, self.first_moment, self.second_moment, step_size, beta1, beta2,
                       root_bias_correction2, self.eps)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "first_moment": self.first_moment.clone(),
                "second_moment": self.second_moment.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        self.first_moment = _float32(state["first_moment"]).clone()
        self.second_moment = _float32(state["second_moment"]).clone()


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


def ray_starts(origins: torch.Tensor, directions: torch.Tensor, settings: MarchSettings,
               jitter: torch.Tensor | None = None) -> torch.Tensor:
    """t (R,) where marching rays (R, 3) starts: the scene box's entry, not before settings.near,
    shifted by jitter (R,) in [0, 1) of a step (training); +inf for rays that miss the box."""
    origins, directions = _float32(origins), _float32(directions)
    n_rays = origins.shape[0]
    jitter = torch.zeros(n_rays, device=origins.device) if jitter is None else _float32(jitter)
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
    origins, directions, t_begin = _float32(origins), _float32(directions), _float32(t_begin)
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
        if not torch.is_grad_enabled():
            return self._composite_no_grad(_float32(sigma), _float32(rgb), samples, _float32(background))
        return _Composite.apply(_float32(sigma), _float32(rgb), samples, _float32(background), self)

    def _composite_no_grad(self, sigma, rgb, samples: PackedSamples, background):
        """The forward without gradient: kernels on torch tensors, ray by ray (no per-ray atomics,
        no copies through fields)."""
        sums = RaySums.zeros(samples.n_rays, background.device)
        sums.add(sigma, rgb, samples, transmittance(sigma, samples), self.min_transmittance)
        return sums.over(background), sums.opacity, sums.depth

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


def transmittance(sigma: torch.Tensor, samples: PackedSamples, optical_depth: torch.Tensor | None = None) -> torch.Tensor:
    """T_s (M,): the fraction of light reaching each sample through the ones before it on its ray.

    optical_depth (R,), if given, is each ray's optical depth before its first sample here (earlier
    rounds of marching) and is advanced in place past its last. No gradient: the renderer uses it
    to drop samples that early termination would ignore.
    """
    sigma = _float32(sigma.detach())
    out = torch.empty_like(sigma)
    depth = torch.zeros(samples.n_rays, device=sigma.device) if optical_depth is None else optical_depth
    if samples.n_samples:
        volume_render.transmittance(sigma, _float32(samples.t_ends - samples.t_starts), _int32(samples.offsets),
                                    _int32(samples.counts), depth, out, samples.n_rays)
    return out


@dataclass
class RaySums:
    """Compositing's sums per ray without gradient, for rays marched and composited a round at a
    time (rendering): colour (R, 3) before the background, opacity (R,) and depth (R,) (weighted t)."""

    color: torch.Tensor
    opacity: torch.Tensor
    depth: torch.Tensor

    @staticmethod
    def zeros(n_rays: int, device) -> "RaySums":
        return RaySums(torch.zeros((n_rays, 3), device=device), torch.zeros(n_rays, device=device),
                       torch.zeros(n_rays, device=device))

    def add(self, sigma: torch.Tensor, rgb: torch.Tensor, samples: PackedSamples, light: torch.Tensor,
            min_transmittance: float, rays: torch.Tensor | None = None) -> None:
        """Add samples' weights: sigma (M,), rgb (M, 3), light (M,) the transmittance reaching each
        (`transmittance`, which carries a ray's optical depth from round to round). Packed ray r
        adds to sums row rays[r] (default r). Each ray stops at its first sample with less light
        than min_transmittance; rgb is never read from there on, so it may hold anything there."""
        if not samples.n_rays:
            return
        rays = torch.arange(samples.n_rays, device=sigma.device) if rays is None else rays
        volume_render.accumulate_no_grad(_float32(sigma), _float32(rgb), _float32(samples.t_starts),
                                         _float32(samples.t_ends), _float32(light), _int32(samples.offsets),
                                         _int32(samples.counts), _int32(rays), self.color, self.opacity, self.depth,
                                         samples.n_rays, min_transmittance)

    def over(self, background: torch.Tensor) -> torch.Tensor:
        """Colour (R, 3) over per-ray background colours (R, 3)."""
        return self.color + (1.0 - self.opacity)[:, None] * background


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


def occupancy_seen_cells(c2w: torch.Tensor, bounds: torch.Tensor, near: float, cascades: int,
                         grid_resolution: int) -> torch.Tensor:
    """(cascades * G^3,) bool: cells that some camera (c2w (K, 3, 4), image extent bounds (K, 4),
    see Cameras.view_bounds) sees beyond `near`; kernels.occupancy_grid.seen_cells."""
    n_cells = cascades * grid_resolution**3
    seen = torch.zeros(n_cells, dtype=torch.int32, device=backend.device())
    occupancy_grid.seen_cells(_float32(c2w), _float32(bounds), seen, n_cells, c2w.shape[0], grid_resolution, near)
    return seen.bool()


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
