"""What the browser viewer shows, computed without the browser: frames of a view in each render
mode (colour, depth, opacity, saliency), the frame sizes of progressive rendering, and the point
clouds of kept saliency cells and occupied cells.

Nothing here imports viser, so the benchmark (bench/viewer.py) and the tests use it as the viewer does.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import torch

from ..admm import corner_saliency
from ..field import HollowField
from ..occupancy import OccupancyGrid
from ..renderer import Renderer
from ..scenes import Cameras

MODES = ("colour", "depth", "opacity", "saliency")
WHITE = (1.0, 1.0, 1.0)
EMPTY = np.array([40, 40, 40], dtype=np.float32)  # where a depth or saliency ray sees nothing
MIN_VISIBLE_OPACITY = 1e-3
DEPTH_PERCENTILES = (2.0, 98.0)  # the depth colour map spans these percentiles of the visible depths
MAX_CLOUD_POINTS = 200_000


@dataclass
class Frame:
    """A rendered view: image (H, W, 3) uint8 RGB, the seconds it took and the rays it cast."""

    image: np.ndarray
    seconds: float

    @property
    def rays(self) -> int:
        return self.image.shape[0] * self.image.shape[1]


def fit_size(width: int, height: int, max_pixels: float, max_side: int) -> tuple[int, int]:
    """The largest size of the aspect width / height with at most max_pixels pixels and no side over
    max_side (and at least 1 pixel a side)."""
    scale = min(1.0, max_side / max(width, height), math.sqrt(max(max_pixels, 1.0) / (width * height)))
    return max(1, int(width * scale)), max(1, int(height * scale))


def render_buffers(renderer: Renderer, cameras: Cameras, saliency: bool = False,
                   cancelled: Callable[[], bool] = lambda: False) -> dict[str, torch.Tensor] | None:
    """Camera 0 of `cameras` rendered at its image size over white (Renderer.render_image's images,
    on the CPU); None if `cancelled()` turned true between chunks."""
    device = renderer.field.aabb.device
    origins, directions = cameras.pixel_rays(0)
    rendered = renderer.render_image(origins.to(device), directions.to(device), cameras.height, cameras.width,
                                     torch.tensor(WHITE, device=device), saliency, cancelled)
    if rendered is None:
        return None
    return {name: image.cpu() for name, image in rendered.items() if name != "samples"}


def _colour_mapped(values: np.ndarray, colour_map: int) -> np.ndarray:
    """RGB float (H, W, 3) in [0, 255] of values (H, W) in [0, 1] through an OpenCV colour map."""
    grey = (np.clip(values, 0.0, 1.0) * 255).round().astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, colour_map), cv2.COLOR_BGR2RGB).astype(np.float32)


def _over_empty(rgb: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    """rgb (H, W, 3) in [0, 255] composited with opacity (H, W) over the EMPTY colour, as uint8."""
    alpha = np.clip(opacity, 0.0, 1.0)[..., None]
    return (rgb * alpha + EMPTY * (1.0 - alpha)).round().astype(np.uint8)


def depth_image(depth: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    """Expected depth (weighted t over opacity) colour-mapped with turbo, near blue and far red,
    stretched over the visible depths' 2nd to 98th percentile."""
    visible = opacity > MIN_VISIBLE_OPACITY
    expected = np.where(visible, depth / np.maximum(opacity, MIN_VISIBLE_OPACITY), 0.0)
    near, far = np.percentile(expected[visible], DEPTH_PERCENTILES) if visible.any() else (0.0, 1.0)
    scaled = (expected - near) / max(far - near, 1e-6)
    return _over_empty(_colour_mapped(scaled, cv2.COLORMAP_TURBO), opacity)


def saliency_image(saliency: np.ndarray, opacity: np.ndarray) -> np.ndarray:
    """The saliency p of what each ray sees (weighted p over opacity), viridis: 0 purple, 1 yellow."""
    seen = saliency / np.maximum(opacity, MIN_VISIBLE_OPACITY)
    return _over_empty(_colour_mapped(seen, cv2.COLORMAP_VIRIDIS), opacity)


