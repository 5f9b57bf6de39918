"""hollow-taichi: HollowNeRF (saliency-scaled hash grids with ADMM pruning) on Taichi kernels."""

__version__ = "0.1.0"
