"""The occupancy grid's upkeep (kernels.occupancy_grid)."""
from __future__ import annotations

import torch

from .. import backend
from ..kernels import occupancy_grid
from .tensors import float32, int32


def occupancy_seen_cells(c2w: torch.Tensor, bounds: torch.Tensor, near: float, cascades: int,
                         grid_resolution: int) -> torch.Tensor:
    """(cascades * G^3,) bool: cells that some camera (c2w (K, 3, 4), image extent bounds (K, 4),
    see Cameras.view_bounds) sees beyond `near`; kernels.occupancy_grid.seen_cells."""
    n_cells = cascades * grid_resolution**3
    seen = torch.zeros(n_cells, dtype=torch.int32, device=backend.device())
    occupancy_grid.seen_cells(float32(c2w), float32(bounds), seen, n_cells, c2w.shape[0], grid_resolution, near)
    return seen.bool()


def occupancy_cell_points(cells: torch.Tensor, jitter: torch.Tensor, grid_resolution: int) -> torch.Tensor:
    """A point (scene space) in each occupancy cell (M,), at fraction jitter (M, 3) across it."""
    cells, jitter = int32(cells), float32(jitter)
    points = torch.empty((cells.shape[0], 3), device=cells.device)
    if cells.shape[0]:
        occupancy_grid.cell_points(cells, jitter, points, cells.shape[0], grid_resolution)
    return points


def occupancy_decay_and_splat(density: torch.Tensor, cells: torch.Tensor, values: torch.Tensor,
                              decay: float) -> None:
    """In place: density *= decay everywhere, then density[cells] = max(density[cells], values)."""
    cells, values = int32(cells), float32(values)
    occupancy_grid.decay(density, decay)
    if cells.shape[0]:
        occupancy_grid.splat_max(density, cells, values, cells.shape[0])


def occupancy_pack_bits(density: torch.Tensor, bitfield: torch.Tensor, threshold: float) -> None:
    """In place: bit i of bitfield = density[i] > threshold."""
    occupancy_grid.pack_bits(density, bitfield, threshold)
