"""HollowNeRF's effective parameters, and the compact model file that holds exactly those.

A saliency cell (one of the (R-1)^3 cells of the logit grid G) is kept when the saliency could reach
the prune threshold inside it: the max of sigmoid over its 8 corner logits >= threshold (sigmoid of
a trilerp is bounded by its corners' max). Points in other cells decode to v = 0
(HollowField.prune), so a pruned model reads only:
  - the logits at the corners of kept cells,
  - per level, the table rows of the vertices of level cells that touch a kept cell
    (kernels.compaction), F features each,
  - the MLP weights.
Their count is the effective parameter count. For ngp every addressable parameter is effective
(HollowField.parameter_count).

A compact model file holds those (kept cells and referenced rows as bit masks, then the values,
quantized by default: hollow_taichi.quantize), the configuration and what rendering needs besides
(scene box, gate alpha, occupancy bits), in the container of hollow_taichi.container: a JSON header
and zstd-compressed arrays, no pickle. Loading it rebuilds a field whose missing rows are zero and
whose missing logits lie below the threshold, so it keeps and prunes the same cells, and renders
what the full model renders up to the quantization (exactly, with Coding.lossless()).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import backend, checkpoint, container, ops, quantize
from .admm import kept_cells
from .config import Coding, TrainConfig
from .errors import RunError
from .field import HollowField
from .occupancy import OccupancyGrid
from .renderer import Renderer
from .trainer import build_model

KIND = "hollow-taichi compact model"


@dataclass
class EffectiveParameters:
    mlp: int
    saliency: int  # logits at the corners of kept cells
    table: int  # referenced rows x F, all levels

    @property
    def total(self) -> int:
        return self.mlp + self.saliency + self.table

    def as_dict(self) -> dict:
        return {"mlp": self.mlp, "saliency": self.saliency, "table": self.table, "total": self.total}


def corner_vertices(kept: torch.Tensor) -> torch.Tensor:
    """R^3 bool: grid vertices that are a corner of some kept cell ((R-1)^3 bool)."""
    padded = F.pad(kept.float()[None, None], (1, 1, 1, 1, 1, 1))
    return F.max_pool3d(padded, kernel_size=2, stride=1)[0, 0].bool()


def apply_pruning(field: HollowField, threshold: float) -> None:
    """Prune the cells of a hollow field whose saliency stays below threshold (no-op for ngp)."""
    if field.hollow:
        field.prune(kept_cells(field.saliency_logits, threshold))


def referenced_rows(field: HollowField, threshold: float) -> list[torch.Tensor]:
    """Per level, (T,) bool: the table rows that points in kept cells read (for ngp, every row the
    level can address)."""
    encoder = field.encoder
    if not field.hollow:
        return [torch.arange(encoder.table_size) < rows for rows in encoder.addressable_rows()]
    kept = kept_cells(field.saliency_logits, threshold)
    cells = torch.nonzero(kept).to(torch.int32)
    return [ops.referenced_rows(cells, kept.shape[0], resolution, encoder.table_size).cpu()
            for resolution in encoder.resolutions]


def effective_parameters(field: HollowField, threshold: float) -> EffectiveParameters:
    kept = kept_cells(field.saliency_logits, threshold) if field.hollow else None
    return _counted(field, referenced_rows(field, threshold), kept)


def _counted(field: HollowField, rows: list[torch.Tensor], kept: torch.Tensor | None) -> EffectiveParameters:
    """The effective parameters of a field that reads `rows` (referenced_rows) and keeps the saliency
    cells `kept` (None for ngp)."""
    mlp = sum(parameter.numel() for parameter in field.mlp_parameters())
    saliency = 0 if kept is None else int(corner_vertices(kept).sum())
    table = sum(int(level.sum()) for level in rows) * field.encoder.features_per_level
    return EffectiveParameters(mlp, saliency, table)


# --- the file ----------------------------------------------------------------------------------


@dataclass
class Saved:
    """What export wrote: the effective parameters the file holds, its size in bytes and its coding."""

    effective: EffectiveParameters
    bytes: int
    coding: Coding


def _pack(mask: torch.Tensor) -> np.ndarray:
    return np.packbits(mask.cpu().numpy().ravel())


def _unpack(path: Path, bits: np.ndarray, shape: tuple[int, ...], what: str) -> torch.Tensor:
    count = math.prod(shape)
    _expect(path, bits.ndim == 1 and bits.size == (count + 7) // 8, f"{what} mask of {bits.size} bytes")
    return torch.from_numpy(np.unpackbits(bits, count=count).astype(bool)).reshape(shape)


def _expect(path: Path, condition: bool, what: str) -> None:
    if not condition:
        raise RunError(f"{path}: damaged compact model ({what} does not fit its configuration)")


def _pruned_logit(threshold: float) -> float:
    """What the logits a compact model drops are set to on loading: one whose saliency is below
    threshold, so that the cells they are corners of stay pruned."""
    p = min(threshold, 0.5)
    return math.log(p / (1.0 - p)) - 1.0 if p > 0 else 0.0


def _threshold_logit(threshold: float) -> float:
    return math.log(threshold / (1.0 - threshold))


def _table_arrays(field: HollowField, rows: list[torch.Tensor], bits: int | None,
                  grid: np.ndarray | None) -> dict[str, np.ndarray]:
    """The referenced rows (referenced_rows) as one bit mask (L x T) and their features (M, F), level
    after level: float32, or codes with a step per level and feature: the table's own grid (L, F) if
    it trained on one (quantization-aware training at these bits), else the least-error grid for the
    values."""
    table = field.table.read().cpu().numpy()
    values = [table[level][mask.numpy()] for level, mask in enumerate(rows)]
    arrays = {"table.rows": _pack(torch.stack(rows))}
    if bits is None:
        arrays["table.values"] = np.concatenate(values)
        return arrays
    if grid is None:
        codes, steps = zip(*(quantize.symmetric(level, bits) for level in values))
    else:
        codes, steps = [quantize.codes_on_grid(level, grid[index], bits) for index, level in enumerate(values)], grid
    codes = np.concatenate(codes)
    symbols = quantize.row_symbols(codes, bits)
    arrays.update({"table.codes": codes} if symbols is None else {"table.symbols": symbols})
    arrays["table.steps"] = np.stack(steps).astype(np.float32)
    return arrays


def trained_grid(config: TrainConfig, field: HollowField, bits: int | None) -> np.ndarray | None:
    """The grid (L, F) the table trained on, if it trained quantized at `bits` bits (config.qat_bits)."""
    if bits is None or bits != config.qat_bits or not field.table_steps.any():
        return None
    return field.table_steps.cpu().numpy()


def _saliency_arrays(field: HollowField, kept: torch.Tensor, threshold: float,
                     bits: int | None) -> tuple[dict[str, np.ndarray], dict]:
    """The kept cells as a bit mask and the logits at their corners (float32, or codes that keep
    every logit on its side of the threshold); and the meta data that decodes them."""
    corners = field.saliency_logits.detach().cpu()[corner_vertices(kept)].numpy()
    arrays = {"saliency.kept": _pack(kept)}
    if bits is None:
        arrays["saliency.logits"] = corners
        return arrays, {}
    codes, step = quantize.threshold_preserving(corners, _threshold_logit(threshold), bits)
    arrays["saliency.codes"] = codes
    return arrays, {"saliency_step": step}


def _mlp_arrays(field: HollowField, dtype: str) -> dict[str, np.ndarray]:
    modules = {"density": field.density_mlp, "color": field.color_mlp}
    return {f"mlp.{name}.{key}": value.detach().cpu().numpy().astype(dtype)
            for name, module in modules.items() for key, value in module.state_dict().items()}


def save(path: Path, config: TrainConfig, field: HollowField, occupancy: OccupancyGrid, step: int,
         coding: Coding = Coding()) -> Saved:
    """Write the compact model of a field (atomically, as checkpoints are written) in the safe
    container (hollow_taichi.container); returns what it holds."""
    coding.check()
    threshold = config.admm.prune_threshold
    rows = referenced_rows(field, threshold)
    kept = kept_cells(field.saliency_logits, threshold).cpu() if field.hollow else None
    aabb = field.aabb.cpu()
    grid = trained_grid(config, field, coding.table_bits)
    arrays = {"aabb": aabb.numpy(), "occupancy": occupancy.bitfield.cpu().numpy(),
              **_mlp_arrays(field, coding.mlp_dtype), **_table_arrays(field, rows, coding.table_bits, grid)}
    meta = {"config": config.to_dict(), "step": step, "aabb_scale": int(round((aabb[1] - aabb[0])[0].item())),
            "gate_alpha": field.gate_alpha, "table_shape": list(field.table.shape),
            "coding": dataclasses.asdict(coding)}
    if field.hollow:
        saliency, saliency_meta = _saliency_arrays(field, kept, threshold, coding.saliency_bits)
        arrays.update(saliency)
        meta.update(saliency_meta)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    size = container.write(Path(path), KIND, meta, arrays)
    return Saved(_counted(field, rows, kept), size, coding)


def save_within(path: Path, config: TrainConfig, field: HollowField, occupancy: OccupancyGrid, step: int,
                max_bytes: int, coding: Coding = Coding()) -> Saved:
    """save() at the most bits per table feature, up to coding.table_bits, whose file takes at most
    max_bytes (a bisection: the size grows with the bits); RunError if 2 bits take more."""
    low, high, best = 2, coding.table_bits or 16, None
    while low <= high:
        bits = (low + high) // 2
        saved = save(path, config, field, occupancy, step, dataclasses.replace(coding, table_bits=bits))
        if saved.bytes <= max_bytes:
            low, best = bits + 1, saved
        else:
            high = bits - 1
    if best is None:
        raise RunError(f"{path}: at 2 bits per table feature the model takes {saved.bytes:,} bytes, "
                       f"more than {max_bytes:,}")
    if saved is not best:  # the last file written was a larger one
        best = save(path, config, field, occupancy, step, best.coding)
    return best


def _table_codes(path: Path, arrays: dict, bits, columns: int) -> np.ndarray:
    """The table's codes (M, F), stored as they are or as one symbol a row (quantize.row_symbols)."""
    if "table.symbols" not in arrays:
        return arrays["table.codes"]
    _expect(path, isinstance(bits, int) and 2 <= bits <= 16 and arrays["table.symbols"].ndim == 1, "table symbols")
    return quantize.codes_of_symbols(arrays["table.symbols"], bits, columns)


