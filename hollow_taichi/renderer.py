"""Rays -> samples (march) -> field -> colours (composite), for training and for whole images."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from . import losses, ops
from .field import HollowField
from .occupancy import INSTANT_NGP_STEPS, OccupancyGrid
from .scenes import Cameras
from .scenes.cameras import SCENE_CENTRE

# Rays a whole-image render marches at a time. A 10-minute Lego 2^19 model, view r_40 (400x400), 2
# threads, three renders each among others in one sitting: 4,096 rays 4.31-4.63 s, 16,384 3.52-3.86 s
# (the same pixels); larger chunks keep both threads busy in the later rounds, where few rays go on.
_INFERENCE_RAYS = 1 << 14
FIRST_ROUND_SAMPLES = 16  # samples each ray marches in the first round of _march_in_rounds; doubling after
MIN_MARCH_STEPS = 128
INSTANT_NGP_CONE_ANGLE = 1.0 / 256


def march_steps_for(cameras: Cameras) -> int:
    """Finest steps per unit-cube diagonal so that a step is about one pixel's footprint at the scene
    centre, capped at Instant-NGP's 1024: finer steps than the images resolve cost time, not quality."""
    centre = torch.tensor(SCENE_CENTRE)
    distance = (cameras.c2w[:, :, 3].cpu() - centre).norm(dim=-1)
    footprint = (distance / cameras.intrinsics[:, 0].cpu()).median().item()
    return int(min(INSTANT_NGP_STEPS, max(MIN_MARCH_STEPS, math.ceil(math.sqrt(3) / footprint))))


def cone_angle_for(cameras: Cameras) -> float:
    """Cone tracing's angle on a capture (past the finest step, a step is t * angle long): one pixel
    of the training images (1 / median focal length), so that steps keep to a pixel's footprint at
    every distance as march_steps_for sizes them at the centre; never finer than Instant-NGP's 1/256.
    builtin:room (focal 100), 10 minutes, two builds side by side on 2 cores: 1/100 gave 23.23 dB held
    out, 190 samples marched a ray, 15.1 s a frame; 1/256 22.38 dB, 259, 16.8 s."""
    focal = cameras.intrinsics[:, 0].cpu().median().item()
    return max(INSTANT_NGP_CONE_ANGLE, 1.0 / focal)


@dataclass
class RenderResult:
    color: torch.Tensor  # (R, 3)
    opacity: torch.Tensor  # (R,)
    depth: torch.Tensor  # (R,)
    n_samples: int
    mean_saliency: torch.Tensor | None = None  # () mean p over the field's samples (hollow, samples > 0)
    saliency: torch.Tensor | None = None  # (R,) sum of weight * p(x) along each ray (infer_rays, hollow, if asked)
    distortion: torch.Tensor | None = None  # () losses.distortion_loss over the rays (render_rays, if asked)


@dataclass
class VisibleSamples:
    """What Renderer.visible_samples finds: the kept samples, packed ray by ray, with their density
    sigma (M,) and, when asked for, the encode op's result (ops.Encoding); all without gradient."""

    samples: ops.PackedSamples
    sigma: torch.Tensor
    encoding: ops.Encoding | None = None

    @staticmethod
    def from_rounds(rounds: list[tuple[torch.Tensor, dict]], n_rays: int, device) -> "VisibleSamples":
        """Pack the samples the rounds keep ray by ray, a ray's samples of earlier rounds first
        (later rounds lie further along it, so each ray's samples stay sorted by t). A round is
        keep (M,) bool and its marched samples' tensors by name (None where not asked for), rows
        sorted by "ray", as marching leaves them.

        Each kept row is copied once, straight to its place (where its ray's samples start, plus
        its ray's in earlier rounds, plus its rank among its ray's in its round); the rows a
        round drops all go to one spare row past the end. Lego, 2^17, steps 112-144 under cProfile:
        9.8 ms a step here and in visible_samples against 19.0 for selecting each round's kept rows,
        joining the rounds and sorting them by ray.
        """
        if not rounds:  # no rays
            no_ints, no_floats = torch.zeros(0, dtype=torch.int32, device=device), torch.zeros(0, device=device)
            return VisibleSamples(ops.PackedSamples(no_ints, no_floats, no_floats, torch.zeros((0, 3), device=device),
                                                    no_ints, no_ints), no_floats)
        per_round = [torch.bincount(part["ray"][keep], minlength=n_rays) for keep, part in rounds]
        counts = torch.stack(per_round).sum(0)
        n_kept = int(counts.sum())
        next_row = torch.cumsum(counts, 0) - counts  # where each ray's next kept samples go
        offsets = next_row.clone()
        destinations = []
        for (keep, part), round_counts in zip(rounds, per_round):
            round_start = torch.cumsum(round_counts, 0) - round_counts  # each ray's first kept row in this round
            rank = torch.cumsum(keep, 0) - 1  # each row's rank among the round's kept rows
            place = (next_row - round_start)[part["ray"]] + rank
            destinations.append(torch.where(keep, place, n_kept))
            next_row += round_counts
        merged = {name: _scatter_rows([part[name] for _, part in rounds], destinations, n_kept) for name in rounds[0][1]}
        samples = ops.PackedSamples(
            ray_indices=merged["ray"].to(torch.int32), t_starts=merged["t_starts"], t_ends=merged["t_ends"],
            positions=merged["positions"], offsets=offsets.to(torch.int32), counts=counts.to(torch.int32))
        encoding = None
        if merged["features"] is not None:
            encoding = ops.Encoding(merged["features"], merged["saliency"])
        return VisibleSamples(samples, merged["sigma"], encoding)


