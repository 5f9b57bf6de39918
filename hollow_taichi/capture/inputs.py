"""What `process` starts from: a folder of photos (one size, one camera) or the frames of a video.

From a video, `count` frames spread evenly over it, each the sharpest (largest variance of the
Laplacian, as Instant-NGP's and nerfstudio's tools judge blur) of its stretch of the video: the video
is decoded twice, once to score every frame and once to write the chosen ones, so that a long video
never has to fit in memory.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

from ..errors import CaptureError
from ..images import write_png

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_files(folder: Path) -> list[Path]:
    """The PNG and JPEG files directly in `folder`, sorted by name (the capture order of a phone or a
    frame grabber); none is an error."""
    found = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise CaptureError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return found


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file, from its header."""
    try:
        shape = iio.improps(path).shape
    except Exception as error:  # imageio raises whatever its plugin raised for a bad file
        raise CaptureError(f"{path}: not a readable image ({error})".replace("\n", " ")) from None
    return shape[1], shape[0]


def check_one_size(paths: list[Path]) -> tuple[int, int]:
    """The images' common (width, height); two sizes are an error naming one image of each."""
    first = image_size(paths[0])
    for path in paths[1:]:
        size = image_size(path)
        if size != first:
            raise CaptureError(f"{path} is {size[0]}x{size[1]} but {paths[0]} is {first[0]}x{first[1]}: process "
                               "solves one camera for all photos; resize them to one size or process each size apart")
    return first


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows one (no second copy of a large capture), else a copy."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _video_frames(video: Path) -> Iterator[np.ndarray]:
    """The frames of a video, (H, W, 3) uint8 RGB, decoded by imageio's ffmpeg plugin."""
    try:
        yield from iio.imiter(video, plugin="FFMPEG")
    except Exception as error:  # imageio and ffmpeg raise several kinds for an unreadable file
        raise CaptureError(f"{video}: cannot read this video ({error})".replace("\n", " ")) from None


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the frame's grey image: large where edges are crisp, small when blurred."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def sharpest_in_stretches(scores: list[float], count: int) -> list[int]:
    """Split the frames into `count` equal stretches (fewer if the video is shorter) and take the
    frame of the highest score in each."""
    stretches = np.array_split(np.arange(len(scores)), min(count, len(scores)))
    return [int(stretch[np.argmax(np.asarray(scores)[stretch])]) for stretch in stretches]


def extract_video_frames(video: Path, count: int, out: Path,
                         report: Callable[[int], None] = lambda decoded: None) -> list[Path]:
    """Write about `count` sharp frames of `video`, spread evenly over it, into folder `out` as
    PNG (frame_<index in the video>.png); `report` is called with the number of frames decoded so far."""
    scores = []
    for frame in _video_frames(video):
        scores.append(sharpness(frame))
        report(len(scores))
    if not scores:
        raise CaptureError(f"{video}: the video has no frames")
    chosen = set(sharpest_in_stretches(scores, count))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for index, frame in enumerate(_video_frames(video)):
        if index in chosen:
            written.append(out / f"frame_{index:06d}.png")
            write_png(written[-1], frame)
    return written
