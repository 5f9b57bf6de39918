"""The browser viewer's speed: frames per second of its render path at the low (moving) and full
sizes, and how much `train --viewer` with a browser connected slows training.

  python bench/viewer.py frames RUN [--canvas 1024x640] [--frames 3] [--arch cpu] [--record]
  python bench/viewer.py training [--steps 60] [--warmup 10] [--rounds 1] [--record]

frames: the first test camera of RUN's scene on a canvas of --canvas pixels, rendered by
hollow_taichi.viewer.frames (what the viewer sends a browser) in each render mode at three sizes: the
low size the viewer picks while the camera moves (the pixels its measured rays/s render in
viewer.LOW_FRAME_SECONDS), a middle size, and the full size (the canvas at the default
"Max resolution", config.VIEWER_MAX_SIDE). Each size is rendered once untimed (kernel compilation),
then --frames times.

training: the built-in scene trained for --steps steps in a fresh process, with and without the
viewer, alternating --rounds times. With the viewer, headless Chromium (selenium) keeps the page
open and still, so the viewer re-renders the model between steps as training changes it (throttled
to viewer.TRAINING_RENDER_SHARE of the wall time). The wall time of the steps after --warmup is
timed (viewer included); samples/s counts the samples those steps trained.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description, write_section  # noqa: E402

MIDDLE_SIDE = 320


@click.group()
def main():
    """Viewer frame rates and the cost of train --viewer."""


# --- frames ------------------------------------------------------------------------------------


def frame_sizes(canvas: tuple[int, int], rays_per_second: float) -> dict[str, tuple[int, int]]:
    from hollow_taichi import viewer
    from hollow_taichi.viewer import frames as view_frames
    from hollow_taichi.config import VIEWER_MAX_SIDE

    width, height = canvas
    low_pixels = viewer.low_frame_pixels(rays_per_second)
    return {
        "low (moving)": view_frames.fit_size(width, height, low_pixels, VIEWER_MAX_SIDE),
        "middle": view_frames.fit_size(width, height, float("inf"), MIDDLE_SIDE),
        "full": view_frames.fit_size(width, height, float("inf"), VIEWER_MAX_SIDE),
    }


def time_frames(renderer, browser, size: tuple[int, int], mode: str, frames: int) -> dict:
    from hollow_taichi.viewer import frames as view_frames
    from hollow_taichi.viewer.camera import to_cameras

    cameras = to_cameras(browser, *size)
    view_frames.render_frame(renderer, cameras, mode)  # compiles kernels for this size
    seconds = sum(view_frames.render_frame(renderer, cameras, mode).seconds for _ in range(frames))
    return {"mode": mode, "width": size[0], "height": size[1], "fps": frames / seconds,
            "rays_per_second": frames * size[0] * size[1] / seconds}


@main.command()
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@click.option("--canvas", default="1024x640", show_default=True, help="The browser canvas, WIDTHxHEIGHT.")
@click.option("--frames", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--arch", default="cpu", show_default=True)
@click.option("--record", is_flag=True, help="Write the table into BENCHMARKS.md.")
def frames(run, canvas, frames, arch, record):
    """Frames per second of the viewer's render path on RUN (a run folder or compact model)."""
    from hollow_taichi import backend, runs
    from hollow_taichi.viewer import frames as view_frames
    from hollow_taichi.viewer.camera import browser_camera_of

    width, height = (int(part) for part in canvas.split("x"))
    model = runs.load_model(run, arch)
    browser = browser_camera_of(runs.scene_for(model, None).test.cameras, 0, width, height)
    probe = time_frames(model.renderer, browser, (160, 100), "colour", frames)  # the speed the low size follows
    rows = []
    for name, size in frame_sizes((width, height), probe["rays_per_second"]).items():
        for mode in view_frames.available_modes(model.renderer):
            rows.append({"size": name, **time_frames(model.renderer, browser, size, mode, frames)})
            print(json.dumps(rows[-1]), flush=True)
    if record:
        command = f"python bench/viewer.py frames {run} --canvas {canvas} --frames {frames} --arch {arch} --record"
        model_note = f"model: {model.config.method}, step {model.step}, scene {Path(model.config.scene).name}"
        write_section(f"viewer_frames_{backend.active()}", frames_table(rows, backend.active(), command, model_note))


