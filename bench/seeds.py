"""Rank HollowNeRF settings against Instant-NGP over seeds, at equal table and step budget.

  python bench/seeds.py [--scene path/to/nerf_synthetic/lego] [--hash-log2 19] [--steps 1000]
                        [--seeds 5] [--test-views 40] [--arch cuda]
                        [--variant NAME:KEY=VALUE[,KEY=VALUE...] ...] [--results runs.jsonl] [--jobs N]
                        [--record]

At 2^19 and 1000 steps one Lego run of a setting moves by up to ~0.5 dB from the smallest change to
its first steps (docs/history/benchmarks-2026-11.md:
"Seeds, and single changes that leave the method equal to ngp"), so
a single run a side cannot rank settings. Every seed trains ngp, hollow with the defaults and
hollow with each --variant (settings as `train --set KEY=VALUE` takes them), each from scratch in a
process of its own; a setting is judged by its difference from ngp at the same seed, averaged over
the seeds, with the standard error of that mean over the seeds. Meant for a lent GPU: a 1000-step
Lego run takes about a minute there (80-135 s each with seven side by side, --jobs), 15-20 on 2 CPU
cores. --results keeps every finished run in a JSON-lines file and skips runs already there, so a
sweep can be built over several calls. With --record the table goes to BENCHMARKS.md.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (LEGO, machine_description, measure_all_and_keep, read_results,  # noqa: E402
                    train_and_evaluate, write_section)

NGP, DEFAULT = "ngp", "hollow"


def parse_variant(text: str) -> tuple[str, list[str]]:
    """"NAME:KEY=VALUE,KEY=VALUE" -> (NAME, ["KEY=VALUE", ...])."""
    name, separator, settings = text.partition(":")
    if not separator or not name.strip() or name.strip() in (NGP, DEFAULT) or "=" not in settings:
        raise click.BadParameter(f"{text!r}: expected NAME:KEY=VALUE[,KEY=VALUE...], NAME not ngp or hollow")
    return name.strip(), [item.strip() for item in settings.split(",") if item.strip()]


def train_one(run: dict, scene: str, log2_table: int, steps: int, arch: str, test_views: int) -> dict:
    """Train one run ({"name", "method", "seed", "settings"}) in this process and measure it."""
    from hollow_taichi.config import TrainConfig

    config = TrainConfig(scene=scene, method=run["method"], arch=arch, steps=steps, seed=run["seed"],
                         eval_interval=0, checkpoint_interval=0, checkpoint_minutes=0)
    config.field.log2_table = log2_table
    for assignment in run["settings"]:
        config.override(assignment)
    _, _, measured = train_and_evaluate(config, test_views)
    return {**run, "log2_table": log2_table, **measured}


def runs_to_make(seeds: int, variants: list[tuple[str, list[str]]]) -> list[dict]:
    named = [(NGP, NGP, []), (DEFAULT, "hollow", [])] + [(name, "hollow", settings) for name, settings in variants]
    return [{"name": name, "method": method, "seed": seed, "settings": settings}
            for seed in range(seeds) for name, method, settings in named]


def mean_and_standard_error(values: list[float]) -> tuple[float, float]:
    """The mean of values and its standard error (sample standard deviation / sqrt(n); nan for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


def summary_table(results: list[dict], names: list[str]) -> str:
    """One row per setting: mean PSNR and SSIM over its seeds, and its difference from ngp at the
    same seed (mean +- standard error over the seeds that have both, and each seed's)."""
    ngp = {r["seed"]: r for r in results if r["name"] == NGP}
    lines = ["| run | settings | seeds | mean PSNR (dB) | mean SSIM | PSNR - ngp, same seed (dB) | per seed |",
             "|---|---|---|---|---|---|---|"]
    for name in names:
        runs = sorted((r for r in results if r["name"] == name), key=lambda r: r["seed"])
        if not runs:
            continue
        psnr, _ = mean_and_standard_error([r["psnr"] for r in runs])
        ssim, _ = mean_and_standard_error([r["ssim"] for r in runs])
        differences = [(r["seed"], r["psnr"] - ngp[r["seed"]]["psnr"]) for r in runs if r["seed"] in ngp]
        gap, cells = "-", "-"
        if differences and name != NGP:
            mean, error = mean_and_standard_error([d for _, d in differences])
            gap = f"{mean:+.2f}" + ("" if math.isnan(error) else f" +- {error:.2f}")
            cells = " / ".join(f"{d:+.2f}" for _, d in differences)
        settings = ", ".join(f"`{s}`" for s in runs[0]["settings"]) or ("`--method ngp`" if name == NGP else "defaults")
        lines.append(f"| {name} | {settings} | {len(runs)} | {psnr:.2f} | {ssim:.4f} | {gap} | {cells} |")
    return "\n".join(lines)


def same_run(a: dict, b: dict) -> bool:
    return all(a[key] == b[key] for key in ("name", "method", "seed", "settings"))


@click.command()
@click.option("--scene", type=click.Path(exists=True, file_okay=False), default=str(LEGO), show_default=True)
@click.option("--hash-log2", "log2_table", type=int, default=19, show_default=True)
@click.option("--steps", type=int, default=1000, show_default=True, help="Training steps of every run.")
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True, help="Seeds 0 .. N-1.")
@click.option("--test-views", type=int, default=40, show_default=True, help="Evenly spaced test views; 0: all.")
@click.option("--arch", default="cpu", show_default=True)
@click.option("--variant", "variant_texts", multiple=True,
              help="NAME:KEY=VALUE[,KEY=VALUE...]: hollow with these settings (as `train --set`).")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON-lines file of finished runs: appended to, and runs already in it are not repeated.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs trained at a time, each in a process of its own (on a GPU several fit side by side).")
