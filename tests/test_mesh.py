"""`hollow-taichi mesh`: marching cubes over the model's density where it holds any, cleaned, oriented
and coloured, in the scene's frame; or a point cloud where training rays end.

The surface's steps are checked on an analytic density (a ball: closed, its radius, its normals
outwards, islands dropped); the occupancy lookup against the cells the occupancy kernels sample; the
command on a short training run, whose compact model must give the very same mesh. The trained
sphere's and Lego's meshes are measured in BENCHMARKS.md ("Meshes").
"""
import json
import shutil

import numpy as np
import pytest
import torch

from hollow_taichi import mesh as geometry
from hollow_taichi import checkpoint, ops, runs
from hollow_taichi.occupancy import OccupancyGrid
from hollow_taichi.scenes.load import scene_settings_of
from scenes_util import error_line, run_cli
from test_compact import invoke, tiny_scene

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("mcubes")

RADIUS, CENTRE = 0.3, np.array([0.5, 0.5, 0.5])


def ball_density(points: torch.Tensor, centre=CENTRE, radius=RADIUS) -> torch.Tensor:
    """10 inside a ball, falling smoothly to 0 across its surface (2.5 a little inside it)."""
    distance = (points.double() - torch.from_numpy(centre)).norm(dim=-1)
    return (10.0 * torch.sigmoid((radius - distance) * 200.0)).float()


def volume_of(density, grid: geometry.SampleGrid) -> np.ndarray:
    planes = [density(grid.slab(k)).reshape(grid.shape[0], grid.shape[1]).numpy() for k in range(grid.shape[2])]
    return np.stack(planes, axis=-1)


def test_a_ball_meshes_closed_at_its_radius_with_normals_outwards():
    grid = geometry.sample_grid(CENTRE - 0.35, CENTRE + 0.35, 64)
    surface = geometry.surface(volume_of(ball_density, grid), grid, 2.5)
    geometry.orient_outwards(surface, ball_density, 0.5 * grid.spacing)
    assert surface.is_watertight and surface.volume > 0  # outward normals: positive volume
    radii = np.linalg.norm(surface.vertices - CENTRE, axis=-1)
    level = RADIUS + np.log(3.0) / 200.0  # where 10 * sigmoid((r - d) * 200) = 2.5
    assert np.abs(radii - level).max() < 0.25 * grid.spacing + 1e-3
    surface.invert()
    geometry.orient_outwards(surface, ball_density, 0.5 * grid.spacing)
    assert surface.volume > 0


def test_small_islands_go_and_large_ones_stay():
    def density(points):
        return torch.maximum(ball_density(points), torch.maximum(
            ball_density(points, np.array([0.9, 0.5, 0.5]), 0.02),  # a speck: far under 1% of the faces
            ball_density(points, np.array([0.5, 0.9, 0.5]), 0.08)))
    grid = geometry.sample_grid(np.zeros(3), np.ones(3), 96)
    surface = geometry.surface(volume_of(density, grid), grid, 2.5)
    centres = [part.vertices.mean(axis=0) for part in surface.split(only_watertight=False)]
    assert len(centres) == 2 and min(np.linalg.norm(c - [0.9, 0.5, 0.5]) for c in centres) > 0.3


def test_nothing_above_the_threshold_is_none():
    grid = geometry.sample_grid(np.zeros(3), np.ones(3), 16)
    assert geometry.surface(np.zeros(grid.shape, np.float32), grid, 2.5) is None


def test_occupied_at_finds_the_cells_the_kernels_sample(cpu):
    occupancy = OccupancyGrid(cascades=2, resolution=8, device="cpu")
    generator = torch.Generator().manual_seed(0)
    bits = torch.randint(0, 256, occupancy.bitfield.shape, generator=generator, dtype=torch.uint8)
    occupancy.bitfield = bits
    cells = torch.arange(occupancy.n_cells)
    points = ops.occupancy_cell_points(cells, torch.rand((occupancy.n_cells, 3), generator=generator) * 0.98 + 0.01,
                                       occupancy.resolution)
    in_finer = (points - 0.5).abs().amax(dim=-1) < 0.5
    outer = cells >= occupancy.resolution ** 3
    checked = ~(outer & in_finer)  # an outer cascade's point inside the inner cube is looked up there
    assert torch.equal(occupancy.occupied_at(points)[checked], occupancy.occupied()[checked])
    dilated = occupancy.dilated()
    assert dilated.sum() >= occupancy.cells().sum() and torch.equal(dilated & occupancy.cells(), occupancy.cells())


