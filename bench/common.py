"""Shared by the benchmarks: training one configuration and measuring it, running each measurement in
a process of its own, the machine's description and BENCHMARKS.md section updates."""
from __future__ import annotations

import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
# Lego from NeRF-synthetic (the NeRF paper's data): $HOLLOW_TAICHI_LEGO, else a copy beside the checkout
LEGO = Path(os.environ.get("HOLLOW_TAICHI_LEGO",
                           Path(__file__).resolve().parents[2] / "shared" / "data" / "nerf_synthetic" / "lego"))


def train_and_evaluate(config, test_views: int):
    """Train `config` (a TrainConfig) from scratch in this process, prune as `train` does, and
    measure test PSNR/SSIM on `test_views` evenly spaced test views (0: all; white background).

    Returns the trainer, the test views used and the measurements (a JSON-ready dict).
    """
    from hollow_taichi import backend, compact, runs
    from hollow_taichi.scenes import evenly_spaced, load_scene
    from hollow_taichi.trainer import Trainer

    scene = load_scene(config.scene, config.downscale)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(scene, config, Path(out), progress=False)
        trainer.run()
    compact.apply_pruning(trainer.field, config.admm.prune_threshold)
    test = scene.test.subset(evenly_spaced(len(scene.test), test_views or None))
    started = time.perf_counter()
    metrics = runs.evaluate(trainer.renderer, test)
    return trainer, test, {
        "steps": trainer.step,
        "train_seconds": trainer.elapsed,
        "psnr": metrics["psnr"],
        "ssim": metrics["ssim"],
        "test_views": len(test),
        "samples_per_second": trainer.samples_trained / max(trainer.elapsed, 1e-9),
        "render_seconds_per_view": (time.perf_counter() - started) / len(test),
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "march_steps": config.march_steps,
        "arch": backend.active(),
    }


def marched_samples_per_ray(renderer, images) -> float:
    """Mean number of samples the marcher emits per pixel ray of `images` (no field evaluated)."""
    import torch

    from hollow_taichi import ops

    device = renderer.field.aabb.device
    # The empty blocks the marcher jumps (a build before them, run as a --baseline, has none) change
    # how it walks, not the samples it emits.
    blocks = getattr(renderer.occupancy, "blocks", None)
    jumps = {} if blocks is None else {"blocks": blocks}
    samples = rays = 0
    for index in range(len(images)):
        origins, directions = images.cameras.pixel_rays(index)
        for chunk_origins, chunk_directions in zip(origins.split(1 << 14), directions.split(1 << 14)):
            with torch.no_grad():
                marched = ops.march_rays(chunk_origins.to(device), chunk_directions.to(device),
                                         renderer.occupancy.bitfield, renderer.settings, **jumps)
            samples += marched.n_samples
            rays += chunk_origins.shape[0]
    return samples / max(rays, 1)


def model_measurements(renderer, config, test) -> dict:
    """What a trained (and pruned) model of a TrainConfig costs: honest total and effective
    parameters, marched samples per test ray, its S = mean p over the saliency grid and the share of
    saliency cells kept."""
    from hollow_taichi import compact

    field = renderer.field
    return {
        "params_total": field.parameter_count(),
        "params_effective": compact.effective_parameters(field, config.admm.prune_threshold).total,
        "marched_per_ray": marched_samples_per_ray(renderer, test),
        "sparsity": float(field.saliency_probabilities().detach().mean()) if field.hollow else None,
        "kept_cells": None if field.kept_cells is None else float(field.kept_cells.float().mean()),  # set by pruning
    }


COMPARISON_HEADER = ("PSNR - ngp (dB) | params total | params effective | effective / ngp total | "
                     "marched samples/ray | S | kept cells")


def comparison_columns(result: dict, ngp: dict | None) -> str:
    """A result's cells under COMPARISON_HEADER, against the ngp result it is compared with (if any)."""
    gain = f"{result['psnr'] - ngp['psnr']:+.2f}" if ngp else "-"
    share = f"{result['params_effective'] / ngp['params_total']:.0%}" if ngp else "-"
    sparsity = "-" if result["sparsity"] is None else f"{result['sparsity']:.3f}"
    kept = "-" if result["kept_cells"] is None else f"{result['kept_cells']:.1%}"
    return (f"{gain} | {result['params_total']:,} | {result['params_effective']:,} | {share} | "
            f"{result['marched_per_ray']:.1f} | {sparsity} | {kept}")


def measure_in_subprocess(script: str, arguments: list[str]) -> dict:
    """Run `script --one ARGUMENTS` in a fresh process (so peak memory and compiled kernels are that
    run's own) and return the JSON object it prints last. Its stderr passes through: a failure shows why."""
    command = [sys.executable, script, "--one", *arguments]
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def installed_command() -> str:
    """The `hollow-taichi` command installed beside this Python, to time a command as a user runs it."""
    return str(Path(sys.executable).with_name("hollow-taichi"))


def read_results(path: Path | None) -> list[dict]:
    """The runs a JSON-lines results file holds (none if there is no file)."""
    if path is None or not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


_RESULTS_LOCK = threading.Lock()


def measure_and_keep(script: str, arguments: list[str], results_path: Path | None) -> dict:
    """measure_in_subprocess, echoed to stderr and appended to the results file (if any) as soon as
    it finishes, so that a long sweep stopped midway keeps what it measured."""
    result = measure_in_subprocess(script, arguments)
    with _RESULTS_LOCK:
        print(json.dumps(result), file=sys.stderr, flush=True)
        if results_path is not None:
            with results_path.open("a") as file:
                file.write(json.dumps(result) + "\n")
    return result


def measure_all_and_keep(script: str, argument_lists: list[list[str]], results_path: Path | None,
                         jobs: int = 1) -> list[dict]:
    """measure_and_keep for each argument list, up to `jobs` processes at a time, results in the
    order given. On a GPU one training process leaves the device mostly idle (a step is launch-bound),
    so several side by side finish a sweep sooner; their timings are then not a quiet machine's."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda arguments: measure_and_keep(script, arguments, results_path), argument_lists))


def machine_description(arch: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, backend {arch}"
    if arch == "cuda":
        import torch

        text += f", {torch.cuda.get_device_name()}"
    return text


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between <!-- name --> markers in BENCHMARKS.md."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)


def save_psnr_plot(figure, axes, xlabel: str, title: str, path: Path, legend_size: int = 8) -> None:
    """Finish a plot of test PSNR against a log-scale x (labels, title, grid, legend) and write it."""
    import matplotlib.pyplot as plt

    axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("test PSNR (dB)")
    axes.set_title(title, fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=legend_size)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
