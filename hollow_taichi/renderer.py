"""Rays -> samples (march) -> field -> colours (composite), for training and for whole images."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import ops
from .field import HollowField
from .occupancy import INSTANT_NGP_STEPS, OccupancyGrid
from .scenes import Cameras
from .scenes.cameras import SCENE_CENTRE

_INFERENCE_RAYS = 1 << 12
MIN_MARCH_STEPS = 128


def march_steps_for(cameras: Cameras) -> int:
    """Finest steps per unit-cube diagonal so that a step is about one pixel's footprint at the scene
    centre, capped at Instant-NGP's 1024: finer steps than the images resolve cost time, not quality."""
    centre = torch.tensor(SCENE_CENTRE)
    distance = (cameras.c2w[:, :, 3].cpu() - centre).norm(dim=-1)
    footprint = (distance / cameras.intrinsics[:, 0].cpu()).median().item()
    return int(min(INSTANT_NGP_STEPS, max(MIN_MARCH_STEPS, math.ceil(math.sqrt(3) / footprint))))


@dataclass
class RenderResult:
    color: torch.Tensor  # (R, 3)
    opacity: torch.Tensor  # (R,)
    depth: torch.Tensor  # (R,)
    n_samples: int
    mean_saliency: torch.Tensor | None = None  # () mean p over the field's samples (hollow, samples > 0)


class Renderer:
    def __init__(self, field: HollowField, occupancy: OccupancyGrid, cone_angle: float = 0.0,
                 max_samples: int = 1024, near: float = 0.0):
        self.field = field
        self.occupancy = occupancy
        self.settings = ops.MarchSettings(
            cascades=occupancy.cascades, grid_resolution=occupancy.resolution, near=near,
            cone_angle=cone_angle, dt_min=occupancy.dt_min, dt_max=occupancy.dt_max, max_samples=max_samples,
        )
        self.compositor = ops.Compositor()

    def render_rays(self, origins: torch.Tensor, directions: torch.Tensor, background: torch.Tensor,
                    jitter: torch.Tensor | None = None) -> RenderResult:
        """Render rays (R, 3) over per-ray background colours (R, 3); differentiable."""
        samples = self.visible_samples(ops.march_rays(origins, directions, self.occupancy.bitfield, self.settings,
                                                      jitter))
        sample_directions = directions[samples.ray_indices.long()]
        sigma, rgb, saliency = self.field(samples.positions, sample_directions)
        color, opacity, depth = self.compositor(sigma, rgb, samples, background)
        mean_saliency = saliency.mean() if saliency is not None and saliency.numel() else None
        return RenderResult(color, opacity, depth, samples.n_samples, mean_saliency)

    def visible_samples(self, samples: ops.PackedSamples) -> ops.PackedSamples:
        """The samples that early termination keeps; dropping the others changes no colour or gradient.

        A no-grad density pass finds where each ray's transmittance falls below the compositor's
        threshold. Behind a learned surface that is most samples, so the full field (and its
        backward) runs on a fraction of what the marcher emits.
        """
        if samples.n_samples == 0:
            return samples
        with torch.no_grad():
            sigma = self.field.density(samples.positions)
        return samples.select(ops.transmittance(sigma, samples) >= self.compositor.min_transmittance)

    @torch.no_grad()
    def render_view(self, cameras: Cameras, index: int, background=(1.0, 1.0, 1.0), width: int | None = None,
                    height: int | None = None) -> torch.Tensor:
        """Colour (H, W, 3) in [0, 1] of camera `index` over a background colour (3,), at the
        cameras' image size or at width x height."""
        width, height = width or cameras.width, height or cameras.height
        device = self.field.aabb.device
        origins, directions = cameras.pixel_rays(index, width, height)
        rendered = self.render_image(origins.to(device), directions.to(device), height, width,
                                     torch.tensor(background, device=device))
        return rendered["color"].clamp(0.0, 1.0)

    @torch.no_grad()
    def render_image(self, origins: torch.Tensor, directions: torch.Tensor, height: int, width: int,
                     background: torch.Tensor) -> dict[str, torch.Tensor]:
        """Render the rays (H*W, 3) of one image over a background colour (3,).

        Returns "color" (H, W, 3), "opacity" (H, W), "depth" (H, W) and "samples" (total count).
        """
        colors, opacities, depths, samples = [], [], [], 0
        for chunk_origins, chunk_directions in zip(origins.split(_INFERENCE_RAYS), directions.split(_INFERENCE_RAYS)):
            result = self.render_rays(chunk_origins, chunk_directions,
                                      background.expand(chunk_origins.shape[0], 3))
            colors.append(result.color)
            opacities.append(result.opacity)
            depths.append(result.depth)
            samples += result.n_samples
        return {
            "color": torch.cat(colors).reshape(height, width, 3),
            "opacity": torch.cat(opacities).reshape(height, width),
            "depth": torch.cat(depths).reshape(height, width),
            "samples": samples,
        }
