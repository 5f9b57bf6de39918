"""Parsing transforms files (Blender/NeRF-synthetic and Instant-NGP/nerfstudio share the keys).

A frame's camera is the file's top-level camera keys overridden by the frame's own. Every
problem raises SceneError with a one-line message that names the file (and frame) at fault.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SceneError

CAMERA_KEYS = ("camera_model", "camera_angle_x", "camera_angle_y", "fl_x", "fl_y", "cx", "cy", "w", "h",
               "k1", "k2", "p1", "p2", "k3", "k4")
DISTORTION_KEYS = ("k1", "k2", "p1", "p2")
UNSUPPORTED_DISTORTION_KEYS = ("k3", "k4")
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
DEFAULT_SCALE = 0.33
DEFAULT_OFFSET = (0.5, 0.5, 0.5)


@dataclass
class FrameSpec:
    """One frame as a transforms file lists it; pose (3, 4) float64 camera-to-world, file coordinates.

    found: whether the image file exists (read with skip_missing, a frame may list a deleted image).
    """

    source: Path
    index: int
    image: Path
    pose: np.ndarray
    camera: dict
    found: bool = True

    @property
    def where(self) -> str:
        return f"{self.source}: frame {self.index}"


@dataclass
class SceneSettings:
    """How file coordinates map to NGP space (p' = p * scale + offset) and the scene box's size."""

    scale: float
    offset: np.ndarray
    aabb_scale: int


def read_json(path: Path) -> dict:
    """The top-level object of a JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SceneError(f"{path}: cannot read ({error})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SceneError(f"{path}: malformed JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    if not isinstance(data, dict):
        raise SceneError(f"{path}: expected a JSON object at the top level")
    return data


def number(value, where: str, key: str) -> float:
    """A finite real number from JSON, else SceneError naming `where` and `key`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SceneError(f"{where}: {key} must be a finite number, got {value!r}")
    return float(value)


def _pose(value, where: str) -> np.ndarray:
    """transform_matrix: 4x4 or 3x4 nested lists of finite numbers -> (3, 4) float64."""
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SceneError(f"{where}: transform_matrix is not a matrix of numbers") from None
    if matrix.shape not in ((4, 4), (3, 4)):
        raise SceneError(f"{where}: transform_matrix has shape {matrix.shape}, need 4x4 or 3x4")
    if not np.isfinite(matrix).all():
        raise SceneError(f"{where}: transform_matrix has non-finite entries")
    return matrix[:3]


def _image_path(folder: Path, file_path, where: str) -> Path:
    """The image a frame's file_path names, relative to the transforms file; '.png' etc. may be left off.

    No such file: the path as written.
    """
    if not isinstance(file_path, str) or not file_path:
        raise SceneError(f"{where}: file_path must be a non-empty string, got {file_path!r}")
    path = folder / file_path
    if path.is_file() or path.suffix:
        return path
    for suffix in IMAGE_SUFFIXES:
        if path.with_name(path.name + suffix).is_file():
            return path.with_name(path.name + suffix)
    return path


def _camera(data: dict) -> dict:
    return {key: data[key] for key in CAMERA_KEYS if key in data}


def _frame(source: Path, index: int, entry, camera: dict, skip_missing: bool) -> FrameSpec:
    where = f"{source}: frame {index}"
    if not isinstance(entry, dict):
        raise SceneError(f"{where}: expected an object, got {type(entry).__name__}")
    for key in ("file_path", "transform_matrix"):
        if key not in entry:
            raise SceneError(f"{where}: missing key '{key}'")
    image = _image_path(source.parent, entry["file_path"], where)
    found = image.is_file()
    if not found and not skip_missing:
        raise SceneError(f"{where}: image {image} not found (--skip-missing trains on the frames whose images exist)")
    return FrameSpec(source, index, image, _pose(entry["transform_matrix"], where), {**camera, **_camera(entry)},
                     found)


def read_frames(path: Path, skip_missing: bool = False) -> tuple[dict, list[FrameSpec]]:
    """A transforms file -> its top-level object and its frames, in file order (at least one).

    A frame whose image file does not exist is an error, or with skip_missing a frame with found False.
    """
    data = read_json(path)
    frames = data.get("frames")
    if frames is None:
        raise SceneError(f"{path}: missing key 'frames'")
    if not isinstance(frames, list):
        raise SceneError(f"{path}: 'frames' must be a list")
    if not frames:
        raise SceneError(f"{path}: has zero frames")
    camera = _camera(data)
    return data, [_frame(path, index, entry, camera, skip_missing) for index, entry in enumerate(frames)]


def scene_settings(data: dict, path: Path) -> SceneSettings:
    """scale (default 0.33), offset (default 0.5, 0.5, 0.5) and aabb_scale (default 1, rounded up to a power of two)."""
    scale = number(data.get("scale", DEFAULT_SCALE), str(path), "scale")
    if scale <= 0:
        raise SceneError(f"{path}: scale must be positive, got {scale}")
    offset = data.get("offset", DEFAULT_OFFSET)
    if not isinstance(offset, (list, tuple)) or len(offset) != 3:
        raise SceneError(f"{path}: offset must be a list of 3 numbers, got {offset!r}")
    offset = np.array([number(value, str(path), "offset") for value in offset])
    aabb_scale = number(data.get("aabb_scale", 1), str(path), "aabb_scale")
    if aabb_scale < 1:
        raise SceneError(f"{path}: aabb_scale must be >= 1, got {aabb_scale}")
    return SceneSettings(scale, offset, 2 ** math.ceil(math.log2(aabb_scale) - 1e-9))


def _focal(camera: dict, where: str, focal_key: str, angle_key: str, size: int) -> float | None:
    """A focal length in pixels from fl_* or camera_angle_* (field of view in radians), if either is there."""
    if focal_key in camera:
        focal = number(camera[focal_key], where, focal_key)
    elif angle_key in camera:
        angle = number(camera[angle_key], where, angle_key)
        if not 0 < angle < math.pi:
            raise SceneError(f"{where}: {angle_key} must be in (0, pi), got {angle}")
        focal = 0.5 * size / math.tan(0.5 * angle)
    else:
        return None
    if focal <= 0:
        raise SceneError(f"{where}: {focal_key} must be positive, got {focal}")
    return focal


def intrinsics(frame: FrameSpec, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A frame's fx, fy, cx, cy (4,) and k1, k2, p1, p2 (4,) for its image of width x height pixels.

    fy defaults to fx, the principal point to the image centre, distortion to zero.
    """
    camera, where = frame.camera, frame.where
    model = camera.get("camera_model", "OPENCV")
    if model not in PINHOLE_MODELS:
        raise SceneError(f"{where}: camera_model {model!r} is not supported (need one of {', '.join(PINHOLE_MODELS)})")
    for key in UNSUPPORTED_DISTORTION_KEYS:
        if number(camera.get(key, 0.0), where, key) != 0.0:
            raise SceneError(f"{where}: distortion coefficient {key} is not supported (only k1, k2, p1, p2)")
    fx = _focal(camera, where, "fl_x", "camera_angle_x", width)
    fy = _focal(camera, where, "fl_y", "camera_angle_y", height)
    if fx is None and fy is None:
        raise SceneError(f"{where}: missing key 'fl_x' or 'camera_angle_x'")
    fx = fy if fx is None else fx
    fy = fx if fy is None else fy
    cx = number(camera.get("cx", width / 2), where, "cx")
    cy = number(camera.get("cy", height / 2), where, "cy")
    distortion = [number(camera.get(key, 0.0), where, key) for key in DISTORTION_KEYS]
    return np.array([fx, fy, cx, cy]), np.array(distortion)


def declared_size(frame: FrameSpec) -> tuple[int, int] | None:
    """The image size (w, h) the transforms file declares for a frame, if it does."""
    if "w" not in frame.camera and "h" not in frame.camera:
        return None
    size = []
    for key in ("w", "h"):
        value = number(frame.camera.get(key), frame.where, key)
        if value != int(value) or value < 1:
            raise SceneError(f"{frame.where}: {key} must be a positive integer, got {value!r}")
        size.append(int(value))
    return size[0], size[1]
