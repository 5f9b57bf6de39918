"""hollow-taichi: HollowNeRF (saliency-scaled hash grids with ADMM pruning) on Taichi kernels."""
import os

from .memory import keep_freed_memory

__version__ = "0.1.0"

# Torch's OpenMP threads spin for a while after each parallel op, on the cores Taichi's kernels run on
# next. Sleeping instead (set here, before anything loads torch's libgomp; a value the user set
# stands), on 2 CPU cores alone, Lego 2^17, hollow, 300 steps, two runs each alternating: 145.3 /
# 148.0 s against 167.9 / 160.4 (OMP_NUM_THREADS=1 instead: 191.7 / 171.0, torch's MLPs on one thread).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

keep_freed_memory()  # before torch allocates: see hollow_taichi.memory