def mode_image(buffers: dict[str, torch.Tensor], mode: str) -> np.ndarray:
    """The image (H, W, 3) uint8 a render mode shows from render_buffers' output. saliency needs
    the "saliency" buffer (a hollow model); colour is the model's colour over white."""
    opacity = buffers["opacity"].numpy()
    if mode == "colour":
        return (buffers["color"].clamp(0.0, 1.0) * 255).round().to(torch.uint8).numpy()
    if mode == "opacity":
        return np.repeat((np.clip(opacity, 0.0, 1.0) * 255).round().astype(np.uint8)[..., None], 3, axis=-1)
    if mode == "depth":
        return depth_image(buffers["depth"].numpy(), opacity)
    if mode == "saliency":
        return saliency_image(buffers["saliency"].numpy(), opacity)
    raise ValueError(f"unknown render mode {mode!r}")


def render_frame(renderer: Renderer, cameras: Cameras, mode: str,
                 cancelled: Callable[[], bool] = lambda: False) -> Frame | None:
    """Camera 0 of `cameras` in a render mode, timed; None if cancelled between chunks."""
    started = time.perf_counter()
    buffers = render_buffers(renderer, cameras, mode == "saliency", cancelled)
    if buffers is None:
        return None
    return Frame(mode_image(buffers, mode), time.perf_counter() - started)


def available_modes(renderer: Renderer) -> tuple[str, ...]:
    """The render modes a model has: saliency only for hollow models."""
    return MODES if renderer.field.hollow else tuple(mode for mode in MODES if mode != "saliency")


# --- point clouds ------------------------------------------------------------------------------


@dataclass
class Cloud:
    """Points (N, 3) float32 in NGP space, colours (N, 3) uint8, and the edge of the cells they
    stand for (the point size)."""

    points: np.ndarray
    colors: np.ndarray
    cell_size: float


def _thinned(indices: torch.Tensor, limit: int) -> torch.Tensor:
    """At most `limit` of the rows (N, k), evenly strided, so a browser is not sent millions of points."""
    if indices.shape[0] <= limit:
        return indices
    return indices[torch.linspace(0, indices.shape[0] - 1, limit).long()]


def kept_cell_cloud(field: HollowField, threshold: float, limit: int = MAX_CLOUD_POINTS) -> Cloud | None:
    """The centres of the saliency cells a hollow model keeps (the largest corner p >= threshold),
    coloured by that p with viridis; None for an ngp model."""
    if not field.hollow:
        return None
    saliency = corner_saliency(field.saliency_logits.cpu())
    cells = _thinned(torch.nonzero(saliency >= threshold), limit)
    colours = _colour_mapped(saliency[cells[:, 0], cells[:, 1], cells[:, 2]].numpy()[:, None], cv2.COLORMAP_VIRIDIS)
    return _cloud(field.aabb.cpu(), cells, saliency.shape[0], colours[:, 0])


def occupied_cell_cloud(occupancy: OccupancyGrid, limit: int = MAX_CLOUD_POINTS) -> Cloud:
    """The centres of the occupied cells of the occupancy grid's finest cascade (the unit cube),
    in orange. Cell i is (z * G + y) * G + x (kernels.occupancy_grid)."""
    resolution = occupancy.resolution
    occupied = torch.nonzero(occupancy.occupied().cpu()[: resolution**3]).flatten()
    cells = _thinned(torch.stack([occupied % resolution, (occupied // resolution) % resolution,
                                  occupied // resolution**2], dim=-1), limit)
    unit_box = torch.tensor([[0.0] * 3, [1.0] * 3])
    colors = np.broadcast_to(np.array([255.0, 140.0, 0.0], dtype=np.float32), (cells.shape[0], 3))
    return _cloud(unit_box, cells, resolution, colors)


def _cloud(box: torch.Tensor, cells: torch.Tensor, resolution: int, colors: np.ndarray) -> Cloud:
    """Cells (N, 3) [x, y, z] of a resolution^3 grid over box (2, 3) -> a Cloud of their centres."""
    size = (box[1] - box[0]) / resolution
    points = (box[0] + (cells.float() + 0.5) * size).numpy().astype(np.float32)
    return Cloud(points, np.ascontiguousarray(colors, dtype=np.uint8), float(size[0]))