def test_scene_frame_undoes_the_loaders_scale_and_offset(tmp_path):
    scene = tiny_scene(tmp_path / "scene")
    settings = scene_settings_of(scene)
    assert np.allclose(geometry.to_scene_frame(np.array([[0.5, 0.5, 0.5], [0.83, 0.5, 0.5]]), settings),
                       [[0, 0, 0], [1, 0, 0]])
    assert geometry.load_scene_settings(str(tmp_path / "elsewhere")) is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short quantization-aware run on the disc scene, its lossless compact model and its default
    one (the 3-bit table it trained, float16 MLPs, 8-bit saliency); the surface threshold is the run's
    95th percentile of density where it has any."""
    root = tmp_path_factory.mktemp("mesh")
    scene, run = tiny_scene(root / "scene"), root / "run"
    invoke("train", scene, "--out", run, "--arch", "cpu", "--steps", 8, "--hash-log2", 12, "--batch-samples", 4096,
           "--saliency-res", 8, "--no-progress", "--eval-views", 1, "--set", "qat_bits=3", "--set", "qat_start=0.5")
    invoke("export", run, "--out", root / "lossless.htc", "--lossless")
    invoke("export", run, "--out", root / "model.htc")
    loaded = runs.load_run(run, "cpu")
    lo, hi = geometry.occupied_box(loaded.renderer.occupancy, loaded.field.aabb)
    grid = geometry.sample_grid(lo, hi, 24)
    volume = geometry.density_volume(loaded.field, loaded.renderer.occupancy, grid)
    return run, root, float(np.percentile(volume[volume > 0], 95))


def test_compact_model_gives_the_mesh_of_its_run(cpu, trained, tmp_path):
    """Lossless: the very mesh. The default file: its float16 MLPs and 8-bit saliency move the level
    set a little (the same surface to well under a grid spacing)."""
    run, models, threshold = trained
    meshes = {}
    for name, source in (("run", run), ("lossless", models / "lossless.htc"), ("compact", models / "model.htc")):
        output = invoke("mesh", source, "--out", tmp_path / f"{name}.ply", "--resolution", 48, "--threshold", threshold)
        assert "vertices" in output and "faces" in output
        meshes[name] = trimesh.load(tmp_path / f"{name}.ply")
    assert len(meshes["run"].faces) > 0
    assert np.array_equal(meshes["run"].vertices, meshes["lossless"].vertices)
    assert np.array_equal(meshes["run"].faces, meshes["lossless"].faces)
    assert np.array_equal(meshes["run"].visual.vertex_colors, meshes["lossless"].visual.vertex_colors)
    spacing = float(meshes["run"].extents.max()) / 47
    near = torch.cdist(torch.from_numpy(meshes["compact"].vertices).float(),
                       torch.from_numpy(meshes["run"].vertices).float()).min(dim=1).values
    assert abs(len(meshes["compact"].faces) / len(meshes["run"].faces) - 1) < 0.02 and near.mean() < 0.05 * spacing


def with_density_raised(run, target, amount: float):
    """A copy of the run whose density MLP's last bias is raised by `amount` (its density times e^amount)."""
    shutil.copytree(run, target)
    state = checkpoint.load(target / checkpoint.CHECKPOINT_NAME)
    last_bias = max(key for key in state["field"] if key.startswith("density_mlp.") and key.endswith(".bias"))
    state["field"][last_bias][0] += amount
    checkpoint.save(target / checkpoint.CHECKPOINT_NAME, state)
    return target


def test_point_cloud_lies_where_rays_end(cpu, trained, tmp_path):
    run, _, _ = trained
    clear = with_density_raised(run, tmp_path / "clear", -30.0)
    assert "opaque" in error_line(run_cli("mesh", clear, "--out", tmp_path / "none.ply", "--points", 50))
    run = with_density_raised(run, tmp_path / "opaque", 4.0)
    invoke("mesh", run, "--out", tmp_path / "points.ply", "--points", 500)
    cloud = trimesh.load(tmp_path / "points.ply")
    assert 0 < len(cloud.vertices) <= 500 and cloud.colors.shape == (len(cloud.vertices), 4)
    config = json.loads((run / "config.json").read_text())
    settings = scene_settings_of(config["scene"])
    ngp = cloud.vertices * settings.scale + settings.offset
    assert (np.abs(ngp - 0.5) <= 0.5 + 1e-4).all()  # inside the scene box, aabb_scale 1


def test_mesh_errors_are_one_line(cpu, trained, tmp_path):
    run, _, _ = trained
    assert ".ply, .obj, .glb" in error_line(run_cli("mesh", run, "--out", tmp_path / "mesh.stl"))
    assert "as .ply" in error_line(run_cli("mesh", run, "--out", tmp_path / "points.obj", "--points", 10))
    assert "lower --threshold" in error_line(run_cli("mesh", run, "--out", tmp_path / "m.ply", "--threshold", 1e9,
                                                     "--resolution", 16))
