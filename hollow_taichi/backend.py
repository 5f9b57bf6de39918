"""Taichi backend selection, and how tensors travel between torch and Taichi on each backend.

Torch tensors live on the CUDA device when Taichi runs on CUDA, and on the CPU otherwise (for
Vulkan, Taichi stages them to the device itself). Non-differentiable kernels take the tensors as
ndarrays: no copy on CPU and CUDA. Differentiable kernels work on Taichi fields (autodiff of
ndarray arguments is silently zero on Vulkan in Taichi 1.7.4), so their inputs are copied into
fields held by the op (FieldBuffer, ParameterField) and results copied out.
"""
from __future__ import annotations

from pathlib import Path

import taichi as ti
import torch
from taichi.lang import impl

from .errors import BackendError
from .kernels import transfer

ARCH_CHOICES = ("auto", "cuda", "vulkan", "cpu")
_AUTO_ORDER = ("cuda", "vulkan", "cpu")
_DRI_FOLDER = "/dev/dri"
_TAICHI_ARCH = {"cpu": ti.cpu, "cuda": ti.cuda, "vulkan": ti.vulkan}

_active: str | None = None


def _started_arch() -> str:
    arch = impl.current_cfg().arch
    if arch == ti.cuda:
        return "cuda"
    if arch == ti.vulkan:
        return "vulkan"
    return "cpu"


def _start(name: str, threads: int | None) -> bool:
    """Start Taichi on `name`; False if Taichi fell back to another arch (it does so silently)."""
    options = {"arch": _TAICHI_ARCH[name], "offline_cache": True, "log_level": ti.ERROR}
    if threads:
        options["cpu_max_num_threads"] = threads
    ti.reset()
    ti.init(**options)
    return _started_arch() == name


def gpu_present() -> bool:
    """True when the machine shows a GPU device node (/dev/dri/renderD*, /dev/nvidia*).

    Without one, the only Vulkan device can be a software one such as Mesa's lavapipe.
    """
    return any(Path(_DRI_FOLDER).glob("renderD*")) or any(Path("/dev").glob("nvidia[0-9]*"))


def auto_order() -> tuple[str, ...]:
    """The backends --arch auto tries, in order. Without a GPU, Vulkan is skipped: Taichi's own CPU
    backend is faster than lavapipe, and lavapipe refuses kernels over large fields (a 2^19 table)."""
    if gpu_present():
        return _AUTO_ORDER
    return tuple(name for name in _AUTO_ORDER if name != "vulkan")


def device_error(error: RuntimeError) -> BackendError | None:
    """A BackendError for a kernel the device refused to run (Taichi raises a bare RuntimeError)."""
    if "RhiResult" not in str(error):
        return None
    return BackendError(f"the {_active} device refused to run a kernel ({str(error).strip()}): its fields are "
                        "likely too large for it; try --arch cpu or a smaller --hash-log2")


def init(arch: str = "auto", threads: int | None = None) -> str:
    """Start Taichi on `arch` (auto: cuda, then vulkan, then cpu; see auto_order) and return the arch in use.

    Calling again with the arch already in use does nothing; another arch restarts Taichi, which
    invalidates every field made before.
    """
    global _active
    if arch not in ARCH_CHOICES:
        raise BackendError(f"unknown backend {arch!r}: choose one of {', '.join(ARCH_CHOICES)}")
    if arch != "auto" and arch == _active:
        return _active
    if arch == "auto" and _active is not None:
        return _active
    for name in auto_order() if arch == "auto" else (arch,):
        if _start(name, threads):
            _active = name
            return name
    _active = None
    raise BackendError(f"backend {arch!r} is not available on this machine")


def shutdown() -> None:
    """Stop Taichi (every field made so far becomes invalid); the next init starts it afresh."""
    global _active
    if _active is not None:
        ti.reset()
    _active = None


def active() -> str:
    if _active is None:
        raise BackendError("no Taichi backend started: call hollow_taichi.backend.init first")
    return _active


def device() -> torch.device:
    """Where torch tensors that meet Taichi kernels live."""
    return torch.device("cuda") if active() == "cuda" else torch.device("cpu")


