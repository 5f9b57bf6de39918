"""Backend fixtures: kernel tests run on every Taichi backend present.

HOLLOW_TAICHI_REQUIRE=cpu,vulkan turns "backend missing" from a skip into a failure (CI sets it, so
the Vulkan tests cannot silently stop running).
"""
import os

import pytest

from hollow_taichi import backend
from hollow_taichi.errors import BackendError

ARCHS = ("cpu", "vulkan", "cuda")
REQUIRED = {name for name in os.environ.get("HOLLOW_TAICHI_REQUIRE", "").split(",") if name}


def start_backend(name: str) -> str:
    try:
        return backend.init(name)
    except BackendError as error:
        if name in REQUIRED:
            pytest.fail(f"required backend {name} is unavailable: {error}")
        pytest.skip(f"backend {name} unavailable")


@pytest.fixture(scope="session", params=ARCHS)
def arch_name(request):
    """Session-scoped so that pytest groups the tests by backend and Taichi restarts rarely."""
    return request.param


@pytest.fixture
def arch(arch_name):
    """Start (or keep) Taichi on this test's backend; fields made on another backend are invalid."""
    return start_backend(arch_name)


@pytest.fixture
def cpu():
    return start_backend("cpu")


@pytest.fixture
def vulkan():
    return start_backend("vulkan")