def _scatter_rows(parts: list[torch.Tensor | None], destinations: list[torch.Tensor], n_rows: int) -> torch.Tensor | None:
    """(n_rows, ...): row destinations[k][j] is parts[k][j], where that is below n_rows (the rest
    land in a spare row, dropped); None if the parts are."""
    if parts[0] is None:
        return None
    out = parts[0].new_empty((n_rows + 1, *parts[0].shape[1:]))
    for part, rows in zip(parts, destinations):
        out.index_copy_(0, rows, part)
    return out[:n_rows]


@dataclass
class MarchRound:
    """One round of Renderer._march_in_rounds: the rays still going (indices into the caller's
    rays) and, packed ray by ray in that order, the samples they marched this round with their
    density sigma (M,), the encode op's result, the light reaching each sample, T (M,), counted
    from each ray's start, and the density MLP's output (M, 1 + geo_features) if asked for; all
    without gradient."""

    rays: torch.Tensor
    samples: ops.PackedSamples
    sigma: torch.Tensor
    encoding: ops.Encoding
    light: torch.Tensor
    geometry: torch.Tensor | None


class Renderer:
    def __init__(self, field: HollowField, occupancy: OccupancyGrid, cone_angle: float = 0.0,
                 max_samples: int = 1024, near: float = 0.0, render_min_transmittance: float = 1e-4):
        """near: no sample nearer to a ray's origin; render_min_transmittance: infer_rays stops a ray
        once less light than this is left (Instant-NGP renders with 0.01; training keeps going to
        the compositor's 1e-4, so that gradients reach everything the colour depends on)."""
        self.field = field
        self.occupancy = occupancy
        self.render_min_transmittance = render_min_transmittance
        self.settings = ops.MarchSettings(
            cascades=occupancy.cascades, grid_resolution=occupancy.resolution, near=near,
            cone_angle=cone_angle, dt_min=occupancy.dt_min, dt_max=occupancy.dt_max, max_samples=max_samples,
        )
        self.compositor = ops.Compositor()

    def render_rays(self, origins: torch.Tensor, directions: torch.Tensor, background: torch.Tensor,
                    jitter: torch.Tensor | None = None, distortion: bool = False) -> RenderResult:
        """Render rays (R, 3) over per-ray background colours (R, 3); differentiable. With
        `distortion`, the result carries the distortion loss of the rays' samples too.

        The field (and its backward) runs only on the samples early termination keeps
        (visible_samples); which samples those are is found without gradient, and their encoding
        from that pass is reused: only the MLPs run forward again, with gradient.
        """
        visible = self.visible_samples(origins, directions, jitter, keep_encoding=True)
        samples = visible.samples
        sigma, rgb, saliency = self.field(samples.positions, directions[samples.ray_indices.long()], visible.encoding)
        color, opacity, depth = self.compositor(sigma, rgb, samples, background)
        mean_saliency = saliency.mean() if saliency is not None and saliency.numel() else None
        spread = losses.distortion_loss(sigma, samples) if distortion else None
        return RenderResult(color, opacity, depth, samples.n_samples, mean_saliency, distortion=spread)

    @torch.no_grad()
    def infer_rays(self, origins: torch.Tensor, directions: torch.Tensor, background: torch.Tensor,
                   saliency: bool = False) -> RenderResult:
        """render_rays without gradients, for whole images: the density MLP runs once per sample
        marched, the colour MLP only on the samples early termination keeps, and each round of
        marching is composited as it comes (nothing is gathered across rounds). saliency (hollow):
        also composite p(x) with the colour's weights, so that the result's saliency is the
        saliency of what each ray sees, times its opacity."""
        threshold = self.render_min_transmittance
        sums = ops.RaySums.zeros(origins.shape[0], origins.device)
        seen = ops.RaySums.zeros(origins.shape[0], origins.device) if saliency and self.field.hollow else None
        n_samples = 0
        for step in self._march_in_rounds(origins, directions, None, threshold, geometry=True):
            kept = torch.nonzero(step.light >= threshold).squeeze(1)
            rgb = torch.empty((step.samples.n_samples, 3), device=origins.device)  # read only where kept
            kept_rays = step.rays[step.samples.ray_indices[kept].long()]
            rgb[kept] = self.field.color(step.geometry[kept], directions[kept_rays])
            sums.add(step.sigma, rgb, step.samples, step.light, threshold, step.rays)
            if seen is not None:
                p = self.field.saliency_at(self.field.to_unit(step.samples.positions))
                seen.add(step.sigma, p[:, None].expand(-1, 3), step.samples, step.light, threshold, step.rays)
            n_samples += kept.numel()
        result = RenderResult(sums.over(background), sums.opacity, sums.depth, n_samples)
        if seen is not None:
            result.saliency = seen.color[:, 0]
        return result

    @torch.no_grad()
    def visible_samples(self, origins: torch.Tensor, directions: torch.Tensor, jitter: torch.Tensor | None = None,
                        keep_encoding: bool = False, min_transmittance: float | None = None) -> VisibleSamples:
        """The samples along rays (R, 3) that early termination keeps (those still receiving
        min_transmittance of the light, default the compositor's threshold), marched in rounds
        (_march_in_rounds). At the compositor's threshold, samples past that point would add
        nothing to any colour or gradient, so the kept set is what one pass over the whole ray
        would keep, but the density pass runs only about as far as the light goes. jitter (R,)
        shifts each ray's first sample (training). keep_encoding: the kept samples' encoding comes
        back, for a differentiable pass that need not encode them again.
        """
        threshold = self.compositor.min_transmittance if min_transmittance is None else min_transmittance
        rounds: list[tuple[torch.Tensor, dict]] = []
        for step in self._march_in_rounds(origins, directions, jitter, threshold):
            samples = step.samples
            encoding = step.encoding if keep_encoding else ops.Encoding(None)
            rounds.append((step.light >= threshold, {
                "ray": step.rays[samples.ray_indices.long()], "t_starts": samples.t_starts, "t_ends": samples.t_ends,
                "positions": samples.positions, "sigma": step.sigma, "features": encoding.features,
                "saliency": encoding.saliency}))
        return VisibleSamples.from_rounds(rounds, origins.shape[0], origins.device)

    def _march_in_rounds(self, origins: torch.Tensor, directions: torch.Tensor, jitter: torch.Tensor | None,
                         threshold: float, geometry: bool = False) -> Iterator[MarchRound]:
        """Rounds of marching rays (R, 3), each with the density of its samples (no gradient) and,
        with `geometry`, the density MLP's whole output (what color() reads).

        Each round marches every ray still going a few samples further (FIRST_ROUND_SAMPLES, then
        twice as many each round), evaluates their density and the light reaching each, and
        carries each ray's optical depth on; a ray stops once its transmittance falls below
        threshold or it leaves the box.
        """
        n_rays = origins.shape[0]
        t = ops.ray_starts(origins, directions, self.settings, jitter)
        optical_depth = torch.zeros(n_rays, device=origins.device)
        going = torch.arange(n_rays, device=origins.device)
        marched, round_samples = 0, FIRST_ROUND_SAMPLES
        while going.numel() and marched < self.settings.max_samples:
            limit = min(round_samples, self.settings.max_samples - marched)
            samples, t_next = ops.march_from(origins[going], directions[going], t[going], self.occupancy.bitfield,
                                             self.settings, limit, self.occupancy.blocks)
            if geometry:
                sigma, density_output, encoding = self.field.density_and_geometry(samples.positions)
            else:
                sigma, encoding = self.field.density_and_encoding(samples.positions)
                density_output = None
            depth = optical_depth[going]
            yield MarchRound(going, samples, sigma, encoding, ops.transmittance(sigma, samples, depth), density_output)
            optical_depth[going], t[going] = depth, t_next
            going = going[torch.isfinite(t_next) & (torch.exp(-depth) >= threshold)]
            marched, round_samples = marched + limit, 2 * round_samples

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
                     background: torch.Tensor, saliency: bool = False,
                     cancelled: Callable[[], bool] = lambda: False) -> dict[str, torch.Tensor | int] | None:
        """Render the rays (H*W, 3) of one image over a background colour (3,), _INFERENCE_RAYS at a time.

        Returns "color" (H, W, 3), "opacity" (H, W), "depth" (H, W) (weighted t, not divided by
        opacity), "samples" (total count) and, with `saliency` (hollow models), "saliency" (H, W)
        (weighted p); None if `cancelled()` turned true between chunks (the viewer abandons a render).
        """
        parts: dict[str, list[torch.Tensor]] = {"color": [], "opacity": [], "depth": [], "saliency": []}
        samples = 0
        for chunk_origins, chunk_directions in zip(origins.split(_INFERENCE_RAYS), directions.split(_INFERENCE_RAYS)):
            if cancelled():
                return None
            result = self.infer_rays(chunk_origins, chunk_directions, background.expand(chunk_origins.shape[0], 3),
                                     saliency=saliency)
            for name in parts:
                if getattr(result, name) is not None:
                    parts[name].append(getattr(result, name))
            samples += result.n_samples
        images = {name: torch.cat(values).reshape(height, width, -1).squeeze(-1)
                  for name, values in parts.items() if values}
        return {**images, "samples": samples}
