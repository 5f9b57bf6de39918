"""The built-in room (builtin:room, a capture-like scene): held-out PSNR, samples/s and render time.

  python bench/room.py --minutes 5 --minutes 10 [--baseline DIR --baseline-label d426f90] [--arch cpu] [--record]
  python bench/room.py --ablation --steps 150 [--batch-samples 16384 --hash-log2 17 --occupancy-resolution 64] [--record]

Budgets: each --minutes budget trains the room from scratch (default settings) and measures PSNR
and SSIM over all 8 held-out views at the training resolution (128x96), samples/s and the seconds
rendering one held-out view takes. With --baseline DIR (another build of the package, say
`pip install --no-deps --target DIR .` of an older commit), that build trains the same budget right
after this one, alone on the machine as this one was: two trainings side by side each got ~2.6x
fewer steps than one alone (torch's threads spin on the cores Taichi's kernels need;
docs/history/benchmarks-2026-11.md,
"Torch's threads beside Taichi's"), so a time budget shared that way measures the sharing.

--ablation: what each of the capture settings buys at an equal step budget (wall time is unreliable
on a shared machine): training with none of them, then adding one at a time (random background,
near plane, unseen cells empty), then rendering the last model with Instant-NGP's render
transmittance threshold. With --record the tables go to BENCHMARKS.md.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, marched_samples_per_ray, train_and_evaluate, write_section  # noqa: E402

# Cumulative steps of the ablation: (row label, settings on top of the previous row's)
ABLATION = (
    ("none of the capture settings (the code before)",
     {"random_background": False, "near_distance": 0.0, "mark_unseen": False, "render_min_transmittance": 1e-4}),
    ("+ random background colours in training", {"random_background": True}),
    ("+ near plane 0.1", {"near_distance": 0.1}),
    ("+ unseen occupancy cells kept empty", {"mark_unseen": True}),
)
RENDER_THRESHOLD_ROW = "+ rendering stops rays at transmittance 0.01"


def room_path() -> str:
    from hollow_taichi.scenes import builtin_scene_path

    return str(builtin_scene_path("room"))


def measure(scene: str, arch: str, minutes: float | None, steps: int | None, batch_samples: int | None,
            hash_log2: int | None, settings: dict, rerender: bool) -> dict:
    """Train the room with `settings` (TrainConfig fields) in this process and measure it; with
    `rerender` (the ablation's last row), render the model again with the render threshold 0.01.
    batch_samples, hash_log2: None keeps the default of the build that runs this."""
    from hollow_taichi import runs
    from hollow_taichi.config import TrainConfig

    config = TrainConfig(scene=scene, arch=arch, minutes=minutes, steps=steps, eval_interval=0, checkpoint_interval=0,
                         checkpoint_minutes=0)
    if batch_samples is not None:
        config.batch_samples = batch_samples
    if hash_log2 is not None:
        config.field.log2_table = hash_log2
    for name, value in settings.items():
        setattr(config, name, value)
    trainer, test, measured = train_and_evaluate(config, 0)
    measured["marched_per_ray"] = marched_samples_per_ray(trainer.renderer, test)
    kept = trainer.field.kept_cells  # set by the pruning train_and_evaluate applies (hollow)
    measured["kept_cells"] = None if kept is None else float(kept.float().mean())
    measured["sparsity"] = None if trainer.admm is None else trainer.admm.state.sparsity
    result = {"minutes": minutes, **measured}
    if rerender:
        trainer.renderer.render_min_transmittance = 0.01
        started = time.perf_counter()
        metrics = runs.evaluate(trainer.renderer, test)
        result["render_threshold"] = {"psnr": metrics["psnr"], "ssim": metrics["ssim"],
                                      "render_seconds_per_view": (time.perf_counter() - started) / len(test)}
    return result


def start(package_dir: str | None, arguments: list[str]) -> subprocess.Popen:
    """`room.py --one ARGUMENTS` in a fresh process, with `package_dir` first on the import path if given."""
    environment = dict(os.environ)
    if package_dir:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_dir, environment.get("PYTHONPATH")]))
    cwd = tempfile.mkdtemp()  # never import the package from the checkout's folder
    return subprocess.Popen([sys.executable, __file__, "--one", *arguments], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment, cwd=cwd)


def finish(label: str, process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate()
    if process.returncode:
        raise click.ClickException(f"{label}: the measurement failed:\n{stderr[-3000:]}")
    return {"label": label, **json.loads(stdout.strip().splitlines()[-1])}


def budget_table(results: list[dict], machine: str, command: str) -> str:
    lines = [f"Machine: {machine}. Command: `{command}`.", "",
             "| build | budget (min) | steps | held-out PSNR (dB) | SSIM | samples/s | render s/frame (128x96) | "
             "marched samples/ray |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['minutes']:g} | {r['steps']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                     f"{r['samples_per_second']:.3g} | {r['render_seconds_per_view']:.1f} | {r['marched_per_ray']:.0f} |")
    return "\n".join(lines)


def ablation_table(results: list[dict], machine: str, command: str) -> str:
    lines = [f"Machine: {machine}. Command: `{command}`.", "",
             "| settings | steps | held-out PSNR (dB) | SSIM | samples/s | render s/frame | marched samples/ray |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['steps']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                     f"{r['samples_per_second']:.3g} | {r['render_seconds_per_view']:.1f} | {r['marched_per_ray']:.0f} |")
    last = results[-1]["render_threshold"]
    lines.append(f"| {RENDER_THRESHOLD_ROW} (the model above, rendered again) | | {last['psnr']:.2f} | "
                 f"{last['ssim']:.3f} | | {last['render_seconds_per_view']:.1f} | |")
    return "\n".join(lines)


def run_budgets(minutes, arch, baseline, baseline_label) -> list[dict]:
    results = []
    for budget in minutes:
        arguments = ["--scene", room_path(), "--minutes", str(budget), "--arch", arch]
        builds = [("this build", None)] + ([(baseline_label, str(Path(baseline).resolve()))] if baseline else [])
        for label, package_dir in builds:
            results.append(finish(label, start(package_dir, arguments)))
            click.echo(json.dumps(results[-1]))
    return results


def table_options(batch_samples: int | None, hash_log2: int | None) -> list[str]:
    """The --batch-samples and --hash-log2 options for the values given (None: the build's default)."""
    given = (("--batch-samples", batch_samples), ("--hash-log2", hash_log2))
    return [text for option, value in given if value is not None for text in (option, str(value))]


def run_ablation(steps, arch, batch_samples, hash_log2, occupancy_resolution) -> list[dict]:
    """The rows of ABLATION, all at once, each in a process of its own (equal steps: they need not
    see the same machine, and together they finish sooner)."""
    running, settings = [], {"occupancy_resolution": occupancy_resolution}
    for index, (label, change) in enumerate(ABLATION):
        settings.update(change)
        arguments = ["--ablation", "--scene", room_path(), "--steps", str(steps), "--arch", arch,
                     *table_options(batch_samples, hash_log2), "--settings", json.dumps(settings)]
        if index == len(ABLATION) - 1:  # the render threshold is measured on the last model
            arguments.append("--rerender")
        running.append((label, start(None, arguments)))
    results = [finish(label, process) for label, process in running]
    for result in results:
        click.echo(json.dumps(result))
    return results


@click.command()
@click.option("--minutes", type=float, multiple=True, default=(5.0, 10.0), show_default=True)
@click.option("--ablation", is_flag=True, help="Equal-step ablation of the capture settings instead of budgets.")
@click.option("--steps", type=int, default=300, show_default=True, help="Steps per ablation run.")
@click.option("--batch-samples", type=int, help="Samples per step (ablation; default: the build's).")
@click.option("--hash-log2", type=int, help="Hash table size (ablation; default: the build's).")
@click.option("--occupancy-resolution", type=int, default=128, show_default=True, help="Occupancy grid (ablation).")
@click.option("--arch", default="cpu", show_default=True)
@click.option("--baseline", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder with another build of the package, trained after this one, alone.")
@click.option("--baseline-label", default="baseline", show_default=True)
@click.option("--record", is_flag=True, help="Write the table to BENCHMARKS.md.")
@click.option("--one", is_flag=True, hidden=True, help="Measure one run, print JSON (internal).")
@click.option("--scene", hidden=True)
@click.option("--settings", default="{}", hidden=True)
@click.option("--rerender", is_flag=True, hidden=True)
def main(minutes, ablation, steps, batch_samples, hash_log2, occupancy_resolution, arch, baseline, baseline_label,
         record, one, scene, settings, rerender):
    if one:
        budget = None if ablation else minutes[0]
        click.echo(json.dumps(measure(scene, arch, budget, steps if ablation else None, batch_samples, hash_log2,
                                      json.loads(settings), rerender)))
        return
    if ablation:
        results = run_ablation(steps, arch, batch_samples, hash_log2, occupancy_resolution)
        options = table_options(batch_samples, hash_log2)
        command = " ".join(["python bench/room.py --ablation --steps", str(steps), *options,
                            "--occupancy-resolution", str(occupancy_resolution), "--arch", arch])
        text = ablation_table(results, machine_description(results[0]["arch"]), command)
        section, title = f"room_ablation_{arch}", "## Room scene: what each capture setting buys (equal steps)"
    else:
        results = run_budgets(minutes, arch, baseline, baseline_label)
        versus = f" --baseline DIR --baseline-label {baseline_label}" if baseline else ""
        budgets = " ".join(f"--minutes {m:g}" for m in minutes)
        command = f"python bench/room.py {budgets} --arch {arch}{versus}"
        text = budget_table(results, machine_description(results[0]["arch"]), command)
        section, title = f"room_budgets_{arch}", "### Room scene (builtin:room): held-out PSNR and render time"
    click.echo(text)
    if record:
        write_section(section, f"{title}\n\n{text}")


if __name__ == "__main__":
    main()
