"""The built-in room: a capture-like scene (forward-facing handheld arc, lens distortion, aabb_scale 4).

What a phone capture in Instant-NGP format looks like, made by the project's own ray tracer so that
tests and benchmarks can use it: a chequered ball on the floor of a room, a crate and a pillar at
other depths, brick back wall, striped side walls, tiled floor, ceiling; one directional light with
hard shadows plus ambient. The cameras walk a handheld-like arc in front of the ball (height and aim
wobble, a little roll), all looking into the room, so space is filled far from the object, behind
it and beside it, while most of the scene box (behind the cameras, outside the room) stays empty or
unseen. Every ray of every view ends on a surface inside the box: the images are opaque RGB.

Coordinates are the transforms file's (z up, metres-ish); the loader's default scale 0.33 and
offset 0.5 put the ball inside NGP's unit cube and the room inside the aabb_scale 4 box. Images
are rendered through the lens: each pixel's 2x2 jittered sub-samples are undistorted with the
OpenCV k1 k2 p1 p2 model the transforms file declares (the loader's own `undistort`), so training
on them exercises the loader's undistortion. Deterministic: a frame's jitter comes from (SEED, i).
`capture` renders the same room through the same lens at another image size and frame count (say
480x360, as a phone would give): `hollow-taichi process` is measured on it against the true poses.

    python -m hollow_taichi.scenes.room --out DIR    writes DIR/transforms.json and DIR/images/<i>.png
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..images import write_png
from .generator import run_generator
from .cameras import look_at, undistort

WIDTH, HEIGHT = 128, 96
FOCAL = 100.0  # pixels: about 65 x 51 degrees
PRINCIPAL_POINT = (WIDTH / 2 + 1.5, HEIGHT / 2 - 1.0)
DISTORTION = (-0.12, 0.02, 0.002, -0.0015)  # k1 k2 p1 p2: barrel, ~6% at the corners
AABB_SCALE = 4
FRAMES = 64
SAMPLES_PER_AXIS = 2
SEED = 20261125


@dataclass(frozen=True)
class Lens:
    """Image size and pinhole intrinsics in pixels; the distortion is always DISTORTION."""

    width: int
    height: int
    focal: float
    principal_point: tuple[float, float]

    def scaled(self, width: int) -> Lens:
        """The same lens on a sensor `width` pixels wide (field of view and distortion unchanged)."""
        factor = width / self.width
        return Lens(width, round(self.height * factor), self.focal * factor,
                    (self.principal_point[0] * factor, self.principal_point[1] * factor))


LENS = Lens(WIDTH, HEIGHT, FOCAL, PRINCIPAL_POINT)

# The room: an axis-aligned box (x left-right, y depth, z up); cameras stand near y = 4, looking at -y.
ROOM_MIN = np.array([-4.0, -4.0, -1.2])
ROOM_MAX = np.array([4.5, 5.5, 3.0])
BALL_CENTRE = np.array([0.0, 0.0, -0.35])
BALL_RADIUS = 0.85
CRATE = (np.array([-2.6, -2.2, -1.2]), np.array([-1.4, -1.0, -0.1]))
PILLAR = (np.array([1.9, -3.0, -1.2]), np.array([2.5, -2.4, 2.2]))
LIGHT = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])
AMBIENT = 0.38
SHADOW_OFFSET = 1e-4

# Surface ids.
FLOOR, CEILING, BACK_WALL, SIDE_WALL, FRONT_WALL, BALL, CRATE_ID, PILLAR_ID = range(8)

ARC_RADIUS = 4.1
ARC_DEGREES = (-32.0, 32.0)
ARC_HEIGHT = 0.55


def _random_camera_wobble(rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame hand shake: eye offsets (N, 3), aim offsets (N, 3) and roll angles (N,) in radians."""
    return (rng.normal(0.0, 0.06, (frames, 3)), rng.normal(0.0, 0.15, (frames, 3)),
            np.radians(rng.normal(0.0, 1.5, frames)))


