"""GaussianSplats3D `.ksplat` (mkkellogg's SplatBuffer), read only: versions 0.1 and later 0.x,
compression levels 0, 1 and 2, any number of sections, SH degrees 0-2.

Layout (all little-endian):
- Header, 4096 bytes: u8 version major (0), u8 minor (>= 1); u32 at 4 maxSectionCount, 8 sectionCount,
  12 maxSplatCount, 16 splatCount; u16 at 20 compressionLevel; f32 at 24 scene centre (3); f32 at 36 /
  40 the min / max SH coefficient of level 2's 8-bit SH (0 means -1.5 / +1.5); the rest zero.
- maxSectionCount section headers of 1024 bytes each: u32 at 0 splatCount, 4 maxSplatCount, 8 bucketSize,
  12 bucketCount; f32 at 16 bucketBlockSize; u16 at 20 bucket storage bytes (12); u32 at 24
  compressionScaleRange (0 means 1 at level 0, 32767 above); 28 storage bytes; 32 fullBucketCount,
  36 partiallyFilledBucketCount; u16 at 40 SH degree.
- Then each section in turn: partiallyFilledBucketCount u32 lengths of the partly filled buckets,
  bucketCount bucket centres (f32 x, y, z), then maxSplatCount splats (the reader takes
  maxSplatCount as the section's count, as GaussianSplats3D's loader does). The next section starts
  after the section's bucket block plus maxSplatCount * bytes per splat.
- A splat: centre, scale (3, linear std-devs), rotation (4: w, x, y, z), colour (u8 R, G, B, A), SH.
  Level 0: f32 centre / scale / rotation / SH (44 bytes + 4 per SH value). Levels 1 and 2: centre as
  three u16 offsets from the splat's bucket centre, position = (u - range) * (blockSize / 2) / range
  + bucket; f16 scale and rotation; SH f16 (level 1) or u8 (level 2, v / 255 * (max - min) + min).
  Splats fill the full buckets of bucketSize in order, then the partly filled ones by their lengths.
- Colour: the display (sRGB-encoded) colour 0.5 + C0 * f_dc, floored to 0..255; alpha the opacity
  (sigmoid of the PLY logit) * 255, floored. We return linear RGB (decoded) and opacity A / 255.
- SH beyond DC: degree 1 stores 9 values, degree 2 another 15; within a band channel-major:
  value [c * 3 + i] is band-1 coefficient i of channel c, [9 + c * 5 + i] band-2 coefficient i. Same
  basis and sign convention as a 3DGS PLY's f_rest (our `sh_rest`). Sections of lower degree are
  zero-padded to the file's highest.
- Frame: whatever the source PLY held (3DGS / OpenCV: y down, z forward), kept as is. The file has no
  camera: focal length and image size are the PLY defaults (512 px, 640 x 480).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import torch

from ..color import srgb_to_linear
from ..gaussians import Gaussians
from .base import SplatFormat
from .ply import DEFAULT_FOCAL_PX, DEFAULT_IMAGE_SIZE

__all__ = ["load_ksplat", "HEADER_BYTES", "SECTION_HEADER_BYTES"]

HEADER_BYTES = 4096
SECTION_HEADER_BYTES = 1024
_USED_HEADER_BYTES = 44
_SH_VALUES = {0: 0, 1: 9, 2: 24}  # values per splat (3 channels) by SH degree
_SH_DEFAULT_RANGE = (-1.5, 1.5)
# Per compression level: centre dtype, dtype of scale / rotation, dtype of one SH value, default scale range.
_LEVELS = {
    0: ("<f4", "<f4", "<f4", 1),
    1: ("<u2", "<f2", "<f2", 32767),
    2: ("<u2", "<f2", "u1", 32767),
}


def load_ksplat(path: str | os.PathLike) -> Gaussians:
    """Read a `.ksplat` file as a one-scene `Gaussians` (linear colours, opacities in [0, 1], linear
    scales, unit quaternions w, x, y, z, `sh_rest` for SH degrees 1-2). ValueError names the file and
    the problem (truncated, unsupported version or level, counts the file cannot hold)."""
    path = Path(path)
    data = path.read_bytes()  # bounded by the file's real size, whatever its header claims
    if len(data) < HEADER_BYTES:
        raise ValueError(f"{path}: truncated .ksplat: the header needs {HEADER_BYTES} bytes, the file has {len(data)}.")
    major, minor = data[0], data[1]
    if major != 0 or minor < 1:
        raise ValueError(f"{path}: unsupported .ksplat version {major}.{minor}; this reader knows 0.1 and later 0.x "
                         "(re-export it with a current GaussianSplats3D).")
    max_sections, = struct.unpack_from("<I", data, 4)
    level, = struct.unpack_from("<H", data, 20)
    if level not in _LEVELS:
        raise ValueError(f"{path}: unknown .ksplat compression level {level} (0, 1 or 2).")
    if max_sections == 0:
        raise ValueError(f"{path}: the .ksplat header lists no sections.")
    sh_lo, sh_hi = struct.unpack_from("<2f", data, 36)
    sh_range = (sh_lo or _SH_DEFAULT_RANGE[0], sh_hi or _SH_DEFAULT_RANGE[1])
    base = HEADER_BYTES + max_sections * SECTION_HEADER_BYTES
    if base > len(data):
        raise ValueError(f"{path}: truncated .ksplat: {max_sections} section headers need {base} bytes, "
                         f"the file has {len(data)}.")
    parts = []
    for index in range(max_sections):
        part, base = _read_section(path, data, index, base, level, sh_range)
        if part is not None:
            parts.append(part)
    if not parts:
        raise ValueError(f"{path}: the .ksplat file holds no splats.")
    degree = max(p["sh"].shape[1] for p in parts)
    for p in parts:  # lower-degree sections: zero higher bands
        if p["sh"].shape[1] < degree:
            p["sh"] = np.pad(p["sh"], ((0, 0), (0, degree - p["sh"].shape[1]), (0, 0)))
    joined = parts[0] if len(parts) == 1 else {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    t = {key: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)).unsqueeze(0) for key, v in joined.items()}
    rotations = t["rotations"]
    norm = rotations.norm(dim=-1, keepdim=True)
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0])
    rotations = torch.where(norm > 0, rotations / norm.clamp_min(1e-30), identity)
    return Gaussians(
        means=t["means"], scales=t["scales"], quats=rotations, colors=srgb_to_linear(t["rgba"][..., :3]),
        opacities=t["rgba"][..., 3], focal_px=[DEFAULT_FOCAL_PX], image_size=[DEFAULT_IMAGE_SIZE],
        sh_rest=t["sh"] if degree else None,
    )


def _read_section(path: Path, data: bytes, index: int, base: int, level: int, sh_range: tuple[float, float]):
    """One section's splats as float arrays (or None when empty) and where the next section starts."""
    at = HEADER_BYTES + index * SECTION_HEADER_BYTES
    count, bucket_size, bucket_count = struct.unpack_from("<3I", data, at + 4)
    block_size, = struct.unpack_from("<f", data, at + 16)
    bucket_bytes, = struct.unpack_from("<H", data, at + 20)
    scale_range, = struct.unpack_from("<I", data, at + 24)
    full_buckets, partial_buckets = struct.unpack_from("<2I", data, at + 32)
    degree, = struct.unpack_from("<H", data, at + 40)
    if degree not in _SH_VALUES:
        raise ValueError(f"{path}: .ksplat section {index} has SH degree {degree}; this format holds 0, 1 or 2.")
    center_t, float_t, sh_t, default_range = _LEVELS[level]
    scale_range = scale_range or default_range
    record = np.dtype([
        ("center", center_t, 3), ("scale", float_t, 3), ("rotation", float_t, 4), ("rgba", "u1", 4),
        ("sh", sh_t, _SH_VALUES[degree]),
    ])
    meta = partial_buckets * 4
    buckets_at = base + meta
    splats_at = buckets_at + bucket_bytes * bucket_count
    end = splats_at + record.itemsize * count
    if end > len(data):
        raise ValueError(
            f"{path}: truncated or corrupt .ksplat: section {index} claims {count} splats ({bucket_count} buckets), "
            f"which need {end} bytes, but the file has {len(data)}."
        )
    if count == 0:
        return None, end
    splats = np.frombuffer(data, dtype=record, count=count, offset=splats_at)
    if level == 0:
        means = splats["center"].astype(np.float32)
    else:
        if bucket_bytes != 12 or bucket_size == 0:
            raise ValueError(f"{path}: .ksplat section {index} has no usable buckets (bucket size {bucket_size}, "
                             f"{bucket_bytes} bytes per bucket) for its compressed positions.")
        centres = np.frombuffer(data, dtype="<f4", count=3 * bucket_count, offset=buckets_at).reshape(-1, 3)
        lengths = np.frombuffer(data, dtype="<u4", count=partial_buckets, offset=base).astype(np.int64)
        bucket = _bucket_of_each_splat(count, bucket_size, full_buckets, lengths)
        if bucket.size < count or (count and int(bucket.max()) >= bucket_count):
            raise ValueError(f"{path}: corrupt .ksplat section {index}: its buckets ({full_buckets} full of "
                             f"{bucket_size}, {partial_buckets} partial) do not place its {count} splats.")
        step = (float(block_size) / 2.0) / scale_range  # float64: bucket centres may be far from the origin
        offsets = (splats["center"].astype(np.float64) - scale_range) * step
        means = (offsets + centres[bucket].astype(np.float64)).astype(np.float32)
    sh = splats["sh"].astype(np.float32)
    if level == 2 and degree:
        lo, hi = sh_range
        sh = sh * np.float32((hi - lo) / 255.0) + np.float32(lo)
    # per band, channel-major in the file -> (coefficient, channel)
    bands = [sh[:, start:stop].reshape(count, 3, width) for start, stop, width in ((0, 9, 3), (9, 24, 5))[:degree]]
    rest = np.concatenate([b.transpose(0, 2, 1) for b in bands], axis=1) if degree else np.zeros((count, 0, 3), np.float32)
    values = {
        "means": means, "scales": splats["scale"].astype(np.float32),
        "rotations": splats["rotation"].astype(np.float32),
        "rgba": splats["rgba"].astype(np.float32) / np.float32(255), "sh": rest,
    }
    if not all(np.isfinite(v).all() for v in values.values()):
        raise ValueError(f"{path}: .ksplat section {index} holds NaN or infinite values.")
    return values, end


