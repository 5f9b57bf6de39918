"""load_scene: a scene folder (Blender or Instant-NGP/nerfstudio layout) -> Scene in NGP space."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from ..errors import SceneError
from ..images import read_image, shrink
from .cameras import Cameras
from .scene import ImageSet, Scene
from .transforms import FrameSpec, SceneSettings, declared_size, intrinsics, read_frames, scene_settings

BLENDER_FILE = "transforms_{}.json"
NGP_FILE = "transforms.json"
HOLDOUT_EVERY = 8
BUILTIN_PREFIX = "builtin:"
# name -> folder under hollow_taichi/data: the windowed sphere (Blender layout, the default) and the
# capture-like room (Instant-NGP layout, aabb_scale 4; hollow_taichi/scenes/room.py)
BUILTIN_SCENES = {"sphere": "builtin", "room": "room"}


def builtin_scene_path(name: str = "sphere") -> Path:
    """The folder of a built-in scene shipped with the package (see BUILTIN_SCENES)."""
    if name not in BUILTIN_SCENES:
        raise SceneError(f"unknown built-in scene {BUILTIN_PREFIX}{name}: choose one of "
                         f"{', '.join(BUILTIN_PREFIX + known for known in BUILTIN_SCENES)}")
    return Path(str(files("hollow_taichi.data") / BUILTIN_SCENES[name]))


def scene_path(path: str | os.PathLike) -> Path:
    """A scene argument as a folder: `builtin:NAME` names a built-in scene, anything else is a path."""
    text = str(path)
    if text.startswith(BUILTIN_PREFIX):
        return builtin_scene_path(text[len(BUILTIN_PREFIX):])
    return Path(path)


def _downscale_factor(downscale) -> int:
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise SceneError(f"downscale must be an integer >= 1, got {downscale!r}")
    return downscale


def _scene_folder(path: str | os.PathLike) -> Path:
    root = scene_path(path)
    if not root.exists():
        raise SceneError(f"scene folder {root} does not exist")
    if not root.is_dir():
        raise SceneError(f"scene {root} is not a folder")
    return root


def _hold_out(frames: list[FrameSpec], source: Path) -> tuple[list[FrameSpec], list[FrameSpec]]:
    """Frames in file order -> (train, test): every 8th frame (index % 8 == 0) is test, never train."""
    test = frames[::HOLDOUT_EVERY]
    train = [frame for index, frame in enumerate(frames) if index % HOLDOUT_EVERY]
    if not train:
        raise SceneError(f"{source}: has {len(frames)} frame(s); need at least 2, "
                         "as every 8th frame is held out for test")
    return train, test


def _blender_layout(root: Path, skip_missing: bool) -> tuple[SceneSettings, dict[str, list[FrameSpec]]]:
    """transforms_{train,val,test}.json; no test file: hold out from train; no val file: val = test."""
    train_file = root / BLENDER_FILE.format("train")
    data, train = read_frames(train_file, skip_missing)
    val_file, test_file = root / BLENDER_FILE.format("val"), root / BLENDER_FILE.format("test")
    val = read_frames(val_file, skip_missing)[1] if val_file.exists() else None
    if test_file.exists():
        test = read_frames(test_file, skip_missing)[1]
    else:
        train, test = _hold_out(train, train_file)
    return scene_settings(data, train_file), {"train": train, "val": test if val is None else val, "test": test}


def _ngp_layout(root: Path, skip_missing: bool) -> tuple[SceneSettings, dict[str, list[FrameSpec]]]:
    """transforms.json: every 8th frame held out as test (and val)."""
    path = root / NGP_FILE
    data, frames = read_frames(path, skip_missing)
    train, test = _hold_out(frames, path)
    return scene_settings(data, path), {"train": train, "val": test, "test": test}


@dataclass
class _Picture:
    """A frame's pixels as read, and the size of its full image (which they are, unless `shrunk`)."""

    pixels: np.ndarray
    full_size: tuple[int, int]
    shrunk: bool


def _shrunk_copy_path(frame: FrameSpec, factor: int) -> Path | None:
    """Where `process` (and nerfstudio) keep the frame's image shrunk by `factor`: images_F/NAME for
    images/NAME, the first folder of its file_path suffixed with _F."""
    try:
        parts = frame.image.relative_to(frame.source.parent).parts
    except ValueError:  # an absolute file_path elsewhere
        return None
    if len(parts) < 2:
        return None
    return frame.source.parent / f"{parts[0]}_{factor}" / Path(*parts[1:])


