"""The browser viewer's cameras: what viser reports of a browser's camera, turned into our Cameras,
and our cameras turned into what viser shows (the start view, training-camera frustums).

The viewer's world is NGP space itself (the scene's scale and offset already applied by the loader),
so a pose needs no change of origin or scale, only of axes: viser follows OpenCV (x right, y down,
the camera looks down +z), our Cameras OpenGL (x right, y up, looking down -z). Flipping the y and z
columns of the rotation turns one into the other. A browser camera is a pinhole with square pixels
and its principal point in the centre of the canvas; viser gives its vertical field of view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..scenes import Cameras
from ..scenes.cameras import SCENE_CENTRE

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])  # right-multiplied: flips a rotation's y and z columns
MIN_LOOK_DISTANCE = 1e-3


@dataclass
class BrowserCamera:
    """A browser's camera as viser reports it: wxyz (4,), the rotation world <- camera (OpenCV axes)
    as a unit quaternion; position (3,) in the world (NGP space); fov, the vertical field of view
    in radians; width x height, the canvas size in pixels."""

    wxyz: np.ndarray
    position: np.ndarray
    fov: float
    width: int
    height: int


@dataclass
class StartView:
    """Where the browser's camera starts: its position, the point it orbits around (on its optical
    axis), its up direction and vertical field of view (radians)."""

    position: np.ndarray
    look_at: np.ndarray
    up: np.ndarray
    fov: float


def rotation_from_wxyz(wxyz: np.ndarray) -> np.ndarray:
    """The rotation matrix (3, 3) of a quaternion (w, x, y, z) (normalized first)."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def wxyz_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """A unit quaternion (w, x, y, z) of a rotation matrix (3, 3) (Shepperd's method: the largest
    of the four squared components first, so no division by a small number)."""
    r = np.asarray(rotation, dtype=np.float64)
    squares = np.array([1 + r[0, 0] + r[1, 1] + r[2, 2], 1 + r[0, 0] - r[1, 1] - r[2, 2],
                        1 - r[0, 0] + r[1, 1] - r[2, 2], 1 - r[0, 0] - r[1, 1] + r[2, 2]])
    largest = int(np.argmax(squares))
    scale = 2.0 * math.sqrt(squares[largest])  # 4 |q_largest|
    off_diagonal = {
        0: (0.0, r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]),
        1: (r[2, 1] - r[1, 2], 0.0, r[0, 1] + r[1, 0], r[0, 2] + r[2, 0]),
        2: (r[0, 2] - r[2, 0], r[0, 1] + r[1, 0], 0.0, r[1, 2] + r[2, 1]),
        3: (r[1, 0] - r[0, 1], r[0, 2] + r[2, 0], r[1, 2] + r[2, 1], 0.0),
    }[largest]
    quaternion = np.array(off_diagonal) / scale
    quaternion[largest] = scale / 4.0
    return quaternion / np.linalg.norm(quaternion)


def opengl_pose(camera: BrowserCamera) -> np.ndarray:
    """The camera-to-world matrix (3, 4) of a browser camera in our (OpenGL) convention."""
    rotation = rotation_from_wxyz(camera.wxyz) @ OPENCV_TO_OPENGL
    return np.concatenate([rotation, np.asarray(camera.position, dtype=np.float64)[:, None]], axis=1)


def opencv_pose(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """wxyz (4,) and position (3,) in viser's (OpenCV) convention of an OpenGL camera-to-world (3, 4)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    return wxyz_from_rotation(c2w[:, :3] @ OPENCV_TO_OPENGL), c2w[:, 3].copy()


def to_cameras(camera: BrowserCamera, width: int, height: int) -> Cameras:
    """One camera that sees what the browser's camera sees, rendered at width x height (the same
    aspect as the canvas, or the image is stretched): focal length from the vertical field of
    view, principal point in the centre, no distortion."""
    focal = height / 2.0 / math.tan(camera.fov / 2.0)
    c2w = torch.from_numpy(opengl_pose(camera)).float()[None]
    intrinsics = torch.tensor([[focal, focal, width / 2.0, height / 2.0]])
    return Cameras(c2w, intrinsics, torch.zeros(1, 4), width, height)


def vertical_fov(cameras: Cameras, index: int) -> float:
    """The vertical field of view (radians) of camera `index`, from its fy and image height."""
    fy = float(cameras.intrinsics[index, 1])
    return 2.0 * math.atan(cameras.height / 2.0 / fy)


def start_view(cameras: Cameras, index: int = 0) -> StartView:
    """The view of camera `index`: the browser camera starts where it stands, looking the same way,
    and orbits around the point of its optical axis nearest the scene centre (the camera's own
    principal point and aspect are not kept: the browser's canvas has its own)."""
    c2w = cameras.c2w[index].double().cpu().numpy()
    position, forward, up = c2w[:, 3], -c2w[:, 2], c2w[:, 1]
    distance = max(float(np.dot(np.array(SCENE_CENTRE) - position, forward)), MIN_LOOK_DISTANCE)
    return StartView(position, position + distance * forward, up, vertical_fov(cameras, index))


def browser_camera_of(cameras: Cameras, index: int, width: int, height: int) -> BrowserCamera:
    """The browser camera that `start_view(cameras, index)` puts on a width x height canvas."""
    wxyz, position = opencv_pose(cameras.c2w[index].cpu().numpy())
    return BrowserCamera(wxyz, position, vertical_fov(cameras, index), width, height)