def _bucket_of_each_splat(count: int, bucket_size: int, full_buckets: int, partial_lengths: np.ndarray) -> np.ndarray:
    """Bucket index per splat: full buckets of `bucket_size` first, then the partly filled ones. Never
    longer than `count` (lengths a corrupt file overstates are cut), shorter when they fall short."""
    in_full = min(count, full_buckets * bucket_size)
    first = np.arange(in_full, dtype=np.int64) // bucket_size
    needed = count - in_full
    if needed == 0:
        return first
    taken = np.diff(np.minimum(np.cumsum(partial_lengths), needed), prepend=0)
    rest = np.repeat(full_buckets + np.arange(len(partial_lengths), dtype=np.int64), taken)
    return np.concatenate([first, rest])


def _sniff(head: bytes, path: Path) -> bool:
    """A 0.x header (minor >= 1), level 0-2, at least one section, and zeros after the used fields."""
    if len(head) < _USED_HEADER_BYTES or head[0] != 0 or head[1] < 1 or head[2:4] != b"\0\0":
        return False
    sections, = struct.unpack_from("<I", head, 4)
    level, = struct.unpack_from("<H", head, 20)
    return sections >= 1 and level in _LEVELS and not any(head[_USED_HEADER_BYTES:HEADER_BYTES])


FORMATS = (
    SplatFormat(
        name="ksplat", label="KSplat (GaussianSplats3D)", extensions=(".ksplat",),
        write=None, read=load_ksplat, sniff=_sniff,
    ),
)
