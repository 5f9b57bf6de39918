"""The hollow-taichi command line: process, train, eval, render, view, export, mesh, info. Parses, validates, calls."""
from __future__ import annotations

import dataclasses
import functools
import json
import shlex
import signal
import sys
from pathlib import Path

import click

from hollow_taichi import __version__
from hollow_taichi.backend import ARCH_CHOICES, device_error
from hollow_taichi.capture.sfm import MATCHERS
from hollow_taichi.config import (MESH_DENSITY_THRESHOLD, MESH_RESOLUTION, METHODS, VIEWER_HOST, VIEWER_MAX_SIDE,
                                  VIEWER_MAX_SIDE_RANGE, VIEWER_PORT, AdmmConfig, Coding, FieldConfig, TrainConfig)
from hollow_taichi.errors import HollowError, Interrupted, RunError

DEFAULT_STEPS = 2000
# Frames taken from a video: Instant-NGP's guide asks for 50-150; SfM on 2 CPU cores takes about a
# minute per 64 frames of 480x360 (BENCHMARKS.md, "Your own captures")
DEFAULT_VIDEO_FRAMES = 100


class _Group(click.Group):
    """Turns a HollowError (or a kernel the device refused) from any command into one line on stderr
    and exit status 1; Ctrl-C outside the training loop (which saves a checkpoint first) into one
    line and 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo(f"interrupted: hollow-taichi {ctx.invoked_subcommand} stopped", err=True)
            sys.exit(128 + signal.SIGINT)
        except HollowError as error:
            fail(error)
        except RuntimeError as error:
            refused = device_error(error)
            if refused is None:
                raise
            fail(refused)


def fail(error: HollowError) -> None:
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
@click.option("--skip-missing", is_flag=True,
              help="Train on the frames whose image files exist; without it a missing image is an error.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--method", type=click.Choice(METHODS), default="hollow", show_default=True,
              help="hollow: saliency grid, gate and ADMM; ngp: plain Instant-NGP at equal settings.")
@click.option("--hash-log2", type=int, default=FieldConfig.log2_table, show_default=True,
              help="log2 of the hash table size per level.")
@click.option("--saliency-res", type=int, default=FieldConfig.saliency_resolution, show_default=True)
@click.option("--sparsity", type=float, default=AdmmConfig.sparsity, show_default=True,
              help="ADMM bound C on mean saliency.")
@click.option("--batch-samples", type=click.IntRange(min=1024), default=TrainConfig.batch_samples, show_default=True)
@click.option("--march-steps", type=click.IntRange(min=16),
              help="Finest ray-march steps per diagonal of the scene box (default: about one per pixel "
                   "footprint of the training images, at most 1024).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for Taichi (CPU backend).")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=TrainConfig.checkpoint_interval,
              show_default=True, help="Save a checkpoint every N steps (0: off).")
@click.option("--checkpoint-minutes", type=float, default=TrainConfig.checkpoint_minutes, show_default=True,
              help="Also save a checkpoint whenever M minutes of wall time passed since the last one (0: off); "
                   "with both off, training saves only at the end or when stopped by a signal.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last checkpoint, with its saved settings; "
                   "--steps/--minutes, if given, replace its budget.")
@click.option("--force", is_flag=True, help="Overwrite a run folder that holds another run.")
@click.option("--eval-views", type=int,
              help="After training, evaluate (and render) N evenly spaced test views (default: all).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Any other training setting, as named in a run's config.json (field.gate=off, "
                   "admm.sparsity=0.1, lr_saliency=0); repeatable.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--viewer", "with_viewer", is_flag=True,
              help="Serve the browser viewer of the model while it trains (needs the viewer extra).")
@click.option("--port", type=click.IntRange(1, 65535), default=VIEWER_PORT, show_default=True,
              help="The viewer's port.")
def train(scene, out_dir, arch, steps, minutes, downscale, skip_missing, seed, method, hash_log2, saliency_res,
          sparsity, batch_samples, march_steps, threads, checkpoint_every, checkpoint_minutes, resume, force,
          eval_views, settings, progress, with_viewer, port):
    """Train on SCENE (a folder with transforms_train.json or transforms.json, or builtin:sphere /
    builtin:room; default: builtin:sphere)."""
    from hollow_taichi import runs
    from hollow_taichi.scenes import builtin_scene_path

    check_view_count("--eval-views", eval_views)
    watch = viewer_for_training(port) if with_viewer else None
    if resume:
        warn_ignored_on_resume(click.get_current_context())
    config = TrainConfig(scene=str(scene or builtin_scene_path()), method=method, arch=arch, seed=seed,
                         steps=steps if steps is not None or minutes is not None or resume else DEFAULT_STEPS,
                         minutes=minutes, downscale=downscale, skip_missing=skip_missing, batch_samples=batch_samples,
                         march_steps=march_steps, threads=threads, checkpoint_interval=checkpoint_every,
                         checkpoint_minutes=checkpoint_minutes)
    config.field.log2_table = hash_log2
    config.field.saliency_resolution = saliency_res
    config.admm.sparsity = sparsity
    for setting in settings:
        config.override(setting)
    if not resume:
        config.validate()
    try:
        metrics = runs.train(config, out_dir, resume=resume, force=force, progress=progress, eval_views=eval_views,
                             watch=watch)
    except Interrupted as stop:
        click.echo(f"{stop}; resume with: hollow-taichi train --resume --out {shlex.quote(str(out_dir))}", err=True)
        sys.exit(stop.exit_code)
    click.echo(json.dumps(metrics, indent=2))
    click.echo(f"test renders in {out_dir / runs.RENDERS_NAME}, metrics in {out_dir / runs.METRICS_NAME}")


RESUME_OPTIONS = {"out_dir", "steps", "minutes", "resume", "force", "eval_views", "progress", "with_viewer", "port"}


def viewer_for_training(port: int):
    """What runs.train watches training with for --viewer; the viewer's library and port are checked
    now, before any training."""
    from hollow_taichi import viewer

    viewer.check_can_serve(VIEWER_HOST, port)
    return lambda trainer: viewer.watching(trainer, VIEWER_HOST, port)


def check_view_count(option: str, count: int | None) -> None:
    """A view count, if given, is at least 1 (a one-line error otherwise, before any work starts)."""
    if count is not None and count < 1:
        raise RunError(f"{option} must be at least 1, got {count}")


def warn_ignored_on_resume(ctx: click.Context) -> None:
    """--resume continues with the run's saved settings: say which options given here it ignores."""
    ignored = [param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
               for param in ctx.command.params if param.name not in RESUME_OPTIONS
               and ctx.get_parameter_source(param.name) == click.core.ParameterSource.COMMANDLINE]
    if ignored:
        click.echo(f"note: --resume continues with the run's saved settings; ignoring {', '.join(ignored)}", err=True)