def _read_picture(frame: FrameSpec, factor: int) -> _Picture:
    """The frame's image; shrunk by `factor` already where such a copy exists and has the size
    (w // factor, h // factor) of the full size the transforms file declares (else the full image)."""
    declared = declared_size(frame)
    copy = _shrunk_copy_path(frame, factor) if factor > 1 and declared else None
    if copy is not None and copy.is_file():
        pixels = read_image(copy)
        if pixels.shape[:2] == (declared[1] // factor, declared[0] // factor):
            return _Picture(pixels, declared, True)
    pixels = read_image(frame.image)
    return _Picture(pixels, (pixels.shape[1], pixels.shape[0]), False)


def _read_pictures(frames: list[FrameSpec], factor: int) -> list[_Picture]:
    """Decode the frames' images in parallel (OpenCV releases the GIL)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(_read_picture, frames, [factor] * len(frames)))


def _check_size(frame: FrameSpec, picture: _Picture, reference: tuple[Path, int, int]) -> None:
    """The image must have the size its transforms file declares and the size of the scene's first image."""
    width, height = picture.full_size
    declared = declared_size(frame)
    if declared is not None and declared != (width, height):
        raise SceneError(f"{frame.image}: image is {width}x{height} "
                         f"but {frame.source} says w={declared[0]}, h={declared[1]}")
    first, first_width, first_height = reference
    if (width, height) != (first_width, first_height):
        raise SceneError(f"{frame.image}: image is {width}x{height} but {first} is {first_width}x{first_height}; "
                         "all frames need one size")


def _with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Give an RGB image an opaque alpha channel when the scene has RGBA images."""
    if image.shape[2] == channels:
        return image
    return np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)


def _cameras(frames: list[FrameSpec], settings: SceneSettings, size: tuple[int, int], factor: int) -> Cameras:
    """Poses moved into NGP space (p * scale + offset, rotation kept) and intrinsics of the shrunk images."""
    width, height = size
    new_width, new_height = width // factor, height // factor
    poses = np.stack([frame.pose for frame in frames])
    poses[:, :, 3] = poses[:, :, 3] * settings.scale + settings.offset
    pinhole, distortion = zip(*(intrinsics(frame, width, height) for frame in frames), strict=True)
    pinhole = np.stack(pinhole) * np.array([new_width / width, new_height / height] * 2)
    return Cameras(torch.from_numpy(poses).float(), torch.from_numpy(pinhole).float(),
                   torch.from_numpy(np.stack(distortion)).float(), new_width, new_height)


def _image_set(frames: list[FrameSpec], pictures: list[_Picture], settings: SceneSettings,
               factor: int, channels: int) -> ImageSet:
    pixels = [_with_channels(picture.pixels, channels) if picture.shrunk or factor == 1
              else shrink(_with_channels(picture.pixels, channels), factor, frame.image)
              for picture, frame in zip(pictures, frames, strict=True)]
    return ImageSet(torch.from_numpy(np.stack(pixels)), _cameras(frames, settings, pictures[0].full_size, factor),
                    [str(frame.image) for frame in frames])


def _layout(root: Path, skip_missing: bool) -> tuple[SceneSettings, dict[str, list[FrameSpec]]]:
    if (root / BLENDER_FILE.format("train")).exists():
        return _blender_layout(root, skip_missing)
    if (root / NGP_FILE).exists():
        return _ngp_layout(root, skip_missing)
    raise SceneError(f"{root}: no {BLENDER_FILE.format('train')} or {NGP_FILE} in this folder")


def scene_settings_of(path: str | os.PathLike) -> SceneSettings:
    """A scene folder's scale, offset and aabb_scale, from its transforms file alone (no image is read)."""
    return _layout(_scene_folder(path), skip_missing=True)[0]


def _split_names(splits: dict[str, list[FrameSpec]]) -> list[str]:
    """train, val unless it is the test split (held out, or no val file), and test."""
    return ["train"] + (["val"] if splits["val"] is not splits["test"] else []) + ["test"]


def _present_frames(splits: dict[str, list[FrameSpec]]) -> tuple[dict[str, list[FrameSpec]], dict[str, int]]:
    """The splits without frames whose image is missing, and how many each lost (splits that lost some).

    Frames are held out for test before this, so deleting an image moves no other frame between
    train and test. A split left with no frame is an error naming its transforms file.
    """
    present, skipped = {}, {}
    for name in _split_names(splits):
        present[name] = [frame for frame in splits[name] if frame.found]
        if len(present[name]) < len(splits[name]):
            skipped[name] = len(splits[name]) - len(present[name])
        if not present[name]:
            raise SceneError(f"{splits[name][0].source}: the images of all {len(splits[name])} {name} frames "
                             f"are missing; the {name} split would be empty")
    present.setdefault("val", present["test"])
    return present, skipped


def _image_sets(splits: dict[str, list[FrameSpec]], settings: SceneSettings, factor: int) -> dict[str, ImageSet]:
    """Read every split's images, check that all have one size, and make the image sets.

    A val split that is the test split (held out) is read once: the result's "val" is its "test".
    """
    names = _split_names(splits)
    pictures = {name: _read_pictures(splits[name], factor) for name in names}
    reference = (splits["train"][0].image, *pictures["train"][0].full_size)
    for name in names:
        for frame, picture in zip(splits[name], pictures[name], strict=True):
            _check_size(frame, picture, reference)
    channels = max(picture.pixels.shape[2] for name in names for picture in pictures[name])
    sets = {name: _image_set(splits[name], pictures[name], settings, factor, channels) for name in names}
    sets.setdefault("val", sets["test"])
    return sets


def load_scene(path: str | os.PathLike, downscale: int = 1, skip_missing: bool = False) -> Scene:
    """Load a scene folder into NGP space, images shrunk by 1/downscale.

    A folder with transforms_train.json is read as the Blender layout, one with transforms.json as
    the Instant-NGP/nerfstudio layout; `builtin:NAME` is a built-in scene (builtin:sphere, builtin:room).
    With downscale F, shrunk copies in images_F/ (as `process` writes them) are read where they have
    the declared size // F, instead of shrinking the full images. Every problem raises SceneError
    naming the file or value; a frame whose image file is missing is one, unless skip_missing leaves
    such frames out (counted per split in Scene.skipped).
    """
    factor = _downscale_factor(downscale)
    root = _scene_folder(path)
    settings, listed = _layout(root, skip_missing)
    splits, skipped = _present_frames(listed)
    sets = _image_sets(splits, settings, factor)
    return Scene(name=root.resolve().name, root=str(root), train=sets["train"], val=sets["val"],
                 test=sets["test"], aabb_scale=settings.aabb_scale, skipped=skipped)
