"""Spherical harmonics of view directions (kernels.sh_encoding)."""
from __future__ import annotations

import torch

from ..kernels import sh_encoding
from .tensors import float32


def sh_encode(directions: torch.Tensor) -> torch.Tensor:
    """Degree-4 real spherical harmonics of unit directions (N, 3) -> (N, 16). No gradient."""
    directions = float32(directions)
    coefficients = torch.empty((directions.shape[0], 16), dtype=torch.float32, device=directions.device)
    if directions.shape[0]:
        sh_encoding.sh_encode(directions, coefficients, directions.shape[0])
    return coefficients
