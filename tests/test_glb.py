"""The .glb container: what we build reads back exactly; lying headers and short files are refused."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from sharp_core.glb import GltfBuilder, accessor_array, read_glb, write_glb


def test_round_trip_accessors(tmp_path):
    b = GltfBuilder()
    positions = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    indices = np.arange(9, dtype=np.uint16)  # 18 bytes: the next view must still start 4-aligned
    colors = np.random.default_rng(1).integers(0, 255, size=(7, 4), dtype=np.uint8)
    ia = b.add_accessor(indices, "SCALAR", target=34963)
    pa = b.add_accessor(positions, "VEC3", bounds=True)
    ca = b.add_accessor(colors, "VEC4", normalized=True)
    b.json["meshes"] = [{"primitives": [{"attributes": {"POSITION": pa, "COLOR_0": ca}, "indices": ia}]}]
    path = write_glb(b, tmp_path / "a.glb")
    raw = path.read_bytes()
    assert raw[:4] == b"glTF" and struct.unpack("<I", raw[8:12])[0] == len(raw) and len(raw) % 4 == 0
    doc, blob = read_glb(path)
    assert all(v["byteOffset"] % 4 == 0 for v in doc["bufferViews"])
    assert doc["accessors"][pa]["min"] == pytest.approx(positions.min(0).tolist())
    np.testing.assert_array_equal(accessor_array(doc, blob, pa), positions)
    np.testing.assert_array_equal(accessor_array(doc, blob, ia), indices)
    np.testing.assert_array_equal(accessor_array(doc, blob, ca), colors)


def test_bad_files(tmp_path):
    b = GltfBuilder()
    b.add_accessor(np.zeros((4, 3), np.float32), "VEC3")
    good = b.to_bytes()
    cases = {
        "magic": (b"xxxx" + good[4:], "not a binary glTF"),
        "version": (good[:4] + struct.pack("<I", 1) + good[8:], "version 1"),
        "truncated": (good[:-8], "truncated"),
        "chunk": (good[:12] + struct.pack("<I", 1 << 30) + good[16:], "past the end"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.glb"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message):
            read_glb(path)
    doc, blob = read_glb(_write(tmp_path / "ok.glb", good))
    doc["accessors"][0]["count"] = 10**9  # an accessor claiming more than the buffer holds
    with pytest.raises(ValueError, match="past its buffer"):
        accessor_array(doc, blob, 0)


def _write(path, data):
    path.write_bytes(data)
    return path
