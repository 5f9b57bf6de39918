"""The command line the scene generators share."""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def run_generator(argv: list[str] | None, description: str, generate_into, name: str) -> None:
    """A scene generator's command line: `--out DIR`, generate_into(DIR), one line with the time."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the scene into")
    out = parser.parse_args(argv).out
    start = time.perf_counter()
    generate_into(out)
    print(f"wrote {name} to {out} in {time.perf_counter() - start:.1f} s")
