"""Reading and writing image files (OpenCV) and videos (imageio with its ffmpeg plugin)."""
from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from .errors import HollowError, SceneError

# OpenCV would print its own warnings (a truncated PNG or JPEG) beside read_image's one-line error.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

_JPEG_START = b"\xff\xd8"
_JPEG_SCAN = b"\xff\xda"
_JPEG_END = b"\xff\xd9"
JPEG_QUALITY = 95


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W, C) uint8, or float in [0, 1] (clipped, rounded) -> (H, W, C) uint8 numpy array."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if image.dtype == np.uint8:
        return image
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _jpeg_is_truncated(data: bytes) -> bool:
    """A JPEG whose last scan has no end marker after it (OpenCV decodes those with a warning)."""
    return data.startswith(_JPEG_START) and data.rfind(_JPEG_END) < data.rfind(_JPEG_SCAN)


def _to_8_bit(image: np.ndarray, path: os.PathLike | str) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image / 257.0).astype(np.uint8)
    raise SceneError(f"{path}: unsupported pixel type {image.dtype} (need 8- or 16-bit)")


def _to_rgb_order(image: np.ndarray) -> np.ndarray:
    """OpenCV's gray, BGR or BGRA (H, W[, C]) -> (H, W, 3) RGB or (H, W, 4) RGBA."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: os.PathLike | str) -> np.ndarray:
    """An 8- or 16-bit PNG/JPEG -> (H, W, 3) RGB or (H, W, 4) RGBA uint8 (16 bit scaled to 8).

    Decodes like cv2.imread(path, cv2.IMREAD_UNCHANGED). Missing, unreadable, truncated or
    undecodable files raise SceneError naming the file.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise SceneError(f"{path}: cannot read image ({error.strerror})") from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or _jpeg_is_truncated(data):
        raise SceneError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    return _to_rgb_order(_to_8_bit(image, path))


def shrink(image: np.ndarray, factor: int, path: os.PathLike | str) -> np.ndarray:
    """(H, W, C) uint8 -> (H // factor, W // factor, C) by area averaging; RGBA averages premultiplied colour."""
    height, width = image.shape[:2]
    size = (width // factor, height // factor)
    if min(size) < 1:
        raise SceneError(f"{path}: a {width}x{height} image is too small to downscale by {factor}")
    if image.shape[2] == 3:
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    pixels = image.astype(np.float32)
    alpha = pixels[..., 3:] / 255.0
    premultiplied = np.concatenate([pixels[..., :3] * alpha, pixels[..., 3:]], axis=-1)
    small = cv2.resize(premultiplied, size, interpolation=cv2.INTER_AREA)
    small_alpha = small[..., 3:] / 255.0
    colour = np.where(small_alpha > 0, small[..., :3] / np.maximum(small_alpha, 1e-12), 0.0)
    return np.round(np.clip(np.concatenate([colour, small[..., 3:]], axis=-1), 0, 255)).astype(np.uint8)


def write_png(path: os.PathLike | str, image: torch.Tensor | np.ndarray) -> None:
    """Write (H, W, 3) RGB or (H, W, 4) RGBA, float in [0, 1] or uint8, to a PNG file."""
    write_image(path, image)


def write_image(path: os.PathLike | str, image: torch.Tensor | np.ndarray) -> None:
    """Write (H, W, 3) RGB or (H, W, 4) RGBA, float in [0, 1] or uint8, as the file's suffix says:
    PNG, or JPEG at quality JPEG_QUALITY for .jpg and .jpeg."""
    pixels = to_uint8(image)
    code = cv2.COLOR_RGBA2BGRA if pixels.shape[-1] == 4 else cv2.COLOR_RGB2BGR
    jpeg = os.fspath(path).lower().endswith((".jpg", ".jpeg"))
    parameters = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if jpeg else []
    if not cv2.imwrite(os.fspath(path), cv2.cvtColor(pixels, code), parameters):
        raise HollowError(f"{path}: cannot write {'JPEG' if jpeg else 'PNG'}")


def _even_size(frame: np.ndarray) -> np.ndarray:
    """Repeat the last row/column of (H, W, 3) so both sizes are even, as H.264 (yuv420p) needs."""
    return np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")


def write_video(path: os.PathLike | str, frames: Sequence[torch.Tensor | np.ndarray], fps: float = 30.0) -> None:
    """Write frames, each (H, W, 3) float in [0, 1] or uint8, as an H.264 video (e.g. .mp4).

    Odd sizes are padded by one pixel to even ones.
    """
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the plugin imageio uses for video)
    except ImportError:
        raise HollowError(f"{path}: writing videos needs imageio-ffmpeg (pip install imageio-ffmpeg)") from None
    try:
        imageio.mimwrite(os.fspath(path), [_even_size(to_uint8(frame)) for frame in frames], fps=fps,
                         format="FFMPEG", macro_block_size=2)
    except (OSError, RuntimeError) as error:
        raise HollowError(f"{path}: cannot write video ({error})".replace("\n", " ")) from None
