"""Train NeRF-synthetic Lego for fixed time budgets; test PSNR, samples/s and peak memory.

  python bench/train_lego.py [--scene path/to/nerf_synthetic/lego] [--minutes 2 --minutes 5 ...]
                             [--arch cpu] [--method hollow] [--test-views 10] [--record]

Each budget trains from scratch in its own process (so the peak memory is that run's). Test PSNR
and SSIM are over an evenly spaced subset of the test split (--test-views, 0 for all 200), white
background. With --record the table goes to BENCHMARKS.md.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LEGO, machine_description, measure_in_subprocess, train_and_evaluate, write_section  # noqa: E402


def train_one(scene: str, minutes: float, arch: str, method: str, test_views: int) -> dict:
    """Train one budget in this process and measure it."""
    from hollow_taichi.config import TrainConfig

    config = TrainConfig(scene=scene, method=method, arch=arch, minutes=minutes, eval_interval=0,
                         checkpoint_interval=0)
    _, _, measured = train_and_evaluate(config, test_views)
    return {"minutes": minutes, "method": method, **measured}


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
@click.option("--scene", type=click.Path(exists=True, file_okay=False), default=str(LEGO), show_default=True)
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
        results.append(measure_in_subprocess(__file__, ["--scene", scene, "--minutes", str(budget), "--arch", arch,
                                                        "--method", method, "--test-views", str(test_views)]))
        click.echo(json.dumps(results[-1]))
    machine = machine_description(results[0]["arch"])
    budgets = " ".join(f"--minutes {m:g}" for m in minutes)
    text = table(results, machine, f"python bench/train_lego.py {budgets} --arch {arch} "
                                   f"--method {method} --test-views {test_views}")
    click.echo(text)
    if record:
        write_section(f"train_lego_{arch}_{method}", "### Lego training (" + arch + ", " + method + ")\n\n" + text)


if __name__ == "__main__":
    main()