def camera_poses(frames: int = FRAMES) -> np.ndarray:
    """(frames, 4, 4) float64 OpenGL camera-to-world matrices, file coordinates: a walk along an arc
    around the ball from left to right, bobbing up and down, aimed near the ball, slightly rolled."""
    rng = np.random.default_rng(SEED)
    eye_shake, aim_shake, roll = _random_camera_wobble(rng, frames)
    fraction = np.arange(frames) / (frames - 1)
    azimuth = np.radians(ARC_DEGREES[0] + (ARC_DEGREES[1] - ARC_DEGREES[0]) * fraction)
    height = ARC_HEIGHT + 0.35 * np.sin(3 * math.pi * fraction)
    eyes = np.stack([ARC_RADIUS * np.sin(azimuth), ARC_RADIUS * np.cos(azimuth), height], axis=-1) + eye_shake
    targets = BALL_CENTRE + np.array([0.0, -0.6, 0.2]) + aim_shake
    c2w = np.stack([look_at(eye[None], target, np.array([0.0, 0.0, 1.0]))[0]
                    for eye, target in zip(eyes, targets, strict=True)])
    cos, sin = np.cos(roll)[:, None], np.sin(roll)[:, None]
    right, up = c2w[:, :, 0].copy(), c2w[:, :, 1].copy()
    c2w[:, :, 0], c2w[:, :, 1] = cos * right + sin * up, cos * up - sin * right
    bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (frames, 1, 4))
    return np.concatenate([c2w, bottom], axis=1)


def _lens_rays(c2w: np.ndarray, rng: np.random.Generator, lens: Lens) -> tuple[np.ndarray, np.ndarray]:
    """Jittered sub-pixel rays of one view through the distorting lens: origins and unit directions
    (height * width * S * S, 3), S = SAMPLES_PER_AXIS, each pixel's samples together, row-major."""
    strata = np.arange(SAMPLES_PER_AXIS) / SAMPLES_PER_AXIS
    sub_y, sub_x = np.meshgrid(strata, strata, indexing="ij")
    pixel_y, pixel_x = np.meshgrid(np.arange(lens.height), np.arange(lens.width), indexing="ij")
    jitter = rng.random((lens.height, lens.width, SAMPLES_PER_AXIS ** 2, 2)) / SAMPLES_PER_AXIS
    x = (pixel_x[..., None] + sub_x.reshape(-1) + jitter[..., 0]).reshape(-1)
    y = (pixel_y[..., None] + sub_y.reshape(-1) + jitter[..., 1]).reshape(-1)
    xd = torch.from_numpy((x - lens.principal_point[0]) / lens.focal)
    yd = torch.from_numpy((y - lens.principal_point[1]) / lens.focal)
    u, v = undistort(xd, yd, torch.tensor(DISTORTION, dtype=torch.float64).expand(len(xd), 4))
    local = np.stack([u.numpy(), -v.numpy(), -np.ones(len(x))], axis=-1)
    directions = local @ c2w[:3, :3].T
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    return np.broadcast_to(c2w[:3, 3], directions.shape), directions


