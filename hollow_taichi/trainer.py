"""The training loop: batches, loss, optimizer, ADMM step, occupancy upkeep, eval, checkpoints."""
from __future__ import annotations

import json
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import backend, checkpoint, ops, quantize
from .admm import AdmmPruner, kept_cells
from .config import TrainConfig
from .errors import Interrupted, RunError
from .files import atomic_write
from .field import HollowField
from .metrics import psnr, rgba_to_rgb
from .occupancy import INSTANT_NGP_BATCH_SAMPLES, INSTANT_NGP_STEPS, OccupancyGrid
from .progress import Progress, progress_report
from .renderer import INSTANT_NGP_CONE_ANGLE, Renderer, cone_angle_for, march_steps_for
from .scenes import ImageSet, Scene

WHITE = (1.0, 1.0, 1.0)
_MIN_RAYS = 256
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
LOG_NAME = "train_log.jsonl"
MIN_SALIENCY_FOR_LR = 0.1  # the table's learning rate grows at most 10x as the saliency falls
TABLE_AND_MLP_BETAS = (0.9, 0.99)  # Adam's, as Instant-NGP's
ADAM_EPS = 1e-15
INPUT_LAYER_GROUP = "mlp_input"  # the density MLP's first layer, when its rate follows the saliency
HARDENED_LOGIT_RISE = 8.0  # what hardening adds to a kept logit: p >= 0.01 becomes >= 0.97


@dataclass
class StepStats:
    loss: float
    psnr: float
    samples: int
    rays: int


class StopSignals:
    """While active, SIGINT and SIGTERM are recorded in `received` instead of ending the process,
    so that the training loop can stop after the step it is in. Signals reach only the main
    thread; elsewhere the handlers are left alone."""

    def __init__(self):
        self.received: signal.Signals | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._record)
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _record(self, number: int, frame) -> None:
        self.received = signal.Signals(number)


def cascades_for(aabb_scale: int) -> int:
    return int(math.log2(aabb_scale)) + 1


def resolve_march_settings(config: TrainConfig, scene: Scene) -> None:
    """Fill in config.march_steps and config.cone_angle (None: about one step per pixel footprint of
    the training images; no cone tracing in a unit box)."""
    if config.march_steps is None:
        config.march_steps = march_steps_for(scene.train.cameras)
    if config.cone_angle is None:
        config.cone_angle = 0.0 if scene.aabb_scale == 1 else cone_angle_for(scene.train.cameras)


def build_model(config: TrainConfig, aabb: torch.Tensor, aabb_scale: int,
                generator: torch.Generator | None = None) -> tuple[HollowField, OccupancyGrid, Renderer]:
    """Field, occupancy grid and renderer for a scene box; Taichi must already be started."""
    device = backend.device()
    field = HollowField(config.field, aabb.to(device), config.hollow, aabb_scale, generator).to(device)
    occupancy = OccupancyGrid(cascades_for(aabb_scale), config.occupancy_resolution, config.occupancy_decay, device,
                              config.march_steps or INSTANT_NGP_STEPS, config.occupancy_interval,
                              occupancy_sample_fraction(config))
    cone_angle = config.cone_angle
    if cone_angle is None:  # a run saved before the setting: it marched as Instant-NGP does
        cone_angle = 0.0 if aabb_scale == 1 else INSTANT_NGP_CONE_ANGLE
    renderer = Renderer(field, occupancy, cone_angle=cone_angle, near=config.near_distance,
                        render_min_transmittance=config.render_min_transmittance)
    return field, occupancy, renderer


def occupancy_sample_fraction(config: TrainConfig) -> float:
    """config.occupancy_sample_fraction, or (None) the batch's share of Instant-NGP's, at most 1."""
    if config.occupancy_sample_fraction is not None:
        return config.occupancy_sample_fraction
    return min(1.0, config.batch_samples / INSTANT_NGP_BATCH_SAMPLES)


