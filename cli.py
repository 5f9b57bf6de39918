"""The hollow-taichi command line: train, eval, render, export, info. Parses, validates, calls."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hollow_taichi import __version__
from hollow_taichi.backend import ARCH_CHOICES
from hollow_taichi.config import METHODS, TrainConfig
from hollow_taichi.errors import HollowError

DEFAULT_STEPS = 2000


class _Group(click.Group):
    """Turns a HollowError from any command into one line on stderr and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HollowError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="hollow-taichi")
def main():
    """Train HollowNeRF models (saliency-pruned hash grids) and render what they learned."""


@main.command()
@click.argument("scene", required=False, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Run folder for config, checkpoints, metrics.json and renders/.")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), default="auto", show_default=True)
@click.option("--steps", type=int, help=f"Training steps (default {DEFAULT_STEPS} when no --minutes).")
@click.option("--minutes", type=float, help="Training time budget in minutes.")
@click.option("--downscale", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--method", type=click.Choice(METHODS), default="hollow", show_default=True,
              help="hollow: saliency grid, gate and ADMM; ngp: plain Instant-NGP at equal settings.")
@click.option("--hash-log2", type=int, default=19, show_default=True, help="log2 of the hash table size per level.")
@click.option("--saliency-res", type=int, default=64, show_default=True)
@click.option("--sparsity", type=float, default=0.04, show_default=True, help="ADMM bound C on mean saliency.")
@click.option("--batch-samples", type=click.IntRange(min=1024), default=1 << 16, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for Taichi (CPU backend).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--force", is_flag=True, help="Overwrite a run folder that holds another run.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def train(scene, out_dir, arch, steps, minutes, downscale, seed, method, hash_log2, saliency_res, sparsity,
          batch_samples, threads, resume, force, progress):
    """Train on SCENE (a folder with transforms_train.json or transforms.json; default: built-in)."""
    from hollow_taichi import runs
    from hollow_taichi.scenes import builtin_scene_path

    config = TrainConfig(scene=str(scene or builtin_scene_path()), method=method, arch=arch, seed=seed,
                         steps=steps if steps or minutes else DEFAULT_STEPS, minutes=minutes,
                         downscale=downscale, batch_samples=batch_samples, threads=threads)
    config.field.log2_table = hash_log2
    config.field.saliency_resolution = saliency_res
    config.admm.sparsity = sparsity
    config.validate()
    metrics = runs.train(config, out_dir, resume=resume, force=force, progress=progress)
    click.echo(json.dumps(metrics, indent=2))
    click.echo(f"test renders in {out_dir / runs.RENDERS_NAME}, metrics in {out_dir / runs.METRICS_NAME}")


@main.command(name="eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("scene", required=False, type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--out", "out_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the JSON (default RUN_DIR/eval_SPLIT.json).")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), help="Backend (default: the run's).")
def evaluate(run_dir, scene, split, out_file, arch):
    """PSNR and SSIM of a trained run on a split of its scene (or of SCENE)."""
    from hollow_taichi import runs

    run = runs.load_run(run_dir, arch)
    images = getattr(runs.scene_for(run, scene), split)
    metrics = runs.evaluate(run.renderer, images)
    metrics.update(split=split, step=run.step)
    out_file = out_file or run_dir / f"eval_{split}.json"
    out_file.write_text(json.dumps(metrics, indent=2))
    click.echo(json.dumps(metrics, indent=2))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--split", type=click.Choice(["test", "val", "train"]), default=None,
              help="Render the cameras of a split (default test).")
@click.option("--orbit", type=click.IntRange(min=1), help="Render N frames on a circle around the scene.")
@click.option("--video", type=click.Path(path_type=Path, dir_okay=False), help="Also write an .mp4 of the frames.")
@click.option("--width", type=click.IntRange(min=1))
@click.option("--height", type=click.IntRange(min=1))
@click.option("--scene", "scene", type=click.Path(path_type=Path), help="Scene folder (default: the run's).")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), help="Backend (default: the run's).")
def render(run_dir, out_dir, split, orbit, video, width, height, scene, arch):
    """Render frames of a trained run: a split's cameras or an orbit."""
    from hollow_taichi import runs
    from hollow_taichi.export import render_frames

    if split and orbit:
        raise click.UsageError("choose --split or --orbit, not both")
    run = runs.load_run(run_dir, arch)
    images = getattr(runs.scene_for(run, scene), split or "test")
    cameras = images.cameras.orbit(orbit) if orbit else images.cameras
    paths = render_frames(run.renderer, cameras, out_dir, width, height, video)
    click.echo(f"wrote {len(paths)} frames to {out_dir}" + (f" and {video}" if video else ""))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def info(run_dir):
    """What a run holds: method, steps, parameters, metrics."""
    from hollow_taichi import runs

    run = runs.load_run(run_dir, "cpu")
    summary = {"method": run.config.method, "scene": run.config.scene, "step": run.step,
               "params_total": runs.parameter_count(run.field)}
    metrics_path = Path(run_dir) / runs.METRICS_NAME
    if metrics_path.is_file():
        summary["metrics"] = json.loads(metrics_path.read_text())
    click.echo(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
