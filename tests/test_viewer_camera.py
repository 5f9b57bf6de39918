"""The viewer's camera conversion (viser's OpenCV camera -> our OpenGL Cameras) against known poses,
and the same view rendered through the viewer's path and through `render`'s (PSNR >= 40 dB)."""
import math

import cv2
import numpy as np
import pytest
import torch

from hollow_taichi.viewer import camera as view_camera, frames as view_frames
from hollow_taichi.export import render_frames
from hollow_taichi.metrics import psnr
from hollow_taichi.scenes import load_scene
from hollow_taichi.scenes.cameras import look_at
from hollow_taichi.viewer.camera import BrowserCamera

from scenes_util import tiny_scene
from test_compact import dense_model

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


def random_quaternions(count: int, seed: int) -> np.ndarray:
    quaternions = np.random.default_rng(seed).normal(size=(count, 4))
    return quaternions / np.linalg.norm(quaternions, axis=-1, keepdims=True)


def test_identity_browser_camera_looks_down_world_z_with_image_up_along_minus_y(cpu):
    """viser's identity pose is OpenCV's camera frame: x right, y down, looking down +z. In our
    Cameras that is the rotation diag(1, -1, -1); the centre pixel looks along +z and the top
    row's rays lean towards -y."""
    camera = BrowserCamera(IDENTITY, np.array([0.5, 0.5, -2.0]), fov=math.radians(60), width=4, height=2)
    cameras = view_camera.to_cameras(camera, 41, 21)
    np.testing.assert_allclose(cameras.c2w[0].numpy(), [[1, 0, 0, 0.5], [0, -1, 0, 0.5], [0, 0, -1, -2.0]])
    origins, directions = cameras.pixel_rays(0)
    directions = directions.reshape(21, 41, 3)
    np.testing.assert_allclose(directions[10, 20].numpy(), [0, 0, 1], atol=1e-6)
    top = directions[0, 20].numpy()
    assert top[1] < 0 and top[2] > 0
    # the top pixel's centre lies 10 of the image's 10.5 half-height rows above the axis: fov kept
    assert -top[1] / top[2] == pytest.approx(10 / 10.5 * math.tan(math.radians(30)), rel=1e-5)
    assert cameras.intrinsics[0, 0] == cameras.intrinsics[0, 1]  # square pixels
    torch.testing.assert_close(origins[0], torch.tensor([0.5, 0.5, -2.0]))


def test_quaternions_match_visers_and_round_trip():
    viser_transforms = pytest.importorskip("viser.transforms")
    for wxyz in random_quaternions(200, seed=0):
        rotation = view_camera.rotation_from_wxyz(wxyz)
        np.testing.assert_allclose(rotation, viser_transforms.SO3(wxyz).as_matrix(), atol=1e-12)
        back = view_camera.wxyz_from_rotation(rotation)
        assert np.allclose(back, wxyz) or np.allclose(back, -wxyz)


def test_a_known_pose_survives_the_round_trip_through_visers_convention():
    """A camera at (0.5, -2, 1.5) looking at the scene centre with z up, as viser would hold it and
    back: the same pose; the start view looks along its axis through the point nearest the centre."""
    c2w = look_at(np.array([[0.5, -2.0, 1.5]]), np.array([0.5, 0.5, 0.5]), np.array([0.0, 0.0, 1.0]))[0]
    wxyz, position = view_camera.opencv_pose(c2w)
    back = view_camera.opengl_pose(BrowserCamera(wxyz, position, 1.0, 10, 10))
    np.testing.assert_allclose(back, c2w, atol=1e-12)
    cameras = view_camera.to_cameras(BrowserCamera(wxyz, position, 1.0, 10, 10), 10, 10)
    start = view_camera.start_view(cameras)
    np.testing.assert_allclose(start.look_at, [0.5, 0.5, 0.5], atol=1e-6)  # the centre is on its axis
    np.testing.assert_allclose(start.up, c2w[:, 1], atol=1e-6)
    assert start.fov == pytest.approx(1.0)


def test_the_viewer_renders_what_render_renders(cpu, tmp_path):
    """The first test camera of a scene in NGP space (Blender file coordinates scaled by 0.33 and
    shifted by 0.5), put in a browser of its aspect and rendered by the viewer's path, against
    `render`'s frame of that camera at the same size: PSNR >= 40 dB."""
    scene = load_scene(tiny_scene(tmp_path / "scene"), 1, False)
    cameras = scene.test.cameras
    torch.manual_seed(0)  # the MLPs' initialisation
    _, _, renderer = dense_model("hollow", seed=3)  # the box stands out from the background
    width, height = 64, 64
    render_frames(renderer, cameras.subset([0]), tmp_path / "frames", width, height)
    rendered = cv2.cvtColor(cv2.imread(str(tmp_path / "frames" / "frame_00000.png")), cv2.COLOR_BGR2RGB)
    browser = view_camera.browser_camera_of(cameras, 0, width * 10, height * 10)  # a larger canvas, same aspect
    frame = view_frames.render_frame(renderer, view_camera.to_cameras(browser, width, height), "colour")
    assert rendered.std() > 10  # the box is in view: a test that can tell
    score = psnr(torch.from_numpy(frame.image).float() / 255, torch.from_numpy(rendered).float() / 255)
    assert score >= 40.0
