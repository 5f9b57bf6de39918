"""Pruned = skipped: OccupancyGrid.restrict_to marks empty every occupancy cell that meets no kept
saliency cell, in every cascade, and the next update keeps those cells empty. Unseen = skipped:
OccupancyGrid.mark_unseen does the same for cells no camera sees. Every backend."""
import numpy as np
import torch

from hollow_taichi import ops
from hollow_taichi.occupancy import OccupancyGrid

SALIENCY_CELLS = 5
GRID = 8


def unpack(bitfield: torch.Tensor, cascades: int) -> np.ndarray:
    """Packed bits -> bool (cascades, G, G, G) indexed [c, z, y, x]."""
    bits = np.unpackbits(bitfield.cpu().numpy(), bitorder="little").astype(bool)
    return bits.reshape(cascades, GRID, GRID, GRID)


def kept_grid(seed: int) -> torch.Tensor:
    kept = torch.zeros((SALIENCY_CELLS,) * 3, dtype=torch.bool)
    kept.view(-1)[torch.randperm(kept.numel(), generator=torch.Generator().manual_seed(seed))[:6]] = True
    return kept


def dense(points: torch.Tensor) -> torch.Tensor:
    """Density 1000 at every point, on the points' device (as the field answers an update)."""
    return torch.full_like(points[:, 0], 1e3)


def cell_boxes(cascade: int, cascades: int) -> tuple[np.ndarray, np.ndarray]:
    """Per axis, the lower and upper edges (G,) of a cascade's cells, in scene-box units [0, 1]."""
    scale, box = 2.0 ** cascade, 2.0 ** (cascades - 1)
    edges = ((np.arange(GRID + 1) / GRID - 0.5) * scale + box / 2) / box
    return edges[:-1], edges[1:]


def test_cells_reaching_a_kept_saliency_cell_stay_and_far_ones_go(arch):
    cascades = 2
    kept = kept_grid(0)
    grid = OccupancyGrid(cascades, GRID)
    grid.restrict_to(kept)
    marked = unpack(grid.keep_mask, cascades)
    generator = np.random.default_rng(1)
    kept_np = kept.numpy()
    for cascade in range(cascades):
        lower, upper = cell_boxes(cascade, cascades)
        for z, y, x in np.ndindex(GRID, GRID, GRID):
            lo = np.array([lower[x], lower[y], lower[z]])
            hi = np.array([upper[x], upper[y], upper[z]])
            points = lo + generator.random((64, 3)) * (hi - lo)
            index = np.clip(np.floor(points * SALIENCY_CELLS).astype(int), 0, SALIENCY_CELLS - 1)
            if kept_np[index[:, 0], index[:, 1], index[:, 2]].any():  # safety: a kept point is never skipped
                assert marked[cascade, z, y, x]
            first = np.clip(np.floor(lo * SALIENCY_CELLS - 1e-9), 0, SALIENCY_CELLS - 1).astype(int)
            last = np.clip(np.floor(hi * SALIENCY_CELLS + 1e-9), 0, SALIENCY_CELLS - 1).astype(int)
            near = kept_np[first[0]:last[0] + 1, first[1]:last[1] + 1, first[2]:last[2] + 1].any()
            if not near:  # tightness: a cell with no kept saliency cell within reach is skipped
                assert not marked[cascade, z, y, x]
    assert 0 < marked.sum() < marked.size


def test_update_keeps_pruned_cells_empty_and_restriction_can_be_lifted(arch):
    grid = OccupancyGrid(1, GRID)
    grid.restrict_to(kept_grid(2))
    grid.update(dense, warmup=True, generator=torch.Generator())
    occupied, allowed = unpack(grid.bitfield, 1), unpack(grid.keep_mask, 1)
    assert occupied.any() and not (occupied & ~allowed).any()
    grid.restrict_to(None)
    grid.update(dense, warmup=True, generator=torch.Generator())
    assert unpack(grid.bitfield, 1).all()


def test_update_evaluates_the_field_only_in_cells_the_mask_leaves(arch):
    grid = OccupancyGrid(1, GRID)
    grid.restrict_to(kept_grid(2))
    allowed = torch.from_numpy(unpack(grid.keep_mask, 1).reshape(-1))
    evaluated = []

    def density(points: torch.Tensor) -> torch.Tensor:
        evaluated.append(points)
        return dense(points)

    grid.update(density, warmup=True, generator=torch.Generator())
    points = torch.cat(evaluated)
    cells = torch.floor(points.cpu() * GRID).long().clamp(0, GRID - 1)
    index = (cells[:, 2] * GRID + cells[:, 1]) * GRID + cells[:, 0]
    assert points.shape[0] == int(allowed.sum()) and allowed[index].all()


