"""A file of named arrays that is safe to open: a JSON header and raw arrays, zstd-compressed, no pickle.

Layout (docs/model-format.md has the whole specification):

    magic   8 bytes     b"HTAICHI\\n"
    version 4 bytes     unsigned, little-endian (FORMAT)
    length  8 bytes     unsigned, little-endian: the header's size in bytes
    header  `length`    UTF-8 JSON object: {"kind": str, "meta": {...}, "payload_bytes": int,
                        "arrays": [{"name": str, "dtype": str, "shape": [int, ...], "offset": int}, ...]}
    payload the rest    one zstd frame; decompressed, `payload_bytes` bytes in which each array's
                        little-endian values lie at its offset, C order

Reading checks every size against the file and the header before it allocates anything, decodes
at most `payload_bytes` + 1 bytes (`payload_bytes` at most MAX_PAYLOAD_BYTES), accepts only the
dtypes in DTYPES, and turns whatever is wrong into one ContainerError naming the file. Nothing in
a file is ever executed.
"""
from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path

import numpy as np
import zstandard

from .errors import HollowError
from .files import atomic_write

MAGIC = b"HTAICHI\n"
FORMAT = 1
_PREAMBLE = struct.Struct("<8sIQ")
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float16", "float32")
MAX_HEADER_BYTES = 1 << 24
MAX_PAYLOAD_BYTES = 1 << 32  # 4 GiB: a lossless 2^24 table is 2 GiB
_PICKLED = (b"\x80", b"PK\x03\x04")  # a pickle (protocol 2+), a zip (torch.save)
COMPRESSION_LEVEL = 19  # zstd's strongest ordinary level: a Lego model compresses in about a second


class ContainerError(HollowError):
    """A container file that cannot be read: damaged, truncated, crafted, or of another format."""


def write(path: Path, kind: str, meta: dict, arrays: dict[str, np.ndarray]) -> int:
    """Write `arrays` (name -> array of a dtype in DTYPES) and the JSON-able `meta` atomically;
    returns the file's size in bytes."""
    entries, chunks, offset = [], [], 0
    for name, array in arrays.items():
        array = np.asarray(array, order="C")
        if array.dtype.name not in DTYPES:
            raise ValueError(f"{name}: dtype {array.dtype} cannot be stored (one of {', '.join(DTYPES)})")
        entries.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape), "offset": offset})
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        chunks.append(data)
        offset += len(data)
    header = json.dumps({"kind": kind, "meta": meta, "payload_bytes": offset, "arrays": entries}).encode("utf-8")
    payload = zstandard.ZstdCompressor(level=COMPRESSION_LEVEL, write_checksum=True).compress(b"".join(chunks))
    blob = _PREAMBLE.pack(MAGIC, FORMAT, len(header)) + header + payload
    atomic_write(path, lambda file: file.write(blob))
    return len(blob)


def read(path: Path, kind: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a container of this `kind`; ContainerError naming the file for anything else."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as error:
        raise ContainerError(f"{path}: cannot read ({error.strerror or error})") from None
    header, payload = _split(path, blob)
    if header.get("kind") != kind:
        raise ContainerError(f"{path}: holds {header.get('kind')!r}, not a {kind}")
    entries = _checked_entries(path, header)
    data = _decompress(path, payload, header["payload_bytes"])
    arrays = {entry["name"]: np.frombuffer(data, dtype=np.dtype(entry["dtype"]).newbyteorder("<"),
                                           count=math.prod(entry["shape"]), offset=entry["offset"])
              .reshape(entry["shape"]).astype(entry["dtype"]) for entry in entries}
    meta = header.get("meta")
    if not isinstance(meta, dict):
        raise ContainerError(f"{path}: damaged header (meta is not an object)")
    return meta, arrays


def _split(path: Path, blob: bytes) -> tuple[dict, bytes]:
    """The parsed JSON header and the compressed payload of a file's bytes."""
    if blob.startswith(_PICKLED):
        raise ContainerError(f"{path}: a pickle or torch file, which hollow-taichi does not open (loading one can "
                             "run code); a compact model of an older hollow-taichi: export it again")
    if len(blob) < _PREAMBLE.size or blob[:len(MAGIC)] != MAGIC:
        raise ContainerError(f"{path}: not a hollow-taichi model file (no container header)")
    _, version, length = _PREAMBLE.unpack_from(blob)
    if version != FORMAT:
        raise ContainerError(f"{path}: model format {version}, but this hollow-taichi reads format {FORMAT}: "
                             "export the model again with this version")
    if length > MAX_HEADER_BYTES or _PREAMBLE.size + length > len(blob):
        raise ContainerError(f"{path}: truncated or damaged (a header of {length} bytes in a file of {len(blob)})")
    try:
        header = json.loads(blob[_PREAMBLE.size:_PREAMBLE.size + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ContainerError(f"{path}: damaged header (not JSON)") from None
    if not isinstance(header, dict):
        raise ContainerError(f"{path}: damaged header (not a JSON object)")
    return header, blob[_PREAMBLE.size + length:]


def _checked_entries(path: Path, header: dict) -> list[dict]:
    """The header's array entries, each checked to lie inside the declared payload."""
    size, entries = header.get("payload_bytes"), header.get("arrays")
    if not _whole(size) or size > MAX_PAYLOAD_BYTES or not isinstance(entries, list):
        raise ContainerError(f"{path}: damaged header (payload size or array list)")
    names = set()
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or entry["name"] in names:
            raise ContainerError(f"{path}: damaged header (an array without a unique name)")
        names.add(entry["name"])
        shape, offset, dtype = entry.get("shape"), entry.get("offset"), entry.get("dtype")
        if dtype not in DTYPES:
            raise ContainerError(f"{path}: array {entry['name']!r} has dtype {dtype!r}, not one of {', '.join(DTYPES)}")
        if not isinstance(shape, list) or not all(_whole(extent) for extent in shape) or not _whole(offset):
            raise ContainerError(f"{path}: array {entry['name']!r} has a malformed shape or offset")
        end = offset + math.prod(shape) * np.dtype(dtype).itemsize
        if end > size:
            raise ContainerError(f"{path}: array {entry['name']!r} ends at byte {end}, past the payload's {size}")
    return entries


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _decompress(path: Path, payload: bytes, size: int) -> bytes:
    """The payload decoded, which must be exactly `size` bytes; never more than size + 1 are decoded."""
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload)) as reader:
            data = bytearray()
            while len(data) <= size:
                chunk = reader.read(size + 1 - len(data))
                if not chunk:
                    break
                data += chunk
    except zstandard.ZstdError as error:
        raise ContainerError(f"{path}: truncated or damaged payload ({error})") from None
    if len(data) != size:
        raise ContainerError(f"{path}: truncated or damaged payload ({len(data)} bytes where the header says {size})")
    return bytes(data)
