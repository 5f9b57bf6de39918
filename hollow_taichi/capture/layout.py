"""A COLMAP model -> a scene folder `train` reads: transforms.json (Instant-NGP / nerfstudio layout),
the images with shrunk copies beside them, and the sparse points.

The model is moved, as a whole, by one similarity: the cameras' mean up direction becomes +z, the
point their optical axes pass closest to becomes the origin, and the cameras stand CAMERA_DISTANCE
from it on average, as Instant-NGP's colmap2nerf.py leaves them. The loader's default scale 0.33 and
offset 0.5 then put that point at the centre of the scene box, the cameras 1.32 from it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CaptureError
from ..images import read_image, shrink, write_image
from ..scenes.transforms import DEFAULT_OFFSET, DEFAULT_SCALE
from .inputs import link_or_copy

CAMERA_DISTANCE = 4.0
# The scene box is the smallest power of two (at most Instant-NGP's 128) holding this share of the
# sparse points: a few points on the far horizon or wrongly triangulated ones do not inflate it.
BOX_POINTS_PERCENTILE = 95.0
MAX_AABB_SCALE = 128
DOWNSCALES = (2, 4, 8)
# Below this mean of |up . axis| the optical axes are nearly parallel (a forward-facing capture):
# the point nearest to all of them is ill-defined, and the median of the sparse points stands in.
MIN_AXIS_SPREAD = 0.02
TRANSFORMS_NAME = "transforms.json"
IMAGES_NAME = "images"
POINTS_NAME = "sparse_pc.ply"  # nerfstudio's name; transforms.json points to it with ply_file_path
OPENCV_FLIP = np.diag([1.0, -1.0, -1.0])  # COLMAP's camera looks down +z with y down; OpenGL's down -z, y up
# COLMAP camera parameter names -> transforms.json keys, for the models train can use
PARAMETER_KEYS = {"f": ("fl_x", "fl_y"), "fx": ("fl_x",), "fy": ("fl_y",), "cx": ("cx",), "cy": ("cy",),
                  "k": ("k1",), "k1": ("k1",), "k2": ("k2",), "p1": ("p1",), "p2": ("p2",)}
CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")


@dataclass
class Frames:
    """The registered frames of a model: image names, OpenGL camera-to-world (N, 4, 4) float64 poses,
    their COLMAP camera ids, and the sparse points (M, 3) float64 with colours (M, 3) uint8."""

    names: list[str]
    c2w: np.ndarray
    camera_ids: list[int]
    points: np.ndarray
    colours: np.ndarray


def frames_of(model) -> Frames:
    """The registered frames of a pycolmap Reconstruction, sorted by image name (capture order)."""
    images = sorted(model.images.values(), key=lambda image: image.name)
    images = [image for image in images if image.has_pose]
    c2w = np.tile(np.eye(4), (len(images), 1, 1))
    for pose, image in zip(c2w, images, strict=True):
        world_from_camera = image.cam_from_world().inverse().matrix()
        pose[:3, :3] = world_from_camera[:, :3] @ OPENCV_FLIP
        pose[:3, 3] = world_from_camera[:, 3]
    points = list(model.points3D.values())
    return Frames([image.name for image in images], c2w, [image.camera_id for image in images],
                  np.array([point.xyz for point in points]).reshape(-1, 3),
                  np.array([point.color for point in points], dtype=np.uint8).reshape(-1, 3))


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation (3, 3) that turns unit vector a onto unit vector b by the shortest way."""
    axis = np.cross(a, b)
    cos = float(np.dot(a, b))
    if np.linalg.norm(axis) < 1e-12:
        if cos > 0:
            return np.eye(3)
        helper = np.eye(3)[np.argmin(np.abs(a))]
        axis = np.cross(a, helper) / np.linalg.norm(np.cross(a, helper))
        return 2.0 * np.outer(axis, axis) - np.eye(3)  # half a turn about an axis normal to a
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + skew + skew @ skew / (1.0 + cos)


