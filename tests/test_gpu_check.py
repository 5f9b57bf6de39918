"""scripts/gpu_check.sh, the one device call a session with a GPU makes, dry-run here: every stage runs
(tiny, on the CPU, the built-in scene) and passes, so the GPU run is known to work before it happens."""
import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REQUIRED

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.sh"
STAGES = ("install", "kernels", "train_speed", "lego", "tests", "vulkan")
# A stage may be skipped only when what it runs is not there: a bench script, a Vulkan loader.
MAY_SKIP = {"train_speed", "vulkan"} - REQUIRED


def dry_run(tmp_path: Path, *arguments: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "out"
    command = ["bash", str(SCRIPT), "--arch", "cpu", "--dry-run", "--out", str(out), "--work", str(tmp_path / "work"),
               "--wheels", "", *arguments]
    result = subprocess.run(command, env=dict(os.environ, PYTHON=sys.executable), capture_output=True, text=True)
    assert (out / "summary.json").exists(), result.stdout + result.stderr
    return result, json.loads((out / "summary.json").read_text())


def test_dry_run_passes_every_stage(tmp_path):
    result, summary = dry_run(tmp_path)
    stages = {stage["name"]: stage for stage in summary["stages"]}
    assert tuple(stages) == STAGES, result.stdout
    for name, stage in stages.items():
        log = tmp_path / "out" / f"{name}.log"
        detail = f"{name}: {stage['status']} {stage['note']}\n{log.read_text() if log.exists() else ''}"
        if stage["status"] == "skipped":
            assert name in MAY_SKIP and stage["note"], detail
        else:
            assert stage["status"] == "passed" and log.exists(), detail
    assert result.returncode == 0 and summary["passed"], result.stdout
    assert stages["install"]["records"][-1] == {"backend": "cpu"}
    assert stages["lego"]["records"][0]["psnr"] > 0
    if stages["train_speed"]["status"] == "passed":  # both methods: their step costs differ on a GPU
        assert len(stages["train_speed"]["records"]) == 2, stages["train_speed"]
        assert sum("--method ngp" in line for line in stages["train_speed"]["highlights"]) == 1
    assert any(" passed" in line for line in stages["tests"]["highlights"])
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert all(f"| {name} | {stage['status']} |" in markdown for name, stage in stages.items())


def test_a_failing_stage_fails_the_run_and_names_the_cause(tmp_path):
    missing = tmp_path / "no-scene"
    result, summary = dry_run(tmp_path, "--stages", "lego", "--scene", str(missing))
    assert [(stage["name"], stage["status"]) for stage in summary["stages"]] == [("install", "passed"),
                                                                                   ("lego", "failed")]
    assert str(missing) in summary["stages"][1]["note"]
    assert result.returncode == 1 and not summary["passed"]