def make_optimizer(field: HollowField, config: TrainConfig) -> torch.optim.Adam:
    """Adam over the MLPs and (hollow) the saliency logits, each group with its own rate (the table
    has its own Adam, make_table_optimizer, with the same betas and eps).

    The saliency logits get a short second-moment memory (saliency_beta2, 0.9). The sparsity
    penalty's gradient on a logit is proportional to p(1 - p), which shrinks as e^logit once p is
    small; Adam's step is that gradient over the root of its remembered squares, so with
    beta2 = 0.99 a logit falls at most ~ln(1/0.99)/2 = 0.005 per step and pruned cells need
    thousands of steps to reach the prune threshold. Measured on the built-in scene (300 steps,
    logits starting at 0): beta2 0.99 left every logit within [-3.6, -2.8] and no cell pruned; 0.9
    separated them (median -6.5, top 1% above -0.5) and met the constraint.

    They get no momentum either (saliency_beta1, 0): with beta1 = beta2 = 0.9, Adam's step keeps
    its size while both moments decay, so a logit coasts ~20 steps at full rate after the penalty
    stops pushing and the pruner overshoots C. Lego 2^17, 1000 steps, table lr following the
    saliency: beta1 0.9 with dual step 1e-3 ended at S = 0.007 and 27.95 dB; beta1 0 with dual
    step 1e-5 at S = 0.024 and 28.84 dB (ngp: 28.76).

    With input_lr_follows_saliency the density MLP's first-layer weight has a group of its own,
    whose rate _set_learning_rates scales as the table's.
    """
    mlp = field.mlp_parameters()
    groups = [{"name": "mlp", "params": mlp, "lr": config.lr, "weight_decay": config.weight_decay}]
    if field.hollow and config.input_lr_follows_saliency:
        first_layer = field.density_mlp[0].weight
        groups = [{**groups[0], "params": [parameter for parameter in mlp if parameter is not first_layer]},
                  {**groups[0], "name": INPUT_LAYER_GROUP, "params": [first_layer]}]
    if field.hollow:
        groups.append({"name": "saliency", "params": [field.saliency_logits], "lr": config.lr_saliency,
                       "weight_decay": 0.0, "betas": (config.saliency_beta1, config.saliency_beta2)})
    for group in groups:
        group["initial_lr"] = group["lr"]
    return torch.optim.Adam(groups, betas=TABLE_AND_MLP_BETAS, eps=ADAM_EPS)


def make_table_optimizer(field: HollowField, config: TrainConfig) -> ops.TableAdam:
    """Adam over the hash table where it lives (a Taichi field): no step copies the table or its
    gradient between Taichi and torch; the moments are torch tensors."""
    return ops.TableAdam(field.table, config.table_lr, TABLE_AND_MLP_BETAS, ADAM_EPS)


