"""Backend choice: --arch auto skips Vulkan without a GPU, and a kernel the device refuses becomes one
error line naming the backend, not a traceback."""
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
