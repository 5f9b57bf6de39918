"""Where a trained model's test error lies, and (hollow) what saliency its visible surfaces carry.

  python bench/where_it_loses.py RUN [RUN ...] [--views 5] [--rays 40000] [--arch cpu]

For each run folder (hollow or ngp) and each of `--views` evenly spaced test views: PSNR, and the
share of the squared error that falls on the object (ground-truth alpha > 0.5), on its edges
(0.05 < alpha < 0.95), in holes (alpha > 0.5 where the rendered opacity is < 0.5: geometry the
model lost, e.g. pruned) and on floaters (alpha < 0.1, opacity > 0.5). Needs a scene with alpha
(NeRF-synthetic). For hollow runs also the saliency p = sigmoid(trilerp(G)) at the samples that
make the image, weighted by their rendering weight T * (1 - exp(-sigma * dt)), over `--rays`
random pixel rays of each view: v = p * f, so these p are the factors the visible features carry.
Written for issue 10's question of what caps HollowNeRF at large tables; prints a markdown table.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description  # noqa: E402

from hollow_taichi import backend, ops  # noqa: E402
from hollow_taichi.metrics import psnr  # noqa: E402
from hollow_taichi.runs import load_run, scene_for  # noqa: E402
from hollow_taichi.scenes import evenly_spaced  # noqa: E402
from hollow_taichi.trainer import WHITE, ground_truth  # noqa: E402

QUANTILES = (0.1, 0.5, 0.9)


def error_shares(renderer, images, index: int) -> dict:
    """PSNR of test view `index` and the shares of its squared error by region (see the module)."""
    cameras = images.cameras
    origins, directions = cameras.pixel_rays(index, cameras.width, cameras.height)
    device = renderer.field.aabb.device
    rendered = renderer.render_image(origins.to(device), directions.to(device), cameras.height, cameras.width,
                                     torch.tensor(WHITE, device=device))
    color, opacity = rendered["color"].clamp(0.0, 1.0).cpu(), rendered["opacity"].cpu()
    target = ground_truth(images, index)
    alpha = images.images[index][..., 3].float() / 255.0
    error = ((color - target) ** 2).mean(dim=-1)
    regions = {"object": alpha > 0.5, "edges": (alpha > 0.05) & (alpha < 0.95),
               "holes": (alpha > 0.5) & (opacity < 0.5), "floaters": (alpha < 0.1) & (opacity > 0.5)}
    total = error.sum().clamp_min(1e-12)
    return {"psnr": float(psnr(color, target)), **{name: float(error[mask].sum() / total) for name, mask in regions.items()}}


@torch.no_grad()
def visible_saliency(renderer, images, index: int, rays: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """p (M,) at the samples that early termination keeps along `rays` random pixel rays of view
    `index`, and their rendering weights (M,)."""
    cameras = images.cameras
    origins, directions = cameras.pixel_rays(index, cameras.width, cameras.height)
    pick = torch.randperm(origins.shape[0], generator=generator)[:rays]
    device = renderer.field.aabb.device
    visible = renderer.visible_samples(origins[pick].to(device), directions[pick].to(device), keep_encoding=True)
    samples = visible.samples
    opacity = 1.0 - torch.exp(-visible.sigma * (samples.t_ends - samples.t_starts))
    weights = ops.transmittance(visible.sigma, samples) * opacity
    return visible.encoding.saliency.flatten().cpu(), weights.cpu()


def weighted_quantiles(values: torch.Tensor, weights: torch.Tensor) -> list[float]:
    order = torch.argsort(values)
    cumulative = torch.cumsum(weights[order], 0) / weights.sum().clamp_min(1e-12)
    positions = torch.searchsorted(cumulative, torch.tensor(QUANTILES)).clamp(max=values.numel() - 1)
    return [float(values[order][position]) for position in positions]


def diagnose(run_dir: Path, views: int, rays: int, arch: str) -> list[str]:
    run = load_run(run_dir, arch)
    images = scene_for(run, None).test
    if images.images.shape[-1] != 4:
        raise click.ClickException(f"{run_dir}: its scene has no alpha channel; the error regions need one")
    generator = torch.Generator().manual_seed(0)
    rows = []
    for index in evenly_spaced(len(images), views):
        shares = error_shares(run.renderer, images, index)
        saliency = "-"
        if run.field.hollow:
            values, weights = visible_saliency(run.renderer, images, index, rays, generator)
            mean = float((values * weights).sum() / weights.sum().clamp_min(1e-12))
            saliency = f"{mean:.2f} / " + " / ".join(f"{q:.2f}" for q in weighted_quantiles(values, weights))
        rows.append(f"| {run_dir} | {run.config.method} 2^{run.config.field.log2_table} | {index} | {shares['psnr']:.2f} | "
                    + " | ".join(f"{100 * shares[name]:.1f}%" for name in ("object", "edges", "holes", "floaters"))
                    + f" | {saliency} |")
    return rows


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--views", default=5, show_default=True, type=click.IntRange(min=1), help="evenly spaced test views")
@click.option("--rays", default=40000, show_default=True, type=click.IntRange(min=1),
              help="random pixel rays per view for the saliency statistics")
@click.option("--arch", default="cpu", show_default=True)
def main(run_dirs: tuple[Path, ...], views: int, rays: int, arch: str) -> None:
    rows = []
    for run_dir in run_dirs:
        rows += diagnose(run_dir, views, rays, arch)
        backend.shutdown()
    print(f"Machine: {machine_description(arch)}.\n")
    print("| run | model | test view | PSNR | error on object | on edges | in holes | on floaters "
          "| visible p: mean / " + " / ".join(f"q{int(100 * q)}" for q in QUANTILES) + " (weighted) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
