"""HollowNeRF against Instant-NGP on Lego at equal step budgets: test PSNR against honest total
parameters (both methods) and effective parameters (hollow), at equal tables and in the paper's pairing.

  python bench/hollow_vs_ngp.py [--scene path/to/nerf_synthetic/lego] [--hash-log2 15 --hash-log2 17 ...]
                                [--hollow-log2 16 ...] [--steps 1000] [--arch cpu] [--test-views 5]
                                [--results runs.jsonl] [--record]
  python bench/hollow_vs_ngp.py --runs RUN [--runs RUN ...] [--arch cpu] [--record]

Both methods train at every --hash-log2 size; hollow also at every --hollow-log2 size, for the
paper's pairing (hollow at 2^(k-1) against ngp at 2^k). Each run trains from scratch in its own
process. Parameters are counted as HollowField.parameter_count does (the rows each level can
address, as the paper's Table 1); effective parameters as docs/method.md defines them (what `export`
writes; for ngp, all). "Marched samples/ray" counts what the marcher emits over the test views'
pixels: pruned space is marked empty in the occupancy grid, so it is where pruning shows as skipped
work. --results keeps every finished run in a JSON-lines file and skips runs already there, so a
long comparison can be built over several sittings. With --record the tables go to BENCHMARKS.md
and the plot to bench/hollow_vs_ngp_STEPS.png.

--runs builds the same tables from folders that `hollow-taichi train` left (metrics.json for the
PSNR, the parameters and the test views its evaluation used; the model reloaded for the rest), so
runs trained any way (one thread each, side by side, several seeds) can be compared: rows pair by
seed, and the plot shows each (table, method)'s mean over its seeds. They must share one step count.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (COMPARISON_HEADER, LEGO, comparison_columns, machine_description,  # noqa: E402
                    measure_and_keep, model_measurements, read_results, save_psnr_plot, train_and_evaluate,
                    write_section)

HERE = Path(__file__).resolve().parent
METHODS = ("ngp", "hollow")


def train_one(scene: str, log2_table: int, method: str, steps: int, arch: str, test_views: int) -> dict:
    """Train one (table size, method) in this process and measure it."""
    from hollow_taichi.config import TrainConfig

    config = TrainConfig(scene=scene, method=method, arch=arch, steps=steps, eval_interval=0, checkpoint_interval=0)
    config.field.log2_table = log2_table
    trainer, test, measured = train_and_evaluate(config, test_views)
    costs = model_measurements(trainer.renderer, config, test)
    return {"log2_table": log2_table, "method": method, **measured, **costs}


def run_result(run_dir: Path, arch: str) -> dict:
    """A `hollow-taichi train` run folder as one result of this comparison."""
    from hollow_taichi.runs import METRICS_NAME, load_run, scene_for

    metrics = json.loads((run_dir / METRICS_NAME).read_text())
    run = load_run(run_dir, arch)
    test = scene_for(run, None).test.subset(metrics["test_view_indices"])
    measured = {name: metrics[name] for name in ("steps", "train_seconds", "psnr", "ssim", "test_views")}
    return {"log2_table": run.config.field.log2_table, "method": run.config.method, "seed": run.config.seed,
            "arch": arch, **measured, **model_measurements(run.renderer, run.config, test)}


def seed_of(result: dict) -> int:
    return result.get("seed", 0)  # the runs this script trains itself use TrainConfig's seed, 0


def ngp_of(results: list[dict], log2_table: int, seed: int) -> dict | None:
    return next((r for r in results if r["method"] == "ngp" and r["log2_table"] == log2_table
                 and seed_of(r) == seed), None)


def equal_table(results: list[dict], machine: str, command: str) -> str:
    lines = [
        f"Machine: {machine}. Command: `{command}`.",
        "",
        f"| table | method | seed | steps | train s | test PSNR (dB) | SSIM | {COMPARISON_HEADER} |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["log2_table"], r["method"] != "ngp", seed_of(r))):
        ngp = ngp_of(results, r["log2_table"], seed_of(r))
        lines.append(f"| 2^{r['log2_table']} | {r['method']} | {seed_of(r)} | {r['steps']} | "
                     f"{r['train_seconds']:.0f} | {r['psnr']:.2f} | {r['ssim']:.3f} | {comparison_columns(r, ngp)} |")
    return "\n".join(lines)


def pairing_table(results: list[dict]) -> str:
    """The paper's headline pairing: hollow with half the table against ngp with the full one."""
    lines = [
        "| seed | ngp table | ngp PSNR | ngp params | hollow table | hollow PSNR | hollow params (total / effective) | "
        "total / ngp | PSNR - ngp (dB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for ngp in sorted((r for r in results if r["method"] == "ngp"), key=lambda r: (r["log2_table"], seed_of(r))):
        hollow = next((r for r in results if r["method"] == "hollow" and r["log2_table"] == ngp["log2_table"] - 1
                       and seed_of(r) == seed_of(ngp)), None)
        if hollow is None:
            continue
        lines.append(f"| {seed_of(ngp)} | 2^{ngp['log2_table']} | {ngp['psnr']:.2f} | {ngp['params_total']:,} | "
                     f"2^{hollow['log2_table']} | {hollow['psnr']:.2f} | {hollow['params_total']:,} / "
                     f"{hollow['params_effective']:,} | {hollow['params_total'] / ngp['params_total']:.0%} | "
                     f"{hollow['psnr'] - ngp['psnr']:+.2f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def seed_means(results: list[dict], method: str, count: str) -> list[tuple[float, float, int]]:
    """(parameters, PSNR, log2 table) of a method at each table, each the mean over the seeds run
    there, sorted by parameters; count names the parameters (params_total or params_effective)."""
    tables = sorted({r["log2_table"] for r in results if r["method"] == method})
    points = []
    for log2_table in tables:
        runs = [r for r in results if r["method"] == method and r["log2_table"] == log2_table]
        points.append((sum(r[count] for r in runs) / len(runs), sum(r["psnr"] for r in runs) / len(runs), log2_table))
    return sorted(points)


def plot(results: list[dict], path: Path, title: str) -> None:
    """Test PSNR against honest total parameters (both methods) and effective parameters (hollow),
    each point the mean over its seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    curves = (("ngp", "params_total", "s", "ngp (total)"), ("hollow", "params_total", "o", "hollow (total)"),
              ("hollow", "params_effective", "^", "hollow (effective, after pruning)"))
    for method, count, marker, label in curves:
        points = seed_means(results, method, count)
        if not points:
            continue
        axes.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=label,
                  linestyle="--" if count == "params_effective" else "-")
        for params, psnr, log2_table in points:
            axes.annotate(f"2^{log2_table}", (params, psnr), textcoords="offset points", xytext=(4, 4), fontsize=7)
    save_psnr_plot(figure, axes, "parameters", title, path)


def trained_results(scene: str, log2_tables, hollow_log2_tables, steps: int, arch: str, test_views: int,
                    results_path: Path | None) -> tuple[list[dict], str]:
    """Every (table, method) run, each trained in a process of its own unless the results file holds
    it already; and the command that reproduces them."""
    runs = [(k, method) for k in log2_tables for method in METHODS] + [(k, "hollow") for k in hollow_log2_tables]
    results = [r for r in read_results(results_path)
               if r["steps"] == steps and (test_views == 0 or r["test_views"] == test_views)]
    for log2_table, method in runs:
        if any(r["log2_table"] == log2_table and r["method"] == method for r in results):
            continue
        arguments = [method, "--scene", scene, "--hash-log2", str(log2_table), "--steps", str(steps),
                     "--arch", arch, "--test-views", str(test_views)]
        results.append(measure_and_keep(__file__, arguments, results_path))
    results = [r for r in results if (r["log2_table"], r["method"]) in runs]
    sizes = " ".join(f"--hash-log2 {n}" for n in log2_tables) + "".join(f" --hollow-log2 {n}" for n in hollow_log2_tables)
    scene_option = "" if Path(scene).resolve() == LEGO.resolve() else f" --scene {scene}"
    return results, (f"python bench/hollow_vs_ngp.py{scene_option} {sizes} --steps {steps} --arch {arch} "
                     f"--test-views {test_views}")


def results_of_runs(run_dirs: list[Path], arch: str) -> tuple[list[dict], str]:
    """The run folders as results (run_result), refused unless they share one step count; and the
    command that reproduces the tables."""
    from hollow_taichi.runs import METRICS_NAME

    for run_dir in run_dirs:
        if not (run_dir / METRICS_NAME).is_file():
            raise click.UsageError(f"{run_dir}: no {METRICS_NAME}; compare runs that trained to the end")
    results = [run_result(run_dir, arch) for run_dir in run_dirs]
    step_counts = sorted({r["steps"] for r in results})
    if len(step_counts) > 1:
        raise click.UsageError(f"--runs trained different step counts ({', '.join(map(str, step_counts))}): "
                               "compare runs of one budget")
    folders = " ".join(f"--runs {run_dir}" for run_dir in run_dirs)
    return results, f"python bench/hollow_vs_ngp.py {folders} --arch {arch}"


@click.command()
@click.option("--scene", type=click.Path(exists=True, file_okay=False), default=str(LEGO), show_default=True)
@click.option("--hash-log2", "log2_tables", type=int, multiple=True, default=(15, 17, 19), show_default=True,
              help="Table sizes both methods train at.")
@click.option("--hollow-log2", "hollow_log2_tables", type=int, multiple=True, default=(16, 18), show_default=True,
              help="Further sizes for hollow alone: the paper's pairing against ngp one size up.")
@click.option("--steps", type=int, default=1000, show_default=True, help="Training steps of every run.")
@click.option("--arch", default="cpu", show_default=True)
@click.option("--test-views", type=int, default=5, show_default=True, help="0: all test views.")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path),
              help="JSON-lines file of finished runs: appended to, and runs already in it are not repeated.")
@click.option("--runs", "run_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Compare these `train` run folders instead of training (size and budget options unused).")
@click.option("--record", is_flag=True, help="Write the tables to BENCHMARKS.md and the plot to bench/.")
@click.option("--one", type=click.Choice(METHODS), hidden=True, help="Train this method only, print JSON (internal).")
def main(scene, log2_tables, hollow_log2_tables, steps, arch, test_views, results_path, run_dirs, record, one):
    if one:
        click.echo(json.dumps(train_one(scene, log2_tables[0], one, steps, arch, test_views)))
        return
    if run_dirs:
        results, command = results_of_runs(list(run_dirs), arch)
        steps = results[0]["steps"]
    else:
        results, command = trained_results(scene, log2_tables, hollow_log2_tables, steps, arch, test_views,
                                           results_path)
    text = equal_table(results, machine_description(results[0]["arch"]), command)
    pairing = pairing_table(results)
    if pairing:
        text += "\n\nThe paper's pairing (hollow with half ngp's table):\n\n" + pairing
    click.echo(text)
    if record:
        figure = HERE / f"hollow_vs_ngp_{steps}.png"
        plot(results, figure, f"Lego, {steps} steps, {arch}: test PSNR vs parameters (mean over seeds)")
        write_section(f"hollow_vs_ngp_{arch}_{steps}",
                      f"### HollowNeRF vs Instant-NGP on Lego ({arch}, {steps} steps)\n\n{text}\n\n"
                      f"![PSNR vs parameters](bench/{figure.name})")


if __name__ == "__main__":
    main()
