"""The hash encoding with HollowNeRF's saliency scaling (kernels.hash_grid, kernels.saliency_grid):
the table, the encoder and its autograd bridge."""
from __future__ import annotations

import math
from dataclasses import dataclass

import taichi as ti
import torch

from .. import backend
from ..backend import FieldBuffer, ParameterField
from ..kernels import hash_grid, saliency_grid
from .tensors import float32


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
        self.field.from_torch(float32(values))

    def read_grad(self) -> torch.Tensor:
        """A torch copy of the gradient accumulated since the last optimizer step (or zero_grad)."""
        return self.field.grad.to_torch(device=backend.device())

    def zero_grad(self) -> None:
        self.field.grad.fill(0)


@dataclass
class Encoding:
    """What the encode op computed for N points: features (N, L*F) (v = p * f for hollow, zero in
    pruned cells) and the saliency p (N,) (hollow, not pruned; None for ngp). A no-grad call's
    Encoding can be handed to a differentiable call on the same points (HashEncoder's cached)."""

    features: torch.Tensor
    saliency: torch.Tensor | None = None


class HashEncoder:
    """Multiresolution hash encoding of points in the unit cube, optionally scaled by HollowNeRF's
    saliency: v = sigmoid(trilerp(G, x)) * f(x).

    Call with positions (N, 3) in [0, 1]^3, a HashTable of shape table_shape and, for the saliency,
    logits G (R, R, R) (a vertex grid over the unit cube); returns an Encoding: features (N, L*F),
    level-major, and for the saliency p (N,), which carries no gradient. Gradients of
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
        self._saliency = FieldBuffer(ti.f32)
        self._saliency_logit = FieldBuffer(ti.f32, needs_grad=True)
        self._features = FieldBuffer(ti.f32, (self.output_dim,), needs_grad=True)
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
                 cached: Encoding | None = None, kept: torch.Tensor | None = None) -> Encoding:
        """kept (C, C, C) bool (with logits): the cells of the unit cube whose points keep their
        features; elsewhere v = 0 (HollowNeRF's pruning), in the Encoding's features too."""
        # Inputs moved to the device here, where autograd sees it, so gradients return to the caller's device.
        logits = None if logits is None else float32(logits)
        if cached is None and not torch.is_grad_enabled():
            return self._encode_no_grad(float32(positions), table, logits, kept)
        features, saliency = _HashEncode.apply(float32(positions), table.grad_anchor, logits, table, self, cached)
        if logits is None:
            return Encoding(features)
        if kept is not None:
            features = features * kept_at(positions, kept)[:, None]
        return Encoding(features, saliency)

    def _encode_no_grad(self, positions: torch.Tensor, table: HashTable, logits: torch.Tensor | None,
                        kept: torch.Tensor | None) -> Encoding:
        """The Encoding of points (N, 3) for a pass without gradient, by kernels that write torch
        tensors in place (the differentiable path copies through Taichi fields); the pruning is
        applied in the same kernel."""
        n, device = positions.shape[0], positions.device
        if logits is None:
            features = torch.empty((n, self.output_dim), device=device)
            if n:
                hash_grid.hash_encode_no_grad(positions, table.field, self._resolutions, features, n)
            return Encoding(features)
        saliency, scaled = torch.empty(n, device=device), torch.empty((n, self.output_dim), device=device)
        kept = torch.ones((1, 1, 1), dtype=torch.bool, device=device) if kept is None else kept
        if n:
            saliency_grid.scaled_hash_encode_no_grad(positions, table.field, self._resolutions, logits.detach(),
                                                     kept.to(torch.uint8), saliency, scaled, n)
        return Encoding(scaled, saliency)

    def saliency(self, positions: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """p (N,) = sigmoid(trilerp(logits, x)) at points (N, 3) of the unit cube; no gradient."""
        positions = float32(positions)
        n = positions.shape[0]
        saliency = torch.empty(n, device=positions.device)
        if n:
            saliency_grid.saliency_no_grad(positions, float32(logits.detach()), saliency, n)
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
            self._saliency_logit.reserve(n)
            self._logit_field(logits)

    def _logit_field(self, logits: torch.Tensor):
        """The logits' Taichi copy, refreshed if they changed since the last call."""
        if self._logits is None or self._logits.field.shape != tuple(logits.shape):
            self._logits = ParameterField(tuple(logits.shape))
        return self._logits.sync(logits)

    def _position_buffer(self, with_grad: bool) -> FieldBuffer:
        return self._positions_with_grad if with_grad else self._positions

    def forward(self, positions: torch.Tensor, table: HashTable, logits: torch.Tensor | None,
                with_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(v (N, L*F), p (N,)): v = p * f for hollow, f for ngp (p then empty)."""
        n = positions.shape[0]
        self.reserve(n, logits, with_grad)
        position_field = self._position_buffer(with_grad).load(positions)
        hash_grid.hash_encode(position_field, table.field, self._resolutions, self._features.field, n, False)
        features = self._features.read(n)
        if logits is None:
            return features, torch.empty(0, device=backend.device())
        saliency_grid.saliency(position_field, self._logits.field, self._saliency.field, n)
        saliency = self._saliency.read(n)
        return saliency[:, None] * features, saliency

    def backward(self, positions: torch.Tensor, table: HashTable, logits: torch.Tensor | None,
                 scaled: torch.Tensor, saliency: torch.Tensor, grad_features: torch.Tensor,
                 with_grad: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Adds the table's gradient into its field; returns the gradients of positions and logits.

        Hollow, from forward's v = p * f (scaled) and p (saliency): dL/df = p dL/dv goes through
        the hash's autodiff to the table, and dL/dz = (v . dL/dv) (1 - p), z the interpolated logit
        (p = sigmoid(z), so dL/dz = (f . dL/dv) p (1 - p)), through saliency_logit's to the logits.
        No pass keeps f for this: keeping it cost the visible-sample pass ~8 ms at 83,000 points.
        """
        n, one_thread = positions.shape[0], backend.one_thread_autodiff()
        buffer = self._position_buffer(with_grad)
        position_field = buffer.load(positions)
        if with_grad:
            buffer.zero_grad(n)
        grad_features = float32(grad_features)
        features = self._features.reserve(n)
        self._features.load_grad(grad_features if logits is None else saliency[:, None] * grad_features)
        hash_grid.hash_encode.grad(position_field, table.field, self._resolutions, features, n, one_thread)
        if logits is None:
            return (buffer.read_grad(n) if with_grad else None), None
        logit_field, logit = self._logit_field(logits), self._saliency_logit.reserve(n)
        self._saliency_logit.load_grad((scaled * grad_features).sum(dim=1) * (1.0 - saliency))
        self._logits.zero_grad()
        saliency_grid.saliency_logit.grad(position_field, logit_field, logit, n, one_thread)
        return (buffer.read_grad(n) if with_grad else None), self._logits.read_grad()


def kept_at(positions: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """(N,) bool: whether unit-cube points (N, 3) lie in a cell that kept (C, C, C) bool keeps.

    The cell is found as the kernels find it (float32, clamped: kernels.hash_grid.cell_of), so the
    no-grad encoding prunes exactly the points this does.
    """
    cells = kept.shape[0]
    index = torch.floor(float32(positions).clamp(0.0, 1.0) * cells).long().clamp(max=cells - 1)
    return kept[index[:, 0], index[:, 1], index[:, 2]]


class _HashEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, positions, grad_anchor, logits, table: HashTable, encoder: HashEncoder, cached: Encoding | None):
        ctx.encoder, ctx.table = encoder, table
        ctx.positions_need_grad = positions.requires_grad
        if cached is None:
            scaled, saliency = encoder.forward(positions, table, logits, positions.requires_grad)
        else:
            encoder.reserve(positions.shape[0], logits, positions.requires_grad)
            scaled = cached.features.view_as(cached.features)
            saliency = (torch.empty(0, device=positions.device) if cached.saliency is None
                        else cached.saliency.view_as(cached.saliency))
        ctx.save_for_backward(positions, logits, scaled, saliency)
        ctx.mark_non_differentiable(saliency)
        return scaled, saliency

    @staticmethod
    def backward(ctx, grad_features, _grad_saliency):
        positions, logits, scaled, saliency = ctx.saved_tensors
        grad_positions, grad_logits = ctx.encoder.backward(positions, ctx.table, logits, scaled, saliency,
                                                           grad_features, ctx.positions_need_grad)
        return grad_positions, None, grad_logits, None, None, None