def one_thread_autodiff() -> bool:
    """Whether the kernels Taichi differentiates run their loops on one thread (their one_thread
    argument): on the CPU, where that makes their atomic adds plain ones (kernels/__init__.py)."""
    return active() == "cpu"


def synchronize() -> None:
    ti.sync()
    if active() == "cuda":
        torch.cuda.synchronize()


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


class FieldBuffer:
    """A Taichi field of shape (capacity, *trailing) whose capacity doubles as batches grow."""

    def __init__(self, dtype, trailing: tuple[int, ...] = (), needs_grad: bool = False,
                 min_capacity: int = 1 << 10):
        self.dtype = dtype
        self.trailing = tuple(trailing)
        self.needs_grad = needs_grad
        self.min_capacity = min_capacity
        self.field = None
        self._tree = None

    @property
    def capacity(self) -> int:
        return 0 if self.field is None else self.field.shape[0]

    def reserve(self, n: int):
        """The field, grown (contents lost) if it holds fewer than n rows.

        On CUDA the outgrown field is left allocated: Taichi 1.7.4 asserts when it destroys a field
        tree after a second thread has used its LLVM context (`data->struct_modules.erase(id)`), and
        torch runs CUDA backward passes on a thread of its own (seen on an H200: training died at
        its first grown buffer). Capacities double, so what is left behind stays below the live size.
        """
        if self.field is None or n > self.capacity:
            if self._tree is not None and active() != "cuda":
                self._tree.destroy()
            capacity = max(self.min_capacity, _next_power_of_two(n))
            builder = ti.FieldsBuilder()
            self.field = ti.field(self.dtype, needs_grad=self.needs_grad)
            builder.dense(ti.axes(*range(1 + len(self.trailing))), (capacity, *self.trailing)).place(self.field)
            if self.needs_grad:
                builder.lazy_grad()
            self._tree = builder.finalize()
        return self.field

    def load(self, tensor: torch.Tensor):
        """Copy `tensor` (n, *trailing) into the first n rows; returns the field."""
        field = self.reserve(tensor.shape[0])
        if tensor.shape[0]:
            transfer.ndarray_to_field(tensor.detach().contiguous(), field, tensor.shape[0])
        return field

    def load_grad(self, tensor: torch.Tensor) -> None:
        if tensor.shape[0]:
            transfer.ndarray_to_field(tensor.detach().contiguous(), self.field.grad, tensor.shape[0])

    def read(self, n: int, torch_dtype=torch.float32) -> torch.Tensor:
        return _read_rows(self.field, n, torch_dtype)

    def read_grad(self, n: int) -> torch.Tensor:
        return _read_rows(self.field.grad, n, torch.float32)

    def zero_grad(self, n: int) -> None:
        if n:
            transfer.fill_rows(self.field.grad, n, 0)

    def zero(self, n: int) -> None:
        if n:
            transfer.fill_rows(self.field, n, 0)


def _read_rows(field, n: int, torch_dtype) -> torch.Tensor:
    out = torch.empty((n, *field.shape[1:]), dtype=torch_dtype, device=device())
    if n:
        transfer.field_to_ndarray(field, out, n)
    return out


class ParameterField:
    """A Taichi copy of a torch parameter (with a gradient field), refreshed when the parameter changes.

    The copy is skipped while the tensor's storage and version counter are unchanged, so repeated
    forward passes between optimizer steps (and inference) copy the parameter once.
    """

    def __init__(self, shape: tuple[int, ...]):
        self.field = ti.field(ti.f32, shape=tuple(shape), needs_grad=True)
        self._synced = None

    def sync(self, tensor: torch.Tensor):
        key = (tensor.data_ptr(), tensor._version, tuple(tensor.shape))
        if key != self._synced:
            self.field.from_torch(tensor.detach().contiguous())
            self._synced = key
        return self.field

    def zero_grad(self) -> None:
        self.field.grad.fill(0)

    def read_grad(self) -> torch.Tensor:
        return self.field.grad.to_torch(device=device())
