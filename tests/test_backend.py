"""Backend choice: --arch auto skips Vulkan without a GPU, and a kernel the device refuses becomes one
error line naming the backend, not a traceback; torch's OpenMP threads sleep between ops unless the
user says otherwise."""
import os
import subprocess
import sys

import pytest
from scenes_util import error_line, run_cli, tiny_scene

from hollow_taichi import backend
from hollow_taichi.errors import BackendError


def test_auto_tries_vulkan_only_with_a_gpu(monkeypatch):
    monkeypatch.setattr(backend, "gpu_present", lambda: True)
    assert backend.auto_order() == ("cuda", "vulkan", "cpu")
    monkeypatch.setattr(backend, "gpu_present", lambda: False)
    assert backend.auto_order() == ("cuda", "cpu")


def test_device_error_names_only_refused_kernels():
    refused = backend.device_error(RuntimeError("[runtime.cpp:launch_kernel@572] Dispatch error : RhiResult(not_supported)"))
    assert isinstance(refused, BackendError) and "not_supported" in str(refused) and "--arch cpu" in str(refused)
    assert backend.device_error(RuntimeError("some other failure")) is None


def test_a_table_too_large_for_lavapipe_is_one_error_line(tmp_path, vulkan):
    """Measured here: lavapipe (no GPU) refuses kernels over a 64 MiB field, which a 2^19-row table
    is; that must end as one error line. With a GPU the same run must train."""
    result = run_cli("train", tiny_scene(tmp_path / "scene"), "--out", tmp_path / "run", "--steps", 1,
                     "--arch", "vulkan", "--hash-log2", 19, "--saliency-res", 32, "--batch-samples", 1024,
                     "--no-progress")
    if backend.gpu_present():
        assert result.exit_code == 0, result.output
    else:
        assert "vulkan device refused to run a kernel" in error_line(result)


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_importing_the_package_makes_torchs_threads_sleep_before_torch_loads(given, expected):
    """libgomp reads OMP_WAIT_POLICY once, when torch loads it: the package must set it before then."""
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if given is not None:
        environment["OMP_WAIT_POLICY"] = given
    probe = "import os, sys, hollow_taichi; print('torch' in sys.modules, os.environ['OMP_WAIT_POLICY'])"
    result = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", expected]
