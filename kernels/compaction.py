"""Which hash-table rows a pruned HollowNeRF can still read: the rows of every vertex of the level
cells that touch a kept saliency cell. No gradients: ndarray arguments.

Boxes are closed: a level cell that only shares a face with a kept saliency cell counts. A point
on that face is assigned to either cell depending on float32 rounding, so both must be covered.

Arguments:
  kept_cells (K, 3) i32  integer coordinates of the kept saliency cells, each in [0, S)^3
  rows       (T,) i32    in/out: 1 where a row is referenced (T, the table size, a power of two)
"""
import taichi as ti

from .hash_grid import level_index


@ti.func
def touching_vertices(cell: ti.i32, saliency_cells: ti.i32, resolution: ti.i32):
    """First and last vertex, along one axis, of the level cells c whose closed box
    [c, c+1] / resolution meets saliency cell [cell, cell+1] / saliency_cells."""
    first = ti.max((cell * resolution + saliency_cells - 1) // saliency_cells - 1, 0)
    last = ti.min((cell + 1) * resolution // saliency_cells, resolution - 1)
    return first, last + 1


@ti.kernel
def mark_referenced_rows(kept_cells: ti.types.ndarray(ndim=2), first: ti.i32, last: ti.i32,
                         saliency_cells: ti.i32, resolution: ti.i32, rows: ti.types.ndarray(ndim=1)):
    """Set rows[r] = 1 for each row r of a vertex touching kept cells first .. last - 1.

    Plain stores of one value, not atomics: on Vulkan (lavapipe, Taichi 1.7.4) an atomic inside a
    loop with a run-time bound skipped the loop's last iteration. rows is read before it is written
    so that Taichi uploads it: on Vulkan a torch tensor that a kernel only writes came back holding
    whatever the device buffer held, not its own contents.
    """
    table_size = rows.shape[0]
    for i in range(first, last):
        x0, x1 = touching_vertices(kept_cells[i, 0], saliency_cells, resolution)
        y0, y1 = touching_vertices(kept_cells[i, 1], saliency_cells, resolution)
        z0, z1 = touching_vertices(kept_cells[i, 2], saliency_cells, resolution)
        for z in range(z0, z1 + 1):
            for y in range(y0, y1 + 1):
                for x in range(x0, x1 + 1):
                    row = level_index(ti.Vector([x, y, z]), resolution, table_size)
                    if rows[row] == 0:
                        rows[row] = 1