@click.option("--record", is_flag=True, help="Write the table to BENCHMARKS.md.")
@click.option("--one", hidden=True, help="Train this run (JSON) only, print JSON (internal).")
def main(scene, log2_table, steps, seeds, test_views, arch, variant_texts, results_path, jobs, record, one):
    if one:
        click.echo(json.dumps(train_one(json.loads(one), scene, log2_table, steps, arch, test_views)))
        return
    variants = [parse_variant(text) for text in variant_texts]
    wanted = runs_to_make(seeds, variants)
    results = [r for r in read_results(results_path) if r["log2_table"] == log2_table and r["steps"] == steps
               and (test_views == 0 or r["test_views"] == test_views) and any(same_run(r, w) for w in wanted)]
    missing = [run for run in wanted if not any(same_run(r, run) for r in results)]
    common_arguments = ["--scene", scene, "--hash-log2", str(log2_table), "--steps", str(steps), "--arch", arch,
                        "--test-views", str(test_views)]
    results += measure_all_and_keep(__file__, [[json.dumps(run), *common_arguments] for run in missing],
                                    results_path, jobs)
    names = [NGP, DEFAULT] + [name for name, _ in variants]
    scene_option = "" if Path(scene).resolve() == LEGO.resolve() else f" --scene {scene}"
    variant_options = "".join(f" --variant {text}" for text in variant_texts)
    command = (f"python bench/seeds.py{scene_option} --hash-log2 {log2_table} --steps {steps} --seeds {seeds} "
               f"--test-views {test_views} --arch {arch}{variant_options}")
    text = (f"Machine: {machine_description(results[0]['arch'])}. Command: `{command}`.\n\n"
            + summary_table(results, names))
    click.echo(text)
    if record:
        write_section(f"seeds_{arch}_{log2_table}_{steps}",
                      f"## HollowNeRF settings over seeds ({arch}, 2^{log2_table}, {steps} steps)\n\n{text}")


if __name__ == "__main__":
    main()
