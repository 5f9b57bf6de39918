"""HollowNeRF against Instant-NGP on Lego: test PSNR against effective parameters, equal step budgets.

  python bench/hollow_vs_ngp.py [--scene ../shared/data/nerf_synthetic/lego] [--hash-log2 15 --hash-log2 17 ...]
                                [--steps 1000] [--arch cpu] [--test-views 5] [--record]

For every hash-table size both methods train from scratch with the same settings and step budget,
each run in its own process. Effective parameters are counted as DESIGN.md defines them (what
`export` writes); for ngp they are all parameters. "Marched samples/ray" counts what the marcher
emits over the test views' pixels: pruned space is marked empty in the occupancy grid, so it is
where pruning shows as skipped work. With --record the table goes to BENCHMARKS.md and the plot
to bench/hollow_vs_ngp.png.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LEGO, machine_description, measure_in_subprocess, train_and_evaluate, write_section  # noqa: E402

PLOT = Path(__file__).resolve().parent / "hollow_vs_ngp.png"
METHODS = ("ngp", "hollow")


def marched_samples_per_ray(renderer, images) -> float:
    """Mean number of samples the marcher emits per pixel ray of `images` (no field evaluated)."""
    import torch

    from hollow_taichi import ops

    device = renderer.field.aabb.device
    samples = rays = 0
    for index in range(len(images)):
        origins, directions = images.cameras.pixel_rays(index)
        for chunk_origins, chunk_directions in zip(origins.split(1 << 14), directions.split(1 << 14)):
            with torch.no_grad():
                marched = ops.march_rays(chunk_origins.to(device), chunk_directions.to(device),
                                         renderer.occupancy.bitfield, renderer.settings)
            samples += marched.n_samples
            rays += chunk_origins.shape[0]
    return samples / max(rays, 1)


def train_one(scene: str, log2_table: int, method: str, steps: int, arch: str, test_views: int) -> dict:
    """Train one (table size, method) in this process and measure it."""
    from hollow_taichi import compact, runs
    from hollow_taichi.config import TrainConfig

    config = TrainConfig(scene=scene, method=method, arch=arch, steps=steps, eval_interval=0, checkpoint_interval=0)
    config.field.log2_table = log2_table
    trainer, test, measured = train_and_evaluate(config, test_views)
    field = trainer.field
    measured.update(
        log2_table=log2_table,
        method=method,
        params_total=field.parameter_count(),
        params_effective=compact.effective_parameters(field, config.admm.prune_threshold).total,
        marched_per_ray=marched_samples_per_ray(trainer.renderer, test),
        sparsity=None if trainer.admm is None else trainer.admm.state.sparsity,
        kept_cells=None if field.kept_cells is None else float(field.kept_cells.float().mean()),  # set by pruning
    )
    return measured


def ngp_of(results: list[dict], log2_table: int) -> dict | None:
    return next((r for r in results if r["method"] == "ngp" and r["log2_table"] == log2_table), None)


def table(results: list[dict], machine: str, command: str) -> str:
    lines = [
        f"Machine: {machine}. Command: `{command}`.",
        "",
        "| table | method | steps | train s | test PSNR (dB) | SSIM | params total | params effective | "
        "effective / ngp | PSNR - ngp (dB) | marched samples/ray | S | kept cells |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ngp = ngp_of(results, r["log2_table"])
        share = f"{r['params_effective'] / ngp['params_total']:.0%}" if ngp else "-"
        gain = f"{r['psnr'] - ngp['psnr']:+.2f}" if ngp else "-"
        sparsity = "-" if r["sparsity"] is None else f"{r['sparsity']:.3f}"
        kept = "-" if r["kept_cells"] is None else f"{r['kept_cells']:.1%}"
        lines.append(f"| 2^{r['log2_table']} | {r['method']} | {r['steps']} | {r['train_seconds']:.0f} | "
                     f"{r['psnr']:.2f} | {r['ssim']:.3f} | {r['params_total']:,} | {r['params_effective']:,} | "
                     f"{share} | {gain} | {r['marched_per_ray']:.1f} | {sparsity} | {kept} |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path, title: str) -> None:
    """Test PSNR against effective parameters, one line per method, points labelled by table size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for method, marker in zip(METHODS, ("s", "o")):
        points = sorted((r["params_effective"], r["psnr"], r["log2_table"]) for r in results if r["method"] == method)
        if not points:
            continue
        axes.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=method)
        for params, psnr, log2_table in points:
            axes.annotate(f"2^{log2_table}", (params, psnr), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("effective parameters")
    axes.set_ylabel("test PSNR (dB)")
    axes.set_title(title, fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


@click.command()
@click.option("--scene", type=click.Path(exists=True, file_okay=False), default=str(LEGO), show_default=True)
@click.option("--hash-log2", "log2_tables", type=int, multiple=True, default=(15, 17, 19), show_default=True)
@click.option("--steps", type=int, default=1000, show_default=True, help="Training steps of every run.")
@click.option("--arch", default="cpu", show_default=True)
@click.option("--test-views", type=int, default=5, show_default=True, help="0: all test views.")
@click.option("--record", is_flag=True, help="Write the table to BENCHMARKS.md and the plot to bench/.")
@click.option("--one", type=click.Choice(METHODS), hidden=True, help="Train this method only, print JSON (internal).")
def main(scene, log2_tables, steps, arch, test_views, record, one):
    if one:
        click.echo(json.dumps(train_one(scene, log2_tables[0], one, steps, arch, test_views)))
        return
    results = []
    for log2_table in log2_tables:
        for method in METHODS:
            arguments = [method, "--scene", scene, "--hash-log2", str(log2_table), "--steps", str(steps),
                         "--arch", arch, "--test-views", str(test_views)]
            results.append(measure_in_subprocess(__file__, arguments))
            click.echo(json.dumps(results[-1]))
    machine = machine_description(results[0]["arch"])
    sizes = " ".join(f"--hash-log2 {n}" for n in log2_tables)
    scene_option = "" if Path(scene).resolve() == LEGO.resolve() else f" --scene {scene}"
    command = (f"python bench/hollow_vs_ngp.py{scene_option} {sizes} --steps {steps} --arch {arch} "
               f"--test-views {test_views}")
    text = table(results, machine, command)
    click.echo(text)
    if record:
        plot(results, PLOT, f"Lego, {steps} steps, {arch}: test PSNR vs effective parameters")
        write_section(f"hollow_vs_ngp_{arch}", f"## HollowNeRF vs Instant-NGP on Lego ({arch})\n\n{text}\n\n"
                                               f"![PSNR vs effective parameters](bench/{PLOT.name})")


if __name__ == "__main__":
    main()
