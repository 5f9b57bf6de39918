"""Which hash-table rows a trained model's training gradient reaches, level by level.

  python bench/trained_rows.py RUN [RUN ...] [--batches 16] [--rays 8192] [--arch cpu]

HollowNeRF's argument for a smaller table is that pruning frees the rows pruned space would
otherwise train, so kept space collides less. For each run folder (hollow or ngp) this draws the
same `--batches` batches of `--rays` random training pixels (seed 0, so every run sees the same
rays), runs the training path (Renderer.render_rays: occupancy skipping, early termination, the
pruned cells) with gradient, and marks every table row whose gradient is non-zero. Prints, per
run, the samples trained and the share of each level's addressable rows that any batch reached.
Written for issue 10's question of why hollow at half the table does not match ngp.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description  # noqa: E402

from hollow_taichi.runs import load_run, scene_for  # noqa: E402


def rows_reached(run_dir: Path, batches: int, rays: int, arch: str) -> tuple[list[float], int]:
    """Per level, the share of its addressable rows that the training gradient of `batches`
    batches of `rays` random training pixels reaches; and the samples those batches trained."""
    run = load_run(run_dir, arch)
    cameras = scene_for(run, None).train.cameras
    field, renderer = run.renderer.field, run.renderer
    device = field.aabb.device
    reached = torch.zeros(field.encoder.table_shape[:2], dtype=torch.bool)
    generator = torch.Generator().manual_seed(0)
    samples = 0
    for _ in range(batches):
        frame = torch.randint(0, len(cameras), (rays,), generator=generator)
        x, y = torch.rand(rays, generator=generator) * cameras.width, torch.rand(rays, generator=generator) * cameras.height
        origins, directions = cameras.rays(frame, x, y)
        field.table.zero_grad()
        result = renderer.render_rays(origins.to(device), directions.to(device), torch.ones(rays, 3, device=device))
        (result.color.sum() + result.opacity.sum()).backward()
        reached |= field.table.read_grad().abs().sum(-1).cpu() > 0
        samples += result.n_samples
    addressable = field.encoder.addressable_rows()
    return [float(reached[level, :rows].float().mean()) for level, rows in enumerate(addressable)], samples


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--batches", type=int, default=16, show_default=True)
@click.option("--rays", type=int, default=8192, show_default=True)
@click.option("--arch", default="cpu", show_default=True)
def main(runs: tuple[Path, ...], batches: int, rays: int, arch: str) -> None:
    lines = []
    for run_dir in runs:
        shares, samples = rows_reached(run_dir, batches, rays, arch)
        lines.append(f"| {run_dir.name} | {samples:,} | " + " | ".join(f"{share:.0%}" for share in shares) + " |")
    levels = len(shares)
    print(f"{machine_description(arch)} Command: `python bench/trained_rows.py {' '.join(str(r) for r in runs)} "
          f"--batches {batches} --rays {rays} --arch {arch}`.\n")
    print("| run | samples trained | " + " | ".join(f"level {level}" for level in range(levels)) + " |")
    print("|---|---|" + "---|" * levels)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
