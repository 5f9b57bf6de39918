#!/usr/bin/env bash
# The test command: make .venv (if missing), install the project with its test, viewer, process and mesh extras (the
# viewer's tests need viser, and selenium from the test extras), run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0 2>/dev/null || true  # the local CPU build where it exists
.venv/bin/pip install -q ".[test,viewer,process,mesh]"
.venv/bin/pytest "$@"
