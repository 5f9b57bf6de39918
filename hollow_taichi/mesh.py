"""Geometry out of a trained model (`hollow-taichi mesh`): a coloured mesh by marching cubes over its
density, or a coloured point cloud where the training views' rays end; in the scene's own frame.

The density is sampled on a grid over the box of the occupied cells, and evaluated only where a
point's occupancy cell (or a neighbour of it) is occupied and, for a HollowNeRF, its saliency cell is
kept: everywhere else the model holds no density (pruned cells decode to exactly zero) and the grid
reads 0. The box is padded by a sample of zeros, so every surface inside it closes. Marching cubes
(PyMCubes) at Instant-NGP's density threshold 2.5, islands under 1% of the largest component's faces
dropped, normals pointing out (towards lower density). A vertex's colour is the colour MLP's seen
from outside along its normal: the one view every vertex has (the training cameras see many a
vertex from no side at all, and a compact model carries no cameras), and the view that sees a
surface head-on, as a texture would be photographed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import RunError, SceneError
from .field import HollowField
from .occupancy import OccupancyGrid
from .renderer import Renderer
from .scenes import Cameras
from .scenes.load import scene_settings_of
from .scenes.transforms import SceneSettings

MIN_ISLAND_SHARE = 0.01
MESH_SUFFIXES = (".ply", ".obj", ".glb")
ORIENTATION_STEP = 0.5  # grid spacings: how far off a vertex the density is compared along its normal
ORIENTATION_VOTES = 1 << 16
_CHUNK = 1 << 18
RAY_DRAWS = 8  # rounds of random rays ray_end_points draws before it settles for what it found
INSTALL_HINT = "pip install 'hollow-taichi[mesh]'"


def require_mesh_libraries():
    """PyMCubes and trimesh, or one line saying how to install them."""
    try:
        import mcubes
        import trimesh
    except ImportError:
        raise RunError(f"mesh needs PyMCubes and trimesh: {INSTALL_HINT}") from None
    return mcubes, trimesh


@dataclass
class SampleGrid:
    """Grid points origin + spacing * (i, j, k), i < shape[0] along x, j along y, k along z (NGP space)."""

    origin: np.ndarray
    spacing: float
    shape: tuple[int, int, int]

    def slab(self, k: int) -> torch.Tensor:
        """The points (shape[0] * shape[1], 3) of plane k, in [i, j] order (i major)."""
        i, j = torch.meshgrid(torch.arange(self.shape[0]), torch.arange(self.shape[1]), indexing="ij")
        index = torch.stack([i, j, torch.full_like(i, k)], dim=-1).reshape(-1, 3).double()
        return (torch.from_numpy(self.origin) + self.spacing * index).float()


def occupied_box(occupancy: OccupancyGrid, scene_box: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The smallest box (lo (3,), hi (3,), NGP space) holding every occupied cell, within the scene box."""
    resolution = occupancy.resolution
    lows, highs = [], []
    for cascade, grid in enumerate(occupancy.cells().cpu()):
        zyx = torch.nonzero(grid)
        if not len(zyx):
            continue
        size = 2.0 ** cascade
        xyz = zyx.flip(1).double()
        lows.append(((xyz.min(0).values / resolution - 0.5) * size + 0.5).numpy())
        highs.append((((xyz.max(0).values + 1) / resolution - 0.5) * size + 0.5).numpy())
    if not lows:
        raise RunError("the model has no occupied cell: there is no surface to mesh")
    box = scene_box.double().cpu().numpy()
    return np.maximum(np.min(lows, axis=0), box[0]), np.minimum(np.max(highs, axis=0), box[1])


def sample_grid(lo: np.ndarray, hi: np.ndarray, resolution: int) -> SampleGrid:
    """`resolution` samples along the box's longest side, the same spacing on the others, and one
    more sample beyond each face (the padding that closes surfaces)."""
    spacing = float((hi - lo).max()) / (resolution - 1)
    counts = np.ceil((hi - lo) / spacing).astype(int) + 1
    return SampleGrid(lo - spacing, spacing, tuple(int(count) + 2 for count in counts))


@torch.no_grad()
def density_volume(field: HollowField, occupancy: OccupancyGrid, grid: SampleGrid) -> np.ndarray:
    """The field's density at every grid point (shape) float32, zero where the model holds none:
    outside the occupied cells (and their neighbours) and, for a HollowNeRF, the pruned cells."""
    device = field.aabb.device
    near_occupied = occupancy.dilated()  # a surface's level set may lie a little inside an empty cell
    volume = np.zeros(grid.shape, dtype=np.float32)
    for k in range(1, grid.shape[2] - 1):
        points = grid.slab(k).to(device)
        active = occupancy.occupied_at(points, near_occupied) & field.kept_at(field.to_unit(points))
        if not active.any():
            continue
        sigma = torch.zeros(points.shape[0], device=device)
        chosen = points[active]
        sigma[active] = torch.cat([field.density(chunk) for chunk in chosen.split(_CHUNK)])
        plane = sigma.reshape(grid.shape[0], grid.shape[1]).cpu().numpy()
        plane[[0, -1], :] = 0.0  # the padding
        plane[:, [0, -1]] = 0.0
        volume[:, :, k] = plane
    return volume


