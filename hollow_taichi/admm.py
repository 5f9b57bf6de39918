"""ADMM sparsity constraint on the saliency grid: mean(sigmoid(G)) <= C.

The loss gains the augmented-Lagrangian terms (rho / 2) * max(S - C, 0)^2 + gamma * (S - C); the
parameters descend on it while the dual variable gamma ascends:
gamma <- max(0, gamma + dual_step * (S - C)). Both start after the warm-up.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import AdmmConfig


@dataclass
class AdmmState:
    gamma: float = 0.0
    sparsity: float = float("nan")  # S at the last step


class AdmmPruner:
    def __init__(self, config: AdmmConfig):
        self.config = config
        self.state = AdmmState()

    def penalty(self, saliency: torch.Tensor) -> torch.Tensor:
        """Augmented-Lagrangian terms for saliency probabilities sigmoid(G) (any shape)."""
        excess = saliency.mean() - self.config.sparsity
        self.state.sparsity = excess.item() + self.config.sparsity
        return 0.5 * self.config.rho * torch.relu(excess) ** 2 + self.state.gamma * excess

    def dual_update(self) -> None:
        excess = self.state.sparsity - self.config.sparsity
        self.state.gamma = max(0.0, self.state.gamma + self.config.dual_step * excess)

    def state_dict(self) -> dict:
        return {"gamma": self.state.gamma, "sparsity": self.state.sparsity}

    def load_state_dict(self, state: dict) -> None:
        self.state = AdmmState(gamma=float(state["gamma"]), sparsity=float(state["sparsity"]))
