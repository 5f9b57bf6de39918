"""`hollow-taichi mesh` measured: the built-in sphere's mesh against the generator's surfaces, and the
time Lego's mesh takes at 256^3 and 512^3, with a picture of it beside a test view.

  hollow-taichi train --out runs/sphere --minutes 5                      (the built-in sphere)
  hollow-taichi train LEGO --out runs/lego --minutes 10
  python bench/mesh.py --sphere runs/sphere --lego runs/lego [--lego-scene LEGO] [--record]

Each mesh is made by the command in a fresh process, timed as a user sees it (loading the model
included). The sphere: whether the mesh is closed, its outer radius (the median distance from the
centre of the vertices on the outer shell, away from the windows) against the generator's 1.2, and
the Chamfer distance between points sampled on the mesh and the surface points the generator's ray
tracer finds from every camera of the scene (mean nearest distance each way, in scene units). Lego:
the mesh drawn at a test view's camera (vertex colours with Lambert shading, z-buffered splats;
matplotlib writes the picture) beside that view.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import installed_command, machine_description, write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
PICTURE = HERE / "mesh_lego.png"
CHAMFER_POINTS = 20000
LIGHT = np.array([0.3, 0.45, 0.85]) / np.linalg.norm([0.3, 0.45, 0.85])


def timed_mesh(run: Path, out: Path, resolution: int) -> float:
    """Seconds `hollow-taichi mesh run --out out --resolution R` takes."""
    started = time.perf_counter()
    subprocess.run([installed_command(), "mesh", str(run), "--out", str(out), "--resolution", str(resolution)], check=True)
    return time.perf_counter() - started


def nearest_distances(points: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """For each of points (N, 3), the distance to the nearest of others (M, 3)."""
    return torch.cat([torch.cdist(chunk, others).min(dim=1).values for chunk in points.split(2048)])


def generator_surface_points(count: int) -> np.ndarray:
    """Points on the sphere scene's surfaces as its cameras see them (every split, the generator's own
    jittered pixel rays)."""
    from hollow_taichi.scenes import builtin

    rng = np.random.default_rng(0)
    found = []
    for split in builtin.SPLITS:
        for pose in builtin.camera_poses(split):
            origins, directions = builtin.jittered_rays(pose, rng)
            t, _ = builtin.first_hits(origins, directions)
            hit = np.isfinite(t)
            found.append(origins[hit] + t[hit, None] * directions[hit])
    points = np.concatenate(found)
    return points[rng.choice(len(points), size=min(count, len(points)), replace=False)]


def sphere_measures(mesh_path: Path) -> dict:
    import trimesh

    from hollow_taichi.scenes import builtin

    mesh = trimesh.load(mesh_path)
    vertices = np.asarray(mesh.vertices)
    radius = np.linalg.norm(vertices, axis=-1)
    off_axis = np.min([np.linalg.norm(vertices - (vertices @ axis)[:, None] * axis, axis=-1)
                       for axis in builtin.WINDOW_AXES], axis=0)
    outer = (radius > (builtin.INNER_RADIUS + builtin.OUTER_RADIUS) / 2) & (off_axis > builtin.WINDOW_RADIUS + 0.05)
    measured_radius = float(np.median(radius[outer]))
    surface = torch.from_numpy(np.asarray(trimesh.sample.sample_surface(mesh, CHAMFER_POINTS, seed=0)[0])).float()
    truth = torch.from_numpy(generator_surface_points(CHAMFER_POINTS)).float()
    to_truth, to_mesh = nearest_distances(surface, truth), nearest_distances(truth, surface)
    return {"vertices": len(mesh.vertices), "faces": len(mesh.faces), "watertight": bool(mesh.is_watertight),
            "components": len(mesh.split(only_watertight=False)), "outer_radius": measured_radius,
            "outer_radius_error_percent": 100 * (measured_radius / builtin.OUTER_RADIUS - 1),
            "chamfer_mesh_to_truth": float(to_truth.mean()), "chamfer_truth_to_mesh": float(to_mesh.mean())}


def splat(mesh, c2w: np.ndarray, focal: float, size: int) -> np.ndarray:
    """The mesh's front-facing vertices seen by an OpenGL camera, each a z-buffered 2x2 splat of its
    colour with Lambert shading: (size, size, 3) float, white where none lands."""
    vertices, normals = np.asarray(mesh.vertices), np.asarray(mesh.vertex_normals)
    colours = np.asarray(mesh.visual.vertex_colors)[:, :3] / 255.0
    local = (vertices - c2w[:3, 3]) @ c2w[:3, :3]
    depth = -local[:, 2]
    facing = np.einsum("ij,ij->i", normals, c2w[:3, 3] - vertices) > 0
    x = np.floor(local[:, 0] / depth * focal + size / 2).astype(int)
    y = np.floor(-local[:, 1] / depth * focal + size / 2).astype(int)
    shaded = colours * (0.35 + 0.65 * np.clip(normals @ LIGHT, 0, 1))[:, None]
    nearest, image = np.full(size * size, np.inf), np.ones((size * size, 3))
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        seen = facing & (depth > 0) & (x + dx >= 0) & (x + dx < size) & (y + dy >= 0) & (y + dy < size)
        np.minimum.at(nearest, (y[seen] + dy) * size + x[seen] + dx, depth[seen])
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        seen = facing & (depth > 0) & (x + dx >= 0) & (x + dx < size) & (y + dy >= 0) & (y + dy < size)
        pixel = (y[seen] + dy) * size + x[seen] + dx
        front = depth[seen] <= nearest[pixel] + 1e-9
        image[pixel[front]] = shaded[seen][front]
    return image.reshape(size, size, 3)


def lego_picture(mesh_path: Path, scene: Path) -> None:
    import matplotlib
    import trimesh

    from hollow_taichi.images import read_image

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads((scene / "transforms_test.json").read_text())
    frame = data["frames"][0]
    view = read_image(scene / f"{frame['file_path']}.png")
    size = view.shape[1]
    focal = 0.5 * size / np.tan(0.5 * data["camera_angle_x"])
    drawn = splat(trimesh.load(mesh_path), np.array(frame["transform_matrix"]), focal, size)
    alpha = view[..., 3:] / 255.0 if view.shape[2] == 4 else 1.0
    figure, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    for axis, image, title in ((axes[0], view[..., :3] / 255.0 * alpha + (1 - alpha), "test view"),
                               (axes[1], drawn, "mesh (256^3), vertex colours")):
        axis.imshow(image)
        axis.set_title(title)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(PICTURE, dpi=100)


@click.command()
@click.option("--sphere", type=click.Path(path_type=Path, exists=True), required=True, help="A run on builtin:sphere.")
@click.option("--lego", type=click.Path(path_type=Path, exists=True), required=True, help="A run on Lego.")
@click.option("--lego-scene", type=click.Path(path_type=Path, exists=True), help="Lego's folder (default: the run's).")
@click.option("--work", type=click.Path(path_type=Path, file_okay=False), default=Path("runs/mesh_bench"),
              show_default=True)
@click.option("--record", is_flag=True, help="Write the tables to BENCHMARKS.md (and the picture to bench/).")
def main(sphere, lego, lego_scene, work, record):
    work.mkdir(parents=True, exist_ok=True)
    sphere_seconds = timed_mesh(sphere, work / "sphere.ply", 256)
    measured = sphere_measures(work / "sphere.ply")
    lego_seconds = {resolution: timed_mesh(lego, work / f"lego_{resolution}.ply", resolution) for resolution in (256, 512)}
    lego_scene = lego_scene or Path(json.loads((lego / "config.json").read_text())["scene"])
    lego_picture(work / "lego_256.ply", lego_scene)
    result = {"sphere": {"seconds": sphere_seconds, **measured}, "lego_seconds": lego_seconds}
    click.echo(json.dumps(result, indent=2))
    if record:
        sphere_row = result["sphere"]
        text = "\n".join([
            f"`python bench/mesh.py --sphere RUN --lego RUN --record`, {time.strftime('%Y-%m-%d')}, "
            f"{machine_description('cpu')}; each mesh made by `hollow-taichi mesh RUN --out FILE --resolution R` "
            "in a fresh process, timed with loading the model.", "",
            "| model | resolution | time | vertices | faces | closed | outer radius (true 1.2) | Chamfer mesh->truth / "
            "truth->mesh |", "|---|---|---|---|---|---|---|---|",
            f"| {sphere.name} (builtin:sphere) | 256 | {sphere_seconds:.1f} s | {sphere_row['vertices']:,} | "
            f"{sphere_row['faces']:,} | {'yes' if sphere_row['watertight'] else 'no'} "
            f"({sphere_row['components']} components) | {sphere_row['outer_radius']:.4f} "
            f"({sphere_row['outer_radius_error_percent']:+.2f}%) | {sphere_row['chamfer_mesh_to_truth']:.4f} / "
            f"{sphere_row['chamfer_truth_to_mesh']:.4f} |",
            *(f"| {lego.name} (Lego) | {resolution} | {seconds:.1f} s | | | | | |"
              for resolution, seconds in lego_seconds.items()),
            "", f"![Lego's mesh beside a test view]({PICTURE.relative_to(HERE.parent)})"])
        write_section("mesh", text)


if __name__ == "__main__":
    main()