def _eval_path(model: Path, split: str) -> Path:
    if model.is_file():
        return model.with_name(f"{model.stem}_eval_{split}.json")
    return model / f"eval_{split}.json"


@main.command(name="eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("scene", required=False, type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--out", "out_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the JSON (default RUN_DIR/eval_SPLIT.json, or MODEL_eval_SPLIT.json beside a "
                   "compact model).")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), help="Backend (default: the run's).")
@click.option("--views", type=int, help="Evaluate N evenly spaced views of the split (default: all).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def evaluate(run_dir, scene, split, out_file, arch, views, progress):
    """PSNR and SSIM of a trained run (RUN_DIR, or a compact model file) on a split of its scene (or of SCENE)."""
    from hollow_taichi import runs

    check_view_count("--views", views)
    run = runs.load_model(run_dir, arch)
    images = getattr(runs.scene_for(run, scene), split)
    metrics = runs.evaluate_views(run.renderer, images, split, views, progress=progress)
    metrics.update(split=split, step=run.step)
    out_file = out_file or _eval_path(run_dir, split)
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
@click.option("--saliency", is_flag=True,
              help="Instead of frames, write 5 z-slices of the saliency p(x) through the scene box (pruned: black).")
def render(run_dir, out_dir, split, orbit, video, width, height, scene, arch, saliency):
    """Render frames of a trained run (RUN_DIR, or a compact model file): a split's cameras or an orbit."""
    from hollow_taichi import runs
    from hollow_taichi.export import render_frames, saliency_slices

    if split and orbit:
        raise click.UsageError("choose --split or --orbit, not both")
    run = runs.load_model(run_dir, arch)
    if saliency:
        paths = saliency_slices(run.field, out_dir)
        click.echo(f"wrote {len(paths)} saliency slices to {out_dir} (viridis: 0 purple, 1 yellow; pruned: black)")
        return
    images = getattr(runs.scene_for(run, scene), split or "test")
    cameras = images.cameras.orbit(orbit) if orbit else images.cameras
    paths = render_frames(run.renderer, cameras, out_dir, width, height, video)
    click.echo(f"wrote {len(paths)} frames to {out_dir}" + (f" and {video}" if video else ""))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(1, 65535), default=VIEWER_PORT, show_default=True)
