"""What a training step asks of the machine, counted: Taichi kernel launches, torch operators, and
reads back to the host (the syncs that stall a GPU), per step in steady state, for both methods.

  python bench/step_counts.py [--scene builtin:sphere] [--warmup 64] [--steps 32] [--record]

Each method trains from scratch in this process (the scene's defaults, CPU) for --warmup steps,
then --steps more are counted (a multiple of the occupancy grid's refresh interval, so refreshes
count in their share). Launches are calls of a Taichi kernel (a differentiated kernel's gradient
included) counted by wrapping taichi's Kernel.__call__; operators are what a TorchDispatchMode
sees; host reads are `_local_scalar_dense` (`.item()`, `int()`, `bool()` and `float()` of a
tensor), `nonzero`, `masked_select`, `unique` and indexing with a boolean mask, each of which must
know a value on the host before it can go on. The counts do not depend on the machine's speed.
"""
from __future__ import annotations

import collections
import json
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, write_section  # noqa: E402

HOST_READ_OPERATORS = ("_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2")
BOOLEAN_INDEXING_OPERATORS = ("index", "index_put", "index_put_")


class Counts:
    """Launches, operators by name, host reads by kind."""

    def __init__(self):
        self.launches = 0
        self.operators: collections.Counter = collections.Counter()
        self.host_reads: collections.Counter = collections.Counter()

    def per_step(self, steps: int) -> dict:
        return {"launches": self.launches / steps, "operators": sum(self.operators.values()) / steps,
                "host_reads": sum(self.host_reads.values()) / steps,
                "host_reads_by_kind": {kind: count / steps for kind, count in self.host_reads.most_common()},
                "top_operators": {name: count / steps for name, count in self.operators.most_common(8)}}


def _is_host_read(name: str, args) -> bool:
    if name in HOST_READ_OPERATORS:
        return True
    if name in BOOLEAN_INDEXING_OPERATORS and len(args) > 1:
        import torch

        indices = args[1] if isinstance(args[1], (list, tuple)) else ()
        return any(isinstance(index, torch.Tensor) and index.dtype == torch.bool for index in indices)
    return False


@contextmanager
def counting(counts: Counts):
    """Count, while inside, every Taichi launch, torch operator and host read into `counts`."""
    from taichi.lang.kernel_impl import Kernel
    from torch.utils._python_dispatch import TorchDispatchMode

    class OperatorCounter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            counts.operators[name] += 1
            if _is_host_read(name, args):
                counts.host_reads[name] += 1
            return func(*args, **(kwargs or {}))

    launch = Kernel.__call__

    def counted_launch(kernel, *args, **kwargs):
        counts.launches += 1
        return launch(kernel, *args, **kwargs)

    Kernel.__call__ = counted_launch
    try:
        with OperatorCounter():
            yield counts
    finally:
        Kernel.__call__ = launch


def count_training_steps(scene: str, method: str, warmup: int, steps: int) -> dict:
    """Per-step counts of steps warmup+1 .. warmup+steps of a fresh training run (CPU)."""
    from hollow_taichi.config import TrainConfig
    from hollow_taichi.scenes import load_scene
    from hollow_taichi.trainer import Trainer, resolve_march_settings

    config = TrainConfig(scene=scene, method=method, arch="cpu", steps=warmup + steps + 1, eval_interval=0,
                         checkpoint_interval=0, checkpoint_minutes=0)
    loaded = load_scene(scene)
    resolve_march_settings(config, loaded)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(loaded, config, Path(out), progress=False)
        for _ in range(warmup):
            trainer.train_step()
        counts = Counts()
        started = time.perf_counter()
        with counting(counts):
            for _ in range(steps):
                trainer.train_step()
        seconds = time.perf_counter() - started
    return {"method": method, "scene": scene, "counted_steps": f"{warmup + 1}-{warmup + steps}",
            **counts.per_step(steps), "seconds_per_step_while_counting": seconds / steps}


def table(results: list[dict]) -> str:
    lines = ["| method | steps counted | Taichi launches | torch operators | host reads | host reads by kind |",
             "|---|---|---|---|---|---|"]
    for result in results:
        kinds = ", ".join(f"{kind} {count:.1f}" for kind, count in result["host_reads_by_kind"].items())
        lines.append(f"| {result['method']} | {result['counted_steps']} | {result['launches']:.1f} | "
                     f"{result['operators']:.0f} | {result['host_reads']:.1f} | {kinds} |")
    return "\n".join(lines)


@click.command()
@click.option("--scene", default="builtin:sphere", show_default=True)
@click.option("--method", "methods", multiple=True, default=("hollow", "ngp"), show_default=True)
@click.option("--warmup", type=int, default=64, show_default=True)
@click.option("--steps", type=int, default=32, show_default=True)
@click.option("--record", is_flag=True, help="Write the table to BENCHMARKS.md.")
def main(scene, methods, warmup, steps, record):
    from hollow_taichi import backend

    backend.init("cpu")
    results = [count_training_steps(scene, method, warmup, steps) for method in methods]
    click.echo(json.dumps(results, indent=2))
    text = table(results)
    click.echo(text)
    if record:
        command = f"python bench/step_counts.py --scene {scene} --warmup {warmup} --steps {steps}"
        write_section("step-counts", f"`{command} --record`, {time.strftime('%Y-%m-%d')}, "
                                     f"{machine_description('cpu')}; per training step.\n\n{text}")


if __name__ == "__main__":
    main()
