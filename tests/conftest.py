"""Backend fixtures: kernel tests run on every Taichi backend present.

HOLLOW_TAICHI_REQUIRE=cpu,vulkan turns "backend missing" from a skip into a failure (CI sets it, so
the Vulkan tests cannot silently stop running). `browser` in it does the same for the browser test
of the viewer (headless Chromium, chromedriver, selenium and viser; the `browser` fixture).

HOLLOW_TAICHI_ONLY=vulkan keeps only the tests that start one of the named backends (through the arch
parameter or a backend fixture); HOLLOW_TAICHI_SKIP=vulkan leaves those tests out. bench/gpu_check.py
runs the Vulkan tests as a stage of their own this way.
"""
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

from hollow_taichi import backend
from hollow_taichi.errors import BackendError

ARCHS = ("cpu", "vulkan", "cuda")
BENCH = Path(__file__).resolve().parent.parent / "bench"


def _names(variable: str) -> set[str]:
    return {name for name in os.environ.get(variable, "").split(",") if name}


REQUIRED = _names("HOLLOW_TAICHI_REQUIRE")
ONLY = _names("HOLLOW_TAICHI_ONLY")
SKIP = _names("HOLLOW_TAICHI_SKIP")


def start_backend(name: str) -> str:
    try:
        return backend.init(name)
    except BackendError as error:
        if name in REQUIRED:
            pytest.fail(f"required backend {name} is unavailable: {error}")
        pytest.skip(f"backend {name} unavailable")


BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
BROWSER_MODULES = ("selenium", "viser")


def missing_for_browser_test() -> str | None:
    """What the browser test lacks (None: nothing): a Chromium, its chromedriver, selenium or viser."""
    if not any(shutil.which(name) for name in BROWSER_NAMES):
        return "no Chromium (apt-get install chromium)"
    if not shutil.which("chromedriver"):
        return "no chromedriver (apt-get install chromium-driver)"
    for module in BROWSER_MODULES:
        if importlib.util.find_spec(module) is None:
            return f"no {module} (pip install \".[test,viewer]\")"
    return None


@pytest.fixture
def browser() -> str:
    """The Chromium binary's path; skips the test where something the browser test needs is missing,
    fails instead when HOLLOW_TAICHI_REQUIRE names `browser`."""
    missing = missing_for_browser_test()
    if missing is not None:
        if "browser" in REQUIRED:
            pytest.fail(f"required browser test cannot run: {missing}")
        pytest.skip(f"browser test cannot run: {missing}")
    return next(shutil.which(name) for name in BROWSER_NAMES if shutil.which(name))


@pytest.fixture(scope="module")
def bench_script():
    """Import a benchmark script by name (bench/NAME.py; the benchmarks are scripts, not a package),
    with bench/ on sys.path for the module's own imports while the test module runs."""
    sys.path.insert(0, str(BENCH))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    yield load
    sys.path.remove(str(BENCH))


@pytest.fixture(scope="module", autouse=True)
def fresh_taichi():
    """Each test module starts on a fresh Taichi runtime: the fields its models allocate are never
    freed while the runtime lives (an op's buffers outlive the op), and over the whole suite they
    exhausted the CPU backend's memory (a segfault in a late test that passes alone)."""
    backend.shutdown()
    yield


@pytest.fixture(scope="session", params=ARCHS)
def arch_name(request):
    """Session-scoped so that pytest groups the tests by backend and Taichi restarts rarely."""
    return request.param


@pytest.fixture
def arch(arch_name):
    """Start (or keep) Taichi on this test's backend; fields made on another backend are invalid."""
    return start_backend(arch_name)


@pytest.fixture
def device(arch):
    """The torch device of this backend's tensors: ops return theirs there and models are built
    there, so a test's own inputs to a model go there too."""
    return backend.device()


@pytest.fixture
def cpu():
    return start_backend("cpu")


@pytest.fixture
def vulkan():
    return start_backend("vulkan")


def backends_of(item) -> set[str]:
    """The backends a test starts: its arch parameter and the backend fixtures it uses."""
    used = {name for name in ARCHS if name in item.fixturenames}
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "arch_name" in callspec.params:
        used.add(callspec.params["arch_name"])
    return used


def pytest_collection_modifyitems(config, items):
    """Apply HOLLOW_TAICHI_ONLY and HOLLOW_TAICHI_SKIP."""
    kept, left_out = [], []
    for item in items:
        used = backends_of(item)
        wanted = (not ONLY or used & ONLY) and not used & SKIP
        (kept if wanted else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept
