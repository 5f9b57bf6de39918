"""`hollow-taichi process`: camera poses for a capture by COLMAP (pycolmap), written as a scene train reads.

The room rendered small through its lens (the generator's true poses known) is processed from its
images alone, as photos and as a video; an existing COLMAP text model written here is converted;
each error a user can cause is one line. The numbers at the full capture size are in BENCHMARKS.md
("Your own captures").
"""
import builtins
import json
import math
from pathlib import Path

import numpy as np
import pytest

from hollow_taichi.capture import inputs, layout
from hollow_taichi.capture.accuracy import pose_errors, umeyama
from hollow_taichi.images import read_image, shrink, write_png, write_video
from hollow_taichi.scenes import load_scene, room
from hollow_taichi.scenes.cameras import look_at
from scenes_util import error_line, run_cli

pycolmap = pytest.importorskip("pycolmap")

WIDTH, FRAMES = 240, 32  # 240x180: small enough for CI (render ~15 s, process ~15 s on 2 cores)
ROOM_DIAGONAL = float(np.linalg.norm(room.ROOM_MAX - room.ROOM_MIN))
# Measured at this size over 9 runs: rotation errors 0.4-0.8 deg mean, 1.4 deg at most (COLMAP holds
# the principal point at the image centre; the room's lens has it 1.2% off, which a rotation of ~0.9
# deg makes up), positions under 0.4% of the room's diagonal. A frame posed wrongly (7-54 deg, seen
# before exhaustive matching asked for 50 inliers a pair) fails the bounds; COLMAP's threads make
# runs differ slightly, hence the margin.
ROTATION_MEAN_BOUND_DEG, ROTATION_MAX_BOUND_DEG = 1.5, 3.0
POSITION_BOUND = 0.01 * ROOM_DIAGONAL


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    """The room through its lens at 240x180, FRAMES views along its walk, with the true poses."""
    folder = tmp_path_factory.mktemp("room_capture")
    room.generate(folder, room.LENS.scaled(WIDTH), FRAMES)
    return folder


@pytest.fixture(scope="module")
def processed(capture, tmp_path_factory):
    """The capture's images processed by `hollow-taichi process`: the scene folder and the command's result."""
    scene = tmp_path_factory.mktemp("processed") / "scene"
    return scene, run_cli("process", capture / "images", "--out", scene, "--no-progress")


def poses_of(scene: Path) -> dict[str, np.ndarray]:
    data = json.loads((scene / "transforms.json").read_text())
    return {Path(frame["file_path"]).name: np.array(frame["transform_matrix"]) for frame in data["frames"]}


def errors_against_truth(scene: Path, truth: dict[str, np.ndarray], names: list[str]):
    recovered = poses_of(scene)
    return pose_errors(np.stack([recovered[name] for name in names]), np.stack([truth[name] for name in names]))


def test_photos_of_the_room_give_every_pose_and_the_lens(capture, processed):
    scene, result = processed
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[:result.stdout.rindex("}") + 1])
    assert summary["registered"] == summary["frames"] == FRAMES
    truth = poses_of(capture)
    errors = errors_against_truth(scene, truth, sorted(truth))
    assert errors.rotation_degrees.mean() < ROTATION_MEAN_BOUND_DEG, errors
    assert errors.rotation_degrees.max() < ROTATION_MAX_BOUND_DEG, errors
    assert errors.position.max() < POSITION_BOUND, errors
    data = json.loads((scene / "transforms.json").read_text())
    lens = room.LENS.scaled(WIDTH)
    assert data["fl_x"] == pytest.approx(lens.focal, rel=0.03) and data["fl_y"] == pytest.approx(lens.focal, rel=0.03)
    assert data["k1"] == pytest.approx(room.DISTORTION[0], abs=0.05)
    assert (data["w"], data["h"], data["aabb_scale"]) == (lens.width, lens.height, room.AABB_SCALE)


def test_processed_scene_loads_from_its_shrunk_copies_around_the_box_centre(processed):
    scene, result = processed
    assert result.exit_code == 0, result.output
    loaded = load_scene(scene, downscale=2)
    assert len(loaded.train) + len(loaded.test) == FRAMES
    first = loaded.test.paths[0]
    expected = shrink(read_image(first), 2, first)
    assert np.array_equal(loaded.test.images[0].numpy(), expected)
    centres = loaded.train.cameras.c2w[:, :, 3].double().numpy()
    distance = np.linalg.norm(centres - 0.5, axis=-1).mean()  # NGP space: the focus point is the box centre
    assert distance == pytest.approx(layout.CAMERA_DISTANCE * 0.33, rel=0.05)
    points = (scene / layout.POINTS_NAME).read_bytes()
    assert points.startswith(b"ply\nformat binary_little_endian 1.0\nelement vertex ")


