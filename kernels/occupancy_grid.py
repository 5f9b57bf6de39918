"""Occupancy grid upkeep (Instant-NGP): sample points in cells, decay, splat maxima, pack bits.

Layout as in ray_march: cascade c, cell (x, y, z) is cell index c*G^3 + (z*G + y)*G + x; cascade c
covers the cube centred at 0.5 with half-size 2^(c-1). No gradients: ndarray arguments.
"""
import taichi as ti


@ti.kernel
def cell_points(cells: ti.types.ndarray(ndim=1), jitter: ti.types.ndarray(ndim=2),
                points: ti.types.ndarray(ndim=2), n: ti.i32, grid_res: ti.i32):
    """points[i] = a point of cell cells[i], at fraction jitter[i] (in [0,1)^3) across the cell."""
    for i in range(n):
        cell = cells[i]
        per_cascade = grid_res * grid_res * grid_res
        cascade = cell // per_cascade
        local = cell % per_cascade
        xyz = ti.Vector([local % grid_res, (local // grid_res) % grid_res, local // (grid_res * grid_res)])
        scale = ti.pow(2.0, ti.cast(cascade, ti.f32))
        for c in ti.static(range(3)):
            unit = (ti.cast(xyz[c], ti.f32) + jitter[i, c]) / grid_res
            points[i, c] = (unit - 0.5) * scale + 0.5


@ti.kernel
def decay(density: ti.types.ndarray(ndim=1), factor: ti.f32):
    for cell in range(density.shape[0]):
        density[cell] *= factor


@ti.kernel
def splat_max(density: ti.types.ndarray(ndim=1), cells: ti.types.ndarray(ndim=1),
              values: ti.types.ndarray(ndim=1), n: ti.i32):
    """density[cells[i]] = max(density[cells[i]], values[i]); repeated cells are fine."""
    for i in range(n):
        ti.atomic_max(density[cells[i]], values[i])


@ti.kernel
def pack_bits(density: ti.types.ndarray(ndim=1), bitfield: ti.types.ndarray(ndim=1), threshold: ti.f32):
    for byte in range(bitfield.shape[0]):
        bits = ti.u8(0)
        for b in ti.static(range(8)):
            if density[byte * 8 + b] > threshold:
                bits |= ti.u8(1 << b)
        bitfield[byte] = bits
