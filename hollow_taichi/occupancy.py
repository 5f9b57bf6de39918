"""Occupancy grid state and its update schedule (Instant-NGP).

Each cell holds an optical thickness (density * Instant-NGP's smallest step of its cascade,
THICKNESS_STEP * 2^cascade), decayed by 0.95 and raised to fresh density samples every 16 steps (for
one cascade; see OccupancyGrid); a cell is occupied while its thickness exceeds min(0.01, mean
thickness of cascade 0). Warm-up steps sample every cell; later updates sample a quarter of all
cells at random and a quarter of the occupied ones; at a smaller batch than Instant-NGP's, a
proportionally smaller share of these (OccupancyGrid's sample_fraction). Cells a mask clears stay
empty and their density is never evaluated: those no training camera sees (mark_unseen, as
Instant-NGP's untrained cells) and those that meet no kept saliency cell (restrict_to).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from . import backend, ops

MIN_OPTICAL_THICKNESS = 0.01
INSTANT_NGP_STEPS = 1024  # Instant-NGP's NERF_STEPS: the finest step is sqrt(3) / 1024
INSTANT_NGP_BATCH_SAMPLES = 1 << 18  # samples a training step of Instant-NGP's NeRF
# Thickness is measured at Instant-NGP's finest step whatever step the marcher takes, so that the
# threshold 0.01 is Instant-NGP's density threshold, 0.01 / THICKNESS_STEP = 5.9. Measured at the
# march step instead, it was a density of 4.2 on Lego (724 steps a diagonal) and 0.74 on
# builtin:room (128), below an untrained field's ~1. builtin:room, 10 minutes, two builds side by
# side on 2 cores: 24.43 dB held out, 99 samples marched a ray, 7.0 s a frame; before 23.52, 181,
# 10.2 s. Lego 2^19, 1000 steps, seed 0, 40 views: ngp +0.18 dB, hollow +0.31 dB.
THICKNESS_STEP = math.sqrt(3) / INSTANT_NGP_STEPS
_EVAL_CHUNK = 1 << 18


class OccupancyGrid:
    def __init__(self, cascades: int, resolution: int = 128, decay: float = 0.95, device=None,
                 steps_per_diagonal: int = INSTANT_NGP_STEPS, interval: int = 16, sample_fraction: float = 1.0):
        """decay and interval are Instant-NGP's for one cascade. A grid of K cascades is refreshed
        every K * interval steps with decay^K, so that its upkeep costs a training step what one
        cascade's does while a cell's value fades at the same rate per step. Instant-NGP refreshes
        every cascade every 16 steps; with a batch a quarter of its size on 2 CPU cores, the room
        scene's 3 cascades (5.3M cells a camera sees) then cost more than the training itself
        (builtin:room, steps 16-96: 23-28 s each refresh, against 1.0-1.6 s a training step).
        builtin:room, 10 minutes, two builds side by side on 2 cores: 274 steps and 22.43 dB held
        out with this schedule, 192 steps and 20.86 dB with every cascade every 16 steps.

        sample_fraction: the share of Instant-NGP's cells a refresh samples (_cells_to_update).
        Instant-NGP trains 2^18 samples a step (INSTANT_NGP_BATCH_SAMPLES); at a smaller batch the
        same upkeep costs a step that many times more (build_model passes batch / 2^18). After the
        warm-up that makes a cell sampled per training sample what Instant-NGP's are (its testbed
        refreshes every 16 steps from step 256 on; before, every max(1, step / 16) steps, so about
        2.4 cells a sample in its warm-up against 0.57 here, 2.0 at every cell every 16). Lego 2^17,
        hollow, 1000 steps, 40 test views, seeds 0 / 1, side by side: 1/4 (our 2^16 batch) 30.14 /
        29.94 dB against 29.93 / 29.66 with every cell; steps 100-250, 2 cores: 1.00-1.13x faster.
        """
        self.cascades = cascades
        self.steps_per_diagonal = steps_per_diagonal
        self.resolution = resolution
        self.decay = decay**cascades
        self.interval = interval * cascades
        self.sample_fraction = sample_fraction
        self.n_cells = cascades * resolution**3
        device = backend.device() if device is None else device  # where the ops' kernels meet its tensors
        self.density = torch.zeros(self.n_cells, device=device)
        self.bitfield = torch.full((self.n_cells // 8,), 255, dtype=torch.uint8, device=device)
        self.keep_mask: torch.Tensor | None = None  # optional bitfield ANDed in (saliency pruning)
        self.seen_mask: torch.Tensor | None = None  # optional bitfield ANDed in (cells a camera sees)

    @property
    def bitfield(self) -> torch.Tensor:
        """The occupancy bits (uint8, n_cells / 8) the marcher reads. Assign a new tensor rather than
        writing into this one: assigning also refreshes `blocks`, which must agree with the bits."""
        return self._bitfield

    @bitfield.setter
    def bitfield(self, bits: torch.Tensor) -> None:
        self._bitfield = bits
        self._bits_changed()

    def _bits_changed(self) -> None:
        """Refresh what is derived from the bits: the empty blocks the marcher crosses in one jump."""
        self.blocks = ops.occupancy_blocks(self._bitfield, self.cascades, self.resolution)

    @property
    def dt_min(self) -> float:
        """The finest step: the unit cube's diagonal in steps_per_diagonal steps."""
        return math.sqrt(3) / self.steps_per_diagonal

    @property
    def dt_max(self) -> float:
        """The coarsest step (cone tracing): the diagonal of a cell of the outermost cascade."""
        return math.sqrt(3) * (1 << (self.cascades - 1)) / self.resolution

    def update_due(self, step: int) -> bool:
        """Whether the grid is refreshed after training step `step`."""
        return step % self.interval == 0

    def occupied(self) -> torch.Tensor:
        """(n_cells,) bool: the occupancy bits, unpacked."""
        return unpack_bits(self.bitfield)

    def cells(self) -> torch.Tensor:
        """(cascades, G, G, G) bool indexed [cascade, z, y, x]: the occupancy bits as a grid."""
        return self.occupied().view(self.cascades, self.resolution, self.resolution, self.resolution)

    def dilated(self) -> torch.Tensor:
        """cells() with every occupied cell's 26 neighbours occupied too."""
        grid = self.cells().float()[:, None]
        return torch.nn.functional.max_pool3d(grid, 3, stride=1, padding=1)[:, 0].bool()

    def occupied_at(self, points: torch.Tensor, cells: torch.Tensor | None = None) -> torch.Tensor:
        """(N,) bool: whether scene-space points (N, 3) lie in an occupied cell of `cells` (default
        cells()), in the finest cascade whose cube holds them (as the marcher's cell_bit finds it)."""
        cells = self.cells() if cells is None else cells
        extent = (points - 0.5).abs().amax(dim=-1)
        cascade = (torch.frexp(extent).exponent + 1).clamp(0, self.cascades - 1)
        local = (points - 0.5) / torch.pow(2.0, cascade.float())[:, None] + 0.5
        xyz = torch.floor(local * self.resolution).long().clamp(0, self.resolution - 1)
        return cells.to(points.device)[cascade.long(), xyz[:, 2], xyz[:, 1], xyz[:, 0]]

    def occupied_fraction(self) -> float:
        return self.occupied().float().mean().item()

    def mark_unseen(self, c2w: torch.Tensor, bounds: torch.Tensor, near: float) -> None:
        """Keep empty, from now on, every cell that none of the cameras (c2w (K, 3, 4), image extent
        bounds (K, 4), Cameras.view_bounds) sees beyond `near`, and never sample it again.

        Instant-NGP marks such cells untrained: nothing constrains the field there, so whatever
        density it holds can only be a floater in some other view, and on a capture (cameras
        inside a large box, looking one way) they are most of the box: updates that skip them cost
        a fraction of the time.
        """
        seen = ops.occupancy_seen_cells(c2w, bounds, near, self.cascades, self.resolution)
        self.seen_mask = torch.empty_like(self.bitfield)
        ops.occupancy_pack_bits(seen.float(), self.seen_mask, 0.5)
        self.density[~seen] = 0.0
        self._bitfield &= self.seen_mask
        self._bits_changed()

    def _cells_to_update(self, warmup: bool, generator: torch.Generator) -> torch.Tensor:
        """Instant-NGP's cells for a refresh, sample_fraction as many: every cell during warm-up, then
        a quarter of the cells at random and a quarter of the occupied ones. A grid that holds no
        density yet (its first refresh) samples every cell whatever the fraction: a cell never
        sampled would read as empty."""
        if warmup and (self.sample_fraction >= 1.0 or not self.density.any()):
            return torch.arange(self.n_cells, device=self.density.device)
        count = int(self.n_cells * self.sample_fraction) // (1 if warmup else 4)
        uniform = torch.randint(0, self.n_cells, (count,), generator=generator).to(self.density.device)
        if warmup:
            return uniform
        occupied = torch.nonzero(self.density > self.threshold()).flatten()
        if occupied.numel():
            pick = torch.randint(0, occupied.numel(), (count,), generator=generator).to(occupied.device)
            uniform = torch.cat([uniform, occupied[pick]])
        return uniform

    def threshold(self) -> float:
        mean = self.density[: self.resolution**3].mean().item()
        return min(MIN_OPTICAL_THICKNESS, mean)

    @torch.no_grad()
    def update(self, density_fn: Callable[[torch.Tensor], torch.Tensor], warmup: bool,
               generator: torch.Generator) -> None:
        """Refresh from density_fn (scene-space points (N, 3) -> sigma (N,), on the points' device) and
        repack the bits."""
        cells = self._allowed(self._cells_to_update(warmup, generator))
        jitter = torch.rand((cells.shape[0], 3), generator=generator).to(self.density.device)
        points = ops.occupancy_cell_points(cells, jitter, self.resolution)
        sigma = torch.cat([density_fn(chunk) for chunk in points.split(_EVAL_CHUNK)])
        cascade_step = THICKNESS_STEP * torch.pow(2.0, (cells // self.resolution**3).float())
        ops.occupancy_decay_and_splat(self.density, cells, sigma * cascade_step, self.decay)
        ops.occupancy_pack_bits(self.density, self._bitfield, self.threshold())
        for mask in self._masks():
            self._bitfield &= mask
        self._bits_changed()

    def _masks(self) -> list[torch.Tensor]:
        """The bitfields ANDed into the occupancy bits: saliency pruning's and the seen cells'."""
        return [mask for mask in (self.keep_mask, self.seen_mask) if mask is not None]

    def _allowed(self, cells: torch.Tensor) -> torch.Tensor:
        """The cells (M,) that every mask leaves.

        A cell a mask clears stays empty whatever its density, so its density is not evaluated:
        with HollowNeRF's pruning (Lego: ~8% of saliency cells kept) and on captures (cells no
        camera sees) this skips most of an update's field evaluations. Its stored density only
        decays, as an unsampled cell's does.
        """
        for mask in self._masks():
            cells = cells[unpack_bits(mask)[cells]]
        return cells

    def restrict_to(self, kept: torch.Tensor | None) -> None:
        """Mark empty, from the next update on, every cell that meets no kept saliency cell.

        kept (S, S, S) bool, indexed [x, y, z], splits the scene box (the outermost cascade) into
        S^3 cells; None lifts the restriction. A cell is kept if its closed box touches a kept
        saliency cell, so no point of a kept saliency cell is ever skipped.
        """
        if kept is None:
            self.keep_mask = None
            return
        touching = torch.cat([_touching_cells(kept, cascade, self.cascades, self.resolution).flatten()
                              for cascade in range(self.cascades)])
        self.keep_mask = torch.empty_like(self.bitfield)
        ops.occupancy_pack_bits(touching.float().to(self.density.device), self.keep_mask, 0.5)

    def state_dict(self) -> dict:
        return {"density": self.density, "bitfield": self.bitfield, "keep_mask": self.keep_mask}

    def load_state_dict(self, state: dict) -> None:
        self.density = state["density"].to(self.density.device)
        self.bitfield = state["bitfield"].to(self.bitfield.device)
        self.keep_mask = None if state.get("keep_mask") is None else state["keep_mask"].to(self.bitfield.device)


def unpack_bits(bitfield: torch.Tensor) -> torch.Tensor:
    """(8 * B,) bool of a little-endian bitfield (B,) uint8: bit i is bit i & 7 of byte i >> 3."""
    shifts = torch.arange(8, dtype=torch.uint8, device=bitfield.device)
    return torch.bitwise_and(bitfield[:, None] >> shifts, 1).flatten().bool()


def _touching_cells(kept: torch.Tensor, cascade: int, cascades: int, resolution: int) -> torch.Tensor:
    """(G, G, G) bool indexed [z, y, x]: cells of `cascade` whose closed box touches a kept cell.

    Per axis, occupancy cell i spans [lo_i, hi_i] in scene-box units, which meets saliency cells
    floor(lo_i * S) .. floor(hi_i * S). A box touches a kept cell if, one axis at a time, some
    kept cell lies in the axis's range: a prefix sum along the axis counts them. 63^3 saliency
    cells (8% kept) onto 128^3, medians of 10: 9.9 ms against 48.1 for a 3D prefix sum read at
    each box's eight corners.
    """
    size = kept.shape[0]
    edges = torch.arange(resolution + 1, dtype=torch.float64)
    box_units = ((edges / resolution - 0.5) * 2.0 ** cascade + 2.0 ** (cascades - 1) / 2) / 2.0 ** (cascades - 1)
    first = torch.floor(box_units[:-1] * size).long().clamp(0, size - 1)
    last = torch.floor(box_units[1:] * size).long().clamp(0, size - 1)
    touching = kept.cpu()
    for _ in range(3):  # reduce axis 0, then move it last: after three, the axes are back in order
        counts = torch.cat([torch.zeros((1, *touching.shape[1:]), dtype=torch.int32), touching.int().cumsum(0)])
        touching = (counts.index_select(0, last + 1) != counts.index_select(0, first)).permute(1, 2, 0).contiguous()
    return touching.permute(2, 1, 0)