def focus_point(c2w: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The point (3,) nearest, in least squares, to every camera's optical axis; the median of the
    sparse points where the axes are too close to parallel for that to be well defined."""
    forward = -c2w[:, :3, 2]
    off_axis = np.eye(3)[None] - forward[:, :, None] * forward[:, None, :]
    normal_matrix = off_axis.sum(axis=0)
    if np.linalg.eigvalsh(normal_matrix / len(c2w))[0] < MIN_AXIS_SPREAD and len(points):
        return np.median(points, axis=0)
    return np.linalg.solve(normal_matrix, np.einsum("nij,nj->i", off_axis, c2w[:, :3, 3]))


def normalize(frames: Frames) -> Frames:
    """The frames and points moved by one similarity: mean camera up to +z, the focus point to the
    origin, mean camera distance CAMERA_DISTANCE."""
    up = frames.c2w[:, :3, 1].mean(axis=0)
    rotation = rotation_between(up / np.linalg.norm(up), np.array([0.0, 0.0, 1.0]))
    c2w = frames.c2w.copy()
    c2w[:, :3, :] = rotation @ frames.c2w[:, :3, :]
    points = frames.points @ rotation.T
    centre = focus_point(c2w, points)
    distance = np.linalg.norm(c2w[:, :3, 3] - centre, axis=-1).mean()
    scale = CAMERA_DISTANCE / distance
    c2w[:, :3, 3] = (c2w[:, :3, 3] - centre) * scale
    return Frames(frames.names, c2w, frames.camera_ids, (points - centre) * scale, frames.colours)


def aabb_scale_for(points: np.ndarray) -> int:
    """The scene box's edge (a power of two, 1 to MAX_AABB_SCALE) in NGP units that holds
    BOX_POINTS_PERCENTILE percent of the points (transforms coordinates, the loader's scale and offset)."""
    if not len(points):
        return 1
    ngp = points * DEFAULT_SCALE + np.asarray(DEFAULT_OFFSET)
    half_edge = np.percentile(np.abs(ngp - np.asarray(DEFAULT_OFFSET)).max(axis=-1), BOX_POINTS_PERCENTILE)
    edge = 2.0 * max(half_edge, 0.5)
    return int(min(2 ** math.ceil(math.log2(edge) - 1e-9), MAX_AABB_SCALE))


def check_aabb_scale(aabb_scale: int | None) -> None:
    """An aabb_scale asked for is a power of two from 1 to MAX_AABB_SCALE."""
    if aabb_scale is not None and not (1 <= aabb_scale <= MAX_AABB_SCALE and aabb_scale & (aabb_scale - 1) == 0):
        raise CaptureError(f"--aabb-scale must be a power of two from 1 to {MAX_AABB_SCALE}, got {aabb_scale}")


def camera_entry(camera) -> dict:
    """A COLMAP camera as transforms.json keys: camera_model OPENCV, w, h, fl_x, fl_y, cx, cy, k1 k2 p1 p2."""
    model = camera.model.name
    if model not in CAMERA_MODELS:
        raise CaptureError(f"COLMAP camera {camera.camera_id} has model {model}; train reads "
                           f"{', '.join(CAMERA_MODELS)} (undistort the model with COLMAP first)")
    entry = {"camera_model": "OPENCV", "w": int(camera.width), "h": int(camera.height),
             "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}
    names = [name.strip() for name in camera.params_info.split(",")]
    for name, value in zip(names, camera.params, strict=True):
        for key in PARAMETER_KEYS[name]:
            entry[key] = float(value)
    return entry


def transforms(model, frames: Frames, aabb_scale: int) -> dict:
    """transforms.json: the camera at the top level when all frames share one, per frame otherwise."""
    cameras = {camera_id: camera_entry(model.cameras[camera_id]) for camera_id in set(frames.camera_ids)}
    shared = len(cameras) == 1
    listed = []
    for name, pose, camera_id in zip(frames.names, frames.c2w, frames.camera_ids, strict=True):
        entry = {"file_path": f"{IMAGES_NAME}/{name}", "transform_matrix": pose.tolist()}
        listed.append(entry if shared else {**entry, **cameras[camera_id]})
    top = next(iter(cameras.values())) if shared else {}
    return {**top, "aabb_scale": aabb_scale, "ply_file_path": POINTS_NAME, "frames": listed}


def write_points(path: Path, points: np.ndarray, colours: np.ndarray) -> None:
    """A binary little-endian PLY of coloured points (x y z float32, red green blue uint8)."""
    vertex = np.empty(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                          ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for axis, name in enumerate("xyz"):
        vertex[name] = points[:, axis]
    for channel, name in enumerate(("red", "green", "blue")):
        vertex[name] = colours[:, channel]
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(points)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    path.write_bytes(header.encode("ascii") + vertex.tobytes())


def write_shrunk_copies(images: Path, names: list[str], out: Path) -> None:
    """images_2/, images_4/, images_8/ in `out`: each named image of folder `images` shrunk as the
    loader shrinks (area averaging to (w // f, h // f)), so that `train --downscale f` reads small
    files instead of decoding and shrinking the full ones (a PNG copy is the same pixels; a JPEG
    one is encoded again at images.JPEG_QUALITY)."""
    for name in names:
        pixels = read_image(images / name)
        for factor in DOWNSCALES:
            if min(pixels.shape[:2]) // factor < 1:
                break
            target = out / f"{IMAGES_NAME}_{factor}" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            write_image(target, shrink(pixels, factor, images / name))


def write_scene(model, registered: Frames, images: Path, out: Path, aabb_scale: int | None) -> tuple[Frames, int]:
    """Write SCENE `out` from the `registered` frames of a COLMAP `model`, their image names files in
    folder `images`: transforms.json, images/ (links or copies, unless `images` is out/images
    already), the shrunk copies and the sparse points. Returns the normalized frames and the scene
    box's aabb_scale."""
    frames = normalize(registered)
    aabb_scale = aabb_scale or aabb_scale_for(frames.points)
    target = out / IMAGES_NAME
    for name in frames.names:
        source = images / name
        if not source.is_file():
            raise CaptureError(f"{source}: image {name} of the COLMAP model is not in {images}")
        if source.resolve() != (target / name).resolve():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(source, target / name)
    write_shrunk_copies(target, frames.names, out)
    write_points(out / POINTS_NAME, frames.points, frames.colours)
    (out / TRANSFORMS_NAME).write_text(json.dumps(transforms(model, frames, aabb_scale), indent=2) + "\n")
    return frames, aabb_scale
