"""Run configuration: every setting of a training run, saved with it as config.json."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .errors import RunError
from .files import atomic_write

METHODS = ("hollow", "ngp")
GATES = ("detached", "gradient", "off")
PENALTIES = ("admm", "l1")

# The browser viewer's defaults (hollow_taichi.viewer), here beside the command line's other settings.
VIEWER_HOST, VIEWER_PORT = "127.0.0.1", 8080
VIEWER_MAX_SIDE = 640  # a full frame; on a busy 2-core CPU a full frame of the built-in scene took tens of
# seconds (BENCHMARKS.md, viewer table), so the refining frames before it matter there; the slider goes lower
VIEWER_MAX_SIDE_RANGE = (64, 2048)  # the "Max resolution" slider's and --max-resolution's range
MESH_RESOLUTION = 256  # `mesh`: density samples along the longest side of the occupied box
MESH_DENSITY_THRESHOLD = 2.5  # `mesh`: Instant-NGP's default marching-cubes threshold (its testbed's mesh thresh)


@dataclass
class FieldConfig:
    levels: int = 16
    features_per_level: int = 2
    # Rows per level, 2^17 (Instant-NGP's default is 2^19). On 2 CPU cores, 10 minutes, hollow, alone
    # one after the other: Lego 2^17 1090 steps, 29.29 dB over all 200 test views; 2^19 731 steps,
    # 28.35 (a step reads and updates a 4x larger table at random: 419 against 706 ms after the
    # pruning). builtin:room, side by side: 2^17 433 steps, 25.00 dB held out; 2^19 300, 24.10. At
    # equal steps the larger table bought hollow little (Lego, 1000 steps, seeds 0 / 1: 2^17 29.10 /
    # 28.72 dB, 2^19 29.37 / 28.67). Not measured past 3000 steps, where a larger table may pay again.
    log2_table: int = 17
    base_resolution: int = 16
    finest_resolution: int = 2048  # times the scene's aabb_scale
    hidden: int = 64
    geo_features: int = 15
    saliency_resolution: int = 64
    saliency_init: float = 2.0  # logit; see HollowField for why it starts at sigmoid(2) = 0.88
    gate: str = "detached"  # hollow's soft zero-skipping gate: detached (no gradient), gradient (the paper's), off
    gate_alpha_early: float = 1e4
    gate_alpha_late: float = 1e5
    gate_switch_fraction: float = 0.5  # of the training budget


@dataclass
class AdmmConfig:
    penalty: str = "admm"  # admm: the constraint S <= C below; l1: the paper's alternative, l1_weight * S
    l1_weight: float = 0.05  # the dual gamma the pruner wound up to on the built-in scene (dual step 1e-3)
    sparsity: float = 0.04  # C in mean(sigmoid(G)) <= C
    rho: float = 1.0  # weight of the quadratic penalty (rho / 2) * max(S - C, 0)^2
    dual_step: float = 1e-5  # rho_gamma in gamma <- max(0, gamma + rho_gamma * (S - C)); see AdmmPruner
    warmup_fraction: float = 0.1  # of the training budget before the pruner starts
    prune_threshold: float = 0.01  # saliency below this is pruned: decodes to zero, never sampled
    # Fraction of the budget at which the pruner stops and the kept saliency is raised to ~1 over
    # harden_length more of it (the logits frozen): kept space then trains as Instant-NGP's. None: never.
    # Lego 2^19, 1000 steps, 40 test views, one thread, harden_start 0.5, against ngp at seeds 0 / 1:
    # -0.26 / -0.20 dB (the default -0.05 / -0.52); the training batches' PSNR over steps 701-1000
    # came level with ngp's (30.32 against 30.30; the default 30.06), the test views' did not: off.
    # The kept set is the prune threshold's: at 0.3, 97.8% of the logits were still above it and
    # nothing was pruned (-0.25 / +0.18 dB, an unpruned model); start once the pruning is done.
    harden_start: float | None = None
    harden_length: float = 0.1


@dataclass(frozen=True)
class Coding:
    """How a compact file stores its numbers: bits per table feature and per saliency logit (None:
    float32, lossless) and the MLP weights' dtype."""

    # For a run that trained unquantized (a quantization-aware run exports at its own qat_bits):
    # Lego, hollow 2^17, 25 test views: 4 bits cost 0.19-0.29 dB, 5 bits 0.05-0.09 (BENCHMARKS.md,
    # "Size against quality").
    table_bits: int | None = 5
    saliency_bits: int | None = 8
    mlp_dtype: str = "float16"

    @classmethod
    def lossless(cls) -> "Coding":
        return cls(table_bits=None, saliency_bits=None, mlp_dtype="float32")

    def check(self) -> None:
        for name in ("table_bits", "saliency_bits"):
            bits = getattr(self, name)
            if bits is not None and not 2 <= bits <= 16:
                raise RunError(f"{name.replace('_', ' ')} must be between 2 and 16, got {bits}")
        if self.mlp_dtype not in ("float16", "float32"):
            raise RunError(f"MLP weights are stored as float16 or float32, not {self.mlp_dtype!r}")


