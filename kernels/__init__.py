"""Pure Taichi kernels: no torch here. hollow_taichi.ops bridges them to PyTorch.

Kernels that are differentiated with Taichi autodiff take ti.field arguments (ti.template()):
Taichi 1.7.4 returns silent zero gradients for ndarray arguments on Vulkan. Kernels that need no
gradient (marching, occupancy, SH) take ndarrays, which alias torch tensors without a copy on CPU
and CUDA.

Kernels that are differentiated, and volume_render's written-out adjoint, take one_thread
(ti.template()): True runs their loop on one thread (ti.loop_config(serialize=True)), which the CPU
backend's backward passes use (hollow_taichi.backend.one_thread_autodiff). Autodiff accumulates every
adjoint with an atomic add (as `+=` into a field does); on one thread Taichi emits plain adds
instead, and on two cores that is faster than two threads contending for the same lines. Each
kernel's .grad, two threads against one, 15 alternating calls (medians, Intel Xeon, 2 cores; 65,000
ray-coherent points, 2^17 table; compositing 4,096 rays of 16 samples): hash_encode 44.7 / 25.0
ms, saliency_grid.saliency_logit 3.3 / 1.0, accumulate 1.3 / 0.7 (its forward, which adds into
per-ray sums, 2.0 / 0.5), optical_depth_adjoint 0.7 / 0.2, add_background 0.2 / 0.05. Other
backends run every loop in parallel.
"""
