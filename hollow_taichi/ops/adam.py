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

    After quantize(), Adam updates a float latent copy of the table and the table reads the latent
    rounded to a grid (quantization-aware training, kernels.adam.adam_step_quantized).
    """

    def __init__(self, table: HashTable, lr: float, betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-15):
        self.table = table
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.steps = 0
        self.first_moment = torch.zeros(table.shape, device=backend.device())
        self.second_moment = torch.zeros(table.shape, device=backend.device())
        self.latent: torch.Tensor | None = None  # the float table while quantized
        self.quantization_steps: torch.Tensor | None = None  # (L, F): the grid's step per level and feature
        self.largest_code = 0

    def quantize(self, steps: torch.Tensor, bits: int) -> None:
        """From now on the table holds its latent values rounded to steps (L, F) per level and
        feature, as codes of `bits` bits (hollow_taichi.quantize.symmetric's grid); the latent starts
        as the table."""
        self.latent = self.table.read().clone()
        self.quantization_steps = float32(steps).to(self.latent.device).contiguous()
        self.largest_code = 2 ** (bits - 1) - 1
        codes = torch.round(self.latent / self.quantization_steps[:, None, :])
        self.table.write(codes.clamp(-self.largest_code, self.largest_code) * self.quantization_steps[:, None, :])

    def step(self) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1.0 - beta1**self.steps)
        root_bias_correction2 = math.sqrt(1.0 - beta2**self.steps)
        if self.latent is None:
            adam.adam_step(self.table.field, self.first_moment, self.second_moment, step_size, beta1, beta2,
                           root_bias_correction2, self.eps)
        else:
            adam.adam_step_quantized(self.table.field, self.latent, self.first_moment, self.second_moment,
                                     self.quantization_steps, float(self.largest_code), step_size, beta1, beta2,
                                     root_bias_correction2, self.eps)

    def state_dict(self) -> dict:
        state = {"steps": self.steps, "first_moment": self.first_moment.clone(),
                 "second_moment": self.second_moment.clone()}
        if self.latent is not None:
            state.update(latent=self.latent.clone(), quantization_steps=self.quantization_steps.clone(),
                         largest_code=self.largest_code)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        self.first_moment = float32(state["first_moment"]).clone()
        self.second_moment = float32(state["second_moment"]).clone()
        quantized = state.get("latent") is not None
        self.latent = float32(state["latent"]).clone() if quantized else None
        self.quantization_steps = float32(state["quantization_steps"]).clone() if quantized else None
        self.largest_code = state.get("largest_code", 0)
