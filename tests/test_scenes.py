"""Scene loading: tiny Blender and Instant-NGP scenes written here, in tmp_path."""
import json
import math

import cv2
import numpy as np
import pytest
import torch

from hollow_taichi.errors import SceneError
from hollow_taichi.scenes import Cameras, evenly_spaced, load_scene

WIDTH, HEIGHT = 8, 6
ANGLE_X = 0.9


def pose(angle: float, translation) -> list:
    """A 4x4 camera-to-world matrix: rotation about z by `angle`, then `translation`."""
    c, s = math.cos(angle), math.sin(angle)
    return [[c, -s, 0.0, translation[0]], [s, c, 0.0, translation[1]], [0.0, 0.0, 1.0, translation[2]],
            [0.0, 0.0, 0.0, 1.0]]


def image(seed: int, channels: int = 4, size=(HEIGHT, WIDTH)) -> np.ndarray:
    """Random (H, W, channels) uint8 pixels, RGB(A) order."""
    return np.random.default_rng(seed).integers(0, 256, size + (channels,), dtype=np.uint8)


def save(path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    code = cv2.COLOR_RGBA2BGRA if pixels.shape[-1] == 4 else cv2.COLOR_RGB2BGR
    assert cv2.imwrite(str(path), cv2.cvtColor(pixels, code))


def write_json(path, data) -> None:
    path.write_text(json.dumps(data))


def blender_scene(root, splits=("train", "val", "test"), frames=3):
    """Blender layout: per split `frames` RGBA images; file_path without extension."""
    for split_index, split in enumerate(splits):
        entries = []
        for index in range(frames):
            seed = 100 * split_index + index
            save(root / split / f"r_{index}.png", image(seed))
            entries.append({"file_path": f"./{split}/r_{index}",
                            "transform_matrix": pose(0.3 * index, [index, -2.0, 1.5])})
        write_json(root / f"transforms_{split}.json", {"camera_angle_x": ANGLE_X, "frames": entries})
    return root


def ngp_transforms(frames=10, **top):
    """transforms.json content for `frames` images images/f_<i>.png."""
    entries = [{"file_path": f"images/f_{index}.png", "transform_matrix": pose(0.1 * index, [0.5, index, -1.0])}
               for index in range(frames)]
    return {"fl_x": 7.0, "fl_y": 6.5, "cx": 4.2, "cy": 2.9, "w": WIDTH, "h": HEIGHT, "frames": entries, **top}


def ngp_scene(root, frames=10, channels=3, **top):
    for index in range(frames):
        save(root / "images" / f"f_{index}.png", image(index, channels))
    write_json(root / "transforms.json", ngp_transforms(frames, **top))
    return root


def test_blender_layout_images_poses_and_intrinsics(tmp_path):
    scene = load_scene(blender_scene(tmp_path))
    assert (len(scene.train), len(scene.val), len(scene.test)) == (3, 3, 3)
    assert scene.train.images.shape == (3, HEIGHT, WIDTH, 4) and scene.train.images.dtype == torch.uint8
    assert torch.equal(scene.val.images[2], torch.from_numpy(image(102)))
    assert scene.test.paths[1].endswith("test/r_1.png")
    expected = np.array(pose(0.6, [2, -2.0, 1.5]))[:3]
    expected[:, 3] = expected[:, 3] * 0.33 + 0.5
    assert torch.allclose(scene.train.cameras.c2w[2], torch.tensor(expected, dtype=torch.float32))
    focal = 0.5 * WIDTH / math.tan(0.5 * ANGLE_X)
    assert torch.allclose(scene.train.cameras.intrinsics, torch.tensor([focal, focal, WIDTH / 2, HEIGHT / 2]))
    assert not scene.train.cameras.distortion.any()
    assert scene.aabb_scale == 1
    assert torch.equal(scene.aabb, torch.tensor([[0.0] * 3, [1.0] * 3]))


def test_blender_object_box_maps_into_unit_cube(tmp_path):
    """NeRF-synthetic objects lie in [-1.5, 1.5]^3; NGP space puts them inside [0, 1]^3."""
    root = blender_scene(tmp_path, frames=1)
    data = json.loads((root / "transforms_train.json").read_text())
    data["frames"][0]["transform_matrix"] = pose(0.0, [1.5, -1.5, 1.5])
    write_json(root / "transforms_train.json", data)
    corner = load_scene(root).train.cameras.c2w[0, :, 3]
    assert torch.allclose(corner, torch.tensor([0.995, 0.005, 0.995]))


def test_blender_without_test_split_holds_out_every_eighth_frame(tmp_path):
    root = blender_scene(tmp_path, splits=("train",), frames=17)
    scene = load_scene(root)
    test_names = [path.rsplit("/", 1)[1] for path in scene.test.paths]
    assert test_names == ["r_0.png", "r_8.png", "r_16.png"]
    assert len(scene.train) == 14 and not set(scene.train.paths) & set(scene.test.paths)
    assert scene.val is scene.test


def test_blender_missing_val_uses_test_and_missing_test_holds_out_beside_val(tmp_path):
    no_val = load_scene(blender_scene(tmp_path / "a", splits=("train", "test")))
    assert no_val.val is no_val.test and len(no_val.train) == 3
    no_test = load_scene(blender_scene(tmp_path / "b", splits=("train", "val"), frames=9))
    assert [path.rsplit("/", 1)[1] for path in no_test.test.paths] == ["r_0.png", "r_8.png"]
    assert all("/val/" in path for path in no_test.val.paths) and len(no_test.train) == 7


def test_ngp_layout_per_frame_intrinsics_distortion_and_box(tmp_path):
    root = ngp_scene(tmp_path, k1=0.1, k2=-0.02, p1=0.01, p2=-0.005, aabb_scale=5, scale=0.5,
                     offset=[0.1, 0.2, 0.3])
    data = json.loads((root / "transforms.json").read_text())
    data["frames"][3].update({"fl_x": 9.0, "cy": 3.1, "k1": 0.3})
    write_json(root / "transforms.json", data)
    scene = load_scene(root)
    assert scene.aabb_scale == 8
    assert torch.equal(scene.aabb, torch.tensor([[-3.5] * 3, [4.5] * 3]))
    assert scene.train.images.shape == (8, HEIGHT, WIDTH, 3)
    cameras = scene.train.cameras
    assert scene.train.paths[2].endswith("f_3.png")
    assert torch.allclose(cameras.intrinsics[2], torch.tensor([9.0, 6.5, 4.2, 3.1]))
    assert torch.allclose(cameras.intrinsics[0], torch.tensor([7.0, 6.5, 4.2, 2.9]))
    assert torch.allclose(cameras.distortion[2], torch.tensor([0.3, -0.02, 0.01, -0.005]))
    assert torch.allclose(cameras.distortion[0], torch.tensor([0.1, -0.02, 0.01, -0.005]))
    assert torch.allclose(cameras.c2w[2, :, 3], torch.tensor([0.5 * 0.5 + 0.1, 3 * 0.5 + 0.2, -0.5 + 0.3]))


def test_ngp_holdout_rule(tmp_path):
    scene = load_scene(ngp_scene(tmp_path, frames=17))
    held_out = [f"f_{index}.png" for index in (0, 8, 16)]
    assert [path.rsplit("/", 1)[1] for path in scene.test.paths] == held_out
    assert [path.rsplit("/", 1)[1] for path in scene.train.paths] == [
        f"f_{index}.png" for index in range(17) if index % 8]
    assert scene.val is scene.test


def names(image_set) -> list[str]:
    return [path.rsplit("/", 1)[1] for path in image_set.paths]


def test_skip_missing_leaves_out_frames_without_images_and_keeps_the_holdout(tmp_path):
    """Frames are held out by their index in the file, so a deleted image moves no other frame."""
    root = ngp_scene(tmp_path, frames=17)
    for index in (3, 8):
        (root / "images" / f"f_{index}.png").unlink()
    expect_scene_error(root, "f_3.png not found")
    scene = load_scene(root, skip_missing=True)
    assert names(scene.test) == ["f_0.png", "f_16.png"]
    assert names(scene.train) == [f"f_{index}.png" for index in range(17) if index % 8 and index != 3]
    assert scene.skipped == {"train": 1, "test": 1}
    assert scene.val is scene.test
    assert load_scene(ngp_scene(tmp_path / "whole"), skip_missing=True).skipped == {}


def test_skip_missing_refuses_a_split_left_empty(tmp_path):
    root = blender_scene(tmp_path)
    for index in range(3):
        (root / "val" / f"r_{index}.png").unlink()
    with pytest.raises(SceneError) as caught:
        load_scene(root, skip_missing=True)
    assert str(caught.value) == (f"{root / 'transforms_val.json'}: the images of all 3 val frames are missing; "
                                 "the val split would be empty")


def test_evenly_spaced_views_cover_the_split_from_its_first_frame():
    assert evenly_spaced(200, 4) == [0, 50, 100, 150]
    assert evenly_spaced(8, 3) == [0, 3, 5]  # round(8/3), round(16/3)
    assert evenly_spaced(3, 2) == [0, 2]
    assert evenly_spaced(5, None) == evenly_spaced(5, 5) == evenly_spaced(5, 9) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="at least 1, got 0"):
        evenly_spaced(5, 0)


