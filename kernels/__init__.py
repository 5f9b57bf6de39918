"""Pure Taichi kernels: no torch here. hollow_taichi.ops bridges them to PyTorch.

Kernels that are differentiated with Taichi autodiff take ti.field arguments (ti.template()):
Taichi 1.7.4 returns silent zero gradients for ndarray arguments on Vulkan. Kernels that need no
gradient (marching, occupancy, SH) take ndarrays, which alias torch tensors without a copy on CPU
and CUDA.
"""