def _room_exit(origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where rays from inside the room leave it: distance (N,), surface id (N,) and axis (N,)."""
    safe = np.where(np.abs(directions) > 1e-12, directions, 1e-12)
    bound = np.where(directions > 0, ROOM_MAX, ROOM_MIN)
    t_axis = (bound - origins) / safe
    axis = np.argmin(t_axis, axis=-1)
    t = np.take_along_axis(t_axis, axis[:, None], axis=-1)[:, 0]
    positive = np.take_along_axis(directions, axis[:, None], axis=-1)[:, 0] > 0
    surface = np.select([axis == 2, axis == 0, positive], [np.where(positive, CEILING, FLOOR), SIDE_WALL, FRONT_WALL],
                        BACK_WALL)
    return t, surface, axis


def _box_entry(origins: np.ndarray, directions: np.ndarray, box: tuple[np.ndarray, np.ndarray]):
    """Entry distance (N,) into an axis-aligned box (inf for a miss) and the axis of the entered face (N,)."""
    safe = np.where(np.abs(directions) > 1e-12, directions, 1e-12)
    lo, hi = (box[0] - origins) / safe, (box[1] - origins) / safe
    near, far = np.minimum(lo, hi), np.maximum(lo, hi)
    axis = np.argmax(near, axis=-1)
    t_near, t_far = near.max(axis=-1), far.min(axis=-1)
    hit = (t_near <= t_far) & (t_near > 0)
    return np.where(hit, t_near, np.inf), axis


def _ball_entry(origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    offset = origins - BALL_CENTRE
    half_b = np.einsum("ij,ij->i", offset, directions)
    disc = half_b ** 2 - (np.einsum("ij,ij->i", offset, offset) - BALL_RADIUS ** 2)
    t = -half_b - np.sqrt(np.maximum(disc, 0.0))
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def trace(origins: np.ndarray, directions: np.ndarray):
    """Nearest surface per ray from inside the room: distance (N,), surface id (N,), normal (N, 3)."""
    t, surface, axis = _room_exit(origins, directions)
    normal = np.zeros_like(directions)
    np.put_along_axis(normal, axis[:, None], -np.sign(np.take_along_axis(directions, axis[:, None], axis=-1)),
                      axis=-1)
    for box, surface_id in ((CRATE, CRATE_ID), (PILLAR, PILLAR_ID)):
        t_box, box_axis = _box_entry(origins, directions, box)
        closer = t_box < t
        t, surface = np.where(closer, t_box, t), np.where(closer, surface_id, surface)
        face = np.zeros_like(directions)
        np.put_along_axis(face, box_axis[:, None],
                          -np.sign(np.take_along_axis(directions, box_axis[:, None], axis=-1)), axis=-1)
        normal[closer] = face[closer]
    t_ball = _ball_entry(origins, directions)
    closer = t_ball < t
    t, surface = np.where(closer, t_ball, t), np.where(closer, BALL, surface)
    points = origins[closer] + t[closer, None] * directions[closer]
    normal[closer] = (points - BALL_CENTRE) / BALL_RADIUS
    return t, surface, normal


def _cell_noise(*cells: np.ndarray) -> np.ndarray:
    """A deterministic value in [0, 1) per integer cell (one hash of the cell indices)."""
    h = np.zeros(cells[0].shape, dtype=np.uint64)
    for k, cell in enumerate(cells):
        h ^= (cell.astype(np.int64).astype(np.uint64) + np.uint64(0x9E3779B9 + k)) * np.uint64(0x85EBCA6B)
        h ^= h >> np.uint64(13)
        h *= np.uint64(0xC2B2AE35)
    return (h >> np.uint64(40)).astype(np.float64) / float(1 << 24)


def _bricks(p: np.ndarray) -> np.ndarray:
    """Back wall: 0.5 x 0.25 bricks in offset rows, mortar lines, each brick its own shade of red."""
    row = np.floor(p[:, 2] / 0.25)
    shifted = p[:, 0] / 0.5 + 0.5 * (row % 2)
    column = np.floor(shifted)
    mortar = (np.abs(p[:, 2] / 0.25 - row - 0.5) > 0.42) | (np.abs(shifted - column - 0.5) > 0.46)
    shade = 0.75 + 0.35 * _cell_noise(row, column)
    brick = np.array([0.62, 0.25, 0.17]) * shade[:, None]
    return np.where(mortar[:, None], np.array([0.80, 0.78, 0.72]), brick)


def _tiles(p: np.ndarray) -> np.ndarray:
    """Floor: 0.6 tiles chequered in two woods, grout lines."""
    u, v = p[:, 0] / 0.6, p[:, 1] / 0.6
    checker = ((np.floor(u) + np.floor(v)) % 2)[:, None]
    grout = (np.abs(u - np.floor(u) - 0.5) > 0.46) | (np.abs(v - np.floor(v) - 0.5) > 0.46)
    wood = checker * np.array([0.55, 0.38, 0.22]) + (1 - checker) * np.array([0.83, 0.68, 0.47])
    return np.where(grout[:, None], np.array([0.2, 0.2, 0.2]), wood)


def _wallpaper(p: np.ndarray) -> np.ndarray:
    """Side and front walls: vertical stripes, teal and cream, with a dado rail."""
    stripes = (np.floor((p[:, 1] + p[:, 0]) / 0.3) % 2)[:, None]
    paper = stripes * np.array([0.25, 0.55, 0.55]) + (1 - stripes) * np.array([0.90, 0.87, 0.76])
    return np.where((np.abs(p[:, 2] - 0.4) < 0.05)[:, None], np.array([0.35, 0.22, 0.12]), paper)


def _ceiling(p: np.ndarray) -> np.ndarray:
    panel = (np.abs(p[:, 0] / 1.0 - np.round(p[:, 0] / 1.0)) < 0.03) | (np.abs(p[:, 1] - np.round(p[:, 1])) < 0.03)
    return np.where(panel[:, None], np.array([0.55, 0.55, 0.58]), np.array([0.88, 0.88, 0.9]))


def _ball(p: np.ndarray) -> np.ndarray:
    """The object: a red and white chequered ball, 12 x 6 patches, a yellow band at its equator."""
    q = p - BALL_CENTRE
    longitude = np.arctan2(q[:, 1], q[:, 0]) / (2 * math.pi) + 0.5
    latitude = np.arccos(np.clip(q[:, 2] / BALL_RADIUS, -1, 1)) / math.pi
    checker = ((np.floor(longitude * 12) + np.floor(latitude * 6)) % 2)[:, None]
    colour = checker * np.array([0.85, 0.12, 0.12]) + (1 - checker) * np.array([0.95, 0.95, 0.92])
    return np.where((np.abs(latitude - 0.5) < 0.04)[:, None], np.array([0.95, 0.8, 0.1]), colour)


def _crate(p: np.ndarray) -> np.ndarray:
    """The crate: a 3D chequer of 0.2 cells in blue and light blue."""
    checker = (np.floor(p / 0.2).sum(axis=-1) % 2)[:, None]
    return checker * np.array([0.15, 0.3, 0.7]) + (1 - checker) * np.array([0.6, 0.75, 0.95])


def _pillar(p: np.ndarray) -> np.ndarray:
    """The pillar: horizontal green bands of two widths."""
    band = (np.floor(p[:, 2] / 0.35) % 2)[:, None]
    return band * np.array([0.2, 0.5, 0.25]) + (1 - band) * np.array([0.7, 0.85, 0.5])


TEXTURES = {FLOOR: _tiles, CEILING: _ceiling, BACK_WALL: _bricks, SIDE_WALL: _wallpaper, FRONT_WALL: _wallpaper,
            BALL: _ball, CRATE_ID: _crate, PILLAR_ID: _pillar}


def albedo(points: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """Surface colours (N, 3) of hit points (N, 3) on the given surfaces."""
    colours = np.zeros_like(points)
    for surface_id, texture in TEXTURES.items():
        on = surface == surface_id
        if on.any():
            colours[on] = texture(points[on])
    return colours


def shade(points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Ambient plus Lambert from the directional light, zero direct light where something casts a shadow."""
    lambert = np.clip(normals @ LIGHT, 0.0, None)
    lit = lambert > 0
    shadow_origins = points[lit] + SHADOW_OFFSET * normals[lit]
    blocker, _, _ = trace(shadow_origins, np.broadcast_to(LIGHT, shadow_origins.shape))
    wall, _, _ = _room_exit(shadow_origins, np.broadcast_to(LIGHT, shadow_origins.shape))
    lambert[np.flatnonzero(lit)[blocker < wall]] = 0.0  # an object, not the room's own walls, is in the way
    return AMBIENT + (1 - AMBIENT) * lambert


def render_view(c2w: np.ndarray, seed: tuple[int, ...], lens: Lens = LENS) -> np.ndarray:
    """The room seen through the lens from OpenGL pose c2w (3 or 4, 4) -> (height, width, 3) uint8 RGB."""
    origins, directions = _lens_rays(c2w, np.random.default_rng(seed), lens)
    t, surface, normals = trace(origins, directions)
    points = origins + t[:, None] * directions
    colour = albedo(points, surface) * shade(points, normals)[:, None]
    mean = colour.reshape(lens.height, lens.width, SAMPLES_PER_AXIS ** 2, 3).mean(axis=2)
    return np.round(np.clip(mean, 0.0, 1.0) * 255.0).astype(np.uint8)


def render_frame(index: int) -> np.ndarray:
    """Frame `index` exactly as the shipped scene has it: (HEIGHT, WIDTH, 3) uint8 RGB."""
    return render_view(camera_poses()[index], (SEED, index))


def transforms(lens: Lens = LENS, frames: int = FRAMES) -> dict:
    """transforms.json (Instant-NGP layout): one shared camera with distortion, aabb_scale, the frames."""
    k1, k2, p1, p2 = DISTORTION
    listed = [{"file_path": f"images/{index:03d}.png", "transform_matrix": pose.tolist()}
              for index, pose in enumerate(camera_poses(frames))]
    return {"camera_model": "OPENCV", "fl_x": lens.focal, "fl_y": lens.focal, "cx": lens.principal_point[0],
            "cy": lens.principal_point[1], "w": lens.width, "h": lens.height, "k1": k1, "k2": k2, "p1": p1,
            "p2": p2, "aabb_scale": AABB_SCALE, "frames": listed}


def capture_frames(lens: Lens, frames: int):
    """The `frames` views of a capture through `lens`, in walking order: (height, width, 3) uint8 each."""
    for index, pose in enumerate(camera_poses(frames)):
        yield render_view(pose, (SEED, index), lens)


def generate(out: Path, lens: Lens = LENS, frames: int = FRAMES) -> None:
    """Write the room scene (Instant-NGP layout, the true poses) into folder `out`: by default the
    shipped one, else `frames` views through `lens`."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(capture_frames(lens, frames)):
        write_png(out / "images" / f"{index:03d}.png", image)
    (out / "transforms.json").write_text(json.dumps(transforms(lens, frames), indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    run_generator(argv, "Generate the built-in room scene (Instant-NGP layout).", generate, "the room scene")


if __name__ == "__main__":
    main()