def test_marcher_never_samples_pruned_space(arch):
    kept = torch.zeros((SALIENCY_CELLS,) * 3, dtype=torch.bool)
    kept[2, 2, 2] = True  # the centre cell [0.4, 0.6]^3
    grid = OccupancyGrid(1, GRID)
    grid.restrict_to(kept)
    grid.update(dense, warmup=True, generator=torch.Generator())
    origins = torch.tensor([[0.5, 0.5, -1.0], [0.1, 0.1, -1.0]])
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    settings = ops.MarchSettings(1, GRID, 0.0, 0.0, grid.dt_min * 16, grid.dt_max, 1024)
    samples = ops.march_rays(origins, directions, grid.bitfield, settings)
    assert samples.counts[1] == 0 and samples.counts[0] > 0
    assert ((samples.positions[:, 2] > 0.25) & (samples.positions[:, 2] < 0.75)).all()


def one_camera() -> tuple[torch.Tensor, torch.Tensor]:
    """A camera at (0.5, 0.5, 0.9) looking down -z (OpenGL), 90 x 60 degrees: c2w (1, 3, 4), bounds (1, 4)."""
    c2w = torch.tensor([[[1.0, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.9]]])
    return c2w, torch.tensor([[-1.0, 1.0, -0.577, 0.577]])


def seen_by_one_camera(points: np.ndarray, near: float) -> np.ndarray:
    """Whether points (..., 3) lie in one_camera's view beyond `near`."""
    x, y, depth = points[..., 0] - 0.5, points[..., 1] - 0.5, 0.9 - points[..., 2]
    safe = np.maximum(depth, 1e-9)
    return (depth > near) & (np.abs(x / safe) <= 1.0) & (np.abs(y / safe) <= 0.577)


def test_cells_no_camera_sees_are_marked_unseen_and_stay_empty(arch):
    """Every cell with a point in view is kept (safety); cells far from the view (behind the
    camera, outside the frustum by more than a cell) are marked unseen (tightness); updates keep
    them empty and never evaluate them."""
    cascades, near = 2, 0.1
    grid = OccupancyGrid(cascades, GRID)
    grid.mark_unseen(*one_camera(), near)
    seen = unpack(grid.seen_mask, cascades)
    generator = np.random.default_rng(3)
    for cascade in range(cascades):
        size = 2.0 ** cascade / GRID
        for z, y, x in np.ndindex(GRID, GRID, GRID):
            lo = (np.array([x, y, z]) / GRID - 0.5) * 2.0 ** cascade + 0.5
            points = lo + generator.random((64, 3)) * size
            if seen_by_one_camera(points, near).any():
                assert seen[cascade, z, y, x]
            if lo[2] > 0.9 + size:  # wholly behind the camera by more than a cell
                assert not seen[cascade, z, y, x]
    assert 0.1 < seen.mean() < 0.9
    evaluated = []

    def density(points):
        evaluated.append(points.shape[0])
        return dense(points)

    grid.update(density, warmup=True, generator=torch.Generator())
    assert sum(evaluated) == seen.sum()  # warm-up evaluates every seen cell, and only those
    grid.update(density, warmup=False, generator=torch.Generator().manual_seed(1))
    occupied = unpack(grid.bitfield, cascades)
    assert occupied.any() and not (occupied & ~seen).any()


def test_several_cascades_cost_and_fade_per_step_as_one_cascade(arch):
    """K cascades: refreshed every K * 16 steps, fading by 0.95^K a refresh, so that upkeep per
    training step and a cell's fade per step are those of a one-cascade grid."""
    for cascades in (1, 3):
        grid = OccupancyGrid(cascades, GRID)
        due = [step for step in range(1, 16 * 3 * 4 + 1) if grid.update_due(step)]
        assert due == list(range(16 * cascades, 16 * 3 * 4 + 1, 16 * cascades))
        grid.update(dense, warmup=True, generator=torch.Generator())
        before = grid.density.clone()
        grid.update(lambda points: torch.zeros_like(points[:, 0]), warmup=True, generator=torch.Generator())
        fade_per_step = (grid.density / before) ** (1.0 / (16 * cascades))
        assert torch.allclose(fade_per_step.cpu(), torch.full_like(fade_per_step.cpu(), 0.95 ** (1 / 16)))


def test_blocks_the_marcher_jumps_follow_every_change_of_the_bits(arch):
    """OccupancyGrid.blocks (ops.occupancy_blocks of its bits) after an update, after marking unseen
    cells and after assigning bits; a stale block marked empty would make the marcher skip occupied
    cells."""
    grid = OccupancyGrid(2, 32)  # blocks skip only on grids of a multiple of 4 * BLOCK cells a side

    def matches_bits() -> bool:
        return torch.equal(grid.blocks, ops.occupancy_blocks(grid.bitfield, 2, 32))

    assert (grid.blocks == 1).all()
    grid.update(lambda points: torch.where(points[:, 0] < 0.2, dense(points), 0.0), warmup=True,
                generator=torch.Generator())
    assert matches_bits() and (grid.blocks == 0).any() and (grid.blocks == 1).any()
    grid.mark_unseen(*one_camera(), 0.1)
    assert matches_bits()
    grid.bitfield = torch.zeros_like(grid.bitfield)
    assert (grid.blocks == 0).all()
