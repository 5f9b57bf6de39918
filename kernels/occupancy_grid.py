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


@ti.kernel
def seen_cells(c2w: ti.types.ndarray(ndim=3), bounds: ti.types.ndarray(ndim=2), seen: ti.types.ndarray(ndim=1),
               n_cells: ti.i32, n_cameras: ti.i32, grid_res: ti.i32, near: ti.f32):
    """seen[cell] = 1 if some camera sees part of the cell, else 0 (Instant-NGP's untrained cells).

    c2w (K, 3, 4) OpenGL camera-to-world; bounds (K, 4): the image's extent in normalized camera
    coordinates (u_min, u_max, v_min, v_max; u = x / depth right, v = y / depth down). A cell is
    tested as its bounding sphere, conservatively: seen if that sphere reaches past `near` and its
    projection overlaps the image, or if it reaches behind the camera plane and around the camera.
    """
    for cell in range(n_cells):
        per_cascade = grid_res * grid_res * grid_res
        cascade = cell // per_cascade
        local = cell % per_cascade
        xyz = ti.Vector([local % grid_res, (local // grid_res) % grid_res, local // (grid_res * grid_res)])
        scale = ti.pow(2.0, ti.cast(cascade, ti.f32))
        centre = ((ti.cast(xyz, ti.f32) + 0.5) / grid_res - 0.5) * scale + 0.5
        radius = 0.5 * ti.sqrt(3.0) * scale / grid_res
        found = 0
        for k in range(n_cameras):
            offset = ti.Vector([centre[c] - c2w[k, c, 3] for c in ti.static(range(3))])
            x = offset[0] * c2w[k, 0, 0] + offset[1] * c2w[k, 1, 0] + offset[2] * c2w[k, 2, 0]
            y = offset[0] * c2w[k, 0, 1] + offset[1] * c2w[k, 1, 1] + offset[2] * c2w[k, 2, 1]
            depth = -(offset[0] * c2w[k, 0, 2] + offset[1] * c2w[k, 1, 2] + offset[2] * c2w[k, 2, 2])
            if depth + radius > near:
                if depth <= radius:
                    found = 1  # the sphere straddles the camera plane: count it as seen
                else:
                    u, v = x / depth, -y / depth
                    # the sphere's image around (u, v): radius / (depth - radius) on the axis, stretched
                    # by up to 1 + u^2 + v^2 off it
                    margin = radius * (1.0 + u * u + v * v) / (depth - radius)
                    inside_u = u >= bounds[k, 0] - margin and u <= bounds[k, 1] + margin
                    inside_v = v >= bounds[k, 2] - margin and v <= bounds[k, 3] + margin
                    if inside_u and inside_v:
                        found = 1
            if found:
                break
        seen[cell] = found
