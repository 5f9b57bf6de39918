"""Checkpoints written atomically: a crash at any moment leaves the previous one loadable."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from . import __version__
from .errors import RunError

FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pt"


def save(path: Path, state: dict) -> None:
    """torch.save into a temporary file beside `path`, fsync it, then rename over `path`."""
    path = Path(path)
    payload = {"format": FORMAT, "version": __version__, **state}
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no checkpoint here")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for a damaged file
        raise RunError(f"{path}: unreadable checkpoint ({type(error).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise RunError(f"{path}: checkpoint format {state.get('format') if isinstance(state, dict) else '?'} "
                       f"is not the format {FORMAT} this version reads")
    return state
