"""How a training run (over steps) or an evaluation (over views) reports its progress: a bar redrawn
in place on a terminal, a plain line every few seconds where stderr is a file or a pipe (a bar there
leaves a carriage-return update several times a second in the log), nothing with --no-progress."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

LINE_SECONDS = 10.0  # least wall time between two plain progress lines


def format_values(values: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.4g}" for name, value in values.items())


class Progress:
    """No progress report; notes (say, a validation PSNR) are still printed. The base of the others."""

    def update(self, step: int, values: dict[str, float]) -> None:
        """Step (or view) number `step` is done; `values` are what it measured (loss, PSNR, ...)."""

    def note(self, text: str) -> None:
        tqdm.write(text)

    def close(self) -> None:
        """The run stopped (finished or interrupted)."""

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class BarProgress(Progress):
    """tqdm's bar with the latest values beside it, for a terminal."""

    def __init__(self, total: int | None, initial: int, stream: TextIO, unit: str = "step"):
        self.bar = tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True, file=stream)

    def update(self, step: int, values: dict[str, float]) -> None:
        self.bar.update(1)
        self.bar.set_postfix({name: f"{value:.4g}" for name, value in values.items()}, refresh=False)

    def note(self, text: str) -> None:
        self.bar.write(text)

    def close(self) -> None:
        self.bar.close()


class LineProgress(Progress):
    """A plain line at most every `every` seconds, and one for the last step when the run stops."""

    def __init__(self, total: int | None, stream: TextIO, every: float = LINE_SECONDS,
                 clock: Callable[[], float] = time.monotonic, unit: str = "step"):
        self.total = total
        self.stream = stream
        self.unit = unit
        self.every = every
        self.clock = clock
        self.started = self.printed_at = clock()
        self.latest: tuple[int, dict[str, float]] | None = None  # the last step not yet printed

    def update(self, step: int, values: dict[str, float]) -> None:
        self.latest = (step, values)
        if self.clock() - self.printed_at >= self.every:
            self._print_latest()

    def close(self) -> None:
        if self.latest is not None:
            self._print_latest()

    def _print_latest(self) -> None:
        step, values = self.latest
        total = "" if self.total is None else f"/{self.total}"
        seconds = self.clock() - self.started
        print(f"{self.unit} {step}{total} [{seconds:.0f} s] {format_values(values)}", file=self.stream, flush=True)
        self.printed_at = self.clock()
        self.latest = None


def progress_report(enabled: bool, total: int | None, initial: int, stream: TextIO | None = None,
                    unit: str = "step") -> Progress:
    """The report for a run starting at `initial` of `total` units (None: a time budget), on stderr by default."""
    stream = stream or sys.stderr
    if not enabled:
        return Progress()
    if stream.isatty():
        return BarProgress(total, initial, stream, unit)
    return LineProgress(total, stream, unit=unit)
