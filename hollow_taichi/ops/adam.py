"""Adam on the hash table where it lives (kernels.adam)."""
from __future__ import annotations

import math

import torch

from .. import backend
from ..kernels import adam
from .hash_grid import HashTable
from .tensors import float32


class TableAdam:
    """Adam (torch.optim.Adam's update, no weight decay) on a HashTable, in place, in one kernel that
    also resets the table's gradient; the moments are torch tensors, this object's state.

    Every entry is updated every step, as torch's Adam does (entries with zero gradient still move
    by their decaying first moment), so training matches a torch Adam over the table.
    """

    def __init__(self, table: HashTable, lr: float, betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-15):
        self.table = table
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.steps = 0
        self.first_moment = torch.zeros(table.shape, device=backend.device())
        self.second_moment = torch.zeros(table.shape, device=backend.device())

    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1.0 - beta1**self.steps)
        root_bias_correction2 = math.sqrt(1.0 - beta2**self.steps)
        adam.adam_step(self.table.field, self.first_moment, self.second_moment, step_size, beta1, beta2,
                       root_bias_correction2, self.eps)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "first_moment": self.first_moment.clone(),
                "second_moment": self.second_moment.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        self.first_moment = float32(state["first_moment"]).clone()
        self.second_moment = float32(state["second_moment"]).clone()
