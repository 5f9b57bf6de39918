"""The built-in scene: a hollow, windowed sphere around a small ball, ray traced in numpy.

The object (Blender coordinates, z up, inside [-1.5, 1.5]^3): a spherical shell (outer radius
1.2, inner 0.95) with a blue/cream checker outside and a green striped inner wall; three
cylinders through the centre cut six round windows into it (grey cut faces), and an orange ball
floats at the centre. The reference renderer intersects rays with the primitives analytically,
shades with one directional light plus ambient (no shadows), and averages 3x3 jittered rays per
pixel; RGBA output, straight alpha, alpha 0 on the background. Everything is deterministic: a
frame's jitter comes from a seed made of (SEED, split, frame index).

    python -m hollow_taichi.scenes.builtin --out DIR    writes DIR/transforms_{train,val,test}.json
                                                         and DIR/{train,val,test}/r_<i>.png
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..images import write_png
from .cameras import look_at
from .generator import run_generator

SIZE = 100
CAMERA_ANGLE_X = 0.7
CAMERA_DISTANCE = 4.5
SAMPLES_PER_AXIS = 3
SEED = 20240611
SPLITS = ("train", "val", "test")
TRAIN_VIEWS = 48
EVAL_VIEWS = 8
TRAIN_ELEVATION_DEG = (-15.0, 80.0)
GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))

OUTER_RADIUS = 1.2
INNER_RADIUS = 0.95
WINDOW_RADIUS = 0.45
WINDOW_AXES = np.array([[1.0, 0.0, 0.3], [-0.5, 0.866, 0.3], [-0.5, -0.866, 0.3]])
WINDOW_AXES = WINDOW_AXES / np.linalg.norm(WINDOW_AXES, axis=-1, keepdims=True)
BALL_RADIUS = 0.4

CHECKER_COLOURS = np.array([[0.92, 0.86, 0.70], [0.16, 0.33, 0.72]])
STRIPE_COLOURS = np.array([[0.25, 0.62, 0.33], [0.78, 0.90, 0.62]])
RIM_COLOUR = np.array([0.72, 0.72, 0.74])
BALL_COLOUR = np.array([0.92, 0.36, 0.12])
LIGHT = np.array([0.3, 0.45, 0.85]) / np.linalg.norm([0.3, 0.45, 0.85])
AMBIENT = 0.35

# Candidate surfaces, two ray roots each: outer sphere, inner sphere, the window cylinders, the ball.
OUTER, INNER, FIRST_WINDOW = 0, 1, 2
BALL = FIRST_WINDOW + len(WINDOW_AXES)
HIT_EPSILON = 1e-7


def camera_positions(split: str) -> np.ndarray:
    """Camera centres (N, 3) of a split: train on a spiral from 15 deg below to 80 deg above the
    equator, val on a ring at 35 deg, test alternating 10 and 50 deg, all at CAMERA_DISTANCE."""
    if split == "train":
        low, high = (math.sin(math.radians(angle)) for angle in TRAIN_ELEVATION_DEG)
        steps = (np.arange(TRAIN_VIEWS) + 0.5) / TRAIN_VIEWS
        elevation = np.arcsin(low + (high - low) * steps)
        azimuth = np.arange(TRAIN_VIEWS) * GOLDEN_ANGLE
    elif split == "val":
        elevation = np.full(EVAL_VIEWS, math.radians(35.0))
        azimuth = (np.arange(EVAL_VIEWS) + 0.5) * (2 * math.pi / EVAL_VIEWS)
    else:
        elevation = np.radians(np.where(np.arange(EVAL_VIEWS) % 2 == 0, 10.0, 50.0))
        azimuth = np.arange(EVAL_VIEWS) * (2 * math.pi / EVAL_VIEWS) + math.radians(10.0)
    direction = np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                          np.sin(elevation)], axis=-1)
    return CAMERA_DISTANCE * direction


def camera_poses(split: str) -> np.ndarray:
    """(N, 4, 4) float64 OpenGL camera-to-world matrices of a split, looking at the origin, z up."""
    c2w = look_at(camera_positions(split), np.zeros(3), np.array([0.0, 0.0, 1.0]))
    bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (len(c2w), 1, 4))
    return np.concatenate([c2w, bottom], axis=1)


def jittered_rays(c2w: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified jittered rays of one view: origins and unit directions (SIZE * SIZE * S * S, 3),
    S = SAMPLES_PER_AXIS, the S * S samples of each pixel together, pixels in row-major order."""
    focal = 0.5 * SIZE / math.tan(0.5 * CAMERA_ANGLE_X)
    strata = np.arange(SAMPLES_PER_AXIS) / SAMPLES_PER_AXIS
    sub_y, sub_x = np.meshgrid(strata, strata, indexing="ij")
    pixel_y, pixel_x = np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing="ij")
    jitter = rng.random((SIZE, SIZE, SAMPLES_PER_AXIS ** 2, 2)) / SAMPLES_PER_AXIS
    x = pixel_x[..., None] + sub_x.reshape(-1) + jitter[..., 0]
    y = pixel_y[..., None] + sub_y.reshape(-1) + jitter[..., 1]
    local = np.stack([(x - SIZE / 2) / focal, -(y - SIZE / 2) / focal, -np.ones_like(x)], axis=-1).reshape(-1, 3)
    directions = local @ c2w[:3, :3].T
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    return np.broadcast_to(c2w[:3, 3], directions.shape), directions


