"""Multiresolution hash encoding (Instant-NGP), forward kernels; backward is their Taichi autodiff.

Fields (ndarrays in the kernels without gradient):
  positions   (N, 3) f32   points in the unit cube [0, 1]^3; points outside are clamped onto it
  table       (L, T, F) f32 per-level feature tables, T a power of two
  resolutions (L,) i32     grid resolution of each level (cells per side)
  features    (N, L*F) f32 output, level-major: features[i, l*F + f]
"""
import taichi as ti

PRIME_Y = 2654435761
PRIME_Z = 805459861


@ti.func
def is_dense(resolution: ti.i32, table_size: ti.i32) -> ti.i32:
    """Whether a level's (res+1)^3 vertices fit its table, which then indexes them densely."""
    side = ti.i64(resolution + 1)
    return side * side * side <= ti.i64(table_size)


@ti.func
def corner_rows(corner, resolution: ti.i32, table_size: ti.i32):
    """Rows in the level's table of the 8 corners of the cell whose lower corner is `corner` (corner_id
    bit d set: upper vertex along axis d): dense when (res+1)^3 vertices fit, else hashed with
    Instant-NGP's primes, from per-axis terms computed once for all 8: 2^17 ray-coherent
    points, 2^17 table, 2 threads, 15 alternating calls: the encoding in 68.5 ms (median 77.5)
    against 77.4 (88.4) with each corner's row found on its own."""
    rows = ti.Vector([0] * 8, dt=ti.i32)
    if is_dense(resolution, table_size):
        stride_y = resolution + 1
        stride_z = stride_y * stride_y
        base = corner[0] + stride_y * corner[1] + stride_z * corner[2]
        for corner_id in ti.static(range(8)):
            rows[corner_id] = (base + (corner_id & 1) + stride_y * ((corner_id >> 1) & 1)
                               + stride_z * ((corner_id >> 2) & 1))
    else:
        lower = ti.Vector([ti.u32(corner[0]), ti.u32(corner[1]) * ti.u32(PRIME_Y), ti.u32(corner[2]) * ti.u32(PRIME_Z)])
        upper = lower + ti.Vector([ti.u32(1), ti.u32(PRIME_Y), ti.u32(PRIME_Z)])
        mask = ti.u32(table_size - 1)
        for corner_id in ti.static(range(8)):
            hashed = ti.u32(0)
            for d in ti.static(range(3)):
                hashed ^= upper[d] if ti.static((corner_id >> d) & 1) else lower[d]
            rows[corner_id] = ti.i32(hashed & mask)
    return rows


@ti.func
def level_index(corner, resolution: ti.i32, table_size: ti.i32) -> ti.i32:
    """Row of a grid vertex in its level's table: dense when (res+1)^3 vertices fit, else hashed
    (corner_rows, which defines both, for one vertex)."""
    return corner_rows(corner, resolution, table_size)[0]


@ti.func
def cell_of(position, resolution: ti.i32):
    """Lower corner (integer vertex) and fractional offset of a unit-cube point at this resolution."""
    scaled = ti.math.clamp(position, 0.0, 1.0) * resolution
    corner = ti.min(ti.cast(ti.floor(scaled), ti.i32), resolution - 1)
    return corner, scaled - corner


@ti.func
def corner_weight(fraction, corner_id: ti.template()):
    """Trilinear weight of cube corner `corner_id` (bit d set: upper vertex along axis d)."""
    weight = 1.0
    for d in ti.static(range(3)):
        if ti.static((corner_id >> d) & 1):
            weight *= fraction[d]
        else:
            weight *= 1.0 - fraction[d]
    return weight


@ti.func
def level_features(positions: ti.template(), table: ti.template(), resolutions: ti.template(), level: ti.i32,
                   i: ti.i32):
    """Point i's F features at one level: the trilerp of its 8 corner rows of the level's table."""
    table_size, width = ti.static(table.shape[1], table.shape[2])
    resolution = resolutions[level]
    position = ti.Vector([positions[i, 0], positions[i, 1], positions[i, 2]])
    corner, fraction = cell_of(position, resolution)
    rows = corner_rows(corner, resolution, table_size)
    value = ti.Vector([0.0] * width)
    for corner_id in ti.static(range(8)):
        weight = corner_weight(fraction, corner_id)
        for f in ti.static(range(width)):
            value[f] += weight * table[level, rows[corner_id], f]
    return value


@ti.func
def encode_level(positions: ti.template(), table: ti.template(), resolutions: ti.template(), features: ti.template(),
                 level: ti.i32, i: ti.i32):
    """features[i, level's F columns] = level_features."""
    width = ti.static(table.shape[2])
    value = level_features(positions, table, resolutions, level, i)
    for f in ti.static(range(width)):
        features[i, level * width + f] = value[f]


@ti.kernel
def hash_encode(
    positions: ti.template(),
    table: ti.template(),
    resolutions: ti.template(),
    features: ti.template(),
    n: ti.i32,
    one_thread: ti.template(),
):
    """one_thread: run the loop on one thread, for the autodiff on the CPU (kernels/__init__.py)."""
    ti.loop_config(serialize=one_thread)
    # Level by level: its one-thread autodiff at 2^16 points, 22.1 ms against 29.0 point by point
    # (a loop over the levels inside each point's iteration, whose adjoint keeps a stack).
    for level, i in ti.ndrange(table.shape[0], n):
        encode_level(positions, table, resolutions, features, level, i)


@ti.kernel
def hash_encode_no_grad(
    positions: ti.types.ndarray(ndim=2),
    table: ti.template(),
    resolutions: ti.template(),
    features: ti.types.ndarray(ndim=2),
    n: ti.i32,
):
    """hash_encode reading and writing torch tensors where they are, for passes without gradient
    (rendering, the visible-sample and occupancy passes): no copies through fields. Point by point,
    every level in one iteration: see saliency_grid.scaled_hash_encode_no_grad."""
    for i in range(n):
        for level in range(table.shape[0]):
            encode_level(positions, table, resolutions, features, level, i)
