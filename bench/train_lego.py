"""Train NeRF-synthetic Lego for fixed time budgets; test PSNR, samples/s and peak memory.

  python bench/train_lego.py [--scene ../shared/data/nerf_synthetic/lego] [--minutes 2 --minutes 5 ...]
                             [--arch cpu] [--method hollow] [--test-views 10] [--record]

Each budget trains from scratch in its own process (so the peak memory is that run's). Test PSNR
and SSIM are over an evenly spaced subset of the test split (--test-views, 0 for all 200), white
background. With --record the table goes to BENCHMARKS.md.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, write_section  # noqa: E402

DEFAULT_SCENE = Path(__file__).resolve().parents[2] / "shared" / "data" / "nerf_synthetic" / "lego"


def evenly_spaced(total: int, count: int) -> list[int]:
    if count <= 0 or count >= total:
        return list(range(total))
    return [round(i * total / count) for i in range(count)]


def train_one(scene: str, minutes: float, arch: str, method: str, test_views: int) -> dict:
    """Train one budget in this process and measure it."""
    from hollow_taichi import backend, runs
    from hollow_taichi.config import TrainConfig
    from hollow_taichi.scenes import load_scene
    from hollow_taichi.trainer import Trainer

    config = TrainConfig(scene=scene, method=method, arch=arch, minutes=minutes, eval_interval=0,
                         checkpoint_interval=0)
    loaded = load_scene(scene)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(loaded, config, Path(out), progress=False)
        trainer.run()
    views = evenly_spaced(len(loaded.test), test_views)
    started = time.perf_counter()
    metrics = runs.evaluate(trainer.renderer, loaded.test.subset(views))
    return {
        "minutes": minutes,
        "method": method,
        "steps": trainer.step,
        "psnr": metrics["psnr"],
        "ssim": metrics["ssim"],
        "test_views": len(views),
        "samples_per_second": trainer.samples_trained / max(trainer.elapsed, 1e-9),
        "render_seconds_per_view": (time.perf_counter() - started) / len(views),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "march_steps": config.march_steps,
        "arch": backend.active(),
    }


def table(results: list[dict], machine: str, command: str) -> str:
    lines = [
        f"Machine: {machine}. Command: `{command}`.",
        "",
        "| budget (min) | method | steps | test PSNR (dB) | SSIM | test views | samples/s | render s/view | peak RSS (GiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['minutes']:g} | {r['method']} | {r['steps']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                     f"{r['test_views']} | {r['samples_per_second']:.3g} | {r['render_seconds_per_view']:.1f} | "
                     f"{r['peak_rss_gib']:.2f} |")
    return "\n".join(lines)


@click.command()
@click.option("--scene", type=click.Path(exists=True, file_okay=False), default=str(DEFAULT_SCENE), show_default=True)
@click.option("--minutes", type=float, multiple=True, default=(2.0, 5.0, 10.0, 20.0), show_default=True)
@click.option("--arch", default="cpu", show_default=True)
@click.option("--method", type=click.Choice(["hollow", "ngp"]), default="hollow", show_default=True)
@click.option("--test-views", type=int, default=10, show_default=True, help="0: all test views.")
@click.option("--record", is_flag=True, help="Write the table to BENCHMARKS.md.")
@click.option("--one", is_flag=True, hidden=True, help="Train the single budget given, print JSON (internal).")
def main(scene, minutes, arch, method, test_views, record, one):
    if one:
        click.echo(json.dumps(train_one(scene, minutes[0], arch, method, test_views)))
        return
    results = []
    for budget in minutes:
        command = [sys.executable, __file__, "--one", "--scene", scene, "--minutes", str(budget), "--arch", arch,
                   "--method", method, "--test-views", str(test_views)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        click.echo(json.dumps(results[-1]))
    machine = machine_description(results[0]["arch"])
    budgets = " ".join(f"--minutes {m:g}" for m in minutes)
    text = table(results, machine, f"python bench/train_lego.py {budgets} --arch {arch} "
                                   f"--method {method} --test-views {test_views}")
    click.echo(text)
    if record:
        write_section(f"train_lego_{arch}_{method}", "## Lego training (" + arch + ", " + method + ")\n\n" + text)


if __name__ == "__main__":
    main()