@click.option("--host", default=VIEWER_HOST, show_default=True, help="Address to serve on (0.0.0.0: every interface).")
@click.option("--scene", "scene", type=click.Path(path_type=Path),
              help="Scene folder for the start view and training cameras (default: the run's).")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), help="Backend (default: the run's).")
@click.option("--max-resolution", type=click.IntRange(*VIEWER_MAX_SIDE_RANGE), default=VIEWER_MAX_SIDE,
              show_default=True,
              help="Longer side of a full-size frame (the page's slider starts here).")
def view(run_dir, port, host, scene, arch, max_resolution):
    """Serve an interactive browser viewer of a trained run (RUN_DIR, or a compact model file) until Ctrl-C."""
    from hollow_taichi import viewer

    viewer.view_model(run_dir, host, port, arch, scene, max_resolution)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The compact model file to write.")
@click.option("--bits", type=click.IntRange(2, 16),
              help="Bits per hash-table feature, quantized per level and feature, then entropy-coded (default: "
                   f"the bits the run trained quantized at, if it did, else {Coding.table_bits}).")
@click.option("--saliency-bits", type=click.IntRange(2, 16), default=Coding.saliency_bits, show_default=True,
              help="Bits per kept saliency logit.")
@click.option("--max-mb", type=click.FloatRange(min=0, min_open=True),
              help="Instead of a fixed --bits, the most bits (up to --bits) whose file fits in this many MB.")
@click.option("--lossless", is_flag=True, help="Store every number as float32: the run's model exactly.")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), default="cpu", show_default=True)
def export(run_dir, out_file, bits, saliency_bits, max_mb, lossless, arch):
    """Write the compact model of a run: only its effective parameters (kept saliency, referenced hash
    rows, MLPs), quantized and compressed in a file that is safe to open (docs/model-format.md)."""
    from hollow_taichi import compact, runs

    if lossless and (bits or max_mb):
        raise click.UsageError("--lossless stores float32: it takes no --bits or --max-mb")
    run = runs.load_run(run_dir, arch)
    bits = bits or run.config.qat_bits or Coding.table_bits
    coding = Coding.lossless() if lossless else Coding(table_bits=bits, saliency_bits=saliency_bits)
    model = (out_file, run.config, run.field, run.renderer.occupancy, run.step)
    saved = compact.save_within(*model, int(max_mb * 1e6), coding) if max_mb else compact.save(*model, coding)
    click.echo(json.dumps({"params_total": run.field.parameter_count(), "params_effective": saved.effective.as_dict(),
                           "coding": dataclasses.asdict(saved.coding), "compact_bytes": saved.bytes}, indent=2))
    click.echo(f"compact model in {out_file} ({saved.bytes / 1e6:.3f} MB)")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The mesh (.ply, .obj or .glb) or, with --points, the point cloud (.ply) to write.")
@click.option("--resolution", type=click.IntRange(16, 2048), default=MESH_RESOLUTION, show_default=True,
              help="Density samples along the longest side of the occupied box.")
@click.option("--threshold", type=click.FloatRange(min=0, min_open=True), default=MESH_DENSITY_THRESHOLD,
              show_default=True,
              help="The density of the surface (Instant-NGP's default).")
@click.option("--points", type=click.IntRange(min=1),
              help="Instead of a mesh, N coloured points where rays of the training views end.")
@click.option("--scene", "scene", type=click.Path(path_type=Path),
              help="Scene folder, for its frame (and its cameras, with --points); default: the run's.")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), help="Backend (default: the run's).")
