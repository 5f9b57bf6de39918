"""Checkpoints written atomically: a crash at any moment leaves the previous one loadable.

A checkpoint is a torch file of tensors and plain data, read with torch.load(weights_only=True):
a crafted one (a pickle that would build arbitrary objects or call functions) is refused unread.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from . import __version__
from .errors import RunError
from .files import atomic_write

FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"
# Settings a resumed run may change: where and how long it trains, not what it trains.
RESUMABLE_SETTINGS = ("scene", "arch", "threads", "steps", "minutes", "eval_interval", "eval_images",
                      "checkpoint_interval", "checkpoint_minutes")


def save(path: Path, state: dict) -> None:
    """torch.save into a temporary file beside `path`, fsync it, then rename it over `path`."""
    payload = {"format": FORMAT, "version": __version__, **state}
    try:
        atomic_write(path, lambda file: torch.save(payload, file))
    except OSError as error:
        raise RunError(f"{path}: cannot save the checkpoint ({error.strerror or error}); "
                       "the previous one is unchanged") from None


def load(path: Path) -> dict:
    """The checkpoint at `path`; RunError naming the file if it is missing, damaged or of another format."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no checkpoint here")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain data; no code runs
    except Exception as error:  # torch raises many types for a damaged or crafted file
        raise RunError(f"{path}: unreadable checkpoint ({type(error).__name__})") from None
    if not isinstance(state, dict):
        raise RunError(f"{path}: not a hollow-taichi checkpoint")
    if state.get("format") != FORMAT:
        raise RunError(f"{path}: checkpoint format {state.get('format')!r} (hollow-taichi {state.get('version')}) "
                       f"is not the format {FORMAT} that hollow-taichi {__version__} reads")
    return state


def _flat(settings: dict, prefix: str = "") -> dict:
    """Nested settings -> {"field.log2_table": 19, ...}."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_config(path: Path, state: dict, config: dict) -> None:
    """Refuse a checkpoint trained with other settings than `config` (a TrainConfig as a dict).

    Settings in RESUMABLE_SETTINGS may differ, and so may settings that only one side knows.
    """
    if not isinstance(state.get("config"), dict):
        raise RunError(f"{path}: checkpoint holds no configuration")
    saved, current = _flat(state["config"]), _flat(config)
    for key in sorted((saved.keys() & current.keys()) - set(RESUMABLE_SETTINGS)):
        if saved[key] != current[key]:
            raise RunError(f"{path}: checkpoint was trained with {key}={saved[key]!r}, but the run's "
                           f"configuration has {key}={current[key]!r}")


@contextmanager
def restoring(path: Path, what: str = "checkpoint") -> Iterator[None]:
    """Turn an error while loading a checkpoint's (or a compact model's) state into a model into one
    RunError naming the file."""
    try:
        yield
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        detail = " ".join(str(error).split())
        raise RunError(f"{path}: {what} does not fit this model ({type(error).__name__}: {detail})") from None