def test_camera_angle_gives_focal_when_no_fl(tmp_path):
    transforms = ngp_transforms(camera_angle_x=1.0)
    del transforms["fl_x"], transforms["fl_y"]
    ngp_scene(tmp_path)
    write_json(tmp_path / "transforms.json", transforms)
    focal = 0.5 * WIDTH / math.tan(0.5)
    assert torch.allclose(load_scene(tmp_path).train.cameras.intrinsics[0, :2], torch.tensor([focal, focal]))


def opencv_projection(cameras: Cameras, frame: int, point: np.ndarray) -> np.ndarray:
    """Distorted pixel (2,) where the OpenCV camera model images NGP-space `point` (3,)."""
    c2w = cameras.c2w[frame].double().numpy()
    rotation = c2w[:, :3] @ np.diag([1.0, -1.0, -1.0])
    world_to_camera = rotation.T
    rvec, _ = cv2.Rodrigues(world_to_camera)
    tvec = -world_to_camera @ c2w[:, 3]
    fx, fy, cx, cy = cameras.intrinsics[frame].double().numpy()
    matrix = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    distortion = cameras.distortion[frame].double().numpy()
    pixel, _ = cv2.projectPoints(point[None], rvec, tvec, matrix, distortion)
    return pixel.reshape(2)


