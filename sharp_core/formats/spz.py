"""Niantic SPZ (`.spz`): about 20 bytes a splat before compression, ~10x smaller than a PLY.

Layout (github.com/nianticlabs/spz). Versions 1-3: one gzip stream holding a 16-byte header
(u32 magic "NGSP" 0x5053474E, u32 version, u32 N, u8 SH degree, u8 fractional bits, u8 flags,
u8 reserved) then, attribute by attribute for all N splats: positions, alphas, colours, scales,
rotations, SH. Version 4: a plain 32-byte header (the same first 15 bytes, u8 stream count, u32 table
offset, 12 reserved), optional extension records, a table of (compressed, uncompressed) u64 sizes and
one zstd stream per attribute. We write version 3 and read 1-4 (4 needs the optional `zstandard`
package: `pip install zstandard`, or this pack's `spz4` extra). Extension records (flag 0x2) are
skipped, as Niantic's default build does.

Conventions:
- frame: SPZ stores RUB (x right, y up, z back; three.js / OpenGL); ours is RDF (OpenCV: y down,
  z forward). Writing and reading negate y and z of positions, the quaternion's y and z (a 180 degree
  turn about x: (w, x, y, z) -> (w, x, -y, -z)) and the SH coefficients odd in y or z. `frame="rdf"`
  (writer option; `load_spz(path, frame="rdf")`) stores / reads the PLY frame raw instead, which is
  what Niantic's ply_to_spz tool and PlayCanvas splat-transform do (they write with no conversion).
- positions: 24-bit signed fixed point with F fractional bits (12, about 0.24 mm, and fewer only when
  a coordinate reaches 2048 m; the header says F): |error| <= 2^-(F+1) (1.2e-4 m at F = 12).
  Version 1 stores float16 positions.
- alphas: u8 of the linear opacity, round(255 o) clamped to 1..254 so readers that take its logit
  (Niantic's own, splat-transform) never see 0 or 1: |error| <= 1/510 inside [1/255, 254/255],
  at most 1/255 outside.
- colours: u8 of the DC coefficient, round(255 (0.15 f_dc + 0.5)), f_dc = (srgb(c) - 0.5) / C0 (our
  linear colours are sRGB-encoded first): |error of srgb(c)| <= C0 / (0.15 * 510) = 3.69e-3.
- scales: u8 of the log std-dev, round(16 (ln s + 10)) clamped to 0..255: |error of ln s| <= 1/32
  for s in [e^-10, e^5.94] (45 micrometres .. 380 m); smaller (zero included) read as e^-10.
- rotations (version 3+): "smallest three" of the unit quaternion in SPZ's (x, y, z, w) order: 2 bits
  the largest component's index, then for each other component (ascending index, high bits first) a
  sign bit and a 9-bit magnitude round(511 |q_i| sqrt 2); the largest is rebuilt. Rotation angle error
  <= 5e-3 rad (0.29 degrees). Versions 1-2: x, y, z as u8 (q + 1) * 127.5 with w >= 0 rebuilt.
- SH (degrees 1-3 carried; a degree-4 file's fourth band is dropped): u8 round(128 x) + 128 rounded to
  buckets of 2^(8 - bits) (bits: `sh1_bits` = 5 for degree 1, `sh_rest_bits` = 4 above, Niantic's
  defaults), clamped to [-1, 127/128], coefficient-major with RGB inner (our (N, K, 3) order):
  |error| <= (0.5 + 2^(7 - bits)) / 128 inside that range (0.035 at 5 bits, 0.066 at 4, 1/256 at 8).
- The file has no slot for the source camera: focal length and image size read back as the PLY
  defaults (512 px, 640 x 480). Splat order is kept.
Reading checks every size against the bytes before allocating and inflates at most what the header
promises (a header claiming more splats than the compressed bytes can hold is refused at once). Writes
are atomic.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..color import SH_C0, linear_to_srgb, srgb_to_linear
from ..gaussians import SH_REST_COUNTS, Gaussians
from ..edit import axis_flip_sh_signs
from . import ply
from .base import SplatFormat
from .quantize import from_smallest_three, smallest_three

__all__ = ["save_spz", "load_spz", "SPZ_MAGIC", "SH_FLIP_RDF_RUB"]

SPZ_MAGIC = 0x5053474E  # b"NGSP" little-endian
_LEGACY_HEADER = struct.Struct("<IIIBBBB")  # 16 bytes
_V4_HEADER = struct.Struct("<IIIBBBBI12s")  # 32 bytes
_COLOR_SCALE = 0.15
_MAX_FRACTIONAL_BITS = 12
_FIXED_MAX = (1 << 23) - 1
_DEFLATE_MAX_RATIO = 1032  # DEFLATE cannot expand a stream by more than about 1032:1
_ZSTD_MAX_RATIO = 1 << 16  # generous: zstd's own limit is far beyond real splat streams
# Sign of each SH coefficient (bands 1-3, 3DGS order) under (x, y, z) -> (x, -y, -z).
SH_FLIP_RDF_RUB = axis_flip_sh_signs((1, -1, -1)).numpy()  # y and z flipped
_FRAMES = ("rub", "rdf")


def _sh_dim(degree: int) -> int:
    return (degree + 1) ** 2 - 1


# -- writing ------------------------------------------------------------------------------------


@torch.no_grad()
def save_spz(gaussians: Gaussians, path: str | os.PathLike, frame: str = "rub", sh1_bits: int = 5,
             sh_rest_bits: int = 4, compresslevel: int = 6) -> Path:
    """Write one scene as an SPZ version 3 file (gzip), in `frame` ("rub": the spec's, default; "rdf":
    the PLY frame raw); SH bands quantised to `sh1_bits` / `sh_rest_bits` (1-8). Returns the path."""
    path = Path(path)
    if gaussians.batch_size != 1:
        raise ValueError(f"save_spz writes one scene but got a batch of {gaussians.batch_size}.")
    if frame not in _FRAMES:
        raise ValueError(f"SPZ frame {frame!r} is not one of {', '.join(_FRAMES)}.")
    if not (1 <= sh1_bits <= 8 and 1 <= sh_rest_bits <= 8):
        raise ValueError(f"SPZ SH bits must be 1..8 (got sh1_bits={sh1_bits}, sh_rest_bits={sh_rest_bits}).")
    gaussians.check_finite(f"save {path.name}")
    g = gaussians.to(device="cpu", dtype=torch.float32)
    flip = np.array([1.0, -1.0, -1.0]) if frame == "rub" else np.ones(3)
    n = g.num_gaussians

    means = g.means[0].numpy().astype(np.float64) * flip
    extent = float(np.abs(means).max()) if n else 0.0
    bits = _MAX_FRACTIONAL_BITS
    while bits > 0 and extent * (1 << bits) > _FIXED_MAX:
        bits -= 1
    if extent * (1 << bits) > _FIXED_MAX:
        raise ValueError(f"Cannot save {path.name} as SPZ: a splat lies {extent:.3g} m from the origin, beyond "
                         f"SPZ's 24-bit positions ({_FIXED_MAX:,} m); crop the scene first.")
    fixed = np.rint(means * (1 << bits)).astype(np.int32)
    positions = (fixed.astype("<u4") & 0xFFFFFF).view(np.uint8).reshape(n, 3, 4)[:, :, :3]

    alphas = _u8(g.opacities[0].numpy() * 255.0, 1, 254)
    f_dc = (linear_to_srgb(g.colors[0]).numpy().astype(np.float64) - 0.5) / SH_C0
    colors = _u8(f_dc * (_COLOR_SCALE * 255.0) + 127.5)
    log_scales = np.log(np.maximum(g.scales[0].numpy().astype(np.float64), ply.SCALE_FLOOR))
    scales = _u8((log_scales + 10.0) * 16.0)

    q = g.quats[0].numpy().astype(np.float64)
    xyzw = np.concatenate([q[:, 1:] * flip, q[:, :1]], axis=1)
    largest, rest = smallest_three(xyzw)
    mag = np.minimum(np.floor(np.abs(rest) * (511.0 * math.sqrt(2.0)) + 0.5), 511).astype(np.uint32)
    fields = ((rest < 0).astype(np.uint32) << 9) | mag
    packed = (largest.astype(np.uint32) << 30) | (fields[:, 0] << 20) | (fields[:, 1] << 10) | fields[:, 2]
    rotations = packed.astype("<u4").view(np.uint8)

    degree, sh = 0, np.zeros((n, 0), dtype=np.uint8)
    if g.sh_rest is not None:
        rest_sh = g.sh_rest[0].numpy().astype(np.float64)  # (N, K, 3)
        k = rest_sh.shape[1]
        degree = SH_REST_COUNTS.index(k)
        if frame == "rub":
            rest_sh = rest_sh * SH_FLIP_RDF_RUB[:k, None]
        bucket = np.where(np.arange(k) < 3, 1 << (8 - sh1_bits), 1 << (8 - sh_rest_bits))[None, :, None]
        raw = np.rint(rest_sh * 128.0) + 128.0
        sh = np.clip((raw + bucket // 2) // bucket * bucket, 0, 255).astype(np.uint8).reshape(n, k * 3)

    header = _LEGACY_HEADER.pack(SPZ_MAGIC, 3, n, degree, bits, 0, 0)
    payload = b"".join(a.tobytes() for a in (positions, alphas, colors, scales, rotations, sh))
    with atomic_write(path) as f:
        f.write(gzip.compress(header + payload, compresslevel=compresslevel, mtime=0))
    return path


def _u8(values: np.ndarray, lo: int = 0, hi: int = 255) -> np.ndarray:
    return np.clip(np.floor(np.asarray(values, dtype=np.float64) + 0.5), lo, hi).astype(np.uint8)


# -- reading ------------------------------------------------------------------------------------


def load_spz(path: str | os.PathLike, frame: str = "rub") -> Gaussians:
    """Read an SPZ file (versions 1-4) as a one-scene `Gaussians` in our frame, taking the file to be
    in `frame` ("rub", the spec's; "rdf" for files written raw from a PLY). ValueError names the file
    and the problem."""
    path = Path(path)
    if frame not in _FRAMES:
        raise ValueError(f"SPZ frame {frame!r} is not one of {', '.join(_FRAMES)}.")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"{path}: cannot read the SPZ file ({error}).") from error
    if data[:4] == b"NGSP":
        version, n, degree, bits, streams = _read_v4(path, data)
    elif data[:2] == b"\x1f\x8b":
        version, n, degree, bits, streams = _read_legacy(path, data)
    else:
        raise ValueError(f"{path}: not an SPZ file (it starts with neither a gzip stream nor 'NGSP').")
    return _decode(path, version, n, degree, bits, streams, frame)


def _check_header(path: Path, magic: int, version: int, degree: int, versions: range) -> None:
    if magic != SPZ_MAGIC:
        raise ValueError(f"{path}: not an SPZ file (no 'NGSP' magic in its header).")
    if version not in versions:
        raise ValueError(f"{path}: unsupported SPZ version {version}; this reader takes versions 1 to 4.")
    if degree > 4:
        raise ValueError(f"{path}: SPZ header gives SH degree {degree}; SPZ has degrees 0 to 4.")


def _stream_sizes(version: int, n: int, degree: int) -> list[int]:
    """Bytes of positions, alphas, colours, scales, rotations and SH for n splats."""
    return [n * (6 if version == 1 else 9), n, 3 * n, 3 * n, n * (4 if version >= 3 else 3), n * 3 * _sh_dim(degree)]


def _read_legacy(path: Path, data: bytes):
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    header = _inflate(path, inflater, data, _LEGACY_HEADER.size)
    if len(header) < _LEGACY_HEADER.size:
        raise ValueError(f"{path}: truncated SPZ file: the gzip stream ends inside the 16-byte header.")
    magic, version, n, degree, bits, _flags, _ = _LEGACY_HEADER.unpack(header)
    if magic == SPZ_MAGIC and version >= 4:
        raise ValueError(f"{path}: unsupported SPZ version {version} in a gzip stream (gzip files are versions 1 to 3; "
                         "version 4 files start with 'NGSP').")
    _check_header(path, magic, version, degree, range(1, 4))
    sizes = _stream_sizes(version, n, degree)
    needed = sum(sizes)
    if needed > len(data) * _DEFLATE_MAX_RATIO + 4096:
        raise ValueError(f"{path}: SPZ header claims {n:,} splats ({needed:,} bytes) but {len(data):,} compressed "
                         "bytes cannot hold that many; the file is corrupt or truncated.")
    body = _inflate(path, inflater, inflater.unconsumed_tail, needed)
    if len(body) < needed:
        raise ValueError(f"{path}: truncated SPZ file: the header promises {n:,} splats ({needed:,} bytes) but the "
                         f"data ends after {len(body):,} bytes.")
    return version, n, degree, bits, _split(body, sizes)


def _inflate(path: Path, inflater, data: bytes, size: int) -> bytes:
    """Up to `size` more bytes of the gzip stream (never more: a gzip bomb stops here)."""
    out = []
    got = 0
    try:
        chunk = inflater.decompress(data, size)
        while True:
            out.append(chunk)
            got += len(chunk)
            if got >= size or inflater.eof or not inflater.unconsumed_tail:
                break
            chunk = inflater.decompress(inflater.unconsumed_tail, size - got)
    except zlib.error as error:
        raise ValueError(f"{path}: corrupt SPZ file: its gzip stream cannot be inflated ({error}).") from error
    return b"".join(out)


def _split(body: bytes, sizes: list[int]) -> list[memoryview]:
    view, out, offset = memoryview(body), [], 0
    for size in sizes:
        out.append(view[offset:offset + size])
        offset += size
    return out


def _read_v4(path: Path, data: bytes):
    if len(data) < _V4_HEADER.size:
        raise ValueError(f"{path}: truncated SPZ file: {len(data)} bytes, shorter than the 32-byte header.")
    magic, version, n, degree, bits, _flags, num_streams, toc, _ = _V4_HEADER.unpack_from(data)
    _check_header(path, magic, version, degree, range(4, 5))
    sizes = _stream_sizes(version, n, degree)
    present = [s for s in sizes if s > 0]
    if num_streams != len(present):
        raise ValueError(f"{path}: SPZ header lists {num_streams} streams; {n:,} splats of SH degree {degree} "
                         f"need {len(present)}.")
    if toc < _V4_HEADER.size or toc + 16 * num_streams > len(data):
        raise ValueError(f"{path}: truncated or corrupt SPZ file: its stream table (at byte {toc}) lies outside "
                         f"the file's {len(data):,} bytes.")
    if sum(present) > len(data) * _ZSTD_MAX_RATIO:
        raise ValueError(f"{path}: SPZ header claims {n:,} splats but {len(data):,} bytes cannot hold that many.")
    try:
        import zstandard
    except ImportError:
        raise ValueError(
            f"{path}: SPZ version 4 files are zstd-compressed and reading them needs the optional package "
            "'zstandard': install it with `pip install zstandard` (into ComfyUI's Python), then load again."
        ) from None
    decompressor = zstandard.ZstdDecompressor()
    offset = toc + 16 * num_streams
    streams = []
    for i, expected in enumerate(present):
        compressed, uncompressed = struct.unpack_from("<QQ", data, toc + 16 * i)
        if uncompressed != expected:
            raise ValueError(f"{path}: corrupt SPZ file: stream {i} holds {uncompressed:,} bytes, "
                             f"{n:,} splats need {expected:,}.")
        if offset + compressed > len(data):
            raise ValueError(f"{path}: truncated SPZ file: stream {i} ends past the end of the file.")
        try:
            with decompressor.stream_reader(io.BytesIO(data[offset:offset + compressed])) as reader:
                raw = reader.read(expected + 1)
        except zstandard.ZstdError as error:
            raise ValueError(f"{path}: corrupt SPZ file: zstd stream {i} cannot be decompressed ({error}).") from error
        if len(raw) != expected:
            raise ValueError(f"{path}: corrupt SPZ file: zstd stream {i} holds {len(raw):,} bytes, not {expected:,}.")
        streams.append(memoryview(raw))
        offset += compressed
    it = iter(streams)
    return version, n, degree, bits, [next(it) if s > 0 else memoryview(b"") for s in sizes]


def _decode(path: Path, version: int, n: int, degree: int, bits: int, streams: list, frame: str) -> Gaussians:
    pos_b, alpha_b, color_b, scale_b, rot_b, sh_b = (np.frombuffer(s, dtype=np.uint8) for s in streams)
    if version == 1:
        means = pos_b.view("<f2").reshape(n, 3).astype(np.float64)
        if not np.isfinite(means).all():
            raise ValueError(f"{path}: SPZ positions contain NaN or infinite values; the file is corrupt.")
    else:
        b = pos_b.reshape(n, 3, 3).astype(np.int32)
        fixed = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
        means = ((fixed ^ 0x800000) - 0x800000).astype(np.float64) * 2.0 ** -bits
    opacities = alpha_b.astype(np.float32) / 255.0
    f_dc = (color_b.reshape(n, 3).astype(np.float64) / 255.0 - 0.5) / _COLOR_SCALE
    srgb = f_dc * SH_C0 + 0.5
    scales = np.exp(scale_b.reshape(n, 3).astype(np.float64) / 16.0 - 10.0)
    if version >= 3:
        packed = rot_b.view("<u4")
        fields = np.stack([(packed >> s) & 0x3FF for s in (20, 10, 0)], axis=1)
        rest = (fields & 511) / 511.0 * math.sqrt(0.5) * np.where(fields & 512, -1.0, 1.0)
        xyzw = from_smallest_three(packed >> 30, rest).astype(np.float64)
    else:
        xyz = rot_b.reshape(n, 3).astype(np.float64) / 127.5 - 1.0
        w = np.sqrt(np.maximum(0.0, 1.0 - (xyz * xyz).sum(axis=1, keepdims=True)))
        xyzw = np.concatenate([xyz, w], axis=1)
        xyzw /= np.linalg.norm(xyzw, axis=1, keepdims=True)
    quats = np.concatenate([xyzw[:, 3:], xyzw[:, :3]], axis=1)
    sh_rest = None
    dim = _sh_dim(degree)
    if dim:
        k = max(c for c in SH_REST_COUNTS if c <= dim)
        sh_rest = ((sh_b.reshape(n, dim, 3)[:, :k].astype(np.float32) - 128.0) / 128.0)
    if frame == "rub":
        means = means * np.array([1.0, -1.0, -1.0])
        quats = quats * np.array([1.0, 1.0, -1.0, -1.0])
        if sh_rest is not None:
            sh_rest = sh_rest * SH_FLIP_RDF_RUB[: sh_rest.shape[1], None]
    as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return Gaussians(
        means=as_tensor(means), scales=as_tensor(scales), quats=as_tensor(quats),
        colors=srgb_to_linear(as_tensor(srgb)), opacities=as_tensor(opacities),
        focal_px=[ply.DEFAULT_FOCAL_PX], image_size=[ply.DEFAULT_IMAGE_SIZE],
        sh_rest=None if sh_rest is None else as_tensor(sh_rest),
    )


def _sniff(head: bytes, path: Path) -> bool:
    """'NGSP' (version 4), or a gzip stream whose first 4 inflated bytes are 'NGSP'."""
    if head[:4] == b"NGSP":
        return True
    if head[:2] != b"\x1f\x8b":
        return False
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4) == b"NGSP"
    except zlib.error:
        return False


FORMATS = (
    SplatFormat(
        name="spz", label="SPZ (Niantic)", extensions=(".spz",),
        write=save_spz, read=load_spz, sniff=_sniff,
    ),
)