def _dense_table(path: Path, arrays: dict, meta: dict, shape: tuple[int, ...]) -> torch.Tensor:
    rows = _unpack(path, arrays["table.rows"], shape[:2], "table rows")
    counts = rows.sum(dim=1).tolist()
    if "table.values" in arrays:
        values = arrays["table.values"]
    else:
        codes = _table_codes(path, arrays, meta["coding"]["table_bits"], shape[2])
        steps = arrays["table.steps"]
        _expect(path, steps.shape == (shape[0], shape[2]), "table steps")
        level_of_row = np.repeat(np.arange(shape[0]), counts)
        _expect(path, codes.shape == (sum(counts), shape[2]), "table codes")
        values = quantize.dequantize(codes, steps[level_of_row])
    _expect(path, values.shape == (sum(counts), shape[2]), "table values")
    table = torch.zeros(shape)
    table[rows] = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return table


def _dense_logits(path: Path, arrays: dict, meta: dict, resolution: int, threshold: float) -> torch.Tensor:
    kept = _unpack(path, arrays["saliency.kept"], (resolution - 1,) * 3, "kept saliency cells")
    vertices = corner_vertices(kept)
    if "saliency.logits" in arrays:
        values = arrays["saliency.logits"]
    else:
        step = meta.get("saliency_step")
        _expect(path, isinstance(step, float) and step > 0, "saliency step")
        values = quantize.threshold_dequantize(arrays["saliency.codes"], _threshold_logit(threshold), step)
    _expect(path, values.shape == (int(vertices.sum()),), "saliency logits")
    logits = torch.full((resolution,) * 3, _pruned_logit(threshold))
    logits[vertices] = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return logits