def distance_to_ray(point: np.ndarray, origin: torch.Tensor, direction: torch.Tensor) -> float:
    offset = point - origin.double().numpy()
    direction = direction.double().numpy()
    return float(np.linalg.norm(offset - (offset @ direction) * direction))


def test_rays_undo_lens_distortion(tmp_path):
    """A ray shot from where OpenCV's lens model images a point passes through that point (and a
    pinhole ray from the same pixel misses it, so the distortion here is large enough to matter)."""
    root = ngp_scene(tmp_path, k1=0.4, k2=-0.05, p1=-0.02, p2=0.015)
    cameras = load_scene(root).train.cameras
    frame = 4
    c2w = cameras.c2w[frame].double().numpy()
    pinhole = Cameras(cameras.c2w, cameras.intrinsics, torch.zeros_like(cameras.distortion),
                      cameras.width, cameras.height)
    for local in ([0.2, 0.15, -1.0], [0.25, -0.2, -1.1], [-0.3, 0.25, -0.9]):
        point = c2w[:, :3] @ np.array(local) + c2w[:, 3]
        x, y = opencv_projection(cameras, frame, point)
        x, y = torch.tensor([x], dtype=torch.float32), torch.tensor([y], dtype=torch.float32)
        origin, direction = cameras.rays(torch.tensor([frame]), x, y)
        assert torch.allclose(direction.norm(dim=-1), torch.ones(1))
        assert distance_to_ray(point, origin[0], direction[0]) < 1e-5
        origin, direction = pinhole.rays(torch.tensor([frame]), x, y)
        assert distance_to_ray(point, origin[0], direction[0]) > 5e-3


