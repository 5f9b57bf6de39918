"""Ray marching through the cascaded bitfield: samples inside the box, empty cells skipped, the
step schedule respected; full and empty grids behave as expected. Every backend."""
import dataclasses
import math

import numpy as np
import pytest
import taichi as ti
import torch

from hollow_taichi import ops
from hollow_taichi.kernels.ray_march import BLOCK, binary_exponent, power_of_two

GRID = 16


def settings(cascades=1, cone_angle=0.0, dt_min=math.sqrt(3) / 128, dt_max=None, max_samples=1024, near=0.0):
    dt_max = dt_min * (1 << (cascades - 1)) * 8 if dt_max is None else dt_max
    return ops.MarchSettings(cascades, GRID, near, cone_angle, dt_min, dt_max, max_samples)


def bitfield_from(occupied: np.ndarray) -> torch.Tensor:
    """occupied: bool (cascades, G, G, G) indexed [c, z, y, x] -> packed little-endian bits."""
    return torch.from_numpy(np.packbits(occupied.reshape(-1), bitorder="little"))


def march(origins, directions, bitfield, config, jitter=None) -> ops.PackedSamples:
    """ops.march_rays, its samples brought to the CPU (ops return tensors on the backend's device)."""
    samples = ops.march_rays(origins, directions, bitfield, config, jitter)
    return ops.PackedSamples(**{item.name: getattr(samples, item.name).cpu() for item in dataclasses.fields(samples)})


def full_grid(cascades=1):
    return bitfield_from(np.ones((cascades, GRID, GRID, GRID), bool))


def random_rays(n, generator, radius=2.0):
    """Rays from a sphere around the box centre aimed at random points inside the unit cube."""
    origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=1) * radius + 0.5
    targets = torch.rand(n, 3, generator=generator)
    return origins, torch.nn.functional.normalize(targets - origins, dim=1)


def box_interval(origins, directions, half):
    lo = (0.5 - half - origins) / directions
    hi = (0.5 + half - origins) / directions
    return torch.minimum(lo, hi).max(1).values, torch.maximum(lo, hi).min(1).values


def test_full_grid_samples_fill_the_box_at_fixed_steps(arch):
    origins, directions = random_rays(64, torch.Generator().manual_seed(0))
    config = settings()
    samples = march(origins, directions, full_grid(), config)
    t_near, t_far = box_interval(origins, directions, 0.5)
    expected = torch.ceil((t_far - t_near) / config.dt_min)
    assert (samples.counts.float() - expected).abs().max() <= 1
    dt = samples.t_ends - samples.t_starts
    torch.testing.assert_close(dt, torch.full_like(dt, config.dt_min))
    assert (samples.positions >= -1e-4).all() and (samples.positions <= 1 + 1e-4).all()
    ray = samples.ray_indices.long()
    torch.testing.assert_close(samples.positions, origins[ray] + directions[ray] * ((samples.t_starts + samples.t_ends) / 2)[:, None])
    for r in range(samples.n_rays):  # contiguous, ordered intervals
        start, count = samples.offsets[r].item(), samples.counts[r].item()
        assert (samples.ray_indices[start:start + count] == r).all()
        torch.testing.assert_close(samples.t_starts[start + 1:start + count], samples.t_ends[start:start + count - 1])


def test_empty_grid_gives_no_samples(arch):
    origins, directions = random_rays(32, torch.Generator().manual_seed(1))
    empty = bitfield_from(np.zeros((1, GRID, GRID, GRID), bool))
    samples = march(origins, directions, empty, settings())
    assert samples.n_samples == 0 and (samples.counts == 0).all()


