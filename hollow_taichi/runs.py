"""Run folders: what `train` leaves behind, and loading it back for eval, render, export and info.

A run folder holds config.json (every setting, the scene path included), checkpoint.pt (the latest
complete checkpoint), metrics.json (after training) and renders/ (the evaluated test views).
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from . import backend, checkpoint, compact
from .config import TrainConfig
from .errors import RunError
from .files import remove_temporaries
from .images import write_png
from .metrics import psnr, ssim
from .progress import progress_report
from .renderer import Renderer
from .scenes import ImageSet, Scene, evenly_spaced, load_scene
from .trainer import LOG_NAME, WHITE, Trainer, build_model, ground_truth, resolve_march_settings

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.json"
RENDERS_NAME = "renders"


def prepare_run_dir(out_dir: Path, config: TrainConfig, resume: bool, force: bool) -> None:
    """Create the run folder, refusing one that holds a different run unless `force`.

    Resuming keeps the folder (the trainer loads its checkpoint) and deletes what saves cut short
    by a crash left behind.
    """
    config_path = out_dir / CONFIG_NAME
    checkpoint_path = out_dir / checkpoint.CHECKPOINT_NAME
    if resume:
        if not checkpoint_path.is_file():
            raise RunError(f"{out_dir}: nothing to resume (no {checkpoint.CHECKPOINT_NAME})")
        remove_temporaries(checkpoint_path)
        return
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        what = "holds another run" if config_path.exists() else "is not empty"
        raise RunError(f"{out_dir} {what}: choose another --out, --resume it, or pass --force to overwrite")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunError(f"{out_dir}: cannot create the run folder ({error.strerror or error})") from None
    remove_temporaries(checkpoint_path)
    checkpoint_path.unlink(missing_ok=True)
    (out_dir / METRICS_NAME).unlink(missing_ok=True)
    (out_dir / LOG_NAME).unlink(missing_ok=True)
    config.save(config_path)


def train(config: TrainConfig, out_dir: Path, resume: bool = False, force: bool = False,
          progress: bool = True, eval_views: int | None = None, watch=None) -> dict:
    """Train the scene named in `config`, evaluate on `eval_views` evenly spaced views of its test
    split (None: all), write metrics and renders. watch(trainer), if given, is a context manager
    that training runs in (train --viewer: viewer.watching)."""
    out_dir = Path(out_dir)
    if resume:
        config = resume_config(out_dir, config)
    scene = load_run_scene(config.scene, config)
    resolve_march_settings(config, scene)
    prepare_run_dir(out_dir, config, resume, force)
    trainer = Trainer(scene, config, out_dir, progress=progress)
    if resume:
        trainer.load_checkpoint(out_dir / checkpoint.CHECKPOINT_NAME)
        config.save(out_dir / CONFIG_NAME)  # with the budget this resumed run goes on to
    started = time.perf_counter()
    with watch(trainer) if watch else nullcontext():
        trainer.run()
    train_seconds = time.perf_counter() - started
    threshold = config.admm.prune_threshold
    compact.apply_pruning(trainer.field, threshold)
    eval_started = time.perf_counter()
    render_dir = clear_renders(out_dir / RENDERS_NAME)
    metrics = evaluate_views(trainer.renderer, scene.test, "test", eval_views, render_dir, progress)
    eval_seconds = time.perf_counter() - eval_started
    metrics.update(
        steps=trainer.step,
        train_seconds=round(trainer.elapsed, 2),
        eval_seconds=round(eval_seconds, 2),
        wall_seconds=round(train_seconds, 2),
        params_total=trainer.field.parameter_count(),
        params_effective=compact.effective_parameters(trainer.field, threshold).total,
        method=config.method,
        arch=backend.active(),
        scene=str(config.scene),
    )
    (out_dir / METRICS_NAME).write_text(json.dumps(metrics, indent=2))
    return metrics


def resume_config(out_dir: Path, requested: TrainConfig) -> TrainConfig:
    """The saved configuration; a budget (steps/minutes) in the new request replaces the saved one."""
    saved = TrainConfig.load(out_dir / CONFIG_NAME)
    if requested.steps is not None or requested.minutes is not None:
        saved.steps, saved.minutes = requested.steps, requested.minutes
    saved.validate()
    return saved


def clear_renders(render_dir: Path) -> Path:
    """Delete the PNGs an earlier evaluation of the run left, so renders/ holds the views metrics.json names."""
    for path in render_dir.glob("*.png"):
        path.unlink()
    return render_dir


def evaluate_views(renderer: Renderer, images: ImageSet, split: str, views: int | None = None,
                   render_dir: Path | None = None, progress: bool = False) -> dict:
    """evaluate() on `views` evenly spaced frames of a split (None: all), recording how many and
    which: SPLIT_views and SPLIT_view_indices (positions in the split)."""
    indices = evenly_spaced(len(images), views)
    chosen = images if len(indices) == len(images) else images.subset(indices)  # all: no copy of the images
    metrics = evaluate(renderer, chosen, render_dir, progress)
    metrics.update({f"{split}_views": len(indices), f"{split}_view_indices": indices})
    return metrics


@torch.no_grad()
def evaluate(renderer: Renderer, images: ImageSet, render_dir: Path | None = None, progress: bool = False) -> dict:
    """PSNR and SSIM over a split (white background), optionally writing each render as PNG and
    reporting progress per view (the running mean PSNR) on stderr."""
    if render_dir is not None:
        render_dir.mkdir(parents=True, exist_ok=True)
    psnrs, ssims = [], []
    with progress_report(progress, len(images), 0, unit="view") as report:
        for index in range(len(images)):
            image = renderer.render_view(images.cameras, index, WHITE).cpu()
            target = ground_truth(images, index)
            psnrs.append(psnr(image, target))
            ssims.append(ssim(image, target))
            if render_dir is not None:
                write_png(render_dir / f"{Path(images.paths[index]).stem}.png", image)
            report.update(index + 1, {"psnr": float(sum(psnrs)) / len(psnrs)})
    count = max(len(psnrs), 1)
    return {"psnr": round(float(sum(psnrs)) / count, 4), "ssim": round(float(sum(ssims)) / count, 5),
            "images": len(psnrs)}


@dataclass
class LoadedRun:
    config: TrainConfig
    renderer: Renderer
    step: int

    @property
    def field(self):
        return self.renderer.field


def load_run(run_dir: Path, arch: str | None = None) -> LoadedRun:
    """Rebuild the trained model of a run folder from its config and latest checkpoint."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    config = TrainConfig.load(run_dir / CONFIG_NAME)
    path = run_dir / checkpoint.CHECKPOINT_NAME
    state = checkpoint.load(path)
    checkpoint.check_config(path, state, config.to_dict())
    backend.init(arch or config.arch, config.threads)
    with checkpoint.restoring(path):
        scene_box = state["field"]["aabb"]
        aabb_scale = int(round((scene_box[1] - scene_box[0])[0].item()))
        field, occupancy, renderer = build_model(config, scene_box, aabb_scale)
        field.load_state_dict(state["field"])
        field.gate_alpha = state["gate_alpha"]
        occupancy.load_state_dict(state["occupancy"])
    compact.apply_pruning(field, config.admm.prune_threshold)
    return LoadedRun(config, renderer, state["step"])


def load_model(path: Path, arch: str | None = None) -> LoadedRun:
    """A run folder, or a compact model file written by `export`, ready to render (pruned)."""
    path = Path(path)
    if path.is_file():
        return LoadedRun(*compact.load(path, arch))
    return load_run(path, arch)


def scene_for(run: LoadedRun, scene_path: str | None) -> Scene:
    return load_run_scene(scene_path or run.config.scene, run.config)


def load_run_scene(scene_path: str, config: TrainConfig) -> Scene:
    """A scene loaded as the run's configuration says; frames that --skip-missing left out are
    counted in one line on stderr."""
    scene = load_scene(scene_path, config.downscale, config.skip_missing)
    if scene.skipped:
        print(f"note: {skipped_summary(scene.skipped)}", file=sys.stderr)
    return scene


def skipped_summary(skipped: dict[str, int]) -> str:
    """{"train": 2, "test": 1} -> 'skipped 3 frames whose images are missing (2 train, 1 test)'."""
    total = sum(skipped.values())
    per_split = ", ".join(f"{count} {name}" for name, count in skipped.items())
    return f"skipped {total} frame{'s' if total != 1 else ''} whose images are missing ({per_split})"
