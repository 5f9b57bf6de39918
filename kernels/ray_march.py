"""Ray/box intersection and ray marching through a cascaded bitfield occupancy grid (Instant-NGP).

Space: cascade c covers the cube centred at (0.5, 0.5, 0.5) with half-size 2^(c-1), so cascade 0 is
the unit cube and the scene box is the outermost cascade. Each cascade is a G^3 grid stored as bits,
cascade-major, cell (x, y, z) of cascade c at bit c*G^3 + (z*G + y)*G + x.

Marching follows Instant-NGP: step dt = clamp(t * cone_angle, dt_min, dt_max); a sample is emitted
where the cell of the coarser of (the cascade containing the point, the cascade whose cell size
matches dt) is occupied; across empty cells t jumps to the next cell boundary (on the step lattice).
Blocks of BLOCK^3 cells (occupancy_blocks: 1 where any cell of the block is occupied) let a ray cross
an empty block in one jump instead of cell by cell: the samples are the same, since every lattice point
the cell-by-cell walk would visit inside the block is in an empty cell of the same cascade. That needs
the next inner cascade's cube, cells G/4 .. 3G/4 of a cascade, to be made of whole blocks: G a
multiple of 4 * BLOCK (otherwise the blocks are all marked occupied and skip nothing).
No gradient flows here, so the kernels take ndarrays.
"""
import taichi as ti

# Cells a side of an occupancy block. Marching Lego's test view r_40 (a 10-minute 2^17 model, 2 threads;
# the pass that counts samples, which crosses the empty space): 0.46-0.56 s cell by cell, 0.30-0.36 with
# blocks of 4, 0.27-0.29 with blocks of 8.
BLOCK = 8


@ti.func
def ray_box(origin, direction, half_size):
    """Entry and exit t of the ray through the cube centred at 0.5 with the given half-size."""
    inv = 1.0 / direction
    lo = (0.5 - half_size - origin) * inv
    hi = (0.5 + half_size - origin) * inv
    t_near = ti.max(ti.min(lo[0], hi[0]), ti.min(lo[1], hi[1]), ti.min(lo[2], hi[2]))
    t_far = ti.min(ti.max(lo[0], hi[0]), ti.max(lo[1], hi[1]), ti.max(lo[2], hi[2]))
    return t_near, t_far


@ti.func
def binary_exponent(x):
    """frexp's exponent: x = m * 2^e with m in [0.5, 1), read from the float's exponent bits.

    Bits, not a logarithm (nor ti.pow for power_of_two): marching the 160,000 rays of a Lego test
    view on one thread took 2.9 s with log and pow in each cell, 1.75 s without."""
    return ((ti.bit_cast(ti.max(ti.cast(x, ti.f32), 1e-30), ti.i32) >> 23) & 0xFF) - 126


@ti.func
def power_of_two(exponent: ti.i32):
    """2^exponent as f32, built from its exponent bits (exponent in [-126, 127])."""
    return ti.bit_cast((exponent + 127) << 23, ti.f32)


@ti.func
def cascade_of_position(position, cascades: ti.i32):
    extent = ti.abs(position - 0.5).max()
    return ti.min(cascades - 1, ti.max(0, binary_exponent(extent) + 1))


@ti.func
def cascade_of_step(dt, grid_res: ti.i32, cascades: ti.i32):
    return ti.min(cascades - 1, ti.max(0, binary_exponent(dt * grid_res)))


@ti.func
def cell_bit(position, cascade: ti.i32, grid_res: ti.i32):
    """Bit index of the cell holding `position` in `cascade` (position inside that cascade's cube)."""
    local = (position - 0.5) / power_of_two(cascade) + 0.5
    cell = ti.math.clamp(ti.cast(ti.floor(local * grid_res), ti.i32), 0, grid_res - 1)
    return cascade * grid_res * grid_res * grid_res + (cell[2] * grid_res + cell[1]) * grid_res + cell[0]


@ti.func
def is_occupied(bitfield: ti.template(), bit: ti.i32) -> ti.i32:
    return ti.cast((bitfield[bit >> 3] >> ti.cast(bit & 7, ti.u8)) & ti.u8(1), ti.i32)