def test_rays_missing_the_box_give_no_samples(arch):
    origins = torch.tensor([[3.0, 3.0, 3.0], [-2.0, 0.5, 0.5]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    assert march(origins, directions, full_grid(), settings()).n_samples == 0


def test_empty_cells_are_skipped(arch):
    occupied = np.zeros((1, GRID, GRID, GRID), bool)
    occupied[0, :, :, : GRID // 4] = True  # only x < 0.25
    occupied[0, 5, 7, 12] = True  # and one lone cell
    origins, directions = random_rays(400, torch.Generator().manual_seed(2))
    samples = march(origins, directions, bitfield_from(occupied), settings())
    cells = torch.floor(samples.positions * GRID).long().clamp(0, GRID - 1)
    assert samples.n_samples > 0
    assert occupied[0, cells[:, 2], cells[:, 1], cells[:, 0]].all()
    full = march(origins, directions, full_grid(), settings())
    assert samples.n_samples < 0.4 * full.n_samples


def test_cone_stepping_schedule(arch):
    origins, directions = random_rays(16, torch.Generator().manual_seed(3), radius=6.0)
    config = settings(cascades=3, cone_angle=1 / 64, dt_min=0.004, dt_max=0.05)
    samples = march(origins, directions, full_grid(3), config)
    expected = (samples.t_starts * config.cone_angle).clamp(config.dt_min, config.dt_max)
    torch.testing.assert_close(samples.t_ends - samples.t_starts, expected)
    assert (samples.t_ends - samples.t_starts).max() > config.dt_min  # the cone really widened steps
    assert (samples.positions.sub(0.5).abs() <= 2.0 + 1e-4).all()  # inside the 3-cascade box
    assert (samples.positions.sub(0.5).abs().max(1).values > 0.5).any()  # and beyond cascade 0


def test_outer_cascade_occupancy_is_used(arch):
    occupied = np.zeros((2, GRID, GRID, GRID), bool)
    occupied[1] = True  # the shell between the unit cube and the 2x box; cascade 0 empty
    origins, directions = random_rays(64, torch.Generator().manual_seed(4), radius=3.0)
    samples = march(origins, directions, bitfield_from(occupied), settings(cascades=2))
    assert samples.n_samples > 0
    assert (samples.positions.sub(0.5).abs().max(1).values >= 0.5 - 1e-3).all()


BLOCK_GRID = 64  # blocks skip only on grids of a multiple of 4 * ray_march.BLOCK cells a side


def sparse_occupancy(cascades: int, seed: int) -> np.ndarray:
    """(cascades, G, G, G) bool, G = BLOCK_GRID: scattered occupied cells, so that about a third of the
    blocks are empty and rays cross both kinds."""
    return np.random.default_rng(seed).random((cascades, BLOCK_GRID, BLOCK_GRID, BLOCK_GRID)) < 0.002


def test_occupancy_blocks_mark_the_blocks_holding_an_occupied_cell(arch):
    occupied = sparse_occupancy(2, seed=5)
    side = BLOCK_GRID // BLOCK
    blocks = ops.occupancy_blocks(bitfield_from(occupied), 2, BLOCK_GRID).cpu().numpy()
    expected = occupied.reshape(2, side, BLOCK, side, BLOCK, side, BLOCK).any(axis=(2, 4, 6))
    assert blocks.tolist() == expected.reshape(-1).astype(np.uint8).tolist()
    assert 0.2 < 1 - expected.mean() < 0.6  # empty blocks to cross, occupied ones to stop at
    assert (ops.occupancy_blocks(bitfield_from(occupied[:, :48, :48, :48]), 2, 48).cpu() == 1).all()  # 48: none


@pytest.mark.parametrize("cascades, cone_angle", [(1, 0.0), (3, 0.0), (3, 1 / 64)])
def test_crossing_empty_blocks_in_one_jump_gives_the_samples_of_the_cell_walk(arch, cascades, cone_angle):
    """The same samples, bit for bit, whether empty blocks are crossed in one jump or cell by cell
    (blocks all marked occupied): at a fixed step, through three cascades, and with steps that grow
    along the ray. Then the step's cascade rises mid-ray, and a jump across an empty block of one
    cascade must stop where the walk would start reading the next, here fully occupied."""
    occupied = sparse_occupancy(cascades, seed=6 + cascades)
    if cone_angle:
        occupied[-1] = True
    bitfield = bitfield_from(occupied)
    dt_min = math.sqrt(3) / 256
    config = ops.MarchSettings(cascades, BLOCK_GRID, 0.0, cone_angle, dt_min, dt_min * (1 << (cascades - 1)) * 8, 1024)
    origins, directions = random_rays(500, torch.Generator().manual_seed(7), radius=2.5)
    jitter = torch.rand(500, generator=torch.Generator().manual_seed(8))
    blocks = ops.occupancy_blocks(bitfield, cascades, BLOCK_GRID)
    assert (blocks == 0).any()
    jumping = ops.march_rays(origins, directions, bitfield, config, jitter, blocks)
    walking = ops.march_rays(origins, directions, bitfield, config, jitter, torch.ones_like(blocks))
    assert jumping.n_samples > 0
    for item in dataclasses.fields(jumping):
        assert torch.equal(getattr(jumping, item.name), getattr(walking, item.name)), item.name


def test_max_samples_and_near_plane(arch):
    origins = torch.tensor([[0.5, 0.5, -1.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0]])
    capped = march(origins, directions, full_grid(), settings(max_samples=10))
    assert capped.n_samples == 10
    near = march(origins, directions, full_grid(), settings(near=1.5))
    assert near.t_starts.min() >= 1.5 - 1e-6


def test_jitter_shifts_the_first_sample(arch):
    origins = torch.tensor([[0.5, 0.5, -1.0]] * 2)
    directions = torch.tensor([[0.0, 0.0, 1.0]] * 2)
    config = settings()
    samples = march(origins, directions, full_grid(), config, jitter=torch.tensor([0.0, 0.5]))
    first = samples.t_starts[samples.offsets.long()]
    assert first[1] - first[0] == pytest.approx(0.5 * config.dt_min, rel=1e-4)


def test_marching_terminates_on_cell_faces_and_axis_aligned_rays(arch):
    """Midpoints exactly on a cell face, with zero direction components: the ray still advances.

    With dt = 1/32 and a half-step jitter every other midpoint of these -x rays lies on a face of the
    16^3 grid, where the distance to the next face is 0 (an earlier marcher looped forever here).
    """
    occupied = np.zeros((1, GRID, GRID, GRID), bool)
    occupied[0, :, :, : GRID // 4] = True  # only x < 0.25
    centres = (torch.arange(4) + 0.5) / GRID
    origins = torch.stack([torch.full((4,), 2.0), centres, centres.flip(0)], dim=1)
    directions = torch.tensor([[-1.0, 0.0, 0.0]]).expand(4, 3)
    config = settings(dt_min=1.0 / 32, dt_max=1.0 / 32)
    samples = march(origins, directions, bitfield_from(occupied), config, jitter=torch.full((4,), 0.5))
    assert (samples.counts == 7).all()  # midpoints at x = 7/32, 6/32, ..., 1/32 (0.25 is in an empty cell)
    assert (samples.positions[:, 0] < 0.25).all()


def test_binary_exponent_and_power_of_two_match_frexp_and_ldexp(arch):
    """The cascade arithmetic reads float exponent bits; it must agree with math.frexp / ldexp,
    at exact powers of two too (where a logarithm's rounding can land either side)."""
    values = [1e-30, 0.0, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 1023.9, 1024.0, 3e5]
    exponents = list(range(-20, 21))

    @ti.kernel
    def evaluate(x: ti.types.ndarray(), e: ti.types.ndarray(), k: ti.types.ndarray(), p: ti.types.ndarray()):
        for i in range(x.shape[0]):
            e[i] = binary_exponent(x[i])
        for i in range(k.shape[0]):
            p[i] = power_of_two(k[i])

    x, e = torch.tensor(values), torch.zeros(len(values), dtype=torch.int32)
    k, p = torch.tensor(exponents, dtype=torch.int32), torch.zeros(len(exponents))
    evaluate(x, e, k, p)
    assert e.tolist() == [math.frexp(max(value, 1e-30))[1] for value in values]
    assert p.tolist() == [math.ldexp(1.0, exponent) for exponent in exponents]