def test_a_video_of_the_room_is_processed_from_its_sharpest_frames(capture, tmp_path):
    video = tmp_path / "walk.mp4"
    write_video(video, [read_image(path) for path in sorted((capture / "images").iterdir())], fps=8)
    scene = tmp_path / "scene"
    result = run_cli("process", video, "--out", scene, "--frames", 16, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "matching (sequential)" in result.stderr
    names = sorted(poses_of(scene))
    assert len(names) >= 14, result.output  # of 16: a lossy video may lose a frame or two
    taken = [int(name.removeprefix("frame_").removesuffix(".png")) for name in names]
    truth = {f"frame_{index:06d}.png": pose for index, pose in enumerate(room.camera_poses(FRAMES))}
    errors = errors_against_truth(scene, truth, names)
    assert max(np.diff(taken)) <= 4 and errors.position.max() < POSITION_BOUND, (taken, errors)


def write_text_model(folder: Path, c2w: np.ndarray, names: list[str], camera_line: str) -> None:
    """A COLMAP text model: cameras.txt (one camera), images.txt (world-to-camera, OpenCV axes), points3D.txt."""
    folder.mkdir(parents=True)
    (folder / "cameras.txt").write_text(f"1 {camera_line}\n")
    lines = []
    for image_id, (pose, name) in enumerate(zip(c2w, names, strict=True), start=1):
        rotation = (pose[:3, :3] @ layout.OPENCV_FLIP).T
        x, y, z, w = pycolmap.Rotation3d(rotation).quat
        values = [w, x, y, z, *(-rotation @ pose[:3, 3])]
        lines += [f"{image_id} " + " ".join(f"{value:.17g}" for value in values) + f" 1 {name}", ""]
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    (folder / "points3D.txt").write_text("1 0.1 0.2 0.3 200 100 50 0.5\n2 -0.4 0.0 0.2 10 20 30 0.5\n")


def ring(count: int) -> np.ndarray:
    angles = np.linspace(0, 2 * math.pi, count, endpoint=False)
    eyes = np.stack([3 * np.cos(angles), 3 * np.sin(angles), np.full(count, 1.0)], axis=-1)
    poses = np.tile(np.eye(4), (count, 1, 1))
    poses[:, :3] = look_at(eyes, np.zeros(3), np.array([0.0, 0.0, 1.0]))
    return poses


def photos(folder: Path, count: int, size=(48, 64)) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"view_{index:02d}.png" for index in range(count)]
    for index, name in enumerate(names):
        write_png(folder / name, np.random.default_rng(index).integers(0, 256, (*size, 3), dtype=np.uint8))
    return names


def test_colmap_text_model_converts_with_its_poses_and_lens(tmp_path):
    c2w = ring(6)
    names = photos(tmp_path / "photos", 6)
    write_text_model(tmp_path / "project" / "sparse" / "0", c2w, names, "OPENCV 64 48 60 61 31 25 -0.1 0.01 0.001 -0.002")
    scene = tmp_path / "scene"
    result = run_cli("process", tmp_path / "photos", "--colmap", tmp_path / "project", "--out", scene)
    assert result.exit_code == 0, result.output
    data = json.loads((scene / "transforms.json").read_text())
    assert [data[key] for key in ("fl_x", "fl_y", "cx", "cy", "k1", "k2", "p1", "p2", "w", "h")] == \
        pytest.approx([60, 61, 31, 25, -0.1, 0.01, 0.001, -0.002, 64, 48])
    errors = pose_errors(np.stack([poses_of(scene)[name] for name in names]), c2w)
    assert errors.rotation_degrees.max() < 1e-4 and errors.position.max() < 1e-9  # arccos near 1: ~3e-6 deg
    recovered = np.stack([poses_of(scene)[name] for name in names])
    assert np.linalg.norm(recovered[:, :3, 3], axis=-1).mean() == pytest.approx(layout.CAMERA_DISTANCE)
    assert np.allclose(recovered[:, :3, 1].mean(axis=0) / np.linalg.norm(recovered[:, :3, 1].mean(axis=0)),
                       [0, 0, 1])
    assert load_scene(scene, downscale=2).train.images.shape[1:3] == (24, 32)


@pytest.mark.parametrize("camera_line, message", [
    ("SIMPLE_RADIAL 64 48 60 32 24 -0.05", None),
    ("OPENCV_FISHEYE 64 48 60 61 32 24 0.1 0.01 0 0", "model OPENCV_FISHEYE"),
])
def test_colmap_camera_models(tmp_path, camera_line, message):
    names = photos(tmp_path / "photos", 4)
    write_text_model(tmp_path / "model", ring(4), names, camera_line)
    result = run_cli("process", tmp_path / "photos", "--colmap", tmp_path / "model", "--out", tmp_path / "scene")
    if message is None:
        data = json.loads((tmp_path / "scene" / "transforms.json").read_text())
        assert (data["fl_x"], data["fl_y"], data["k1"], data["k2"]) == (60, 60, -0.05, 0)
    else:
        assert message in error_line(result)


