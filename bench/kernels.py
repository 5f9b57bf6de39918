"""Throughput of the Taichi kernels through their torch ops, in points (samples) per second.

  python bench/kernels.py [--arch cpu] [--points 131072] [--repeats 5] [--record]

Encode: 16 levels x 2 features, 2^19 table, base 16, finest 2048 (the default field), uniformly
random points (the worst case for caches; training samples are ray-coherent), without and with
HollowNeRF's saliency scaling. Forward = one op call
(including the torch<->Taichi copies); backward = the autograd backward of that call. Composite:
rays of 64 samples each. With --record the table goes to BENCHMARKS.md.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import click
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, write_section  # noqa: E402

from hollow_taichi import backend, ops  # noqa: E402


def timed(fn, repeats: int) -> float:
    """Median seconds of fn() over `repeats` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        backend.synchronize()
        started = time.perf_counter()
        fn()
        backend.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_encode(points: int, repeats: int, saliency: bool) -> tuple[float, float]:
    """Points/s of the encode op forward and backward, with HollowNeRF's saliency scaling or without."""
    device = backend.device()
    encoder = ops.HashEncoder(16, 2, 19, 16, 2048)
    table = encoder.new_table()
    logits = torch.full((64, 64, 64), 2.0, device=device, requires_grad=True) if saliency else None
    positions = torch.rand(points, 3, device=device)
    upstream = torch.randn(points, encoder.output_dim, device=device)

    def forward():
        return encoder(positions, table, logits).features

    def forward_backward():
        forward().backward(upstream)  # the table's gradient accumulates, as between optimizer steps

    forward_time = timed(forward, repeats)
    backward_time = timed(forward_backward, repeats) - forward_time
    return points / forward_time, points / backward_time


def bench_table_adam(repeats: int) -> float:
    """Table entries/s of one Adam step over the default 16 x 2^19 x 2 table."""
    table = ops.HashEncoder(16, 2, 19, 16, 2048).new_table()
    optimizer = ops.TableAdam(table, 1e-2)
    return table.numel() / timed(optimizer.step, repeats)


def bench_composite(points: int, repeats: int) -> tuple[float, float]:
    device = backend.device()
    per_ray = 64
    rays = points // per_ray
    counts = torch.full((rays,), per_ray, dtype=torch.int32, device=device)
    t_starts = torch.arange(per_ray, device=device).repeat(rays).float() * 0.01
    samples = ops.PackedSamples(
        ray_indices=torch.arange(rays, dtype=torch.int32, device=device).repeat_interleave(per_ray),
        t_starts=t_starts, t_ends=t_starts + 0.01, positions=torch.zeros(points, 3, device=device),
        offsets=torch.arange(rays, dtype=torch.int32, device=device) * per_ray, counts=counts,
    )
    sigma = (torch.rand(points, device=device) * 5).requires_grad_()
    rgb = torch.rand(points, 3, device=device).requires_grad_()
    background = torch.ones(rays, 3, device=device)
    compositor = ops.Compositor()

    def forward():
        return compositor(sigma, rgb, samples, background)

    def forward_backward():
        color, opacity, depth = forward()
        (color.sum() + opacity.sum()).backward()

    forward_time = timed(forward, repeats)
    backward_time = timed(forward_backward, repeats) - forward_time
    return points / forward_time, points / backward_time


@click.command()
@click.option("--arch", default="cpu", show_default=True)
@click.option("--points", type=int, default=1 << 17, show_default=True)
@click.option("--repeats", type=int, default=5, show_default=True)
@click.option("--threads", type=int, default=None)
@click.option("--record", is_flag=True, help="Write the results to BENCHMARKS.md.")
def main(arch, points, repeats, threads, record):
    arch = backend.init(arch, threads)
    rows = [("hash encode (16 levels, 2^19 table)", *bench_encode(points, repeats, saliency=False)),
            ("hash encode * saliency (64^3 grid)", *bench_encode(points, repeats, saliency=True)),
            ("composite (64 samples/ray)", *bench_composite(points, repeats))]
    adam_rate = bench_table_adam(repeats)
    lines = [
        f"Machine: {machine_description(arch)}. Points per call: {points}. "
        f"Command: `python bench/kernels.py --arch {arch} --points {points} --repeats {repeats}"
        + (f" --threads {threads}" if threads else "") + "`",
        "",
        "| op | forward (M points/s) | backward (M points/s) |",
        "| --- | --- | --- |",
        *[f"| {name} | {fwd / 1e6:.2f} | {bwd / 1e6:.2f} |" for name, fwd, bwd in rows],
        "",
        f"Adam step over the whole 16 x 2^19 x 2 table (ops.TableAdam): {adam_rate / 1e6:.0f} M entries/s "
        f"({1e3 * 16 * 2**19 * 2 / adam_rate:.0f} ms a step).",
    ]
    text = "\n".join(lines)
    click.echo(text)
    if record:
        write_section(f"kernels-{arch}", f"### Kernel throughput ({arch})\n\n{text}")


if __name__ == "__main__":
    main()
