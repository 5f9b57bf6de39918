"""Torch ops over the Taichi kernels: the one package that speaks both torch and Taichi, a module
for each module of kernels/ whose kernels it calls.

Differentiable ops are torch.autograd.Function bridges whose backward runs the Taichi autodiff of
the forward kernel (kernel.grad). Each op object owns the Taichi fields its kernels work on; backward
reloads its inputs into them, so interleaved calls (say, an occupancy update between a forward and
its backward) cannot corrupt a gradient. The one exception is the hash table (HashTable): it stays
in its Taichi field for the whole run, its gradient accumulates there, and TableAdam updates it
there. Called under torch.no_grad (rendering, the visibility and occupancy passes), the encoder and
the compositor run kernels on the torch tensors themselves instead, with no copies through fields.
All tensors live on backend.device().
"""
from .adam import TableAdam
from .compaction import referenced_rows
from .hash_grid import Encoding, HashEncoder, HashTable, kept_at, level_resolutions
from .occupancy_grid import occupancy_cell_points, occupancy_decay_and_splat, occupancy_pack_bits, occupancy_seen_cells
from .ray_march import MarchSettings, PackedSamples, march_from, march_rays, occupancy_blocks, ray_starts
from .sh_encoding import sh_encode
from .volume_render import Compositor, RaySums, transmittance

__all__ = [
    "Compositor", "Encoding", "HashEncoder", "HashTable", "MarchSettings", "PackedSamples", "RaySums", "TableAdam",
    "kept_at", "level_resolutions", "march_from", "march_rays", "occupancy_blocks", "occupancy_cell_points",
    "occupancy_decay_and_splat", "occupancy_pack_bits", "occupancy_seen_cells", "ray_starts", "referenced_rows",
    "sh_encode", "transmittance",
]