def test_sharpest_frame_of_each_stretch():
    scores = [1, 5, 2, 9, 3, 3, 8, 1, 0, 7]
    assert inputs.sharpest_in_stretches(scores, 3) == [3, 6, 9]  # stretches 0-3, 4-6, 7-9
    assert inputs.sharpest_in_stretches(scores[:2], 5) == [0, 1]


def test_blur_lowers_sharpness():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    import cv2

    assert inputs.sharpness(cv2.GaussianBlur(image, (7, 7), 2.0)) < 0.2 * inputs.sharpness(image)


def test_aabb_scale_holds_most_points():
    points = np.random.default_rng(0).uniform(-4, 4, (1000, 3))  # NGP: 0.5 +- 1.32
    assert layout.aabb_scale_for(points) == 4
    assert layout.aabb_scale_for(np.concatenate([points * 0.1, points[:20] * 100])) == 1  # 2% far outliers
    assert layout.aabb_scale_for(points * 1000) == layout.MAX_AABB_SCALE


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(20, 3))
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    rotation *= np.linalg.det(rotation)
    scale, found, translation = umeyama(source, 2.5 * source @ rotation.T + [1, 2, 3])
    assert scale == pytest.approx(2.5) and np.allclose(found, rotation) and np.allclose(translation, [1, 2, 3])


def test_loader_ignores_a_shrunk_copy_of_the_wrong_size(tmp_path):
    c2w = ring(4)
    names = photos(tmp_path / "photos", 4)
    write_text_model(tmp_path / "model", c2w, names, "PINHOLE 64 48 60 60 32 24")
    assert run_cli("process", tmp_path / "photos", "--colmap", tmp_path / "model", "--out", tmp_path / "s").exit_code == 0
    write_png(tmp_path / "s" / "images_2" / names[1], np.zeros((10, 10, 3), np.uint8))
    loaded = load_scene(tmp_path / "s", downscale=2)
    expected = shrink(read_image(tmp_path / "photos" / names[1]), 2, names[1])
    assert np.array_equal(loaded.train.images[0].numpy(), expected)


def test_error_cases_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no images" in error_line(run_cli("process", tmp_path / "empty", "--out", tmp_path / "a"))
    assert "no such file" in error_line(run_cli("process", tmp_path / "missing", "--out", tmp_path / "a"))
    (tmp_path / "broken.mp4").write_text("not a video")
    assert "cannot read this video" in error_line(run_cli("process", tmp_path / "broken.mp4", "--out", tmp_path / "b"))
    photos(tmp_path / "mixed", 2)
    write_png(tmp_path / "mixed" / "z.png", np.zeros((10, 12, 3), np.uint8))
    line = error_line(run_cli("process", tmp_path / "mixed", "--out", tmp_path / "c"))
    assert "z.png is 12x10" in line and "one size" in line
    assert "power of two" in error_line(run_cli("process", tmp_path / "mixed", "--out", tmp_path / "d",
                                                "--aabb-scale", 3))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    line = error_line(run_cli("process", tmp_path / "empty", "--out", tmp_path / "used"))
    assert "not empty" in line and "--force" in line
    assert "no COLMAP model" in error_line(run_cli("process", tmp_path / "mixed", "--colmap", tmp_path / "empty",
                                                   "--out", tmp_path / "e"))
    line = error_line(run_cli("process", tmp_path / "mixed", "--out", tmp_path / "mixed" / "scene"))
    assert "neither inside" in line


def test_noise_photos_have_no_model(tmp_path):
    photos(tmp_path / "noise", 5, size=(96, 128))
    line = error_line(run_cli("process", tmp_path / "noise", "--out", tmp_path / "scene", "--no-progress"))
    assert line.startswith(f"error: {tmp_path / 'noise'}: COLMAP") and "overlap" in line


def test_force_replaces_only_what_process_wrote(tmp_path):
    names = photos(tmp_path / "photos", 4)
    write_text_model(tmp_path / "model", ring(4), names, "PINHOLE 64 48 60 60 32 24")
    out = tmp_path / "scene"
    assert run_cli("process", tmp_path / "photos", "--colmap", tmp_path / "model", "--out", out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    (out / "images" / "stale.png").write_bytes(b"old")
    result = run_cli("process", tmp_path / "photos", "--colmap", tmp_path / "model", "--out", out, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine" and not (out / "images" / "stale.png").exists()


def test_without_pycolmap_process_says_how_to_install(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_pycolmap(name, *args, **kwargs):
        if name == "pycolmap":
            raise ImportError("No module named 'pycolmap'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pycolmap)
    photos(tmp_path / "photos", 3)
    line = error_line(run_cli("process", tmp_path / "photos", "--out", tmp_path / "scene"))
    assert "pip install 'hollow-taichi[process]'" in line
    assert not (tmp_path / "scene").exists()


def test_room_capture_keeps_the_shipped_room():
    lens = room.LENS.scaled(room.WIDTH)
    assert lens == room.LENS
    assert room.transforms(lens, room.FRAMES) == room.transforms()
