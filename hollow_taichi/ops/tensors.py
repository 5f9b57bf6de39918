"""Tensors as the kernels take them: contiguous, on backend.device(), of the kernel's dtype."""
from __future__ import annotations

import torch

from .. import backend


def float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(device=backend.device(), dtype=torch.float32).contiguous()


def int32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(device=backend.device(), dtype=torch.int32).contiguous()
