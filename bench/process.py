"""`hollow-taichi process` on a capture with known poses: the built-in room rendered through its lens
at a phone-like size. Processing time, the recovered poses' error against the true ones, the
recovered lens, and (with --minutes) the held-out PSNR of training on processed against true poses.

  python bench/process.py --work DIR [--width 480 --frames 64] [--minutes 10] [--record]

DIR/truth is the rendering with its true transforms.json (made once, then reused), DIR/processed what
`process DIR/truth/images` made of the images alone. Trainings run one after the other, each alone
in a fresh process, at --downscale 4, every 8th frame held out.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (installed_command, machine_description, measure_in_subprocess,  # noqa: E402
                    train_and_evaluate, write_section)

DOWNSCALE = 4


def render_truth(folder: Path, width: int, frames: int) -> None:
    from hollow_taichi.scenes import room

    if not (folder / "transforms.json").is_file():
        room.generate(folder, room.LENS.scaled(width), frames)


def run_process(images: Path, out: Path) -> float:
    """Seconds `hollow-taichi process images --out out` takes, as a user runs it."""
    started = time.perf_counter()
    subprocess.run([installed_command(), "process", str(images), "--out", str(out), "--force", "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def poses_by_name(transforms: Path) -> dict[str, np.ndarray]:
    data = json.loads(transforms.read_text())
    return {Path(frame["file_path"]).name: np.array(frame["transform_matrix"]) for frame in data["frames"]}


def accuracy(processed: Path, truth: Path) -> dict:
    """Pose errors (room units and % of the room's diagonal) and the recovered lens beside the true one."""
    from hollow_taichi.capture.accuracy import pose_errors
    from hollow_taichi.scenes import room

    recovered, true = poses_by_name(processed / "transforms.json"), poses_by_name(truth / "transforms.json")
    names = sorted(recovered)
    errors = pose_errors(np.stack([recovered[name] for name in names]), np.stack([true[name] for name in names]))
    lens_keys = ("fl_x", "fl_y", "cx", "cy", "k1", "k2", "p1", "p2")
    processed_lens, true_lens = (json.loads((folder / "transforms.json").read_text())
                                 for folder in (processed, truth))
    return {"registered": len(names), "frames": len(true),
            **errors.summary(float(np.linalg.norm(room.ROOM_MAX - room.ROOM_MIN))),
            "lens": {key: [processed_lens[key], true_lens[key]] for key in lens_keys}}


def train_one(scene: str, minutes: float) -> dict:
    from hollow_taichi.config import TrainConfig

    config = TrainConfig(scene=scene, minutes=minutes, downscale=DOWNSCALE, eval_interval=0, checkpoint_interval=0,
                         checkpoint_minutes=0)
    _, _, measured = train_and_evaluate(config, 0)
    return {"scene": scene, **measured}


def table(result: dict) -> str:
    lines = ["| frames registered | process time | rotation error mean / max | position error mean / max "
             "(% of the room's diagonal) |", "|---|---|---|---|",
             f"| {result['registered']} of {result['frames']} | {result['process_seconds']:.0f} s | "
             f"{result['rotation_deg_mean']:.2f} / {result['rotation_deg_max']:.2f} deg | "
             f"{result['position_mean']:.4f} / {result['position_max']:.4f} ({result['position_max_percent']:.2f}%) |",
             "", "| lens | " + " | ".join(result["lens"]) + " |", "|---|" + "---|" * len(result["lens"]),
             "| recovered | " + " | ".join(f"{pair[0]:.4g}" for pair in result["lens"].values()) + " |",
             "| true | " + " | ".join(f"{pair[1]:.4g}" for pair in result["lens"].values()) + " |"]
    if "trained" in result:
        lines += ["", "| poses | steps | held-out PSNR | SSIM |", "|---|---|---|---|"]
        lines += [f"| {name} | {run['steps']} | {run['psnr']:.2f} | {run['ssim']:.3f} |"
                  for name, run in result["trained"].items()]
    return "\n".join(lines)


@click.command()
@click.option("--work", type=click.Path(path_type=Path, file_okay=False), help="Folder for the scenes.")
@click.option("--width", type=int, default=480, show_default=True)
@click.option("--frames", type=int, default=64, show_default=True)
@click.option("--minutes", type=float, help="Also train this long on processed and on true poses.")
@click.option("--record", is_flag=True, help="Write the tables to BENCHMARKS.md.")
@click.option("--one", type=str, hidden=True, help="Train this scene folder, print JSON (internal).")
def main(work, width, frames, minutes, record, one):
    if one:
        click.echo(json.dumps(train_one(one, minutes)))
        return
    if work is None:
        raise click.UsageError("--work is required")
    truth, processed = work / "truth", work / "processed"
    render_truth(truth, width, frames)
    result = {"process_seconds": run_process(truth / "images", processed), **accuracy(processed, truth)}
    if minutes:
        result["trained"] = {name: measure_in_subprocess(__file__, [str(folder), "--minutes", str(minutes)])
                             for name, folder in (("true", truth), ("processed", processed))}
    click.echo(json.dumps(result, indent=2))
    text = table(result)
    click.echo(text)
    if record:
        size = f"{width}x{round(width * 3 / 4)}"
        title = (f"Processed with `python bench/process.py --work DIR --width {width} --frames {frames}"
                 f"{f' --minutes {minutes:g}' if minutes else ''}`, {time.strftime('%Y-%m-%d')}, "
                 f"{machine_description('cpu')}: the room, {frames} frames of {size} through its lens, "
                 f"training at --downscale {DOWNSCALE}.")
        write_section(f"process-{width}-{frames}", f"{title}\n\n{text}")


if __name__ == "__main__":
    main()
