"""Size against quality: test PSNR of compact model files against their bytes, for trained runs of
both methods at several tables, each exported at several codings.

  python bench/rate_distortion.py --out DIR [--scene LEGO] [--steps 1000 | --minutes 10]
                                  [--run hollow:17 --run ngp:19 --run hollow:17:qat_bits=none ...]
                                  [--existing RUN ...]
                                  [--bits 3 --bits 4 ...] [--views 25] [--record NAME]

Each --run METHOD:LOG2[:KEY=VALUE,...] trains with `hollow-taichi train` (the settings as --set)
into DIR/METHOD_LOG2[_KEY=VALUE...] (skipped when that folder already holds a finished run);
--existing adds run folders trained any other way. Every run is then exported at each --bits (and
losslessly) with `compact.save`, and each file is loaded back with `runs.load_model` and evaluated
on the same evenly spaced test views as `eval FILE --views N` would: what is measured is what the
file holds. The references: each run's lossless file (float32, `export --lossless`), which holds
the run's model exactly, and the size of Instant-NGP's snapshot of it (float16 of every addressable
parameter, 2 bytes per total parameter; its PSNR is the lossless file's, as float16's rounding of
these values is far below the quantization measured here).

Results go to DIR/rate_distortion.jsonl (one line per point, kept across sittings: points already
there are not measured again), a Markdown table on stdout and, with --record NAME, to the
BENCHMARKS.md section NAME and the plot bench/NAME.png.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LEGO, machine_description, read_results, save_psnr_plot, write_section  # noqa: E402

HERE = Path(__file__).resolve().parent
LOSSLESS = "float32"
PLOTTED_DB = 5.0  # the plot shows files within this much of the best one's PSNR


def train_run(scene: str, out: Path, spec: str, steps: int | None, minutes: float | None, views: int) -> Path:
    """Train METHOD:LOG2[:KEY=VALUE,...] (settings as `train --set` takes them) into
    out/METHOD_LOG2[_KEY=VALUE...] unless a finished run is there; returns the folder."""
    method, log2, *rest = spec.split(":")
    settings = rest[0].split(",") if rest else []
    run_dir = out / "_".join([method, log2, *settings])
    if (run_dir / "metrics.json").is_file():
        return run_dir
    budget = ["--steps", str(steps)] if minutes is None else ["--minutes", str(minutes)]
    # Run from `out`, so that `-m` finds the installed package, not a source checkout in the working folder.
    command = [sys.executable, "-m", "hollow_taichi.app.cli", "train", str(Path(scene).resolve()), "--out",
               str(run_dir.resolve()), "--method", method, "--hash-log2", log2, *budget, "--eval-views", str(views),
               "--no-progress", "--force", *(part for setting in settings for part in ("--set", setting))]
    print(" ".join(command), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, cwd=out)
    return run_dir


def measure_run(run_dir: Path, bits_list: list[int], views: int, done: set, results_path: Path) -> None:
    """Export the run at every coding, evaluate each file, append each point to results_path."""
    from hollow_taichi import compact, runs
    from hollow_taichi.config import Coding
    from hollow_taichi.scenes import evenly_spaced

    run = runs.load_run(run_dir, "cpu")
    metrics = json.loads((run_dir / runs.METRICS_NAME).read_text())
    scene = runs.scene_for(run, None)
    test = scene.test.subset(evenly_spaced(len(scene.test), views))
    label = {"run": str(run_dir), "method": run.config.method, "log2_table": run.config.field.log2_table,
             "qat_bits": run.config.qat_bits, "steps": run.step, "seed": run.config.seed, "test_views": len(test)}
    for bits in [LOSSLESS, *bits_list]:
        if (str(run_dir), str(bits)) in done:
            continue
        coding = Coding.lossless() if bits == LOSSLESS else Coding(table_bits=bits)
        path = run_dir / f"model_{bits}.htc"
        started = time.perf_counter()
        saved = compact.save(path, run.config, run.field, run.renderer.occupancy, run.step, coding)
        export_seconds = time.perf_counter() - started
        started = time.perf_counter()
        loaded = runs.load_model(path, "cpu")
        load_seconds = time.perf_counter() - started
        quality = runs.evaluate(loaded.renderer, test)
        point = {**label, "bits": str(bits), "bytes": saved.bytes, "psnr": quality["psnr"], "ssim": quality["ssim"],
                 "params_total": run.field.parameter_count(), "params_effective": saved.effective.total,
                 "run_psnr_all_views": metrics["psnr"], "export_seconds": round(export_seconds, 2),
                 "load_seconds": round(load_seconds, 2)}
        print(json.dumps(point), file=sys.stderr, flush=True)
        with results_path.open("a") as file:
            file.write(json.dumps(point) + "\n")


def trained(point: dict) -> str:
    """How the point's run trained its table: in float, or quantization-aware at some bits."""
    return "float" if point.get("qat_bits") is None else f"QAT {point['qat_bits']} bits"


