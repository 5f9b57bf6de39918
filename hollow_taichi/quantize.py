"""Uniform scalar quantizers for the compact model file (hollow_taichi.compact).

Table features and MLP weights are quantized per column to `bits`-bit integers around zero
(mid-tread: values near zero, such as rows that barely moved from their U(-1e-4, 1e-4) start, become
exactly 0, which the file's entropy coder then stores in a fraction of a bit). Each column's step
clips its range where that gives the least squared error, since a few outliers would otherwise
stretch the step of every other value.

Saliency logits are quantized so that no logit crosses the prune threshold: a cell is kept exactly
when it was, whatever the bits (threshold_preserving).
"""
from __future__ import annotations

import numpy as np

# Fractions of a column's largest magnitude tried as its clipping range; the one with the least
# squared error wins. Lower fractions pay off at few bits, where the step dominates the error.
CLIP_FRACTIONS = (1.0, 0.85, 0.7, 0.55, 0.45, 0.35, 0.27, 0.2)


def code_dtype(bits: int) -> np.dtype:
    """The narrowest signed integer type that holds `bits`-bit codes."""
    if not 2 <= bits <= 16:
        raise ValueError(f"bits must be between 2 and 16, got {bits}")
    return np.dtype(np.int8 if bits <= 8 else np.int16)


def symmetric(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column codes (N, C) in [-(2^(bits-1) - 1), 2^(bits-1) - 1] and steps (C,) float32 of
    values (N, C): values ~ codes * steps, zero exactly representable."""
    values = np.asarray(values, dtype=np.float32)
    levels = 2 ** (bits - 1) - 1
    largest = np.abs(values).max(axis=0) if len(values) else np.zeros(values.shape[1], np.float32)
    best_steps = np.zeros(values.shape[1], np.float32)
    best_error = np.full(values.shape[1], np.inf)
    for fraction in CLIP_FRACTIONS:
        steps = np.maximum(largest * fraction / levels, np.finfo(np.float32).tiny).astype(np.float32)
        codes = np.clip(np.rint(values / steps), -levels, levels)
        error = ((codes * steps - values) ** 2).sum(axis=0)
        better = error < best_error
        best_steps[better], best_error[better] = steps[better], error[better]
    return codes_on_grid(values, best_steps, bits), best_steps


def codes_on_grid(values: np.ndarray, steps: np.ndarray, bits: int) -> np.ndarray:
    """The symmetric codes (N, C) of values (N, C) on a given grid of steps (C,)."""
    levels = 2 ** (bits - 1) - 1
    return np.clip(np.rint(np.asarray(values, np.float32) / steps), -levels, levels).astype(code_dtype(bits))


def level_steps(table: np.ndarray, rows_per_level: list[int], bits: int) -> np.ndarray:
    """(L, F) float32: symmetric()'s step for each level and feature of a table (L, T, F), fitted to
    the first rows_per_level[level] rows of each level (the rows it can address)."""
    return np.stack([symmetric(table[level, :rows], bits)[1] for level, rows in enumerate(rows_per_level)])


def dequantize(codes: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """codes (N, C) * steps (C,) or (N, C), as float32."""
    return codes.astype(np.float32) * np.asarray(steps, dtype=np.float32)


def threshold_preserving(values: np.ndarray, threshold: float, bits: int) -> tuple[np.ndarray, float]:
    """Codes k and a step such that threshold + (k + 1/2) step lies within step / 2 of each value
    and on the same side of `threshold` (k >= 0 exactly where value >= threshold)."""
    values = np.asarray(values, dtype=np.float64)
    half = 2 ** (bits - 1)
    reach = float(np.abs(values - threshold).max()) if values.size else 0.0
    step = max(reach / half, 1e-6)
    codes = np.clip(np.floor((values - threshold) / step), -half, half - 1).astype(code_dtype(bits))
    return codes, step


def threshold_dequantize(codes: np.ndarray, threshold: float, step: float) -> np.ndarray:
    """The values threshold_preserving's codes stand for, float32."""
    return (threshold + (codes.astype(np.float64) + 0.5) * step).astype(np.float32)


def symbol_base(bits: int) -> int:
    """How many values a symmetric code of `bits` bits takes: 2^bits - 1."""
    return 2 * (2 ** (bits - 1) - 1) + 1


def row_symbols(codes: np.ndarray, bits: int) -> np.ndarray | None:
    """Each row of symmetric codes (N, C) as one byte, sum over c of (code_c + q) base^c, where
    they fit one (base^C <= 256: 2 features of up to 4 bits); else None. The entropy coder then
    sees a row's features together: Lego's 3-bit table, 815 kB against 880 kB a feature a byte."""
    base = symbol_base(bits)
    if base ** codes.shape[1] > 256:
        return None
    weights = base ** np.arange(codes.shape[1])
    return ((codes.astype(np.int32) + base // 2) @ weights).astype(np.uint8)


def codes_of_symbols(symbols: np.ndarray, bits: int, columns: int) -> np.ndarray:
    """row_symbols' inverse: codes (N, columns)."""
    base = symbol_base(bits)
    digits = (symbols.astype(np.int32)[:, None] // base ** np.arange(columns)) % base
    return (digits - base // 2).astype(code_dtype(bits))
