"""Rendered frames and videos of a trained model."""
from __future__ import annotations

from pathlib import Path

import torch

from . import backend
from .images import write_png, write_video
from .renderer import Renderer
from .scenes import Cameras


@torch.no_grad()
def render_frames(renderer: Renderer, cameras: Cameras, out_dir: Path, width: int | None = None,
                  height: int | None = None, video: Path | None = None, background=(1.0, 1.0, 1.0)) -> list[Path]:
    """Render every camera to out_dir/frame_#####.png (and an mp4 if `video`); returns the PNG paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = backend.device()
    width, height = width or cameras.width, height or cameras.height
    paths, frames = [], []
    for index in range(len(cameras)):
        origins, directions = cameras.pixel_rays(index, width, height)
        image = renderer.render_image(origins.to(device), directions.to(device), height, width,
                                      torch.tensor(background, device=device))["color"].clamp(0, 1).cpu()
        path = out_dir / f"frame_{index:05d}.png"
        write_png(path, image)
        paths.append(path)
        frames.append(image)
    if video is not None:
        write_video(video, frames)
    return paths