def table(points: list[dict]) -> str:
    """Markdown: one row per file, with the run's references."""
    lines = ["| run | method | table | trained | steps | coding | bytes | MB | test PSNR (dB) | SSIM | "
             "vs float32 file (dB) | Instant-NGP float16 snapshot (MB) | its / ours |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lossless = {point["run"]: point for point in points if point["bits"] == LOSSLESS}
    for point in sorted(points, key=lambda p: (p["method"], p["log2_table"], trained(p), p["run"], -p["bytes"])):
        reference = lossless.get(point["run"])
        drop = f"{point['psnr'] - reference['psnr']:+.2f}" if reference else "-"
        snapshot = 2 * point["params_total"]
        coding = "float32 (lossless)" if point["bits"] == LOSSLESS else f"{point['bits']} bits"
        lines.append(f"| {Path(point['run']).name} | {point['method']} | 2^{point['log2_table']} | {trained(point)} | "
                     f"{point['steps']} | {coding} | {point['bytes']:,} | {point['bytes'] / 1e6:.3f} | "
                     f"{point['psnr']:.2f} | {point['ssim']:.4f} | {drop} | {snapshot / 1e6:.2f} | "
                     f"{snapshot / point['bytes']:.1f}x |")
    return "\n".join(lines)


def plot(points: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.8, 4.4), dpi=120)
    for run in sorted({point["run"] for point in points}):
        mine = sorted((p for p in points if p["run"] == run), key=lambda p: p["bytes"])
        first = mine[0]
        name = f"{first['method']} 2^{first['log2_table']}, {trained(first)}"
        line, = axes.plot([p["bytes"] / 1e6 for p in mine], [p["psnr"] for p in mine],
                          marker="o" if first["method"] == "hollow" else "s",
                          linestyle="-" if first["method"] == "hollow" else "--", label=f"{name}, our files")
        for point in mine:
            bits = "f32" if point["bits"] == LOSSLESS else f"{point['bits']}b"
            axes.annotate(bits, (point["bytes"] / 1e6, point["psnr"]), textcoords="offset points", xytext=(3, 3),
                          fontsize=6)
        lossless = next((p for p in mine if p["bits"] == LOSSLESS), None)
        if lossless and first["method"] == "ngp" and first.get("qat_bits") is None:
            axes.plot([2 * first["params_total"] / 1e6], [lossless["psnr"]], marker="x", color=line.get_color(),
                      linestyle="none", label=f"{name}, Instant-NGP float16 snapshot")
    best = max(point["psnr"] for point in points)
    if min(point["psnr"] for point in points) < best - PLOTTED_DB:
        axes.set_ylim(bottom=best - PLOTTED_DB)
        title += f"\n(files more than {PLOTTED_DB:g} dB below the best are in the table only)"
    save_psnr_plot(figure, axes, "model file (MB, log scale)", title, path, legend_size=7)


@click.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Folder for the runs it trains, their files and rate_distortion.jsonl.")
@click.option("--scene", default=str(LEGO), show_default=True)
@click.option("--steps", type=int, help="Each trained run's budget in steps (default 1000 without --minutes).")
@click.option("--minutes", type=float, help="Each trained run's budget in minutes.")
@click.option("--run", "specs", multiple=True,
              help="METHOD:LOG2[:KEY=VALUE,...] to train (hollow:17, ngp:19, hollow:17:qat_bits=3); repeatable.")
@click.option("--existing", multiple=True, type=click.Path(path_type=Path, file_okay=False, exists=True),
              help="A finished run folder to measure as it is; repeatable.")
@click.option("--bits", "bits_list", multiple=True, type=int, default=(4, 5, 6, 8), show_default=True)
@click.option("--views", type=int, default=25, show_default=True, help="Evenly spaced test views per file.")
@click.option("--record", help="Write the table to this BENCHMARKS.md section and the plot to bench/NAME.png.")
def main(out, scene, steps, minutes, specs, existing, bits_list, views, record):
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "rate_distortion.jsonl"
    if steps is None and minutes is None:
        steps = 1000
    run_dirs = [train_run(scene, out, spec, steps, minutes, views) for spec in specs] + list(existing)
    for run_dir in run_dirs:
        done = {(point["run"], point["bits"]) for point in read_results(results_path)}
        measure_run(run_dir, list(bits_list), views, done, results_path)
    measured = {str(run_dir) for run_dir in run_dirs}
    points = [point for point in read_results(results_path) if point["run"] in measured]
    markdown = table(points)
    print(markdown)
    if record:
        title = f"{Path(scene).name}, {views} test views from each file; {machine_description('cpu')}"
        plot(points, HERE / f"{record}.png", title)
        write_section(record, f"{title}\n\n{markdown}\n\n![test PSNR against file size](bench/{record}.png)")


if __name__ == "__main__":
    main()
