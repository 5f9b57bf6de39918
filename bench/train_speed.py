"""Training speed: samples/s, steps/s and where a step's time goes, optionally side by side with
another checkout of the project.

  python bench/train_speed.py [--scene LEGO] [--steps 250] [--warmup 50] [--arch cpu] [--method hollow]
                              [--hash-log2 19] [--baseline DIR --baseline-label 435d2a9 --rounds 2] [--record]

Each measurement trains from scratch in a process of its own for --steps steps (the schedule's
budget) and times the steps after the first --warmup (kernel compilation, occupancy warm-up).
samples/s counts the samples that went through the field's forward and backward. The phase split
times the project's functions by wrapping them (exclusive time: a phase nested in another is
subtracted from it); what no phase claims is "other".

--baseline DIR: a folder holding another build of the package (for example
`pip install --no-deps --target DIR <a git worktree of an older commit>`); it is put first on
PYTHONPATH, and the two alternate --rounds times, in one sitting, so that both see the same machine.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LEGO, machine_description, write_section  # noqa: E402

# (phase, module, attribute path): functions whose time goes to a phase; ones a build lacks are skipped.
PHASES = (
    ("march", "hollow_taichi.ops", "march_rays"),
    ("march", "hollow_taichi.ops", "march_from"),
    ("march", "hollow_taichi.ops", "ray_starts"),
    ("visibility pass", "hollow_taichi.renderer", "Renderer.visible_samples"),
    ("encode forward", "hollow_taichi.ops", "HashEncoder.forward"),
    ("encode forward", "hollow_taichi.ops", "SaliencyScaler.forward"),
    ("encode forward", "hollow_taichi.ops", "HashEncoder._encode_no_grad"),
    ("encode backward", "hollow_taichi.ops", "HashEncoder.backward"),
    ("encode backward", "hollow_taichi.ops", "SaliencyScaler.backward"),
    ("composite forward", "hollow_taichi.ops", "Compositor.forward"),
    ("composite forward", "hollow_taichi.ops", "Compositor._composite_no_grad"),
    ("composite backward", "hollow_taichi.ops", "Compositor.backward"),
    ("field forward (MLPs, gate)", "hollow_taichi.field", "HollowField.forward"),
    ("backward (torch: MLPs, loss)", "torch", "Tensor.backward"),
    ("optimizer", "torch.optim", "Adam.step"),
    ("optimizer", "hollow_taichi.ops", "TableAdam.step"),
    ("occupancy update", "hollow_taichi.trainer", "Trainer._update_occupancy"),
)


class PhaseClock:
    """Exclusive wall time per phase: entering a phase pauses the one it is nested in."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.recording = False
        self._stack: list[list] = []  # [phase, started]

    @contextmanager
    def phase(self, name: str):
        if not self.recording:
            yield
            return
        now = time.perf_counter()
        if self._stack:
            outer = self._stack[-1]
            self.seconds[outer[0]] = self.seconds.get(outer[0], 0.0) + now - outer[1]
        self._stack.append([name, now])
        try:
            yield
        finally:
            now = time.perf_counter()
            inner = self._stack.pop()
            self.seconds[inner[0]] = self.seconds.get(inner[0], 0.0) + now - inner[1]
            if self._stack:
                self._stack[-1][1] = now


def _wrap(clock: PhaseClock, name: str, function):
    def timed(*args, **kwargs):
        with clock.phase(name):
            return function(*args, **kwargs)
    return timed


def install_phases(clock: PhaseClock) -> list[str]:
    """Wrap every function of PHASES this build has; returns the phases found."""
    import importlib

    found = []
    for name, module_name, path in PHASES:
        owner = importlib.import_module(module_name)
        *owners, attribute = path.split(".")
        try:
            for part in owners:
                owner = getattr(owner, part)
            function = getattr(owner, attribute)
        except AttributeError:
            continue
        setattr(owner, attribute, _wrap(clock, name, function))
        found.append(name)
    return found


def measure(scene_path: str, steps: int, warmup: int, arch: str, method: str, hash_log2: int) -> dict:
    """Train `steps` steps in this process; time the ones after `warmup`."""
    from hollow_taichi import backend
    from hollow_taichi.config import TrainConfig
    from hollow_taichi.scenes import load_scene
    from hollow_taichi.trainer import Trainer

    clock = PhaseClock()
    install_phases(clock)
    config = TrainConfig(scene=scene_path, method=method, arch=arch, steps=steps, eval_interval=0,
                         checkpoint_interval=0)
    config.field.log2_table = hash_log2
    scene = load_scene(scene_path, 1)
    samples = 0
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(scene, config, Path(out), progress=False)
        started = None
        while trainer.step < steps:
            if trainer.step == warmup:
                backend.synchronize()
                clock.recording = True
                started = time.perf_counter()
            stats = trainer.train_step()
            if started is not None:
                samples += stats.samples
        backend.synchronize()
        seconds = time.perf_counter() - started
    timed_steps = steps - warmup
    phases = {name: 1e3 * value / timed_steps for name, value in clock.seconds.items()}
    phases["other"] = 1e3 * seconds / timed_steps - sum(phases.values())
    return {"samples_per_second": samples / seconds, "steps_per_second": timed_steps / seconds,
            "samples_per_step": samples / timed_steps, "ms_per_step": 1e3 * seconds / timed_steps,
            "phases_ms": phases, "arch": backend.active()}


