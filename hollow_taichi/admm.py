"""ADMM sparsity constraint on the saliency grid: mean(sigmoid(G)) <= C.

The loss gains the augmented-Lagrangian terms (rho / 2) * max(S - C, 0)^2 + gamma * (S - C); the
parameters descend on it while the dual variable gamma ascends:
gamma <- max(0, gamma + dual_step * (S - C)). Both start after the warm-up.

The dual step is small (1e-5). S starts near sigmoid(2) = 0.88, far above C, and the logits can
fall only about lr a step (Adam), so gamma integrates a large violation for a hundred steps or
more; with dual step 1e-3 it wound up to ~0.05 and, since S - C is at most -C once the
constraint holds, needed thousands of steps to unwind: all along it pressed every logit down like
an L1 term, and S ended at a fraction of C (Lego 2^17: S = 0.007 for C = 0.04). With 1e-5 the
quadratic term does the pruning and gamma stays ~3e-4 (Lego: S = 0.024, measured together with the
logits' momentum switched off, trainer.make_optimizer; the two were not measured apart on Lego).
The paper's form, rho = dual step = 1, pruned everything on the built-in scene (7.8 dB):
bench/hollow_ablation.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import AdmmConfig


def corner_saliency(logits: torch.Tensor) -> torch.Tensor:
    """(R-1)^3: the largest saliency p at the 8 corners of each cell of the logit grid (R, R, R)."""
    return torch.sigmoid(F.max_pool3d(logits.detach()[None, None], kernel_size=2, stride=1)[0, 0])


def kept_cells(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """(R-1)^3 bool: cells of the logit grid (R, R, R) whose largest corner saliency >= threshold.

    Saliency inside a cell is the sigmoid of a trilerp of its 8 corners, so it stays below the
    largest corner's: a cell that is not kept is below the threshold everywhere (pruned).
    """
    return corner_saliency(logits) >= threshold


@dataclass
class AdmmState:
    gamma: float = 0.0
    sparsity: float = float("nan")  # S at the last step


class AdmmPruner:
    def __init__(self, config: AdmmConfig):
        self.config = config
        self.state = AdmmState()

    def penalty(self, saliency: torch.Tensor) -> torch.Tensor:
        """Augmented-Lagrangian terms for saliency probabilities sigmoid(G) (any shape); with
        penalty "l1", the paper's alternative l1_weight * S instead (no constraint, no dual)."""
        sparsity = saliency.mean()
        self.state.sparsity = sparsity.item()
        if self.config.penalty == "l1":
            return self.config.l1_weight * sparsity
        excess = sparsity - self.config.sparsity
        return 0.5 * self.config.rho * torch.relu(excess) ** 2 + self.state.gamma * excess

    def dual_update(self) -> None:
        if self.config.penalty == "l1":
            return
        excess = self.state.sparsity - self.config.sparsity
        self.state.gamma = max(0.0, self.state.gamma + self.config.dual_step * excess)

    def state_dict(self) -> dict:
        return {"gamma": self.state.gamma, "sparsity": self.state.sparsity}

    def load_state_dict(self, state: dict) -> None:
        self.state = AdmmState(gamma=float(state["gamma"]), sparsity=float(state["sparsity"]))
