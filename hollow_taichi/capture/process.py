"""`hollow-taichi process`: photos or a video, or an existing COLMAP model, to a scene folder.

SCENE/ gets images/ (the photos as links or copies, or the video's chosen frames), images_2/ _4/ _8/,
transforms.json, sparse_pc.ply, and colmap/ (COLMAP's database and its models, for other tools).
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaptureError
from ..progress import progress_report
from . import layout, sfm
from .inputs import check_one_size, extract_video_frames, image_files, link_or_copy

COLMAP_NAME = "colmap"
# What process writes into SCENE, and all that --force removes there
OUTPUTS = (layout.TRANSFORMS_NAME, layout.POINTS_NAME, layout.IMAGES_NAME, COLMAP_NAME,
           *(f"{layout.IMAGES_NAME}_{factor}" for factor in layout.DOWNSCALES))
LISTED_LEFT_OUT = 5


@dataclass
class Processed:
    """What `process` made: SCENE, how many frames it was given and registered, the scene box."""

    scene: Path
    given: int
    registered: int
    left_out: list[str]
    aabb_scale: int
    points: int


def prepare_scene_folder(input_path: Path, out: Path, force: bool) -> None:
    """An empty (or new) SCENE folder, not inside INPUT nor holding it; --force clears what an
    earlier `process` wrote there and nothing else."""
    if not input_path.exists():
        raise CaptureError(f"{input_path}: no such file or folder")
    inside = out.resolve().is_relative_to(input_path.resolve()) if input_path.is_dir() else False
    if inside or input_path.resolve().is_relative_to(out.resolve()):
        raise CaptureError(f"{out}: choose an --out that is neither inside {input_path} nor holds it")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise CaptureError(f"{out} is not empty: choose another --out, or pass --force to replace what "
                               "process wrote there")
        for name in OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def gather_images(input_path: Path, out: Path, video_frames: int, show_progress: bool) -> tuple[list[str], bool]:
    """SCENE/images from INPUT: a folder's photos (one size) linked or copied, or a video's sharpest
    frames. Returns the image names and whether they came from a video."""
    images = out / layout.IMAGES_NAME
    images.mkdir()
    if input_path.is_dir():
        photos = image_files(input_path)
        check_one_size(photos)
        for photo in photos:
            link_or_copy(photo, images / photo.name)
        return [photo.name for photo in photos], False
    with progress_report(show_progress, None, 0, unit="frame") as decoding:
        written = extract_video_frames(input_path, video_frames, images,
                                       lambda decoded: decoding.update(decoded, {}))
    check_one_size(written)
    return [path.name for path in written], True


def check_registered(input_path: Path, names: list[str], frames: layout.Frames, matcher: str) -> list[str]:
    """The names COLMAP could not register; fewer than sfm.MIN_REGISTERED registered is an error."""
    if len(frames.names) < sfm.MIN_REGISTERED:
        raise CaptureError(f"{input_path}: COLMAP registered {len(frames.names)} of {len(names)} frames (need "
                           f"{sfm.MIN_REGISTERED}); {sfm.what_to_try(matcher)}")
    registered = set(frames.names)
    return [name for name in names if name not in registered]


def process_capture(input_path: Path, out: Path, video_frames: int, matcher: str, aabb_scale: int | None,
                    force: bool, show_progress: bool, say: Callable[[str], None], verbose: bool = False) -> Processed:
    """Photos (a folder) or a video (a file) -> SCENE `out`, camera poses by COLMAP."""
    pycolmap = sfm.require_pycolmap()
    sfm.quiet_colmap(pycolmap, verbose)
    prepare_scene_folder(input_path, out, force)
    with sfm.stage("photos" if input_path.is_dir() else "video frames", say):
        names, from_video = gather_images(input_path, out, video_frames, show_progress)
    images = out / layout.IMAGES_NAME
    matcher = sfm.choose_matcher(matcher, len(names), from_video)
    # COLMAP calls back once per registration, in every model it starts: a count, not a share of frames
    with progress_report(show_progress, None, 0, unit="registered") as mapping:
        model = sfm.reconstruct(input_path, images, names, out / COLMAP_NAME, matcher, say,
                                lambda registered: mapping.update(registered, {}))
    return _write_registered(input_path, model, images, out, names, aabb_scale, say, matcher)


def convert_model(images: Path, model_folder: Path, out: Path, aabb_scale: int | None, force: bool,
                  say: Callable[[str], None]) -> Processed:
    """An existing COLMAP model of the photos in folder `images` -> SCENE `out`, without running SfM."""
    sfm.require_pycolmap()
    if not images.is_dir():
        raise CaptureError(f"{images}: with --colmap, INPUT is the folder of the model's images")
    model = sfm.read_model(model_folder)
    prepare_scene_folder(images, out, force)
    names = sorted(image.name for image in model.images.values())
    return _write_registered(images, model, images, out, names, aabb_scale, say, "existing model")


def _write_registered(input_path: Path, model, images: Path, out: Path, names: list[str],
                      aabb_scale: int | None, say: Callable[[str], None], matcher: str) -> Processed:
    """SCENE from the model's registered frames (at least sfm.MIN_REGISTERED); says which were left out."""
    registered = layout.frames_of(model)
    left_out = check_registered(input_path, names, registered, matcher)
    with sfm.stage("scene", say):
        frames, aabb_scale = layout.write_scene(model, registered, images, out, aabb_scale)
    if left_out:
        listed = ", ".join(left_out[:LISTED_LEFT_OUT]) + (", ..." if len(left_out) > LISTED_LEFT_OUT else "")
        say(f"COLMAP could not register {len(left_out)} of {len(names)} frames; left out: {listed}")
    return Processed(out, len(names), len(frames.names), left_out, aabb_scale, len(frames.points))
