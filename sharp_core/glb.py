"""Binary glTF 2.0 (.glb) containers: build one from numpy arrays, read one back with bounds checks.

Shared by the splat exporter (`formats/gltf.py`, KHR_gaussian_splatting) and the mesh exporter.
Layout (glTF 2.0 spec, "GLB File Format Specification"): a 12-byte header (magic "glTF", version 2,
total length), a JSON chunk (type "JSON", padded with spaces to 4 bytes) and an optional binary chunk
(type "BIN\\0", padded with zeros). Every buffer view starts on a 4-byte boundary, so every accessor is
aligned for its component type. All numbers are little-endian.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from .atomic import atomic_write

__all__ = ["GltfBuilder", "read_glb", "accessor_array", "COMPONENT_TYPES", "write_glb"]

GLB_MAGIC = b"glTF"
_JSON_CHUNK = 0x4E4F534A
_BIN_CHUNK = 0x004E4942
ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
# glTF componentType -> numpy dtype (little-endian)
COMPONENT_TYPES = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_COMPONENT_OF_DTYPE = {np.dtype(v): k for k, v in COMPONENT_TYPES.items()}
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_MAX_JSON_BYTES = 64 << 20


class GltfBuilder:
    """Accumulates buffer views and accessors in one binary buffer; `json` is the glTF document
    to complete (meshes, nodes, scenes, extensions) before `to_bytes()` / `write_glb()`."""

    def __init__(self, generator: str = "sharp_core") -> None:
        self.json: dict = {"asset": {"version": "2.0", "generator": generator}}
        self._blob = bytearray()

    def add_buffer_view(self, data: bytes | np.ndarray, target: int | None = None) -> int:
        """Append raw bytes as a buffer view (4-byte aligned); returns its index."""
        raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
        self._blob += b"\0" * (-len(self._blob) % 4)
        view = {"buffer": 0, "byteOffset": len(self._blob), "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        self._blob += raw
        views = self.json.setdefault("bufferViews", [])
        views.append(view)
        return len(views) - 1

    def add_accessor(self, array: np.ndarray, kind: str, *, normalized: bool = False,
                     target: int | None = ARRAY_BUFFER, bounds: bool = False) -> int:
        """Store `array` (count, components) or (count,) as an accessor of `kind` ("VEC3", ...).

        `bounds` records min/max per component (required for POSITION attributes).
        """
        array = np.ascontiguousarray(array)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        component = _COMPONENT_OF_DTYPE.get(np.dtype(dtype))
        if component is None:
            raise ValueError(f"glTF has no component type for {array.dtype}")
        width = _TYPE_SIZES[kind]
        count = array.shape[0] if array.ndim else 0
        if array.size != count * width:
            raise ValueError(f"an accessor of {kind} needs {width} values per element, got shape {array.shape}")
        view = self.add_buffer_view(array.astype(COMPONENT_TYPES[component], copy=False), target)
        accessor = {"bufferView": view, "componentType": component, "count": count, "type": kind}
        if normalized:
            accessor["normalized"] = True
        if bounds and count:
            flat = array.reshape(count, width)
            accessor["min"] = [float(v) if component == 5126 else int(v) for v in flat.min(axis=0)]
            accessor["max"] = [float(v) if component == 5126 else int(v) for v in flat.max(axis=0)]
        accessors = self.json.setdefault("accessors", [])
        accessors.append(accessor)
        return len(accessors) - 1

    def to_bytes(self) -> bytes:
        """The whole .glb file."""
        doc = dict(self.json)
        blob = bytes(self._blob) + b"\0" * (-len(self._blob) % 4)
        if blob:
            doc["buffers"] = [{"byteLength": len(self._blob)}]
        text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        text += b" " * (-len(text) % 4)
        chunks = struct.pack("<II", len(text), _JSON_CHUNK) + text
        if blob:
            chunks += struct.pack("<II", len(blob), _BIN_CHUNK) + blob
        return GLB_MAGIC + struct.pack("<II", 2, 12 + len(chunks)) + chunks


def write_glb(builder: GltfBuilder, path: str | os.PathLike) -> Path:
    """Write the builder's document to `path` atomically."""
    path = Path(path)
    with atomic_write(path) as f:
        f.write(builder.to_bytes())
    return path


def read_glb(path: str | os.PathLike) -> tuple[dict, bytes]:
    """(glTF JSON document, BIN chunk bytes) of a .glb file; ValueError names the file and problem.

    Sizes are checked against the file before anything is read, so a lying header allocates nothing.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != GLB_MAGIC:
            raise ValueError(f"{path}: not a binary glTF file (no 'glTF' magic).")
        version, length = struct.unpack("<II", header[4:])
        if version != 2:
            raise ValueError(f"{path}: glTF container version {version}; only version 2 is supported.")
        if length > size:
            raise ValueError(f"{path}: truncated .glb: the header says {length} bytes, the file has {size}.")
        doc, blob = None, b""
        offset = 12
        while offset + 8 <= length:
            chunk_len, chunk_type = struct.unpack("<II", f.read(8))
            if offset + 8 + chunk_len > length:
                raise ValueError(f"{path}: truncated .glb: a chunk runs past the end of the file.")
            if chunk_type == _JSON_CHUNK:
                if chunk_len > _MAX_JSON_BYTES:
                    raise ValueError(f"{path}: the glTF JSON chunk is {chunk_len} bytes, over the 64 MiB limit.")
                try:
                    doc = json.loads(f.read(chunk_len).decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise ValueError(f"{path}: the glTF JSON chunk is not valid JSON ({exc}).") from None
            elif chunk_type == _BIN_CHUNK and not blob:
                blob = f.read(chunk_len)
            else:
                f.seek(chunk_len, os.SEEK_CUR)
            offset += 8 + chunk_len
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: the .glb file has no JSON chunk.")
    return doc, blob


def accessor_array(doc: dict, blob: bytes, index: int, where: str = "glb") -> np.ndarray:
    """Accessor `index` as a (count, components) array (or (count,) for SCALAR), bounds-checked."""
    try:
        accessor = doc["accessors"][index]
        view = doc["bufferViews"][accessor["bufferView"]]
        dtype = np.dtype(COMPONENT_TYPES[accessor["componentType"]])
        width = _TYPE_SIZES[accessor["type"]]
        count = int(accessor["count"])
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"{where}: accessor {index} is incomplete or points nowhere ({exc!r}).") from None
    if view.get("buffer", 0) != 0:
        raise ValueError(f"{where}: accessor {index} uses an external buffer; only self-contained .glb files load.")
    start = int(view.get("byteOffset", 0)) + int(accessor.get("byteOffset", 0))
    stride = int(view.get("byteStride", 0)) or dtype.itemsize * width
    need = 0 if count == 0 else (count - 1) * stride + dtype.itemsize * width
    view_end = int(view.get("byteOffset", 0)) + int(view.get("byteLength", 0))
    if count < 0 or start < 0 or start + need > min(view_end, len(blob)):
        raise ValueError(f"{where}: accessor {index} reaches past its buffer (truncated or corrupt file).")
    if stride == dtype.itemsize * width:
        out = np.frombuffer(blob, dtype=dtype, count=count * width, offset=start).reshape(count, width)
    else:
        rows = np.lib.stride_tricks.as_strided(
            np.frombuffer(blob, dtype=np.uint8, count=need, offset=start),
            shape=(count, dtype.itemsize * width), strides=(stride, 1))
        out = np.ascontiguousarray(rows).view(dtype).reshape(count, width)
    return out[:, 0] if width == 1 else out
