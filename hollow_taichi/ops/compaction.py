"""Which table rows a compact model keeps (kernels.compaction)."""
from __future__ import annotations

import torch

from ..kernels import compaction
from .tensors import int32


def referenced_rows(kept_cells: torch.Tensor, saliency_cells: int, resolution: int, table_size: int) -> torch.Tensor:
    """Rows (table_size,) bool of one level's table that points in the kept saliency cells can read.

    kept_cells (K, 3) int: coordinates of the kept cells of a grid of saliency_cells^3 cells over the
    unit cube; resolution: the level's grid resolution. See kernels.compaction for which vertices count.
    Cells go in chunks of 1, 2, 4, ... cells, stopping once every row is marked: a hashed level
    fills its table long before its vertices run out, so this bounds the cost at fine resolutions
    (one saliency cell of a coarse grid can hold millions of a fine level's vertices).
    """
    cells = int32(kept_cells)
    rows = torch.zeros(table_size, dtype=torch.int32, device=cells.device)
    first, chunk = 0, 1
    while first < cells.shape[0] and not rows.all():
        last = min(first + chunk, cells.shape[0])
        compaction.mark_referenced_rows(cells, first, last, saliency_cells, resolution, rows)
        first, chunk = last, 2 * chunk
    return rows.bool()