@ti.kernel
def occupancy_blocks(bitfield: ti.types.ndarray(ndim=1), blocks: ti.types.ndarray(ndim=1), grid_res: ti.i32):
    """blocks[k] = 1 if any cell of block k is occupied, else 0; block k of cascade c at
    c * B^3 + (z * B + y) * B + x, B = grid_res / BLOCK, laid out as the cells are."""
    block_res = grid_res // BLOCK
    for k in range(blocks.shape[0]):
        cascade = k // (block_res * block_res * block_res)
        local = k % (block_res * block_res * block_res)
        corner = ti.Vector([local % block_res, (local // block_res) % block_res, local // (block_res * block_res)])
        corner *= BLOCK
        occupied = 0
        for dz, dy, dx in ti.ndrange(BLOCK, BLOCK, BLOCK):
            cell = ((corner[2] + dz) * grid_res + corner[1] + dy) * grid_res + corner[0] + dx
            occupied |= is_occupied(bitfield, cascade * grid_res * grid_res * grid_res + cell)
        blocks[k] = ti.u8(occupied)


@ti.func
def step_size(t, cone_angle, dt_min, dt_max):
    return ti.math.clamp(t * cone_angle, dt_min, dt_max)


@ti.func
def next_cell_t(t, position, direction, cascade: ti.i32, grid_res: ti.i32, cone_angle, dt_min, dt_max):
    """First t on the step lattice past the boundary of the current cell, and at least one step on.

    The one step is what guarantees progress: a point exactly on a cell face (which float rounding
    makes common) is at distance 0 from it, and a zero direction component gives no boundary.
    """
    res = grid_res / power_of_two(cascade)
    p = res * (position - 0.5)
    to_boundary = (ti.floor(p + 0.5 + 0.5 * ti.math.sign(direction)) - p) / direction
    target = t + ti.max(ti.min(to_boundary[0], to_boundary[1], to_boundary[2]) / res, 0.0)
    t_next = t + step_size(t, cone_angle, dt_min, dt_max)
    while t_next < target:
        t_next += step_size(t_next, cone_angle, dt_min, dt_max)
    return t_next


@ti.func
def skip_empty(t, position, direction, cascade: ti.i32, blocks: ti.template(), grid_res: ti.i32, cascades: ti.i32,
               cone_angle, dt_min, dt_max):
    """Where marching goes on from an empty cell: past its whole block if the block is empty and the
    step's cascade stays at most `cascade` up to there (so every lattice point skipped would have been
    judged by this cascade's empty cells), else past the cell."""
    t_next = t
    jump = blocks[cell_bit(position, cascade, grid_res // BLOCK)] == 0
    if jump:
        t_next = next_cell_t(t, position, direction, cascade, grid_res // BLOCK, cone_angle, dt_min, dt_max)
        jump = cascade_of_step(step_size(t_next, cone_angle, dt_min, dt_max), grid_res, cascades) <= cascade
    if not jump:
        t_next = next_cell_t(t, position, direction, cascade, grid_res, cone_angle, dt_min, dt_max)
    return t_next


@ti.func
def write_sample(ray_index: ti.template(), t_starts: ti.template(), t_ends: ti.template(),
                 positions: ti.template(), s: ti.i32, r: ti.i32, t_start, t_end, position):
    ray_index[s] = r
    t_starts[s] = t_start
    t_ends[s] = t_end
    for c in ti.static(range(3)):
        positions[s, c] = position[c]


@ti.kernel
def ray_starts(
    origins: ti.types.ndarray(ndim=2),
    directions: ti.types.ndarray(ndim=2),
    jitter: ti.types.ndarray(ndim=1),
    t_begin: ti.types.ndarray(ndim=1),
    n_rays: ti.i32,
    cascades: ti.i32,
    near: ti.f32,
    cone_angle: ti.f32,
    dt_min: ti.f32,
    dt_max: ti.f32,
):
    """t_begin[r]: where ray r's marching starts: its entry into the scene box (not before `near`),
    shifted by jitter[r] of a step; +inf for a ray that misses the box."""
    for r in range(n_rays):
        origin = ti.Vector([origins[r, 0], origins[r, 1], origins[r, 2]])
        direction = ti.Vector([directions[r, 0], directions[r, 1], directions[r, 2]])
        t_near, t_far = ray_box(origin, direction, 0.5 * power_of_two(cascades - 1))
        t = ti.max(t_near, near)
        t += jitter[r] * step_size(t, cone_angle, dt_min, dt_max)
        hits_box = t_far > t_near  # false for a miss, and for a NaN bound from a degenerate ray
        t_begin[r] = t if hits_box else ti.math.inf


@ti.kernel
def march_rays(
    origins: ti.types.ndarray(ndim=2),
    directions: ti.types.ndarray(ndim=2),
    t_begin: ti.types.ndarray(ndim=1),
    bitfield: ti.types.ndarray(ndim=1),
    blocks: ti.types.ndarray(ndim=1),
    offsets: ti.types.ndarray(ndim=1),
    counts: ti.types.ndarray(ndim=1),
    t_first: ti.types.ndarray(ndim=1),
    t_next: ti.types.ndarray(ndim=1),
    ray_index: ti.types.ndarray(ndim=1),
    t_starts: ti.types.ndarray(ndim=1),
    t_ends: ti.types.ndarray(ndim=1),
    positions: ti.types.ndarray(ndim=2),
    n_rays: ti.i32,
    cascades: ti.i32,
    grid_res: ti.i32,
    cone_angle: ti.f32,
    dt_min: ti.f32,
    dt_max: ti.f32,
    max_samples: ti.i32,
    emit: ti.template(),
):
    """March ray r from t_begin[r] (see ray_starts) for at most max_samples samples.

    Without `emit`, counts[r] = number of samples of ray r, t_first[r] = the t of its first sample
    (t_begin[r] if none), and t_next[r] = where marching would go on if it stopped at max_samples
    (+inf if the ray left the box first). With it, writes the samples from offsets[r], marching from
    t_first[r]: the empty space before a ray's first sample is crossed once, not twice. The
    emitting pass is a separate compilation, and float rounding may make it find a sample fewer or
    more than the counting pass did; it writes at most counts[r] and pads any slots left over with
    empty intervals (t_start = t_end) at the ray's last t, which composite to nothing.
    """
    for r in range(n_rays):
        origin = ti.Vector([origins[r, 0], origins[r, 1], origins[r, 2]])
        direction = ti.Vector([directions[r, 0], directions[r, 1], directions[r, 2]])
        t_near, t_far = ray_box(origin, direction, 0.5 * power_of_two(cascades - 1))
        t = t_first[r] if ti.static(emit) else t_begin[r]
        first = t
        limit = counts[r] if ti.static(emit) else max_samples
        n = 0
        left_box = not (t < t_far)  # also for t_begin = +inf (a miss) and NaN bounds
        while not left_box and n < limit:
            dt = step_size(t, cone_angle, dt_min, dt_max)
            if t + 0.5 * dt >= t_far:
                left_box = True
                break
            position = origin + (t + 0.5 * dt) * direction  # a sample is its interval's midpoint
            cascade = ti.max(cascade_of_position(position, cascades), cascade_of_step(dt, grid_res, cascades))
            if is_occupied(bitfield, cell_bit(position, cascade, grid_res)):
                if ti.static(emit):
                    write_sample(ray_index, t_starts, t_ends, positions, offsets[r] + n, r, t, t + dt, position)
                elif n == 0:
                    first = t
                n += 1
                t += dt
            else:
                t = skip_empty(t, position, direction, cascade, blocks, grid_res, cascades, cone_angle, dt_min, dt_max)
        if ti.static(emit):
            for k in range(n, limit):
                write_sample(ray_index, t_starts, t_ends, positions, offsets[r] + k, r, t, t, origin + t * direction)
        else:
            counts[r] = n
            t_first[r] = first
            t_next[r] = ti.math.inf if left_box else t