def run_build(label: str, package_dir: str | None, arguments: list[str]) -> dict:
    """One measurement in a fresh process, with `package_dir` first on the import path if given."""
    environment = dict(os.environ)
    if package_dir:
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_dir, environment.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--one", *arguments]
    with tempfile.TemporaryDirectory() as cwd:  # never import the package from the checkout's folder
        finished = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=cwd)
    if finished.returncode:
        raise click.ClickException(f"{label}: the measurement failed:\n{finished.stderr[-3000:]}")
    return {"label": label, **json.loads(finished.stdout.strip().splitlines()[-1])}


def summary(label: str, runs: list[dict]) -> dict:
    """Median of each number over the rounds of one build."""
    phases = sorted({name for run in runs for name in run["phases_ms"]})
    return {
        "label": label,
        "rounds": len(runs),
        **{key: statistics.median(run[key] for run in runs)
           for key in ("samples_per_second", "steps_per_second", "samples_per_step", "ms_per_step")},
        "phases_ms": {name: statistics.median(run["phases_ms"].get(name, 0.0) for run in runs) for name in phases},
    }


def table(results: list[dict], machine: str, command: str) -> str:
    phases = [name for name, _, _ in PHASES if any(name in r["phases_ms"] for r in results)]
    phases = list(dict.fromkeys(phases)) + ["other"]
    lines = [f"Machine: {machine}. Command: `{command}`.", "",
             "| build | rounds | samples/s | steps/s | samples/step | ms/step | " + " | ".join(phases) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(phases)]
    for r in results:
        cells = " | ".join(f"{r['phases_ms'].get(name, 0.0):.0f}" for name in phases)
        lines.append(f"| {r['label']} | {r['rounds']} | {r['samples_per_second']:.3g} | {r['steps_per_second']:.2f} | "
                     f"{r['samples_per_step']:.0f} | {r['ms_per_step']:.0f} | {cells} |")
    if len(results) > 1:
        ratio = results[0]["samples_per_second"] / results[-1]["samples_per_second"]
        lines += ["", f"samples/s, {results[0]['label']} / {results[-1]['label']}: {ratio:.2f}x. "
                      "Phase columns are milliseconds a step (exclusive time)."]
    return "\n".join(lines)


@click.command()
@click.option("--scene", type=click.Path(exists=True, file_okay=False), default=str(LEGO), show_default=True)
@click.option("--steps", type=int, default=250, show_default=True)
@click.option("--warmup", type=int, default=50, show_default=True, help="Steps trained before timing starts.")
@click.option("--arch", default="cpu", show_default=True)
@click.option("--method", type=click.Choice(["hollow", "ngp"]), default="hollow", show_default=True)
@click.option("--hash-log2", type=int, default=19, show_default=True)
@click.option("--label", default="this build", show_default=True)
@click.option("--baseline", type=click.Path(exists=True, file_okay=False), default=None,
              help="Folder with another build of the package, measured alternately with this one.")
@click.option("--baseline-label", default="baseline", show_default=True)
@click.option("--rounds", type=int, default=1, show_default=True)
@click.option("--record", is_flag=True, help="Write the table to BENCHMARKS.md.")
@click.option("--one", is_flag=True, hidden=True, help="Measure once in this process, print JSON (internal).")
def main(scene, steps, warmup, arch, method, hash_log2, label, baseline, baseline_label, rounds, record, one):
    if warmup >= steps:
        raise click.BadParameter(f"--warmup ({warmup}) must be below --steps ({steps})")
    if one:
        click.echo(json.dumps(measure(scene, steps, warmup, arch, method, hash_log2)))
        return
    arguments = ["--scene", str(Path(scene).resolve()), "--steps", str(steps), "--warmup", str(warmup),
                 "--arch", arch, "--method", method, "--hash-log2", str(hash_log2)]
    builds = [(label, None)] + ([(baseline_label, str(Path(baseline).resolve()))] if baseline else [])
    runs: dict[str, list[dict]] = {name: [] for name, _ in builds}
    for _ in range(rounds):
        for name, package_dir in builds:
            runs[name].append(run_build(name, package_dir, arguments))
            click.echo(json.dumps(runs[name][-1]))
    results = [summary(name, runs[name]) for name, _ in builds]
    versus = f" --baseline DIR --baseline-label {baseline_label}" if baseline else ""
    command = (f"python bench/train_speed.py --steps {steps} --warmup {warmup} --arch {arch} --method {method} "
               f"--hash-log2 {hash_log2} --rounds {rounds}{versus}")
    text = table(results, machine_description(arch), command)
    click.echo(text)
    if record:
        write_section(f"train_speed_{arch}_{method}", f"## Training speed ({arch}, {method}, Lego)\n\n" + text)


if __name__ == "__main__":
    main()
