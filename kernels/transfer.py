"""Row-range copies between ndarrays (torch tensors) and fields, for fields larger than the batch."""
import taichi as ti


@ti.kernel
def ndarray_to_field(source: ti.types.ndarray(), target: ti.template(), n: ti.i32):
    for index in ti.grouped(ti.ndrange(n, *ti.static(target.shape[1:]))):
        target[index] = source[index]


@ti.kernel
def field_to_ndarray(source: ti.template(), target: ti.types.ndarray(), n: ti.i32):
    for index in ti.grouped(ti.ndrange(n, *ti.static(source.shape[1:]))):
        target[index] = source[index]


@ti.kernel
def fill_rows(target: ti.template(), n: ti.i32, value: ti.template()):
    for index in ti.grouped(ti.ndrange(n, *ti.static(target.shape[1:]))):
        target[index] = value