@dataclass
class TrainConfig:
    scene: str = ""
    method: str = "hollow"
    arch: str = "auto"
    seed: int = 0
    steps: int | None = None
    minutes: float | None = None
    downscale: int = 1
    skip_missing: bool = False  # leave out frames whose image files are missing, instead of refusing the scene
    # Samples per step; rays per step adapt to reach it. Lego, 10 minutes on 2 cores, alone, 40 test
    # views, seeds 0 / 1: 2^16 995 / 1011 steps, 28.98 / 29.14 dB; 2^15 1611 / 1533, 29.32 / 28.78;
    # 2^14 (seed 0) 2181, 28.54. A step's fixed cost (~0.14 s) eats the extra steps of smaller batches.
    batch_samples: int = 1 << 16
    max_rays: int = 1 << 14
    # The MLPs' learning rate, Instant-NGP's. At the ~1,300 Lego steps ten minutes buy on 2 cores,
    # twice this rate for MLPs and table together did better, and on the capture-like room worse,
    # through the MLPs (equal steps, side by side, --threads 1): Lego, hollow, 1300 steps, 40 test
    # views, seeds 0 / 1: 1e-2 29.76 / 29.87 dB, 2e-2 30.06 / 30.37; builtin:room, 800 steps, seed 0,
    # held out: 1e-2 26.85, 2e-2 26.21, 2e-2 for the MLPs alone 26.23, for the table alone 26.92.
    # Decaying from half the budget to 0.03x instead (Lego, seed 0) gave 28.97, from 0.9 of it 29.82.
    lr: float = 1e-2
    # The hash table's learning rate (Instant-NGP's is lr's). Lego 2^17, 1300 steps, 40 test views,
    # side by side, --threads 1, seeds 0 / 1, hollow | ngp (dB): 1e-2 29.76 / 29.87 | 29.73 / 29.23;
    # 2e-2 30.17 / 30.01 | 30.05 / 30.04; 4e-2 30.54 / 30.11 | 30.45 / 30.07; 8e-2 30.65 / 30.60 |
    # 30.59 / 30.33. builtin:room, 800 steps, held out, seeds 0 / 1: 2e-2 26.92 / 26.60, 4e-2
    # 26.82 / 26.92, 8e-2 26.82 / 26.92 (1e-2 26.85 at seed 0). Lego 3000 steps, seed 0, hollow:
    # 2e-2 32.35, 8e-2 32.68. 1.6e-1: Lego 30.86 / 30.64 | 30.66 / 30.44; room 27.09 / 26.88; Lego
    # 3000 steps, seed 0, hollow | ngp: 8e-2 32.68 | 32.72, 1.6e-1 32.77 | 32.80 (faster rates not
    # measured). Other tables, 1.6e-1 - 8e-2 per view, seeds 0 / 1: hollow 2^15 +0.17 (seed 0), 2^16
    # +0.17 / -0.13, 2^18 +0.20 / +0.07, 2^19 -0.04 / -0.03; ngp 2^15 +0.09, 2^19 +0.03 / +0.00.
    # Hollow's table trains at table_lr / mean p on top (table_lr_follows_saliency;
    # docs/history/benchmarks-2026-11.md,
    # "The hash table's rate at 4e-2 and 8e-2", "HollowNeRF against Instant-NGP at every table; the
    # table's rate 1.6e-1" and "HollowNeRF against Instant-NGP at the defaults").
    table_lr: float = 1.6e-1
    # Lego 2^19, 1000 steps, 40 test views, one thread, against ngp at seeds 0 / 1 / 2: 1e-1 gave
    # -0.05 / -0.52 / -0.05 dB, 5e-2 -0.48 / -0.95 / (not run); the logits meet C by step ~300
    # instead of ~350 and overshoot it less (S 0.025-0.029 at the end against 0.022-0.024). Slowing
    # them once C held (x 0.1) gave -0.96 / -1.57 (docs/history/benchmarks-2026-11.md,
    # "The saliency's rate").
    lr_saliency: float = 1e-1
    saliency_beta1: float = 0.0  # Adam's momentum for the saliency logits; see make_optimizer
    saliency_beta2: float = 0.9  # Adam's second-moment decay for the saliency logits; see make_optimizer
    table_lr_follows_saliency: bool = True  # hollow: table lr / mean saliency; see Trainer._set_learning_rates
    # hollow: the density MLP's first layer (which reads v = p f) too; Lego 2^19, 1000 steps, 40 test
    # views, seeds 0 / 1: -0.98 / +0.03 dB against ngp (default -0.61 / -0.65): unsettled, so off.
    input_lr_follows_saliency: bool = False
    # Quantization-aware training of the hash table (None: off): from qat_start of the budget on, the
    # table reads its values rounded to qat_bits-bit codes on a grid per level and feature (the
    # compact file's quantizer, hollow_taichi.quantize), the gradient passed straight through to a
    # float latent copy; `export` then holds exactly the model that trained. Lego, hollow 2^17, 25
    # test views, against training in float: 1000 steps 29.94 dB in a 0.90 MB file against 30.19
    # (the float run rounded to 3 bits 29.34, to 4 bits 30.00 in 1.16 MB); 2000 steps 31.74 against
    # 32.12 (4 bits 31.83 in 1.19 MB). BENCHMARKS.md, "Size against quality".
    qat_bits: int | None = 3
    qat_start: float = 0.8
    lr_decay_start: float = 0.8  # fraction of the budget trained at the full learning rate
    lr_final_fraction: float = 0.1  # then it decays exponentially to lr * this at the end
    weight_decay: float = 1e-6  # on MLP weights
    # Weight of Mip-NeRF 360's distortion loss (losses.distortion_loss) beside the colour's MSE; 0: off.
    # builtin:room, 10 minutes, pairs side by side (docs/history/benchmarks-2026-11.md,
    # "Torch's threads beside Taichi's"):
    # 1e-3 halved the samples a ray keeps but cost 0.68 / 0.97 / 1.00 dB held out (the last at equal
    # steps, 1048 against 1043: 25.78 against 26.77); 1e-4 cost 0.62 with 13% fewer steps. Off.
    distortion_weight: float = 0.0
    march_steps: int | None = None  # finest steps per unit-cube diagonal; None: one per pixel footprint
    cone_angle: float | None = None  # steps grow as t * this (aabb_scale > 1); None: renderer.cone_angle_for
    # Captures (cameras inside a large box) as Instant-NGP trains and renders them (its testbed.h
    # defaults: near_distance 0.1, random_bg_color, render_min_transmittance 0.01, untrained
    # density-grid cells). builtin:room, 800 steps, held out, one setting added at a time (`python
    # bench/room.py --ablation --steps 800`): none 25.32 dB; + random background 26.71; + near plane
    # 26.76; + unseen cells empty 26.73 (what it buys is upkeep: updates skip those cells); the last
    # model rendered with the threshold 0.01 26.69. One seed: only the random background is beyond noise.
    near_distance: float = 0.1  # no sample nearer than this to a camera (NGP units; Instant-NGP's 0.1)
    random_background: bool = True  # training composites over random colours, also for opaque images
    mark_unseen: bool = True  # occupancy cells no training camera sees stay empty
    # rendering stops a ray once this little light is left. A trained Lego run (2^19, 1000 steps), 4 test
    # views at 400x400, alone on 2 cores: 1e-4 29.800 dB, 5.2-5.9 s/view; 0.01 29.778 dB, 4.7-4.8 s/view
    render_min_transmittance: float = 0.01
    occupancy_resolution: int = 128
    occupancy_interval: int = 16  # steps between refreshes of a one-cascade grid; see OccupancyGrid
    occupancy_warmup: int = 256
    occupancy_decay: float = 0.95  # per refresh of a one-cascade grid
    # The share of Instant-NGP's cells a refresh samples (OccupancyGrid); None: batch_samples / 2^18,
    # at most 1: after the warm-up a step's upkeep then costs what Instant-NGP's costs its step. Lego
    # 2^17, 1000 steps, 40 test views, seeds 0 / 1: 1/4 30.14 / 29.94 dB, 1 (every cell) 29.93 / 29.66.
    occupancy_sample_fraction: float | None = None
    eval_interval: int = 500
    log_interval: int = 50  # steps between records in train_log.jsonl
    eval_images: int = 1
    checkpoint_interval: int = 1000
    checkpoint_minutes: float = 2.0  # also save after this much wall time since the last save (0: off)
    threads: int | None = None
    field: FieldConfig = dataclasses.field(default_factory=FieldConfig)
    admm: AdmmConfig = dataclasses.field(default_factory=AdmmConfig)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise RunError(f"unknown method {self.method!r}: choose hollow or ngp")
        if self.steps is None and self.minutes is None:
            raise RunError("give a training budget: --steps N or --minutes M")
        if self.steps is not None and self.steps < 1:
            raise RunError(f"--steps must be at least 1, got {self.steps}")
        if self.minutes is not None and not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise RunError(f"--minutes must be a positive number, got {self.minutes}")
        if not (self.distortion_weight >= 0 and math.isfinite(self.distortion_weight)):
            raise RunError(f"distortion_weight must be a non-negative number, got {self.distortion_weight}")
        if not (self.checkpoint_minutes >= 0 and math.isfinite(self.checkpoint_minutes)):
            raise RunError(f"--checkpoint-minutes must be a non-negative number, got {self.checkpoint_minutes}")
        fraction = self.occupancy_sample_fraction
        if fraction is not None and not 0 < fraction <= 1:
            raise RunError(f"occupancy_sample_fraction must be in (0, 1], got {fraction}")
        if not 8 <= self.field.log2_table <= 24:
            raise RunError(f"--hash-log2 must be between 8 and 24, got {self.field.log2_table}")
        if self.field.saliency_resolution < 2:
            raise RunError(f"--saliency-res must be at least 2, got {self.field.saliency_resolution}")
        if self.field.gate not in GATES:
            raise RunError(f"unknown gate {self.field.gate!r}: choose one of {', '.join(GATES)}")
        if self.admm.penalty not in PENALTIES:
            raise RunError(f"unknown sparsity penalty {self.admm.penalty!r}: choose one of {', '.join(PENALTIES)}")
        if not 0 < self.admm.sparsity <= 1:
            raise RunError(f"--sparsity must be in (0, 1], got {self.admm.sparsity}")
        if self.qat_bits is not None and not 2 <= self.qat_bits <= 16:
            raise RunError(f"qat_bits must be between 2 and 16, got {self.qat_bits}")
        if not 0 <= self.qat_start < 1:
            raise RunError(f"qat_start must be in [0, 1), got {self.qat_start}")
        start = self.admm.harden_start
        if start is not None and not self.admm.warmup_fraction <= start < 1:
            raise RunError(f"admm.harden_start must be in [admm.warmup_fraction, 1), got {start}")
        if not self.admm.harden_length > 0:
            raise RunError(f"admm.harden_length must be positive, got {self.admm.harden_length}")

    def override(self, assignment: str) -> None:
        """Apply one `--set KEY=VALUE`: KEY a setting of this config, or of its field or admm part
        (`field.gate`, `admm.sparsity`); VALUE parsed as that setting's type. For experiments with the
        settings the command line has no option for; validate() still judges the result."""
        key, separator, text = assignment.partition("=")
        if not separator:
            raise RunError(f"--set {assignment!r}: expected KEY=VALUE")
        section, _, name = key.strip().rpartition(".")
        target = {"": self, "field": self.field, "admm": self.admm}.get(section)
        names = {item.name: item for item in dataclasses.fields(target)} if target is not None else {}
        if name not in names or dataclasses.is_dataclass(getattr(target, name)):
            raise RunError(f"--set {assignment!r}: no setting {key.strip()!r} (see config.json of a run for the names)")
        setattr(target, name, _parse_setting(assignment, names[name].type, text.strip()))

    @property
    def hollow(self) -> bool:
        return self.method == "hollow"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = dict(values)
        field_values = values.pop("field", {})
        admm_values = values.pop("admm", {})
        if "lr" in values and "table_lr" not in values:
            values["table_lr"] = values["lr"]  # saved before table_lr existed, when the table trained at lr
        if "occupancy_interval" in values and "occupancy_sample_fraction" not in values:
            values["occupancy_sample_fraction"] = 1.0  # saved before it, when refreshes sampled Instant-NGP's cells
        try:
            return cls(field=FieldConfig(**field_values), admm=AdmmConfig(**admm_values), **values)
        except TypeError as error:
            raise RunError(f"configuration does not match this version of hollow-taichi: {error}") from None

    def save(self, path: Path) -> None:
        """Write config.json atomically, so a crash never leaves a run without its configuration."""
        text = json.dumps(self.to_dict(), indent=2)
        atomic_write(path, lambda file: file.write(text.encode("utf-8")))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise RunError(f"{path}: no run configuration here (is this a training output folder?)") from None
        except (OSError, UnicodeDecodeError) as error:
            raise RunError(f"{path}: cannot read ({error})") from None
        except json.JSONDecodeError as error:
            raise RunError(f"{path}: malformed JSON ({error})") from None
        if not isinstance(values, dict):
            raise RunError(f"{path}: expected a JSON object at the top level")
        try:
            return cls.from_dict(values)
        except RunError as error:
            raise RunError(f"{path}: {error}") from None


def _parse_setting(assignment: str, annotation: str, text: str):
    """`text` as a value of the setting's annotated type ("int", "float | None", "bool", "str", ...)."""
    kinds = [kind.strip() for kind in annotation.split("|")]
    if "None" in kinds and text.lower() in ("none", "null"):
        return None
    kind = next(kind for kind in kinds if kind != "None")
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        return {"int": int, "float": float, "str": str}[kind](text)
    except ValueError:
        raise RunError(f"--set {assignment!r}: {text!r} is not a valid {kind}") from None