def mesh(run_dir, out_file, resolution, threshold, points, scene, arch):
    """Geometry of a trained run (RUN_DIR, or a compact model file): a coloured mesh by marching cubes,
    or a point cloud, in the scene's own coordinates (needs the mesh extra: pip install 'hollow-taichi[mesh]')."""
    from hollow_taichi import mesh as geometry
    from hollow_taichi import runs

    geometry.check_mesh_path(out_file, bool(points))
    geometry.require_mesh_libraries()
    run = runs.load_model(run_dir, arch)
    settings = geometry.load_scene_settings(str(scene or run.config.scene))
    if settings is None:
        click.echo(f"note: scene {scene or run.config.scene} not found: writing in the model's own (NGP) frame; "
                   "--scene DIR places it in the scene's", err=True)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    if points:
        cameras = runs.scene_for(run, scene).train.cameras
        where, colours = geometry.ray_end_points(run.renderer, cameras, points)
        geometry.save_points(out_file, geometry.to_scene_frame(where, settings), colours)
        click.echo(f"wrote {len(where):,} points to {out_file} ({out_file.stat().st_size / 1e6:.1f} MB)")
        return
    surface = geometry.extract_mesh(run.field, run.renderer.occupancy, resolution, threshold, settings)
    surface.export(out_file)
    extent = " x ".join(f"{side:.3g}" for side in surface.extents)
    click.echo(f"wrote {len(surface.vertices):,} vertices, {len(surface.faces):,} faces ({extent} in the scene's "
               f"units{'' if surface.is_watertight else ', not closed'}) to {out_file} "
               f"({out_file.stat().st_size / 1e6:.1f} MB)")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--compact", "compact_file", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="A compact model file (from export) whose size to report as well.")
def info(run_dir, compact_file):
    """What a run (RUN_DIR, or a compact model file) holds: method, steps, parameters, bytes, metrics."""
    from hollow_taichi import checkpoint, compact, runs

    run = runs.load_model(run_dir, "cpu")
    effective = compact.effective_parameters(run.field, run.config.admm.prune_threshold)
    summary = {"method": run.config.method, "scene": run.config.scene, "step": run.step,
               "params_total": run.field.parameter_count(), "params_effective": effective.as_dict()}
    if run_dir.is_file():
        summary["compact_bytes"] = run_dir.stat().st_size
    else:
        summary["checkpoint_bytes"] = (run_dir / checkpoint.CHECKPOINT_NAME).stat().st_size
    if compact_file:
        summary["compact_bytes"] = compact_file.stat().st_size
    metrics_path = Path(run_dir) / runs.METRICS_NAME
    if metrics_path.is_file():
        summary["metrics"] = json.loads(metrics_path.read_text())
    click.echo(json.dumps(summary, indent=2))


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The scene folder to write (transforms.json, images/, images_2/ _4/ _8/, sparse_pc.ply, colmap/).")
@click.option("--frames", "video_frames", type=click.IntRange(min=3), default=DEFAULT_VIDEO_FRAMES, show_default=True,
              help="From a video: about this many frames, spread evenly, each the sharpest of its stretch.")
@click.option("--matcher", type=click.Choice(MATCHERS), default="auto", show_default=True,
              help="auto: exhaustive for up to 32 photos, sequential (file-name order) for more and for a video.")
@click.option("--colmap", "colmap_model", type=click.Path(path_type=Path, file_okay=False),
              help="Convert this existing COLMAP model (cameras, images, points3D; .bin or .txt; or a project "
                   "with sparse/0) of the photos in INPUT instead of running structure from motion.")
@click.option("--aabb-scale", type=int,
              help="The scene box's edge, a power of two up to 128 (default: from the extent of the sparse points).")
@click.option("--force", is_flag=True, help="Replace what an earlier process wrote into --out.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--verbose", is_flag=True, help="Show COLMAP's own log.")
def process(input_path, out_dir, video_frames, matcher, colmap_model, aabb_scale, force, progress, verbose):
    """Camera poses for your own capture: INPUT, a folder of photos or a video file, becomes a scene
    folder that train reads, posed by COLMAP (needs the process extra: pip install 'hollow-taichi[process]')."""
    from hollow_taichi.capture.layout import check_aabb_scale
    from hollow_taichi.capture.process import convert_model, process_capture

    check_aabb_scale(aabb_scale)
    say = functools.partial(click.echo, err=True)
    if colmap_model:
        processed = convert_model(input_path, colmap_model, out_dir, aabb_scale, force, say)
    else:
        processed = process_capture(input_path, out_dir, video_frames, matcher, aabb_scale, force, progress, say,
                                    verbose)
    click.echo(json.dumps({"scene": str(processed.scene), "frames": processed.given,
                           "registered": processed.registered, "aabb_scale": processed.aabb_scale,
                           "points": processed.points}, indent=2))
    click.echo(f"train it with: hollow-taichi train {shlex.quote(str(out_dir))} --out RUN [--downscale 2|4|8] "
               "(the shrunk images are there already)")


if __name__ == "__main__":
    main()
