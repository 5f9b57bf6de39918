"""The model container: exact round trips, and crafted or damaged files refused without running anything."""
import json
import struct

import numpy as np
import pytest

from hollow_taichi import container
from hollow_taichi.container import ContainerError

KIND = "test arrays"


def sample_arrays() -> dict[str, np.ndarray]:
    generator = np.random.default_rng(0)
    arrays = {dtype: (generator.standard_normal((3, 5)) * 100).astype(dtype) for dtype in container.DTYPES}
    arrays["float32"][0, 0] = np.float32(1e-38)  # a subnormal-adjacent value must come back bit for bit
    arrays["empty"] = np.zeros((0, 4), np.float32)
    arrays["scalar"] = np.array(7, np.int32)
    return arrays


def test_every_dtype_round_trips_exactly(tmp_path):
    arrays = sample_arrays()
    meta = {"step": 3, "nested": {"name": "lego", "values": [1.5, None]}}
    size = container.write(tmp_path / "file", KIND, meta, arrays)

    read_meta, read_arrays = container.read(tmp_path / "file", KIND)

    assert size == (tmp_path / "file").stat().st_size
    assert read_meta == meta and read_arrays.keys() == arrays.keys()
    for name, array in arrays.items():
        assert read_arrays[name].dtype == array.dtype and read_arrays[name].shape == array.shape
        assert read_arrays[name].tobytes() == array.tobytes(), name
        assert read_arrays[name].flags.writeable


def test_compresses(tmp_path):
    zeros = np.zeros(1 << 20, np.float32)
    assert container.write(tmp_path / "file", KIND, {}, {"zeros": zeros}) < 10_000


def test_refuses_a_dtype_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="object"):
        container.write(tmp_path / "file", KIND, {}, {"bad": np.array([None])})


def crafted(tmp_path, header: dict, payload: bytes = b"", version: int = container.FORMAT) -> str:
    """A file with this header (JSON) and a zstd payload of these bytes."""
    import zstandard

    text = json.dumps(header).encode()
    blob = struct.pack("<8sIQ", container.MAGIC, version, len(text)) + text + zstandard.compress(payload)
    path = tmp_path / "crafted"
    path.write_bytes(blob)
    return path


def refusal(path, kind=KIND) -> str:
    with pytest.raises(ContainerError) as error:
        container.read(path, kind)
    message = str(error.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def test_a_header_that_lies_about_sizes_is_refused(tmp_path):
    entry = {"name": "a", "dtype": "float32", "shape": [1000], "offset": 0}
    assert "past the payload" in refusal(crafted(tmp_path, {"kind": KIND, "meta": {}, "payload_bytes": 16,
                                                             "arrays": [entry]}, bytes(16)))
    entry["shape"] = [4]
    lying = crafted(tmp_path, {"kind": KIND, "meta": {}, "payload_bytes": 1 << 30, "arrays": [entry]}, bytes(16))
    assert "16 bytes where the header says 1073741824" in refusal(lying)
    assert "malformed shape" in refusal(crafted(tmp_path, {"kind": KIND, "meta": {}, "payload_bytes": 16, "arrays": [
        {"name": "a", "dtype": "float32", "shape": [-4], "offset": 0}]}, bytes(16)))
    assert "dtype 'object'" in refusal(crafted(tmp_path, {"kind": KIND, "meta": {}, "payload_bytes": 16, "arrays": [
        {"name": "a", "dtype": "object", "shape": [2], "offset": 0}]}, bytes(16)))
    assert "payload size" in refusal(crafted(tmp_path, {"kind": KIND, "meta": {}, "payload_bytes": 1 << 40,
                                                         "arrays": []}))


def test_a_header_longer_than_the_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(struct.pack("<8sIQ", container.MAGIC, container.FORMAT, 1 << 20) + b"{}")
    assert "truncated or damaged" in refusal(path)


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_a_truncated_file_is_refused(tmp_path, keep):
    path = tmp_path / "file"
    container.write(path, KIND, {"a": 1}, {"values": np.random.default_rng(1).standard_normal(50_000)
                                           .astype(np.float32)})
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])
    refusal(path)


def test_other_kinds_versions_and_files_are_refused(tmp_path):
    container.write(tmp_path / "file", "another kind", {}, {})
    assert "not a test arrays" in refusal(tmp_path / "file")
    assert "format 99" in refusal(crafted(tmp_path, {"kind": KIND}, version=99))
    (tmp_path / "text").write_text("hello")
    assert "not a hollow-taichi model file" in refusal(tmp_path / "text")


def test_a_pickle_is_never_unpickled(tmp_path):
    """A pickle whose loading would create a file: refused by name, and the file never appears."""
    import pickle

    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.htc"
    path.write_bytes(pickle.dumps(Exploit()))
    assert "pickle" in refusal(path)
    assert not marker.exists()