def _quadratic_roots(a: np.ndarray, half_b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Both roots (N, 2) of a t^2 + 2 half_b t + c = 0, inf where there are none."""
    disc = half_b * half_b - a * c
    valid = (disc >= 0) & (a > 1e-12)
    root = np.sqrt(np.where(valid, disc, 0.0))
    safe_a = np.where(valid, a, 1.0)
    roots = np.stack([(-half_b - root) / safe_a, (-half_b + root) / safe_a], axis=-1)
    return np.where(valid[:, None], roots, np.inf)


def _sphere_roots(origins: np.ndarray, directions: np.ndarray, radius: float) -> np.ndarray:
    """Ray parameters (N, 2) where rays meet the sphere of `radius` about the origin."""
    return _quadratic_roots(np.ones(len(origins)), np.einsum("ij,ij->i", origins, directions),
                            np.einsum("ij,ij->i", origins, origins) - radius * radius)


def _radial(points: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The part of points (..., 3) perpendicular to the unit `axis` through the origin."""
    return points - (points @ axis)[..., None] * axis


def _cylinder_roots(origins: np.ndarray, directions: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Ray parameters (N, 2) where rays meet the window cylinder around `axis`."""
    o, d = _radial(origins, axis), _radial(directions, axis)
    return _quadratic_roots(np.einsum("ij,ij->i", d, d), np.einsum("ij,ij->i", o, d),
                            np.einsum("ij,ij->i", o, o) - WINDOW_RADIUS ** 2)


def _inside(points: np.ndarray) -> np.ndarray:
    """Whether points (..., 3) lie in the solid: the windowed shell or the ball."""
    radius2 = np.einsum("...i,...i->...", points, points)
    shell = (radius2 <= OUTER_RADIUS ** 2) & (radius2 >= INNER_RADIUS ** 2)
    for axis in WINDOW_AXES:
        shell &= radius2 - (points @ axis) ** 2 >= WINDOW_RADIUS ** 2
    return shell | (radius2 <= BALL_RADIUS ** 2)


def first_hits(origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest entry into the solid per ray: distance (N,) (inf for a miss) and surface id (N,)."""
    roots = [_sphere_roots(origins, directions, OUTER_RADIUS), _sphere_roots(origins, directions, INNER_RADIUS)]
    roots += [_cylinder_roots(origins, directions, axis) for axis in WINDOW_AXES]
    roots.append(_sphere_roots(origins, directions, BALL_RADIUS))
    t = np.concatenate(roots, axis=-1)
    surface = np.repeat(np.arange(len(roots)), 2)
    finite = np.isfinite(t) & (t > 0)
    after = origins[:, None] + np.where(finite, t + HIT_EPSILON, 0.0)[..., None] * directions[:, None]
    entering = np.where(finite & _inside(after), t, np.inf)
    nearest = np.argmin(entering, axis=-1)
    return np.take_along_axis(entering, nearest[:, None], axis=-1)[:, 0], surface[nearest]


def _normals(points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Unit normals (N, 3) pointing out of the solid at hit points (N, 3) on the given surfaces."""
    normals = points / np.linalg.norm(points, axis=-1, keepdims=True)
    normals[surface == INNER] *= -1.0
    for index, axis in enumerate(WINDOW_AXES):
        on_cylinder = surface == FIRST_WINDOW + index
        radial = _radial(points[on_cylinder], axis)
        normals[on_cylinder] = -radial / np.linalg.norm(radial, axis=-1, keepdims=True)
    return normals


def _albedo(points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Surface colours (N, 3): checker outside, stripes on the inner wall, grey cut faces, orange ball."""
    longitude = np.arctan2(points[:, 1], points[:, 0]) / (2 * math.pi) + 0.5
    latitude = np.arccos(np.clip(points[:, 2] / np.linalg.norm(points, axis=-1), -1, 1)) / math.pi
    checker = (np.floor(longitude * 12) + np.floor(latitude * 6)).astype(int) % 2
    stripes = np.floor(points[:, 2] * 4.0).astype(int) % 2
    colours = np.where((surface == OUTER)[:, None], CHECKER_COLOURS[checker], STRIPE_COLOURS[stripes])
    colours[(surface >= FIRST_WINDOW) & (surface < BALL)] = RIM_COLOUR
    colours[surface == BALL] = BALL_COLOUR
    return colours


def render_view(c2w: np.ndarray, seed: tuple[int, ...]) -> np.ndarray:
    """The built-in object seen from OpenGL pose c2w (3 or 4, 4) -> (SIZE, SIZE, 4) uint8 RGBA."""
    origins, directions = jittered_rays(c2w, np.random.default_rng(seed))
    t, surface = first_hits(origins, directions)
    hit = np.isfinite(t)
    points = origins[hit] + t[hit, None] * directions[hit]
    shade = AMBIENT + (1 - AMBIENT) * np.clip(_normals(points, surface[hit]) @ LIGHT, 0.0, None)
    colour = np.zeros_like(directions)
    colour[hit] = _albedo(points, surface[hit]) * shade[:, None]
    samples = SAMPLES_PER_AXIS ** 2
    coverage = hit.reshape(SIZE, SIZE, samples).sum(axis=-1)
    colour_sum = colour.reshape(SIZE, SIZE, samples, 3).sum(axis=2)
    straight = colour_sum / np.maximum(coverage, 1)[..., None]
    rgba = np.concatenate([straight, (coverage / samples)[..., None]], axis=-1)
    return np.round(np.clip(rgba, 0.0, 1.0) * 255.0).astype(np.uint8)


def render_frame(split: str, index: int) -> np.ndarray:
    """Frame `index` of `split` exactly as the shipped scene has it: (SIZE, SIZE, 4) uint8 RGBA."""
    return render_view(camera_poses(split)[index], (SEED, SPLITS.index(split), index))


def _transforms(split: str) -> dict:
    frames = [{"file_path": f"./{split}/r_{index}", "transform_matrix": pose.tolist()}
              for index, pose in enumerate(camera_poses(split))]
    return {"camera_angle_x": CAMERA_ANGLE_X, "frames": frames}


def generate(out: Path) -> None:
    """Write the whole built-in scene (Blender layout) into folder `out`."""
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
        transforms = _transforms(split)
        for index in range(len(transforms["frames"])):
            write_png(out / split / f"r_{index}.png", render_frame(split, index))
        (out / f"transforms_{split}.json").write_text(json.dumps(transforms, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    run_generator(argv, "Generate the built-in hollow-sphere scene (Blender layout).", generate, "the built-in scene")


if __name__ == "__main__":
    main()