def test_pixel_rays_row_major_pixel_centres_and_rescaling(tmp_path):
    cameras = load_scene(ngp_scene(tmp_path)).train.cameras
    origins, directions = cameras.pixel_rays(1)
    assert origins.shape == directions.shape == (HEIGHT * WIDTH, 3)
    row, column = 4, 5
    _, expected = cameras.rays(torch.tensor([1]), torch.tensor([column + 0.5]), torch.tensor([row + 0.5]))
    assert torch.allclose(directions[row * WIDTH + column], expected[0])
    _, doubled = cameras.pixel_rays(1, width=2 * WIDTH, height=2 * HEIGHT)
    _, expected = cameras.rays(torch.tensor([1]), torch.tensor([0.25]), torch.tensor([0.25]))
    assert torch.allclose(doubled[0], expected[0])
    fx, fy, cx, cy = cameras.intrinsics[1]
    _, centre = cameras.rays(torch.tensor([1]), cx[None], cy[None])
    assert torch.allclose(centre[0], -cameras.c2w[1, :, 2], atol=1e-6)


def test_orbit_circles_the_centre_looking_at_it(tmp_path):
    cameras = load_scene(blender_scene(tmp_path, splits=("train",), frames=9)).train.cameras
    orbit = cameras.orbit(6, elevation_deg=30.0, radius=2.0)
    assert len(orbit) == 6 and (orbit.width, orbit.height) == (WIDTH, HEIGHT)
    centre = torch.tensor([0.5, 0.5, 0.5])
    to_centre = centre - orbit.c2w[:, :, 3]
    assert torch.allclose(to_centre.norm(dim=-1), torch.full((6,), 2.0))
    assert torch.allclose(-orbit.c2w[:, :, 2], to_centre / 2.0, atol=1e-6)


