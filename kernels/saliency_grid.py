"""Saliency grid (HollowNeRF): p(x) = sigmoid(trilerp(G, x)) scales a point's hash features,
v = p(x) * f(x); backward is the kernels' Taichi autodiff.

G is a vertex grid of raw logits over the unit cube: G[i, j, k] sits at (i, j, k) / (R - 1), so the
saliency inside a cell depends only on that cell's 8 corner logits (what makes pruning exact).

Fields:
  positions (N, 3) f32   points in [0, 1]^3 (clamped)
  logits    (R, R, R) f32
  saliency  (N,) f32     p(x)
  features  (N, D) f32   hash features f(x)
  scaled    (N, D) f32   output v = p(x) * f(x)

The scaling is a kernel of its own, one point per iteration, rather than a factor inside the
level-major hash kernel: there, the autodiff adds each level's share of dL/dp into the same point's
gradient from both threads at once, and that contention halved the hash backward (0.60 -> 0.34 M
points/s, 2^16 ray-coherent points, 2^19 table, 2 cores; measured in issue 11).
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


@ti.kernel
def scale_features(saliency: ti.template(), features: ti.template(), scaled: ti.template(), n: ti.i32):
    width = ti.static(features.shape[1])
    for i in range(n):
        p = saliency[i]
        for j in ti.static(range(width)):
            scaled[i, j] = p * features[i, j]