def surface(volume: np.ndarray, grid: SampleGrid, threshold: float):
    """Marching cubes on the volume at `threshold` -> a trimesh.Trimesh in NGP space, islands under
    MIN_ISLAND_SHARE of the largest component's faces dropped. None if nothing reaches the threshold."""
    mcubes, trimesh = require_mesh_libraries()
    vertices, faces = mcubes.marching_cubes(volume, threshold)
    if not len(faces):
        return None
    mesh = trimesh.Trimesh(grid.origin + grid.spacing * vertices, faces, process=True)
    parts = mesh.split(only_watertight=False)
    largest = max(len(part.faces) for part in parts)
    return trimesh.util.concatenate([part for part in parts if len(part.faces) >= MIN_ISLAND_SHARE * largest])


@torch.no_grad()
def orient_outwards(mesh, density, step: float) -> None:
    """Flip the mesh's faces if its normals point into the surface: the density `step` along a
    vertex's normal should be lower than `step` against it, on most of ORIENTATION_VOTES vertices
    spread over the mesh (a vote; every vertex would only cost more)."""
    voters = np.linspace(0, len(mesh.vertices) - 1, min(ORIENTATION_VOTES, len(mesh.vertices))).astype(int)
    vertices = torch.from_numpy(np.asarray(mesh.vertices, dtype=np.float32)[voters])
    normals = torch.from_numpy(np.asarray(mesh.vertex_normals, dtype=np.float32)[voters])
    outside, inside = density(vertices + step * normals), density(vertices - step * normals)
    if (outside > inside).float().mean() > 0.5:
        mesh.invert()


@torch.no_grad()
def vertex_colours(field: HollowField, mesh) -> np.ndarray:
    """(V, 4) uint8 RGBA: each vertex's colour seen from outside along its normal."""
    device = field.aabb.device
    vertices = torch.from_numpy(np.asarray(mesh.vertices, dtype=np.float32)).to(device)
    looking = -torch.from_numpy(np.asarray(mesh.vertex_normals, dtype=np.float32)).to(device)
    colours = []
    for points, directions in zip(vertices.split(_CHUNK), looking.split(_CHUNK), strict=True):
        _, geometry, _ = field.density_and_geometry(points)
        colours.append(field.color(geometry, directions))
    rgb = (torch.cat(colours).clamp(0, 1) * 255).round().byte().cpu().numpy()
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def to_scene_frame(points: np.ndarray, settings: SceneSettings | None) -> np.ndarray:
    """NGP-space points -> the scene's own coordinates (its transforms file's), p = (p' - offset) / scale."""
    if settings is None:
        return points
    return (points - settings.offset) / settings.scale


def extract_mesh(field: HollowField, occupancy: OccupancyGrid, resolution: int, threshold: float,
                 settings: SceneSettings | None):
    """The model's surface as a coloured trimesh.Trimesh in the scene's frame (NGP space if settings is None)."""
    lo, hi = occupied_box(occupancy, field.aabb)
    grid = sample_grid(lo, hi, resolution)
    mesh = surface(density_volume(field, occupancy, grid), grid, threshold)
    if mesh is None:
        raise RunError(f"no density reaches the threshold {threshold:g}: try a lower --threshold")
    device = field.aabb.device
    orient_outwards(mesh, lambda points: field.density(points.to(device)).cpu(), ORIENTATION_STEP * grid.spacing)
    mesh.visual.vertex_colors = vertex_colours(field, mesh)
    mesh.vertices = to_scene_frame(np.asarray(mesh.vertices), settings)
    return mesh


@torch.no_grad()
def ray_end_points(renderer: Renderer, cameras: Cameras, count: int, seed: int = 0,
                   min_opacity: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` points (NGP space) where random pixel rays of the cameras end (the rays' expected
    depth, rays at least min_opacity opaque), with the colour each ray sees there: (N, 3), (N, 3) uint8.
    Rays are drawn in up to RAY_DRAWS rounds of 4 * count; fewer points come back where few rays
    are that opaque."""
    generator = torch.Generator().manual_seed(seed)
    device = renderer.field.aabb.device
    rays = min(_CHUNK, 4 * count)
    points, colours, found = [], [], 0
    for _ in range(RAY_DRAWS):
        frames = torch.randint(0, len(cameras), (rays,), generator=generator)
        x = torch.rand(rays, generator=generator) * cameras.width
        y = torch.rand(rays, generator=generator) * cameras.height
        origins, directions = (part.to(device) for part in cameras.rays(frames, x, y))
        result = renderer.infer_rays(origins, directions, torch.zeros(3, device=device))
        hit = result.opacity >= min_opacity
        opacity = result.opacity[hit, None]
        points.append((origins[hit] + directions[hit] * result.depth[hit, None] / opacity).cpu())
        colours.append((result.color[hit] / opacity).clamp(0, 1).cpu())
        found += int(hit.sum())
        if found >= count:
            break
    if not found:
        raise RunError(f"no training ray is {min_opacity:g} opaque: the model holds no surface to take points from")
    rgb = (torch.cat(colours)[:count] * 255).round().byte().numpy()
    return torch.cat(points)[:count].double().numpy(), rgb


def check_mesh_path(path: Path, points: bool) -> None:
    """A mesh is written as .ply, .obj or .glb (trimesh's writers); a point cloud as .ply."""
    allowed = (".ply",) if points else MESH_SUFFIXES
    if path.suffix.lower() not in allowed:
        raise RunError(f"{path}: write {'a point cloud' if points else 'a mesh'} as {', '.join(allowed)}")


def save_points(path: Path, points: np.ndarray, colours: np.ndarray) -> None:
    _, trimesh = require_mesh_libraries()
    trimesh.PointCloud(points, colors=colours).export(path)


def load_scene_settings(scene: str | None) -> SceneSettings | None:
    """The scene's scale and offset from its transforms file, or None when the scene is not here."""
    if scene is None:
        return None
    try:
        return scene_settings_of(scene)
    except SceneError:
        return None
