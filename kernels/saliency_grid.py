"""Saliency grid (HollowNeRF): p(x) = sigmoid(trilerp(G, x)) scales a point's hash features,
v = p(x) * f(x); backward is the kernels' Taichi autodiff.

G is a vertex grid of raw logits over the unit cube: G[i, j, k] sits at (i, j, k) / (R - 1), so the
saliency inside a cell depends only on that cell's 8 corner logits (what makes pruning exact).

Fields:
  positions (N, 3) f32   points in [0, 1]^3 (clamped)
  logits    (R, R, R) f32
  logit     (N,) f32     z(x) = trilerp(G, x)
  saliency  (N,) f32     p(x) = sigmoid(z(x))
  scaled    (N, D) f32   v = p(x) * f(x), f(x) the hash features (kernels.hash_grid)

The differentiable path scales in torch (hollow_taichi.ops.hash_grid): v = p * f is one product,
and its adjoint needs only v, p and dL/dv, so the hash's autodiff (kernels.hash_grid) gives the
table's gradient and saliency_logit's the logits'.
"""
import taichi as ti

from .hash_grid import cell_of, corner_weight, level_features


@ti.func
def trilerp_logit(logits: ti.template(), position):
    corner, fraction = cell_of(position, logits.shape[0] - 1)
    value = 0.0
    for corner_id in ti.static(range(8)):
        offset = ti.Vector([corner_id & 1, (corner_id >> 1) & 1, (corner_id >> 2) & 1])
        vertex = corner + offset
        value += corner_weight(fraction, corner_id) * logits[vertex[0], vertex[1], vertex[2]]
    return value


@ti.func
def point_saliency(positions: ti.template(), logits: ti.template(), i: ti.i32):
    position = ti.Vector([positions[i, 0], positions[i, 1], positions[i, 2]])
    return 1.0 / (1.0 + ti.exp(-trilerp_logit(logits, position)))


@ti.kernel
def saliency(positions: ti.template(), logits: ti.template(), saliency: ti.template(), n: ti.i32):
    for i in range(n):
        saliency[i] = point_saliency(positions, logits, i)


@ti.kernel
def saliency_logit(positions: ti.template(), logits: ti.template(), logit: ti.template(), n: ti.i32,
                   one_thread: ti.template()):
    """z = trilerp(G, x), whose autodiff carries dL/dz to the logits G (and to the positions)."""
    ti.loop_config(serialize=one_thread)
    for i in range(n):
        logit[i] = trilerp_logit(logits, ti.Vector([positions[i, 0], positions[i, 1], positions[i, 2]]))


@ti.kernel
def saliency_no_grad(positions: ti.types.ndarray(ndim=2), logits: ti.types.ndarray(ndim=3),
                     saliency: ti.types.ndarray(ndim=1), n: ti.i32):
    """saliency on torch tensors, for passes without gradient."""
    for i in range(n):
        saliency[i] = point_saliency(positions, logits, i)


@ti.func
def kept_at(kept: ti.template(), positions: ti.template(), i: ti.i32):
    """1 if point i lies in a kept cell of kept (C, C, C) (uint8 over the unit cube), else 0."""
    position = ti.Vector([positions[i, 0], positions[i, 1], positions[i, 2]])
    cell, _ = cell_of(position, kept.shape[0])
    return ti.cast(kept[cell[0], cell[1], cell[2]], ti.f32)


@ti.kernel
def scaled_hash_encode_no_grad(
    positions: ti.types.ndarray(ndim=2),
    table: ti.template(),
    resolutions: ti.template(),
    logits: ti.types.ndarray(ndim=3),
    kept: ti.types.ndarray(ndim=3),
    saliency: ti.types.ndarray(ndim=1),
    scaled: ti.types.ndarray(ndim=2),
    n: ti.i32,
):
    """p and v = p * f of n points in one kernel on torch tensors, for passes without gradient (the
    differentiable path runs hash_grid.hash_encode and saliency on fields); v is zero in the cells
    kept (C, C, C) clears (HollowNeRF's pruning; one cell of 1: none).

    Point by point, every level in one iteration, so p and the kept cell are found once a point.
    Against level by level (each level's table kept hot while all points visit it), 2 threads, the
    middle of three medians of 15: 2^17 table, 2^18 ray-coherent points 39.7 ms against 54.8, the
    points of 2^18 occupancy cells 37.7 against 52.9; 2^19 table 53.0 against 65.5 and 41.6
    against 60.8 (the same values). Unrolling the levels (ti.static) ran no faster."""
    width = ti.static(table.shape[2])
    for i in range(n):
        p = point_saliency(positions, logits, i)
        saliency[i] = p
        scale = p * kept_at(kept, positions, i)
        for level in range(table.shape[0]):
            value = level_features(positions, table, resolutions, level, i)
            for f in ti.static(range(width)):
                scaled[i, level * width + f] = scale * value[f]
