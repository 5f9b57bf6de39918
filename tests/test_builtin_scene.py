"""The shipped built-in scene: loads, shows a hollow object, and is exactly what the generator makes."""
import json

import numpy as np
import pytest

from hollow_taichi.images import read_image
from hollow_taichi.scenes import builtin_scene_path, load_scene
from hollow_taichi.scenes.builtin import OUTER_RADIUS, camera_poses, first_hits, render_frame

NGP_SCALE = 0.33


@pytest.fixture(scope="module")
def scene():
    return load_scene(builtin_scene_path())


def test_shipped_scene_has_its_splits(scene):
    assert (len(scene.train), len(scene.val), len(scene.test)) == (48, 8, 8)
    for split in (scene.train, scene.val, scene.test):
        assert split.images.shape[1:] == (100, 100, 4)
        assert (split.cameras.width, split.cameras.height) == (100, 100)
    assert scene.aabb_scale == 1


def test_alpha_shows_object_and_background_in_every_view(scene):
    for split in (scene.train, scene.val, scene.test):
        alpha = split.images[..., 3].flatten(1)
        assert (alpha == 0).any(dim=1).all() and (alpha == 255).any(dim=1).all()


def blender_rays(cameras, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre rays of `frame`, row-major, taken back from NGP space to the generator's coordinates."""
    origins, directions = cameras.pixel_rays(frame)
    directions = directions.double()
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return ((origins.double() - 0.5) / NGP_SCALE).numpy(), directions.numpy()


def test_loaded_cameras_agree_with_the_generator_geometry(scene):
    """Rays from the loader's cameras hit the generator's object exactly where the shipped alpha
    says so: poses, intrinsics, pixel centres and axis conventions all match."""
    for frame in range(len(scene.test)):
        distance, _ = first_hits(*blender_rays(scene.test.cameras, frame))
        alpha = scene.test.images[frame, ..., 3].flatten().numpy()
        assert np.isfinite(distance[alpha == 255]).all() and np.isinf(distance[alpha == 0]).all()


def test_object_fits_the_unit_cube_and_can_be_seen_through(scene):
    """The object (outer radius 1.2) fits in [0, 1]^3 in NGP space, and some background pixels look
    through its middle: it is hollow, with windows on both sides."""
    assert OUTER_RADIUS * NGP_SCALE < 0.5
    see_through = 0
    for frame in range(len(scene.test)):
        origins, directions = blender_rays(scene.test.cameras, frame)
        distance = np.linalg.norm(origins - (origins * directions).sum(-1, keepdims=True) * directions, axis=-1)
        alpha = scene.test.images[frame, ..., 3].flatten().numpy()
        see_through += int(((alpha == 0) & (distance < 0.8 * OUTER_RADIUS)).sum())
    assert see_through > 100


@pytest.mark.parametrize("split, index", [("train", 5), ("test", 3)])
def test_regenerated_frames_match_shipped_pngs(split, index):
    shipped = read_image(builtin_scene_path() / split / f"r_{index}.png")
    assert np.array_equal(render_frame(split, index), shipped)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_shipped_poses_are_the_generator_poses(split):
    transforms = json.loads((builtin_scene_path() / f"transforms_{split}.json").read_text())
    shipped = np.array([frame["transform_matrix"] for frame in transforms["frames"]])
    # to the last bit but one: numpy builds differ by an ulp in the trigonometry (2.2e-16 seen)
    np.testing.assert_allclose(shipped, camera_poses(split), rtol=0, atol=1e-14)
