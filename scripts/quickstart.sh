#!/usr/bin/env bash
# The main job on a fresh machine: make .venv, install, train the built-in scene, export frames.
# Extra arguments go to `hollow-taichi train` (for example --minutes 2 or --arch vulkan).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0 2>/dev/null || true  # the local CPU build where it exists
.venv/bin/pip install -q .
.venv/bin/hollow-taichi train --out runs/builtin --minutes 5 --force "$@"
.venv/bin/hollow-taichi render runs/builtin --out runs/builtin/orbit --orbit 60 --video runs/builtin/orbit.mp4
.venv/bin/hollow-taichi export runs/builtin --out runs/builtin/model.htc
