"""Rendered frames and videos of a trained model, and slices of its saliency."""
from __future__ import annotations

from pathlib import Path

import cv2
import torch

from . import backend
from .errors import RunError
from .field import HollowField
from .images import write_png, write_video
from .renderer import Renderer
from .scenes import Cameras


@torch.no_grad()
def render_frames(renderer: Renderer, cameras: Cameras, out_dir: Path, width: int | None = None,
                  height: int | None = None, video: Path | None = None, background=(1.0, 1.0, 1.0)) -> list[Path]:
    """Render every camera to out_dir/frame_#####.png (and an mp4 if `video`); returns the PNG paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, frames = [], []
    for index in range(len(cameras)):
        image = renderer.render_view(cameras, index, background, width, height).cpu()
        path = out_dir / f"frame_{index:05d}.png"
        write_png(path, image)
        paths.append(path)
        frames.append(image)
    if video is not None:
        write_video(video, frames)
    return paths


def _slice_points(z: float, size: int) -> torch.Tensor:
    """Unit-cube points (size*size, 3) on the plane at height z, pixel centres; rows run from y = 1
    down to y = 0, so that y points up in the image."""
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(centres.flip(0), centres, indexing="ij")
    return torch.stack([x, y, torch.full_like(x, z)], dim=-1).reshape(-1, 3)


def _colour_map(saliency: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Viridis RGB (H, W, 3) uint8 of saliency (H, W) in [0, 1]; black where not kept (H, W)."""
    grey = (saliency.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    rgb = torch.from_numpy(cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB))
    return rgb * kept[..., None].to(torch.uint8)


@torch.no_grad()
def saliency_slices(field: HollowField, out_dir: Path, count: int = 5, size: int = 256) -> list[Path]:
    """PNG images of the saliency p(x) on `count` planes z = (k + 0.5) / count across the scene box.

    x runs left to right and y bottom to top; p is colour-mapped with viridis (0 dark purple, 1 yellow)
    and cells the model prunes are black. Returns the paths, saliency_z<z>.png.
    """
    if not field.hollow:
        raise RunError("an ngp model has no saliency grid to slice")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        z = (k + 0.5) / count
        unit = _slice_points(z, size).to(backend.device())
        saliency = field.saliency_at(unit)
        kept = field.kept_at(unit)
        path = out_dir / f"saliency_z{z:.3f}.png"
        write_png(path, _colour_map(saliency.cpu().reshape(size, size), kept.cpu().reshape(size, size)).numpy())
        paths.append(path)
    return paths
