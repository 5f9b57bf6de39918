"""Saliency grid (HollowNeRF): p(x) = sigmoid(trilerp(G, x)), the factor on a point's hash features
(kernels.hash_grid's scale); backward is its Taichi autodiff.

G is a vertex grid of raw logits over the unit cube: G[i, j, k] sits at (i, j, k) / (R - 1), so the
saliency inside a cell depends only on that cell's 8 corner logits (what makes pruning exact).

Fields:
  positions (N, 3) f32   points in [0, 1]^3 (clamped)
  logits    (R, R, R) f32
  saliency  (N,) f32     output p(x)
"""
import taichi as ti

from .hash_grid import cell_of, corner_weight


@ti.func
def trilerp_logit(logits: ti.template(), position):
    corner, fraction = cell_of(position, logits.shape[0] - 1)
    value = 0.0
    for corner_id in ti.static(range(8)):
        offset = ti.Vector([corner_id & 1, (corner_id >> 1) & 1, (corner_id >> 2) & 1])
        vertex = corner + offset
        value += corner_weight(fraction, corner_id) * logits[vertex[0], vertex[1], vertex[2]]
    return value


@ti.kernel
def saliency(positions: ti.template(), logits: ti.template(), saliency: ti.template(), n: ti.i32):
    for i in range(n):
        position = ti.Vector([positions[i, 0], positions[i, 1], positions[i, 2]])
        saliency[i] = 1.0 / (1.0 + ti.exp(-trilerp_logit(logits, position)))