def _load_mlps(path: Path, field: HollowField, arrays: dict) -> None:
    for name, module in {"density": field.density_mlp, "color": field.color_mlp}.items():
        state = {key: torch.from_numpy(arrays[f"mlp.{name}.{key}"].astype(np.float32))
                 for key in module.state_dict()}
        module.load_state_dict(state)


@torch.no_grad()
def load(path: Path, arch: str | None = None) -> tuple[TrainConfig, Renderer, int]:
    """Rebuild a compact model, pruned and ready to render: (config, renderer, training step)."""
    path = Path(path)
    meta, arrays = container.read(path, KIND)
    with checkpoint.restoring(path, "compact model"):
        config = TrainConfig.from_dict(meta["config"])
        threshold = config.admm.prune_threshold
        backend.init(arch or config.arch, config.threads)
        field, occupancy, renderer = build_model(config, torch.from_numpy(arrays["aabb"]), int(meta["aabb_scale"]))
        shape = tuple(meta["table_shape"])
        _expect(path, shape == tuple(field.table.shape), "table shape")
        field.table.write(_dense_table(path, arrays, meta, shape))
        _load_mlps(path, field, arrays)
        if field.hollow:
            resolution = config.field.saliency_resolution
            field.saliency_logits.copy_(_dense_logits(path, arrays, meta, resolution, threshold))
        field.gate_alpha = float(meta["gate_alpha"])
        bits = arrays["occupancy"]
        _expect(path, bits.shape == tuple(occupancy.bitfield.shape), "occupancy bits")
        occupancy.bitfield = torch.from_numpy(bits.copy()).to(occupancy.bitfield.device)
    apply_pruning(field, threshold)
    return config, renderer, int(meta["step"])
