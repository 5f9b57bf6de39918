"""Importing the package makes glibc keep freed memory for the next allocation (hollow_taichi.memory)
unless the user tuned glibc's allocator; each case runs in a fresh process, as the setting is the
process's own."""
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")

# Resident MiB after a touched 256 MiB torch tensor is freed, less before it was made.
PROBE = """
import hollow_taichi, torch
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
before = resident_mib()
block = torch.ones(64 << 20)
del block
print(resident_mib() - before)
"""


def resident_after_free(extra_environment: dict[str, str]) -> float:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    environment.pop("GLIBC_TUNABLES", None)
    result = subprocess.run([sys.executable, "-c", PROBE], env={**environment, **extra_environment},
                            capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])


def test_a_freed_block_stays_for_reuse():
    assert resident_after_free({}) > 200


def test_the_users_allocator_settings_stand():
    """glibc's own behaviour for a block this large: unmapped when freed."""
    assert resident_after_free({"MALLOC_MMAP_THRESHOLD_": "131072"}) < 50