def frames_table(rows: list[dict], arch: str, command: str, model_note: str) -> str:
    """The BENCHMARKS.md section of `frames` measurements (the rows it prints)."""
    return "\n".join([
        f"### Viewer frames per second ({arch})",
        "",
        f"Machine: {machine_description(arch)}. Command: `{command}` ({model_note}).",
        "",
        "| frame size | mode | pixels | frames/s | seconds/frame | rays/s |",
        "|---|---|---|---|---|---|",
        *(f"| {row['size']} | {row['mode']} | {row['width']}×{row['height']} | {row['fps']:.3g} | "
          f"{1 / row['fps']:.1f} | {row['rays_per_second']:.3g} |" for row in rows),
    ])


# --- training ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def open_page(url: str):
    """Headless Chromium (selenium, Debian's chromium and chromedriver) showing `url`."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                     "--window-size=1024,640"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    driver.get(url)
    return driver


def train_once(steps: int, warmup: int, with_viewer: bool) -> dict:
    """Train the built-in scene in this process; time the steps after `warmup`."""
    from contextlib import nullcontext

    from hollow_taichi import viewer
    from hollow_taichi.viewer import frames as view_frames
    from hollow_taichi.config import TrainConfig
    from hollow_taichi.scenes import builtin_scene_path, load_scene
    from hollow_taichi.trainer import Trainer

    config = TrainConfig(scene=str(builtin_scene_path()), arch="cpu", steps=steps, eval_interval=0,
                         checkpoint_interval=0, checkpoint_minutes=0)
    scene = load_scene(config.scene, 1)
    frames = []
    render_frame = view_frames.render_frame

    def counted(*args, **kwargs):
        frames.append(1)
        return render_frame(*args, **kwargs)

    view_frames.render_frame = counted  # the viewer renders through this module attribute
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(scene, config, Path(out), progress=False)
        port = free_port()
        with viewer.watching(trainer, "127.0.0.1", port) if with_viewer else nullcontext() as shown:
            driver = open_page(f"http://127.0.0.1:{port}") if with_viewer else None
            while with_viewer and not shown.views:  # the page connected
                time.sleep(0.1)
            hook = trainer.step_hook
            marks = {}

            def timed_hook(step: int) -> None:
                if step == warmup:
                    marks["start"], marks["samples"], marks["frames"] = time.perf_counter(), trainer.samples_trained, len(frames)
                if hook is not None:
                    hook(step)

            trainer.step_hook = timed_hook
            try:
                trainer.run()
                seconds = time.perf_counter() - marks["start"]
            finally:
                if driver is not None:
                    driver.quit()
    return {"viewer": with_viewer, "steps": steps - warmup, "seconds": seconds,
            "samples_per_second": (trainer.samples_trained - marks["samples"]) / seconds,
            "frames_rendered": len(frames) - marks["frames"]}


@main.command()
@click.option("--steps", type=click.IntRange(min=2), default=60, show_default=True)
@click.option("--warmup", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--one", type=click.Choice(["with", "without"]), hidden=True)
@click.option("--record", is_flag=True, help="Write the table into BENCHMARKS.md.")
def training(steps, warmup, rounds, one, record):
    """Training samples/s on the built-in scene with and without the viewer (a browser connected)."""
    if one:
        print(json.dumps(train_once(steps, warmup, one == "with")), flush=True)
        return
    rows = []
    for _ in range(rounds):
        for kind in ("without", "with"):
            command = [sys.executable, __file__, "training", "--steps", str(steps), "--warmup", str(warmup),
                       "--one", kind]
            output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout  # stderr passes
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    if record:
        command = f"python bench/viewer.py training --steps {steps} --warmup {warmup} --rounds {rounds} --record"
        lines = [
            "### Training with the viewer open (cpu, built-in scene)",
            "",
            f"Machine: {machine_description('cpu')}. Command: `{command}`.",
            "",
            "| viewer | steps timed | seconds | samples/s | frames rendered |",
            "|---|---|---|---|---|",
            *(f"| {'with a browser connected' if row['viewer'] else 'off'} | {row['steps']} | {row['seconds']:.1f} | "
              f"{row['samples_per_second']:.3g} | {row['frames_rendered']} |" for row in rows),
        ]
        write_section("viewer_training_cpu", "\n".join(lines))


if __name__ == "__main__":
    main()