class TrainingLog:
    """DIR/train_log.jsonl: one JSON object per logged step (loss, PSNR, samples/s, lr, S and gamma
    for hollow, val_psnr where evaluated)."""

    def __init__(self, path: Path):
        self.path = path

    def append(self, record: dict) -> None:
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        """The records written so far; a last line cut short by a crash is left out."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def truncate_after(self, step: int) -> None:
        """Drop records past `step`: a run resumed from the checkpoint at `step` logs them again."""
        kept = [record for record in self.records() if record["step"] <= step]
        atomic_write(self.path, lambda file: file.write("".join(json.dumps(r) + "\n" for r in kept).encode()))


class Trainer:
    """Trains a HollowField on a scene; `run` goes until the step or time budget is spent."""

    def __init__(self, scene: Scene, config: TrainConfig, out_dir: Path, progress: bool = True):
        config.validate()
        self.scene = scene
        self.config = config
        self.out_dir = Path(out_dir)
        self.progress = progress
        backend.init(config.arch, config.threads)
        self.device = backend.device()
        torch.manual_seed(config.seed)
        self.generator = torch.Generator().manual_seed(config.seed)
        resolve_march_settings(config, scene)
        self.field, self.occupancy, self.renderer = build_model(config, scene.aabb, scene.aabb_scale, self.generator)
        if config.mark_unseen:
            cameras = scene.train.cameras
            self.occupancy.mark_unseen(cameras.c2w, cameras.view_bounds(), config.near_distance)
        self.optimizer = make_optimizer(self.field, config)
        self.table_optimizer = make_table_optimizer(self.field, config)
        self.admm = AdmmPruner(config.admm) if config.hollow else None
        self.train_images = scene.train.images.to(self.device)
        self.train_cameras = scene.train.cameras.to(self.device)
        self.step = 0
        self.lr_decay = 1.0  # the schedule's factor on every learning rate
        self.table_lr_scale = 1.0  # and the table's extra factor; see _set_learning_rates
        self.hardened = 0.0  # how far the kept saliency has been raised to 1, in [0, 1]; see _harden_saliency
        self.elapsed = 0.0
        self.samples_trained = 0  # samples that went through the field's forward and backward
        self.checkpoint_step: int | None = None
        self.last_save = time.monotonic()  # wall clock of the last checkpoint, or of the run's start
        self.log = TrainingLog(self.out_dir / LOG_NAME)
        self.step_hook: Callable[[int], None] | None = None  # called with the step after each (train --viewer)
        # The first batch assumes every ray marches the whole box; later batches adapt to what they saw.
        self.rays_per_step = min(config.max_rays, max(_MIN_RAYS, config.batch_samples // config.march_steps))

    # --- schedule ------------------------------------------------------------------------------

    def budget_fraction(self) -> float:
        """How much of the step/time budget is spent, in [0, 1]."""
        fractions = []
        if self.config.steps is not None:
            fractions.append(self.step / self.config.steps)
        if self.config.minutes is not None:
            fractions.append(self.elapsed / (60.0 * self.config.minutes))
        return min(1.0, max(fractions))

    def _apply_schedule(self) -> None:
        """Learning-rate decay (set on the groups by _set_learning_rates) and gate alpha for where the
        run is in its budget.

        The learning rate stays at its full value until lr_decay_start, then decays exponentially
        (as Instant-NGP's late decay). Measured on the built-in scene, 250 steps: decaying over the
        whole run (to 0.03) gave 19.2 dB test PSNR, no decay 22.4 dB, this schedule 22.3 dB.
        """
        fraction = self.budget_fraction()
        start = self.config.lr_decay_start
        self.lr_decay = self.config.lr_final_fraction ** (max(0.0, fraction - start) / max(1.0 - start, 1e-9))
        late = fraction >= self.config.field.gate_switch_fraction
        self.field.gate_alpha = self.config.field.gate_alpha_late if late else self.config.field.gate_alpha_early

    def _set_learning_rates(self, mean_saliency: torch.Tensor | None) -> None:
        """Every group's rate times the schedule's decay; the table's also over the batch's mean
        saliency p (hollow, table_lr_follows_saliency).

        v = p * f, and Adam moves a table entry f by about lr a step whatever its gradient's scale,
        so v moves p times as far as Instant-NGP's features: once the pruner has pulled the kept
        cells' saliency down (S ends near C or below), the hash features learn several times
        slower. Dividing the table's rate by the mean p of the samples that trained it gives v
        Instant-NGP's rate again; the factor is capped at 1 / MIN_SALIENCY_FOR_LR. The density MLP's
        first layer reads v, so Adam's steps on its weights move its output p times as far as
        Instant-NGP's: with input_lr_follows_saliency its rate gets the same factor.
        """
        if not self.config.table_lr_follows_saliency or mean_saliency is None:
            self.table_lr_scale = 1.0
        else:
            self.table_lr_scale = 1.0 / max(float(mean_saliency), MIN_SALIENCY_FOR_LR)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * self.lr_decay
            if group["name"] == INPUT_LAYER_GROUP:
                group["lr"] *= self.table_lr_scale
            if group["name"] == "saliency" and self.hardening():
                group["lr"] = 0.0
        self.table_optimizer.lr = self.config.table_lr * self.lr_decay * self.table_lr_scale

    def pruning(self) -> bool:
        """Whether the pruner has started: from then on pruned cells are never sampled."""
        return self.admm is not None and self.budget_fraction() >= self.config.admm.warmup_fraction

    def hardening(self) -> bool:
        """Whether admm.harden_start is reached: the logits no longer train (see _harden_saliency)."""
        start = self.config.admm.harden_start
        return self.admm is not None and start is not None and self.budget_fraction() >= start

    def admm_active(self) -> bool:
        """Whether the sparsity penalty and its dual step run: after the warm-up, until hardening."""
        return self.pruning() and not self.hardening()

    def _harden_saliency(self) -> None:
        """Once hardening starts, raise the kept logits (p >= the prune threshold) towards
        HARDENED_LOGIT_RISE more, evenly over harden_length of the budget; the logits no longer train
        and the pruned ones stay where they are, so the kept set does not change. Kept space then
        reads v ~ f, as Instant-NGP's, and the table's rate factor returns to ~1."""
        if not self.hardening():
            return
        start, length = self.config.admm.harden_start, self.config.admm.harden_length
        target = min(1.0, (self.budget_fraction() - start) / length)
        if target <= self.hardened:
            return
        with torch.no_grad():
            logits = self.field.saliency_logits
            kept = torch.sigmoid(logits) >= self.config.admm.prune_threshold
            logits[kept] += HARDENED_LOGIT_RISE * (target - self.hardened)
        self.hardened = target

    # --- one step ------------------------------------------------------------------------------

    def sample_batch(self, n_rays: int):
        """Random training pixels: ray origins, directions, backgrounds and target colours (n, 3).

        The background is a random colour per ray (random_background; always for RGBA images), as
        Instant-NGP trains: an opaque pixel's target does not depend on it, so any light the model
        lets through is penalised, and the field cannot fit a view with semi-transparent clouds
        tinted by a known background colour.
        """
        images = self.train_images
        n_frames, height, width, channels = images.shape
        frame = torch.randint(0, n_frames, (n_rays,), generator=self.generator).to(self.device)
        x = torch.randint(0, width, (n_rays,), generator=self.generator).to(self.device)
        y = torch.randint(0, height, (n_rays,), generator=self.generator).to(self.device)
        origins, directions = self.train_cameras.rays(frame, x.float() + 0.5, y.float() + 0.5)
        pixels = images[frame, y, x].float() / 255.0
        if channels == 4 or self.config.random_background:
            background = torch.rand((n_rays, 3), generator=self.generator).to(self.device)
        else:
            background = torch.ones((n_rays, 3), device=self.device)
        target = rgba_to_rgb(pixels, background) if channels == 4 else pixels
        return origins, directions, background, target

    def quantizing(self) -> bool:
        """Whether quantization-aware training of the table (config.qat_bits) has started."""
        return self.config.qat_bits is not None and self.budget_fraction() >= self.config.qat_start

    def _quantize_table(self) -> None:
        """Once quantizing, the table trains on a grid of qat_bits-bit codes (ops.TableAdam.quantize),
        fitted to the table when quantization starts; the field keeps the grid (table_steps) for export.

        The grid is fitted once. Fitted again to the latent every 64 steps, it shrank at every fit
        (the latent is held within the grid's ends, and the least-error step for values piled there
        is smaller). Lego, 1000 steps, quantizing from step 500: level 0's step went from 4.9 to 1.5,
        each end code held 11.5% of the features (the float run rounded to 3 bits: 4%), 2.76 bits of
        entropy a feature against 2.47, a 0.977 MB file against 0.876. Quantizing from step 800, a
        grid fitted once gave 0.896 MB against 0.930 refitted, at the same 29.94 dB."""
        if not self.quantizing() or self.table_optimizer.latent is not None:
            return
        table = self.field.table.read().cpu().numpy()
        grid = quantize.level_steps(table, self.field.encoder.addressable_rows(), self.config.qat_bits)
        self.field.table_steps.copy_(torch.from_numpy(grid))
        self.table_optimizer.quantize(self.field.table_steps, self.config.qat_bits)

    def train_step(self) -> StepStats:
        self._apply_schedule()
        self._harden_saliency()
        self._quantize_table()
        origins, directions, background, target = self.sample_batch(self.rays_per_step)
        jitter = torch.rand(origins.shape[0], generator=self.generator).to(self.device)
        distortion_weight = self.config.distortion_weight
        result = self.renderer.render_rays(origins, directions, background, jitter, distortion=distortion_weight > 0)
        self._set_learning_rates(result.mean_saliency)
        mse = torch.mean((result.color - target) ** 2)
        loss = mse
        if result.distortion is not None:
            loss = loss + distortion_weight * result.distortion
        if self.admm_active():
            loss = loss + self.admm.penalty(self.field.saliency_probabilities())
        if not torch.isfinite(loss):
            raise RunError(f"training diverged: loss is {loss.item()} at step {self.step}; {self.checkpoint_note()}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.table_optimizer.step()
        if self.admm_active():
            self.admm.dual_update()
        self.step += 1
        if self.occupancy.update_due(self.step):
            self._update_occupancy()
        self._adapt_rays(result.n_samples)
        return StepStats(mse.item(), -10.0 * math.log10(max(mse.item(), 1e-10)), result.n_samples, origins.shape[0])

    def _update_occupancy(self) -> None:
        """Refresh the occupancy grid; once the pruner runs, pruned saliency cells are marked empty
        too, so the marcher never samples them (pruned = skipped)."""
        if self.pruning():
            self.occupancy.restrict_to(kept_cells(self.field.saliency_logits, self.config.admm.prune_threshold))
        self.occupancy.update(self.field.density, self.step <= self.config.occupancy_warmup, self.generator)

    def _adapt_rays(self, n_samples: int) -> None:
        """Scale rays per step so that the samples per step approach the budget (Instant-NGP)."""
        per_ray = max(n_samples, 1) / self.rays_per_step
        wanted = int(self.config.batch_samples / per_ray)
        self.rays_per_step = int(min(self.config.max_rays, max(_MIN_RAYS, wanted)))

    # --- loop ----------------------------------------------------------------------------------

    def finished(self) -> bool:
        return self.budget_fraction() >= 1.0

    def run(self) -> None:
        """Train until the budget is spent, checkpointing on the way and at the end.

        SIGINT or SIGTERM stops the loop after the current step; the checkpoint is saved, then
        Interrupted is raised.
        """
        self.last_save = time.monotonic()
        with StopSignals() as stop:
            with progress_report(self.progress, self.config.steps, self.step) as report:
                while not self.finished() and stop.received is None:
                    self._run_step(report)
            path = self.save_checkpoint()
        if stop.received is not None:
            raise Interrupted(f"interrupted by {stop.received.name} at step {self.step}: checkpoint saved in {path}",
                              stop.received)

    def _run_step(self, report: Progress) -> None:
        """One training step with its progress report, log record, periodic evaluation and checkpoint."""
        started = time.perf_counter()
        stats = self.train_step()
        seconds = time.perf_counter() - started
        self.elapsed += seconds
        self.samples_trained += stats.samples
        progress = self._progress(stats, seconds)
        report.update(self.step, progress)
        if self.config.eval_interval and self.step % self.config.eval_interval == 0:
            progress["val_psnr"] = self.evaluate_psnr(self.scene.val, self.config.eval_images)
            report.note(f"step {self.step}: val PSNR {progress['val_psnr']:.2f} dB")
        if "val_psnr" in progress or (self.config.log_interval and self.step % self.config.log_interval == 0):
            self.log.append({"step": self.step, "seconds": round(self.elapsed, 3), "lr": self._lr(), **progress})
        if self.checkpoint_due():
            self.save_checkpoint()
        if self.step_hook is not None:
            self.step_hook(self.step)

    def checkpoint_due(self) -> bool:
        """Every checkpoint_interval steps, and whenever checkpoint_minutes of wall time passed since the
        last save: a run killed without a signal (kill -9, out of memory) loses at most that much."""
        interval, minutes = self.config.checkpoint_interval, self.config.checkpoint_minutes
        by_steps = interval > 0 and self.step % interval == 0
        by_time = minutes > 0 and time.monotonic() - self.last_save >= 60.0 * minutes
        return by_steps or by_time

    def _progress(self, stats: StepStats, seconds: float) -> dict[str, float]:
        """What the progress bar and the log report of a step (ADMM's S and gamma once the pruner runs)."""
        progress = {"loss": stats.loss, "psnr": stats.psnr, "samples/s": stats.samples / max(seconds, 1e-9)}
        if self.field.hollow:
            progress["table_lr_scale"] = self.table_lr_scale
        if self.admm_active():
            progress.update(S=self.admm.state.sparsity, gamma=self.admm.state.gamma)
        return progress

    def _lr(self) -> float:
        """The MLPs' scheduled learning rate (the table's is table_lr times the same decay and table_lr_scale)."""
        return self.config.lr * self.lr_decay

    # --- evaluation ----------------------------------------------------------------------------

    def evaluate_psnr(self, images: ImageSet, count: int) -> float:
        """Mean PSNR on the first `count` images of a split, over a white background."""
        scores = []
        for index in range(min(count, len(images))):
            target = ground_truth(images, index).to(self.device)
            scores.append(psnr(self.renderer.render_view(images.cameras, index, WHITE), target))
        return float(sum(scores) / max(len(scores), 1))

    # --- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "rays_per_step": self.rays_per_step,
            "field": self.field.state_dict(),
            "gate_alpha": self.field.gate_alpha,
            "optimizer": self.optimizer.state_dict(),
            "table_optimizer": self.table_optimizer.state_dict(),
            "occupancy": self.occupancy.state_dict(),
            "admm": None if self.admm is None else self.admm.state_dict(),
            "hardened": self.hardened,
            "rng": {"torch": torch.get_rng_state(), "generator": self.generator.get_state()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        self.elapsed = state["elapsed"]
        self.rays_per_step = state["rays_per_step"]
        self.field.load_state_dict(state["field"])
        self.field.gate_alpha = state["gate_alpha"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.table_optimizer.load_state_dict(state["table_optimizer"])
        self.occupancy.load_state_dict(state["occupancy"])
        if self.admm is not None:
            self.admm.load_state_dict(state["admm"])
        self.hardened = state.get("hardened", 0.0)
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        self.checkpoint_step = self.step
        self.log.truncate_after(self.step)

    def load_checkpoint(self, path: Path) -> None:
        """Continue from the checkpoint at `path`; RunError if it was trained with other settings."""
        state = checkpoint.load(path)
        checkpoint.check_config(path, state, self.config.to_dict())
        with checkpoint.restoring(path):
            self.load_state_dict(state)

    def save_checkpoint(self) -> Path:
        """Save the training state atomically; a diverged state never replaces the last good one.

        Saving reads the state (RNG included) without changing it, and its time is not counted in
        `elapsed`, the clock of the time budget: when and how often a run saves changes nothing it learns.
        """
        parameters = [*self.field.parameters(), self.field.table.read()]
        if not all(torch.isfinite(parameter).all() for parameter in parameters):
            raise RunError(f"training diverged: non-finite parameters at step {self.step}; {self.checkpoint_note()}")
        path = self.out_dir / checkpoint.CHECKPOINT_NAME
        checkpoint.save(path, self.state_dict())
        self.checkpoint_step = self.step
        self.last_save = time.monotonic()
        return path

    def checkpoint_note(self) -> str:
        """Where the last complete checkpoint of this run is, for messages."""
        if self.checkpoint_step is None:
            return "no checkpoint was saved yet"
        return f"the last good checkpoint (step {self.checkpoint_step}) is {self.out_dir / checkpoint.CHECKPOINT_NAME}"


def ground_truth(images: ImageSet, index: int) -> torch.Tensor:
    """Frame `index` as float RGB (H, W, 3), RGBA composited over white."""
    pixels = images.images[index].float() / 255.0
    if pixels.shape[-1] == 4:
        return rgba_to_rgb(pixels, torch.tensor(WHITE, device=pixels.device))
    return pixels
