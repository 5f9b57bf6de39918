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

A compact model file holds those (logits and rows as bit masks plus values), the configuration and
what rendering needs besides (scene box, gate alpha, occupancy bits). Loading it rebuilds a field
whose missing rows are zero and whose missing logits lie below the threshold, so it keeps and
prunes the same cells and renders what the full model renders.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import backend, checkpoint, ops
from .admm import kept_cells
from .config import TrainConfig
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
    mlp = sum(parameter.numel() for parameter in field.mlp_parameters())
    rows = sum(int(level.sum()) for level in referenced_rows(field, threshold))
    saliency = 0
    if field.hollow:
        saliency = int(corner_vertices(kept_cells(field.saliency_logits, threshold)).sum())
    return EffectiveParameters(mlp, saliency, rows * field.encoder.features_per_level)


# --- the file ----------------------------------------------------------------------------------


def _pack(mask: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.packbits(mask.cpu().numpy().ravel()))


def _unpack(bits: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    count = math.prod(shape)
    return torch.from_numpy(np.unpackbits(bits.numpy(), count=count).astype(bool)).reshape(shape)


def _pruned_logit(threshold: float) -> float:
    """What the logits a compact model drops are set to on loading: one whose saliency is below
    threshold, so that the cells they are corners of stay pruned."""
    p = min(threshold, 0.5)
    return math.log(p / (1.0 - p)) - 1.0 if p > 0 else 0.0


def _sparse_table(field: HollowField, threshold: float) -> dict:
    rows = referenced_rows(field, threshold)
    table = field.table.read().cpu()
    return {"shape": list(table.shape), "rows": [_pack(level) for level in rows],
            "values": [table[index][level] for index, level in enumerate(rows)]}


def _sparse_logits(field: HollowField, threshold: float) -> dict | None:
    if not field.hollow:
        return None
    logits = field.saliency_logits.detach().cpu()
    vertices = corner_vertices(kept_cells(logits, threshold))
    return {"vertices": _pack(vertices), "logits": logits[vertices]}


def save(path: Path, config: TrainConfig, field: HollowField, occupancy: OccupancyGrid,
         step: int) -> EffectiveParameters:
    """Write the compact model of a field (atomically, as checkpoints are written); returns what it holds."""
    threshold = config.admm.prune_threshold
    aabb = field.aabb.cpu()
    table = _sparse_table(field, threshold)
    saliency = _sparse_logits(field, threshold)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(path, {
        "kind": KIND,
        "config": config.to_dict(),
        "step": step,
        "aabb": aabb,
        "aabb_scale": int(round((aabb[1] - aabb[0])[0].item())),
        "gate_alpha": field.gate_alpha,
        "mlp": {"density": field.density_mlp.state_dict(), "color": field.color_mlp.state_dict()},
        "table": table,
        "saliency": saliency,
        "occupancy": occupancy.bitfield.cpu(),
    })
    return EffectiveParameters(
        mlp=sum(parameter.numel() for parameter in field.mlp_parameters()),
        saliency=0 if saliency is None else saliency["logits"].numel(),
        table=sum(values.numel() for values in table["values"]),
    )


def _dense_table(sparse: dict) -> torch.Tensor:
    shape = tuple(sparse["shape"])
    table = torch.zeros(shape)
    for level, (bits, values) in enumerate(zip(sparse["rows"], sparse["values"])):
        table[level][_unpack(bits, shape[1:2])] = values
    return table


def _dense_logits(sparse: dict, resolution: int, threshold: float) -> torch.Tensor:
    shape = (resolution,) * 3
    logits = torch.full(shape, _pruned_logit(threshold))
    logits[_unpack(sparse["vertices"], shape)] = sparse["logits"]
    return logits


def _read(path: Path) -> dict:
    state = checkpoint.load(path)
    if state.get("kind") != KIND:
        raise RunError(f"{path}: not a compact model (write one with `hollow-taichi export`)")
    return state


@torch.no_grad()
def load(path: Path, arch: str | None = None) -> tuple[TrainConfig, Renderer, int]:
    """Rebuild a compact model, pruned and ready to render: (config, renderer, training step)."""
    path = Path(path)
    state = _read(path)
    config = TrainConfig.from_dict(state["config"])
    threshold = config.admm.prune_threshold
    backend.init(arch or config.arch, config.threads)
    with checkpoint.restoring(path):
        field, occupancy, renderer = build_model(config, state["aabb"], state["aabb_scale"])
        field.table.write(_dense_table(state["table"]))
        field.density_mlp.load_state_dict(state["mlp"]["density"])
        field.color_mlp.load_state_dict(state["mlp"]["color"])
        if field.hollow:
            field.saliency_logits.copy_(_dense_logits(state["saliency"], config.field.saliency_resolution, threshold))
        field.gate_alpha = state["gate_alpha"]
        occupancy.bitfield = state["occupancy"].to(occupancy.bitfield.device)
    apply_pruning(field, threshold)
    return config, renderer, state["step"]