def test_downscale_shrinks_images_and_intrinsics_with_premultiplied_alpha(tmp_path):
    root = blender_scene(tmp_path, frames=1)
    pixels = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    pixels[:, :, :3] = (200, 40, 90)
    pixels[::2, :, :3] = (0, 255, 0)
    pixels[::2, :, 3] = 0
    pixels[1::2, :, 3] = 255
    save(root / "train" / "r_0.png", pixels)
    full = load_scene(root)
    half = load_scene(root, downscale=2)
    assert half.train.images.shape == (1, HEIGHT // 2, WIDTH // 2, 4)
    assert (half.train.cameras.width, half.train.cameras.height) == (WIDTH // 2, HEIGHT // 2)
    assert torch.allclose(half.train.cameras.intrinsics, full.train.cameras.intrinsics / 2)
    assert torch.equal(half.train.images[0, :, :, :3], torch.tensor([200, 40, 90], dtype=torch.uint8).expand(3, 4, 3))
    assert torch.equal(half.train.images[0, :, :, 3], torch.full((3, 4), 128, dtype=torch.uint8))


def test_rgb_frames_get_opaque_alpha_when_others_are_rgba(tmp_path):
    root = blender_scene(tmp_path, frames=2)
    rgb = image(7, channels=3)
    save(root / "val" / "r_1.png", rgb)
    scene = load_scene(root)
    assert torch.equal(scene.val.images[1, :, :, :3], torch.from_numpy(rgb))
    assert (scene.val.images[1, :, :, 3] == 255).all()


def test_sixteen_bit_images_become_eight_bit(tmp_path):
    root = ngp_scene(tmp_path)
    deep = image(3, channels=3).astype(np.uint16) * 257
    assert cv2.imwrite(str(root / "images" / "f_1.png"), deep)
    scene = load_scene(root)
    assert scene.train.images.dtype == torch.uint8
    assert torch.equal(scene.train.images[0], torch.from_numpy(image(3, channels=3)[..., ::-1].copy()))


# Bad input: every case raises a one-line SceneError naming the file or value at fault.


def edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def expect_scene_error(root, named: str, downscale: int = 1) -> str:
    with pytest.raises(SceneError) as caught:
        load_scene(root, downscale=downscale)
    message = str(caught.value)
    assert "\n" not in message
    assert named in message
    return message


def test_missing_folder(tmp_path):
    expect_scene_error(tmp_path / "no_such_scene", "no_such_scene")


def test_folder_is_a_file(tmp_path):
    (tmp_path / "scene.txt").write_text("")
    expect_scene_error(tmp_path / "scene.txt", "scene.txt")


def test_no_transforms_file(tmp_path):
    expect_scene_error(tmp_path, "transforms.json")


def test_malformed_json_names_file_and_position(tmp_path):
    root = ngp_scene(tmp_path)
    (root / "transforms.json").write_text('{"frames": [\n  {"file_path": oops}]}')
    message = expect_scene_error(root, "transforms.json")
    assert "line 2 column" in message


@pytest.mark.parametrize("edit, named", [
    (lambda data: data.pop("frames"), "frames"),
    (lambda data: data["frames"][2].pop("transform_matrix"), "transform_matrix"),
    (lambda data: data["frames"][2].pop("file_path"), "file_path"),
    (lambda data: [data.pop("fl_x"), data.pop("fl_y")], "fl_x"),
    (lambda data: data.update(frames=[]), "zero frames"),
    (lambda data: data.update(frames=data["frames"][:1]), "transforms.json"),
    (lambda data: data["frames"][2]["transform_matrix"][1].__setitem__(3, float("nan")), "frame 2"),
    (lambda data: data["frames"][2]["transform_matrix"][0].__setitem__(0, float("inf")), "non-finite"),
    (lambda data: data["frames"][2].update(transform_matrix=[[1, 0, 0, 0], [0, 1, 0, 0]]), "shape (2, 4)"),
    (lambda data: data["frames"][2].update(transform_matrix=[["a"] * 4] * 4), "frame 2"),
    (lambda data: data["frames"][2].update(file_path="images/gone.png"), "gone.png"),
    (lambda data: data.update(w=10), "says w=10"),
    (lambda data: data.update(fl_x="wide"), "'wide'"),
    (lambda data: data.update(aabb_scale=0), "aabb_scale"),
    (lambda data: data.update(offset=[0.5, 0.5]), "offset"),
    (lambda data: data.update(camera_model="OPENCV_FISHEYE"), "OPENCV_FISHEYE"),
    (lambda data: data.update(k3=0.1), "k3"),
])
def test_bad_transforms_content(tmp_path, edit, named):
    root = ngp_scene(tmp_path)
    edit_json(root / "transforms.json", edit)
    message = expect_scene_error(root, named)
    assert "transforms.json" in message or ".png" in message


def test_blender_split_file_errors_name_the_split_file(tmp_path):
    root = blender_scene(tmp_path)
    edit_json(root / "transforms_val.json", lambda data: data["frames"][1].pop("transform_matrix"))
    expect_scene_error(root, "transforms_val.json: frame 1")


def test_unreadable_image(tmp_path):
    root = ngp_scene(tmp_path)
    (root / "images" / "f_3.png").write_bytes(b"this is not a png")
    expect_scene_error(root, "f_3.png")


def test_truncated_png(tmp_path):
    root = ngp_scene(tmp_path)
    path = root / "images" / "f_5.png"
    path.write_bytes(path.read_bytes()[:-20])
    expect_scene_error(root, "f_5.png")


def test_truncated_jpeg(tmp_path):
    """OpenCV decodes a JPEG cut short with only a warning; the loader must refuse it."""
    root = ngp_scene(tmp_path)
    jpeg = root / "images" / "f_6.jpg"
    assert cv2.imwrite(str(jpeg), image(6, channels=3))
    edit_json(root / "transforms.json", lambda data: data["frames"][6].update(file_path="images/f_6.jpg"))
    assert load_scene(root).train.images.shape[0] == 8
    jpeg.write_bytes(jpeg.read_bytes()[:-8])
    expect_scene_error(root, "f_6.jpg")


def test_image_size_differs_from_other_frames(tmp_path):
    root = blender_scene(tmp_path)
    save(root / "test" / "r_2.png", image(0, size=(HEIGHT, WIDTH + 2)))
    message = expect_scene_error(root, "r_2.png")
    assert f"{WIDTH + 2}x{HEIGHT}" in message


def test_image_size_differs_from_json(tmp_path):
    root = ngp_scene(tmp_path)
    save(root / "images" / "f_4.png", image(0, channels=3, size=(HEIGHT + 1, WIDTH)))
    expect_scene_error(root, "f_4.png")


@pytest.mark.parametrize("downscale", [0, -2, 1.5])
def test_bad_downscale(tmp_path, downscale):
    expect_scene_error(ngp_scene(tmp_path), f"downscale must be an integer >= 1, got {downscale}", downscale)


def test_downscale_larger_than_image(tmp_path):
    expect_scene_error(ngp_scene(tmp_path), "f_1.png", downscale=7)
