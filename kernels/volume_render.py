"""Alpha compositing over packed samples (nerfacc-style), in three differentiable kernels, and for
rendering without gradient the light reaching each sample (transmittance) and the weighted sums
walked ray by ray (accumulate_no_grad), a round of marching at a time.

A ray's samples are contiguous and sorted by t: ray r owns samples offsets[r] .. offsets[r]+counts[r]-1,
and ray_index[s] names the ray of sample s. With x_s = sigma_s * dt_s:

  tau_s   = sum of x_j over the ray's samples j before s        (optical_depth)
  T_s     = exp(-tau_s),  alpha_s = 1 - exp(-x_s),  w_s = T_s * alpha_s
  color   = sum w_s c_s + (1 - opacity) * background,  opacity = sum w_s,  depth = sum w_s t_s

Samples whose transmittance has fallen below `min_transmittance` add nothing (early termination).

`accumulate` and `add_background` are differentiated by Taichi autodiff. `optical_depth` is a scan
whose running sum is a loop-carried local; Taichi 1.7.4's autodiff of that returns zero gradients on
Vulkan, so its adjoint is written out: the adjoint of an exclusive scan is the reverse exclusive scan
(`optical_depth_adjoint`).
"""
import taichi as ti


@ti.kernel
def optical_depth(sigma: ti.template(), dt: ti.template(), offsets: ti.template(), counts: ti.template(),
                  tau: ti.template(), n_rays: ti.i32):
    for r in range(n_rays):
        running = 0.0
        for s in range(offsets[r], offsets[r] + counts[r]):
            tau[s] = running
            running += sigma[s] * dt[s]


@ti.kernel
def optical_depth_adjoint(sigma: ti.template(), dt: ti.template(), offsets: ti.template(),
                          counts: ti.template(), tau: ti.template(), n_rays: ti.i32, one_thread: ti.template()):
    """sigma.grad[s] += dt[s] * (sum of tau.grad over the ray's samples after s)."""
    ti.loop_config(serialize=one_thread)
    for r in range(n_rays):
        running = 0.0
        last = offsets[r] + counts[r] - 1
        for k in range(counts[r]):
            s = last - k
            sigma.grad[s] += dt[s] * running
            running += tau.grad[s]


@ti.kernel
def accumulate(sigma: ti.template(), rgb: ti.template(), dt: ti.template(), t_mid: ti.template(),
               ray_index: ti.template(), tau: ti.template(), opacity: ti.template(),
               color: ti.template(), depth: ti.template(), n_samples: ti.i32, min_transmittance: ti.f32,
               one_thread: ti.template()):
    ti.loop_config(serialize=one_thread)
    for s in range(n_samples):
        transmittance = ti.exp(-tau[s])
        if transmittance >= min_transmittance:
            weight = transmittance * (1.0 - ti.exp(-sigma[s] * dt[s]))
            r = ray_index[s]
            opacity[r] += weight
            depth[r] += weight * t_mid[s]
            for c in ti.static(range(3)):
                color[r, c] += weight * rgb[s, c]


@ti.kernel
def add_background(color: ti.template(), opacity: ti.template(), background: ti.template(),
                   out_color: ti.template(), n_rays: ti.i32, one_thread: ti.template()):
    ti.loop_config(serialize=one_thread)
    for r in range(n_rays):
        for c in ti.static(range(3)):
            out_color[r, c] = color[r, c] + (1.0 - opacity[r]) * background[r, c]


@ti.kernel
def transmittance(sigma: ti.types.ndarray(ndim=1), dt: ti.types.ndarray(ndim=1), offsets: ti.types.ndarray(ndim=1),
                  counts: ti.types.ndarray(ndim=1), depth: ti.types.ndarray(ndim=1), out: ti.types.ndarray(ndim=1),
                  n_rays: ti.i32):
    """out[s] = T_s = exp(-tau_s), the light reaching sample s, where ray r's optical depth starts at
    depth[r] (the samples of earlier rounds of marching) and is left there at the end; no gradient
    (sample culling)."""
    for r in range(n_rays):
        running = depth[r]
        for s in range(offsets[r], offsets[r] + counts[r]):
            out[s] = ti.exp(-running)
            running += sigma[s] * dt[s]
        depth[r] = running


@ti.kernel
def accumulate_no_grad(sigma: ti.types.ndarray(ndim=1), rgb: ti.types.ndarray(ndim=2),
                       t_starts: ti.types.ndarray(ndim=1), t_ends: ti.types.ndarray(ndim=1),
                       light: ti.types.ndarray(ndim=1), offsets: ti.types.ndarray(ndim=1),
                       counts: ti.types.ndarray(ndim=1), rays: ti.types.ndarray(ndim=1),
                       color: ti.types.ndarray(ndim=2), opacity: ti.types.ndarray(ndim=1),
                       depth: ti.types.ndarray(ndim=1), n_rays: ti.i32, min_transmittance: ti.f32):
    """accumulate ray by ray on torch tensors, for rendering without gradient, adding into running
    sums so that a ray marched in rounds is composited a round at a time: packed ray r adds to
    rays[r] of color (without background), opacity and depth. light[s] is T_s (`transmittance`
    below, which carries each ray's optical depth across rounds). A ray stops at its first sample
    below min_transmittance: no later sample adds anything, and their rgb is never read."""
    for r in range(n_rays):
        ray_opacity, ray_depth = 0.0, 0.0
        ray_color = ti.Vector([0.0, 0.0, 0.0])
        for s in range(offsets[r], offsets[r] + counts[r]):
            if light[s] < min_transmittance:
                break
            weight = light[s] * (1.0 - ti.exp(-sigma[s] * (t_ends[s] - t_starts[s])))
            ray_opacity += weight
            ray_depth += weight * (t_starts[s] + t_ends[s]) * 0.5
            ray_color += weight * ti.Vector([rgb[s, 0], rgb[s, 1], rgb[s, 2]])
        target = rays[r]
        opacity[target] += ray_opacity
        depth[target] += ray_depth
        for c in ti.static(range(3)):
            color[target, c] += ray_color[c]
