"""Adam on a Taichi field from its own gradient, in place (torch.optim.Adam's update, weight decay 0).

The hash table lives in a field with its gradient for the whole run; this updates it where it is,
so no step copies the table between Taichi and torch. The moments are torch tensors (ndarrays), so
torch holds the optimizer state. Each entry's gradient is read once and reset to zero, ready for
the next step's backward to accumulate into.
"""
import taichi as ti


@ti.func
def _adam_step_of(gradient, first_moment: ti.template(), second_moment: ti.template(), index, step_size, beta1, beta2,
                  root_bias_correction2, eps):
    """Update the moments at `index` with `gradient`; returns what Adam subtracts from the parameter."""
    first = beta1 * first_moment[index] + (1.0 - beta1) * gradient
    second = beta2 * second_moment[index] + (1.0 - beta2) * gradient * gradient
    first_moment[index] = first
    second_moment[index] = second
    return step_size * first / (ti.sqrt(second) / root_bias_correction2 + eps)


@ti.kernel
def adam_step(
    parameter: ti.template(),
    first_moment: ti.types.ndarray(),
    second_moment: ti.types.ndarray(),
    step_size: ti.f32,
    beta1: ti.f32,
    beta2: ti.f32,
    root_bias_correction2: ti.f32,
    eps: ti.f32,
):
    """step_size = lr / (1 - beta1^t); root_bias_correction2 = sqrt(1 - beta2^t), t the step count."""
    for index in ti.grouped(parameter):
        parameter[index] -= _adam_step_of(parameter.grad[index], first_moment, second_moment, index, step_size, beta1,
                                          beta2, root_bias_correction2, eps)
        parameter.grad[index] = 0.0


@ti.kernel
def adam_step_quantized(
    parameter: ti.template(),
    latent: ti.types.ndarray(),
    first_moment: ti.types.ndarray(),
    second_moment: ti.types.ndarray(),
    quantization_steps: ti.types.ndarray(),
    largest_code: ti.f32,
    step_size: ti.f32,
    beta1: ti.f32,
    beta2: ti.f32,
    root_bias_correction2: ti.f32,
    eps: ti.f32,
):
    """adam_step on `latent`, a float copy of the (L, T, F) table field `parameter`, which then reads
    the latent rounded to the grid of quantization_steps[level, feature], its codes clamped to
    +-largest_code: quantization-aware training, the forward's gradient passed straight through to
    the latent. The latent is kept within half a step of the grid's ends, so a clamped entry comes
    back as soon as its gradient turns."""
    for index in ti.grouped(parameter):
        value = latent[index] - _adam_step_of(parameter.grad[index], first_moment, second_moment, index, step_size,
                                              beta1, beta2, root_bias_correction2, eps)
        step = quantization_steps[index[0], index[2]]
        reach = (largest_code + 0.5) * step
        value = ti.math.clamp(value, -reach, reach)
        latent[index] = value
        parameter[index] = ti.math.clamp(ti.round(value / step), -largest_code, largest_code) * step
        parameter.grad[index] = 0.0
