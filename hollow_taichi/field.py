"""HollowField: hash grid * saliency -> gated density MLP -> colour MLP.

  v(x)     = sigmoid(trilerp(G, x)) * hash(x)              (saliency scaling; identity for ngp)
  sigma(x) = tanh(alpha * ||v||_2) * trunc_exp(MLP_d(v)[0])  (soft zero-skipping gate; none for ngp)
  rgb(x,d) = sigmoid(MLP_c(MLP_d(v), SH(d)))
"""
from __future__ import annotations

import torch
from torch import nn

from . import ops
from .config import FieldConfig

# Rows the density MLP runs at a time without gradient (occupancy upkeep, the visible-sample pass):
# its hidden activations then stay in cache. First layer, ReLU and last row at 2^18 rows, 2 threads,
# medians of 10: 8.1 ms in chunks of 2^14 against 13.5 in one piece (the same values).
_DENSITY_ROWS = 1 << 14


class _TruncExp(torch.autograd.Function):
    """exp whose backward clamps the exponent (Instant-NGP), so huge densities do not blow up grads."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return _TruncExp.apply(x)


def soft_zero_gate(features: torch.Tensor, alpha: float, gradient: bool = False) -> torch.Tensor:
    """tanh(alpha * ||v||_2) per row: exactly 0 where v = 0 (pruned space), ~1 elsewhere.

    By default no gradient flows through the norm (gradient=False). Hash features start at ~1e-4,
    where alpha * ||v|| ~ 1 and the gate's slope is ~alpha: its gradient would swamp the MLP's and
    pin the features near zero (measured: training stalled at 14 dB on the built-in scene). Pruning
    is the saliency grid's job; the gate only makes what the saliency zeroes decode to exactly zero
    density. gradient=True is the paper's gate, kept for the ablation (bench/hollow_ablation.py).
    """
    norm = torch.linalg.vector_norm(features if gradient else features.detach(), dim=-1)
    return torch.tanh(alpha * norm)


class HollowField(nn.Module):
    """The radiance field over the scene box `aabb` (2, 3); `hollow` switches saliency and gate on."""

    kept_cells: torch.Tensor | None = None  # (R-1)^3 bool once pruned: see prune()

    def __init__(self, config: FieldConfig, aabb: torch.Tensor, hollow: bool, aabb_scale: int = 1,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.hollow = hollow
        self.register_buffer("aabb", aabb.clone().float())
        self.encoder = ops.HashEncoder(config.levels, config.features_per_level, config.log2_table,
                                       config.base_resolution, config.finest_resolution * aabb_scale)
        self.table = self.encoder.new_table(generator)  # a Taichi field, updated by ops.TableAdam
        # The grid the table is quantized to during quantization-aware training, a step per level and
        # feature (L, F); zero while it is not (Trainer._quantize_table). Export uses it.
        self.register_buffer("table_steps", torch.zeros(config.levels, config.features_per_level,
                                                        device=self.aabb.device))
        if hollow:
            # Logit 2 (p = 0.88): v = p * f, and Adam moves f by about lr a step whatever its
            # gradient's scale, so v learns at p times the table's rate; starting near 1 keeps the
            # features learning as fast as Instant-NGP's while the scene forms, yet off the
            # sigmoid's flat top, so the pruner (after its warm-up) can pull the hollow down.
            # Measured on the built-in scene, 300 steps: logit 0 gave 19.8 dB, 2 gave 21.0, 3 gave 20.7.
            shape = (config.saliency_resolution,) * 3
            self.saliency_logits = nn.Parameter(torch.full(shape, config.saliency_init, device=self.aabb.device))
        # ReLUs in place: a rendered Lego view (~1.4M samples) spent ~0.3 s of ~4 s (one thread)
        # writing new ReLU outputs; in place it rendered 0.4-0.6 s faster in three alternating pairs.
        self.density_mlp = nn.Sequential(
            nn.Linear(self.encoder.output_dim, config.hidden), nn.ReLU(inplace=True),
            nn.Linear(config.hidden, 1 + config.geo_features),
        )
        self.color_mlp = nn.Sequential(
            nn.Linear(1 + config.geo_features + 16, config.hidden), nn.ReLU(inplace=True),
            nn.Linear(config.hidden, config.hidden), nn.ReLU(inplace=True),
            nn.Linear(config.hidden, 3),
        )
        self.gate_alpha = config.gate_alpha_early

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        """The table joins the state dict as "table", as a parameter would (it is a Taichi field)."""
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + "table"] = self.table.read()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        key = prefix + "table"
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if prefix + "table_steps" in missing_keys:  # saved before quantization-aware training: none
            missing_keys.remove(prefix + "table_steps")
        if key in unexpected_keys:
            unexpected_keys.remove(key)
        if key not in state_dict:
            missing_keys.append(key)
            return
        try:
            self.table.write(state_dict[key])
        except ValueError as error:
            error_msgs.append(f"{key}: {error}")

    def mlp_parameters(self) -> list[nn.Parameter]:
        return list(self.density_mlp.parameters()) + list(self.color_mlp.parameters())

    def parameter_count(self) -> int:
        """Parameters the model can use: the MLPs, the saliency grid (hollow) and the table rows each
        level can address, F features each (as the paper's Table 1 counts them). The allocated
        table has more rows: a dense level never reads past its (res+1)^3 vertices."""
        table = sum(self.encoder.addressable_rows()) * self.encoder.features_per_level
        saliency = self.saliency_logits.numel() if self.hollow else 0
        return sum(parameter.numel() for parameter in self.mlp_parameters()) + saliency + table

    def to_unit(self, positions: torch.Tensor) -> torch.Tensor:
        """Scene-space points (N, 3) -> the unit cube spanned by the scene box."""
        return (positions - self.aabb[0]) / (self.aabb[1] - self.aabb[0])

    def encode(self, positions: torch.Tensor, cached: ops.Encoding | None = None) -> tuple[torch.Tensor, ops.Encoding]:
        """Features v (N, L*F) of scene-space points (N, 3) (for hollow saliency-scaled, and zero in
        pruned cells), and the encode op's whole result (ops.Encoding; for hollow with p). `cached`:
        that result from a no-grad call on the same points in the same step, reused instead of
        encoding again (ops.HashEncoder)."""
        if not self.hollow:
            encoding = self.encoder(self.to_unit(positions), self.table, cached=cached)
        else:
            encoding = self.encoder(self.to_unit(positions), self.table, self.saliency_logits, cached, self.kept_cells)
        return encoding.features, encoding

    def prune(self, kept_cells: torch.Tensor | None) -> None:
        """From now on, points in saliency cells where kept_cells (R-1, R-1, R-1) is False decode to
        v = 0, hence zero density through the gate; None stops pruning.

        Their saliency is below the prune threshold but not zero, and the gate is ~1 for any v well
        above 1/alpha, so without this they would still have density. A compact model drops what
        those cells read, and full and compact models prune alike (hollow_taichi.compact).
        """
        self.kept_cells = kept_cells

    def kept_at(self, unit: torch.Tensor) -> torch.Tensor:
        """(N,) bool: whether unit-cube points (N, 3) lie in a kept saliency cell (True unpruned),
        judged by the cell whose corners their saliency comes from (ops.kept_at)."""
        if self.kept_cells is None:
            return torch.ones(unit.shape[0], dtype=torch.bool, device=unit.device)
        return ops.kept_at(unit, self.kept_cells)

    def density_and_geometry(self, positions: torch.Tensor,
                             cached: ops.Encoding | None = None) -> tuple[torch.Tensor, torch.Tensor, ops.Encoding]:
        """sigma (N,), the density MLP's whole output (N, 1 + geo_features) that color() reads, and
        the encode op's result (ops.Encoding; its saliency p carries no gradient), at scene-space
        points (N, 3). `cached`: see encode."""
        features, encoding = self.encode(positions, cached)
        out = self.density_mlp(features)
        return self._density_of(features, out[:, 0]), out, encoding

    def density_and_encoding(self, positions: torch.Tensor) -> tuple[torch.Tensor, ops.Encoding]:
        """sigma (N,) and the encode op's result at scene-space points (N, 3), without the geometry
        features color() reads: the density MLP's last layer computes the density's output alone.
        2^18 ray-coherent points, 2^17 table, 2 threads, medians of 15 (the encoding included):
        103.8 ms against 107.4 with the whole MLP. Without gradient the MLP runs _DENSITY_ROWS rows
        at a time (see there)."""
        features, encoding = self.encode(positions)
        if torch.is_grad_enabled():
            return self._density_only(features), encoding
        sigma = features.new_empty(features.shape[0])
        for rows, out in zip(features.split(_DENSITY_ROWS), sigma.split(_DENSITY_ROWS)):
            out.copy_(self._density_only(rows))
        return sigma, encoding

    def _density_only(self, features: torch.Tensor) -> torch.Tensor:
        """sigma (N,) at points of features v (N, L*F), the density MLP's last layer for its first output alone."""
        last = self.density_mlp[-1]
        raw = torch.addmv(last.bias[0], self.density_mlp[:-1](features), last.weight[0])
        return self._density_of(features, raw)

    def density(self, positions: torch.Tensor) -> torch.Tensor:
        """sigma (N,) at scene-space points (N, 3)."""
        return self.density_and_encoding(positions)[0]

    def _density_of(self, features: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """sigma (N,) from the density MLP's first output (N,) at points of features v (N, L*F)."""
        sigma = trunc_exp(raw)
        if self.hollow and self.config.gate != "off":
            sigma = soft_zero_gate(features, self.gate_alpha, self.config.gate == "gradient") * sigma
        return sigma

    def color(self, geometry: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """rgb (N, 3) from density_and_geometry's output (N, 1 + geo_features), seen along unit
        directions (N, 3)."""
        return torch.sigmoid(self.color_mlp(torch.cat([geometry, ops.sh_encode(directions)], dim=-1)))

    def forward(self, positions: torch.Tensor, directions: torch.Tensor,
                cached: ops.Encoding | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """sigma (N,) and rgb (N, 3) at points (N, 3) seen along unit directions (N, 3), and the
        points' saliency p (N,) without gradient (None for ngp). `cached`: see encode."""
        sigma, geometry, encoding = self.density_and_geometry(positions, cached)
        return sigma, self.color(geometry, directions), encoding.saliency

    def saliency_at(self, unit: torch.Tensor) -> torch.Tensor:
        """p(x) (N,) at unit-cube points (N, 3) (hollow); no gradient."""
        return self.encoder.saliency(unit, self.saliency_logits.detach())

    def saliency_probabilities(self) -> torch.Tensor:
        """sigmoid(G) (R, R, R); differentiable, for the ADMM constraint."""
        return torch.sigmoid(self.saliency_logits)
