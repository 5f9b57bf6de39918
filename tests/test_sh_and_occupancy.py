"""Spherical harmonics (orthonormality), occupancy-grid upkeep kernels and its density threshold, every backend."""
import math

import numpy as np
import torch

from hollow_taichi import ops
from hollow_taichi.occupancy import OccupancyGrid


def test_sh_is_orthonormal_over_the_sphere(arch):
    directions = torch.nn.functional.normalize(torch.randn(200_000, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    basis = ops.sh_encode(directions).cpu().double()
    gram = basis.T @ basis * (4 * math.pi / directions.shape[0])
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=0.03, rtol=0)


def test_sh_low_orders(arch):
    d = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    basis = ops.sh_encode(d).cpu()
    assert basis[:, 0].allclose(torch.tensor(0.5 / math.sqrt(math.pi)))
    torch.testing.assert_close(basis[0, 2], torch.tensor(math.sqrt(3 / (4 * math.pi))))  # z
    torch.testing.assert_close(basis[1, 3], torch.tensor(-math.sqrt(3 / (4 * math.pi))))  # -x


def test_cell_points_lie_in_their_cells(arch):
    grid, cascades = 8, 2
    cells = torch.arange(cascades * grid**3, dtype=torch.int32)
    jitter = torch.rand(cells.shape[0], 3)
    points = ops.occupancy_cell_points(cells, jitter, grid).cpu()
    cascade = (cells // grid**3).long()
    local = cells % grid**3
    xyz = torch.stack([local % grid, (local // grid) % grid, local // grid**2], 1).float()
    scale = (2.0 ** cascade.float())[:, None]
    torch.testing.assert_close(points, ((xyz + jitter) / grid - 0.5) * scale + 0.5)


def test_decay_splat_and_pack_bits(arch):
    density = torch.tensor([1.0, 4.0, 0.0, 2.0] * 4)
    ops.occupancy_decay_and_splat(density, torch.tensor([0, 1, 2, 0]), torch.tensor([3.0, 1.0, 0.5, 5.0]), 0.5)
    torch.testing.assert_close(density[:4], torch.tensor([5.0, 2.0, 0.5, 1.0]))
    torch.testing.assert_close(density[4:8], torch.tensor([0.5, 2.0, 0.0, 1.0]))
    bits = torch.zeros(2, dtype=torch.uint8)
    ops.occupancy_pack_bits(density, bits, 1.5)
    expected = np.packbits((density > 1.5).numpy(), bitorder="little")
    assert bits.numpy().tolist() == expected.tolist()


def test_cells_are_occupied_above_instant_ngps_density_whatever_the_march_step(arch):
    """Optical thickness is measured at Instant-NGP's finest step, so with the threshold 0.01 a cell
    is occupied above density 0.01 / (sqrt(3) / 1024) = 5.9 whether the marcher takes 128 or 1024
    steps a diagonal (a mostly dense field holds the mean above 0.01, so the constant applies)."""
    threshold_density = 0.01 / (math.sqrt(3) / 1024)
    for steps in (128, 1024):
        grid = OccupancyGrid(1, 8, steps_per_diagonal=steps)

        def density(points: torch.Tensor) -> torch.Tensor:
            """Below x = 1/4: 0.8 times the threshold density where y < 1/2, 1.2 times above; 1000 elsewhere."""
            sparse = torch.where(points[:, 1] < 0.5, 0.8, 1.2) * threshold_density
            return torch.where(points[:, 0] < 0.25, sparse, torch.full_like(sparse, 1e3))

        grid.update(density, warmup=True, generator=torch.Generator())
        occupied = grid.occupied().reshape(8, 8, 8).cpu()  # [z, y, x]
        assert occupied[:, :, 2:].all()
        assert not occupied[:, :4, :2].any() and occupied[:, 4:, :2].all()


def test_a_refresh_samples_its_fraction_of_instant_ngps_cells_after_a_first_full_one(arch):
    """sample_fraction 1/4 of a 512-cell grid: the first refresh (the grid holds no density yet)
    evaluates every cell, a later warm-up refresh 128 (a quarter of every cell), one after the
    warm-up 32 at random and 32 occupied (a quarter of Instant-NGP's n/4 and n/4)."""
    grid = OccupancyGrid(1, 8, sample_fraction=0.25)
    evaluated = []

    def density(points: torch.Tensor) -> torch.Tensor:
        evaluated.append(points.shape[0])
        return torch.full_like(points[:, 0], 1e3)

    generator = torch.Generator().manual_seed(0)
    counts = []
    for warmup in (True, True, False):
        evaluated.clear()
        grid.update(density, warmup=warmup, generator=generator)
        counts.append(sum(evaluated))
    assert counts == [512, 128, 64]
    assert grid.occupied().all()
