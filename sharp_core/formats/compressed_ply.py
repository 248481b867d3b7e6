"""PlayCanvas compressed PLY (`.compressed.ply`): 16 bytes a splat plus 72 bytes per 256 splats.

What SuperSplat and PlayCanvas's splat-transform read and write. A binary little-endian PLY with:
- `chunk` (ceil(N / 256)): float min_x, min_y, min_z, max_x, max_y, max_z, min_scale_x..z,
  max_scale_x..z, min_r, min_g, min_b, max_r, max_g, max_b: each chunk of 256 consecutive splats
  stores its own range per quantity (a file may omit the six colour entries: colours then span 0..1);
- `vertex` (N): uint packed_position, packed_rotation, packed_scale, packed_color;
- optional `sh` (N): uchar f_rest_0 .. f_rest_{3K-1} (K = 3, 8, 15; channel-major as in a PLY).

Conventions (the 3DGS PLY ones, PlayCanvas's reader undoes exactly this):
- frame: as stored in a PLY, i.e. ours unchanged (OpenCV: x right, y down, z forward, metres);
- packed_position: 11-10-11 bits (x from bit 21, y from bit 11, z from bit 0), each the position's
  place between the chunk's min and max, rounded: |error| <= (max - min) / 4094 for x and z,
  (max - min) / 2046 for y;
- packed_scale: the same 11-10-11 packing of the natural log of the std-devs; chunk ranges clamped
  to [-20, 20] (scales below e^-20 m, zero included, read back as e^-20: finite, never -inf);
- packed_color: 8-8-8-8 bits r, g, b, opacity (r from bit 24). r, g, b are the sRGB-encoded colour
  (f_dc * C0 + 0.5; our colours are linear and are encoded first) placed in the chunk's colour
  range: |error| <= (max - min) / 510; opacity is stored linear in [0, 1] (not as a logit) as
  round(255 o) clamped to 1..254, because readers that convert to a PLY take its logit and 0 or 255
  would become -inf / +inf: |error| <= 1 / 510 inside [1/255, 254/255], at most 1 / 255 outside;
- packed_rotation: "smallest three": bits 30-31 the index of the largest |component| of (w, x, y, z)
  (PLY's rot_0..3 order, ours), then the other three in that order, 10 bits each, as
  q_i * sqrt(2) / 2 + 0.5 after flipping q's sign so the largest is positive: each stored component
  within sqrt(2) / 2046 = 6.9e-4, the rebuilt largest one within 2.1e-3 (up to q's sign);
- sh: each coefficient as trunc((f / 8 + 0.5) * 256) clamped to 0..255, read as (n + 0.5) / 256
  (0 -> 0, 255 -> 1) then (v - 0.5) * 8: |error| <= 1/32 inside [-4, 4], values clamped to it.

Our writer sorts the splats along a Morton (Z-order) curve first, as splat-transform does, so each
chunk covers a small box and the chunk ranges (hence the errors above) are small; the file's splat
order is therefore not the scene's. The source camera's focal length and image size ride along as
header comments (`comment sharp_focal_px F`, `comment sharp_image_size W H`), which other readers
ignore; files without them read with the PLY defaults (512 px, 640 x 480). Writes are atomic.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..color import SH_C0, linear_to_srgb, srgb_to_linear
from ..gaussians import Gaussians
from . import ply
from .base import SplatFormat
from .quantize import from_smallest_three, from_unorm, morton_order, smallest_three, unorm

__all__ = ["save_compressed_ply", "load_compressed_ply", "CHUNK_SIZE"]

CHUNK_SIZE = 256
LOG_SCALE_RANGE = (-20.0, 20.0)
_SCALE_FLOOR = float(np.finfo(np.float32).tiny)
_CHUNK_PROPERTIES = (
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
    "min_r", "min_g", "min_b", "max_r", "max_g", "max_b",
)
_VERTEX_PROPERTIES = ("packed_position", "packed_rotation", "packed_scale", "packed_color")
_SH_REST_COUNTS = (3, 8, 15)
_RANGE_EPS = 1e-5  # a chunk range narrower than this stores every value as the chunk minimum


# -- writing ------------------------------------------------------------------------------------


@torch.no_grad()
def save_compressed_ply(gaussians: Gaussians, path: str | os.PathLike) -> Path:
    """Write one scene as a PlayCanvas compressed PLY (Morton-ordered, see the module docstring)."""
    path = Path(path)
    if gaussians.batch_size != 1:
        raise ValueError(f"save_compressed_ply writes one scene but got a batch of {gaussians.batch_size}.")
    g = gaussians.to(device="cpu", dtype=torch.float32)
    means = g.means[0].numpy()
    order = morton_order(means)
    means = means[order]
    log_scales = np.clip(np.log(np.maximum(g.scales[0].numpy()[order], _SCALE_FLOOR)), *LOG_SCALE_RANGE)
    srgb = linear_to_srgb(g.colors[0]).numpy()[order]
    opacity = g.opacities[0].numpy()[order]
    quats = g.quats[0].numpy()[order]
    sh_rest = getattr(g, "sh_rest", None)
    n = len(means)
    num_chunks = math.ceil(n / CHUNK_SIZE)

    chunk = np.zeros((num_chunks, 18), dtype="<f4")
    position, chunk[:, 0:6] = _pack_11_10_11(means, num_chunks)
    scale, chunk[:, 6:12] = _pack_11_10_11(log_scales, num_chunks)
    color_t, chunk[:, 12:18] = _chunk_normalise(srgb, num_chunks)
    color = (
        (unorm(color_t[:, 0], 8) << 24) | (unorm(color_t[:, 1], 8) << 16)
        | (unorm(color_t[:, 2], 8) << 8) | np.clip(unorm(opacity, 8), 1, 254)
    )
    largest, rest = smallest_three(quats)
    rest_u = unorm(rest * (math.sqrt(2) / 2) + 0.5, 10)
    rotation = (largest.astype(np.uint32) << 30) | (rest_u[:, 0] << 20) | (rest_u[:, 1] << 10) | rest_u[:, 2]
    vertex = np.stack([position, rotation, scale, color], axis=1).astype("<u4")

    header = [
        "ply", "format binary_little_endian 1.0", "comment written by sharp_core",
        f"comment sharp_focal_px {g.focal_px[0]!r}", f"comment sharp_image_size {g.image_size[0][0]} {g.image_size[0][1]}",
        f"element chunk {num_chunks}", *(f"property float {p}" for p in _CHUNK_PROPERTIES),
        f"element vertex {n}", *(f"property uint {p}" for p in _VERTEX_PROPERTIES),
    ]
    sh_bytes = b""
    if sh_rest is not None:
        rest_cm = sh_rest[0].numpy()[order].transpose(0, 2, 1).reshape(n, -1)  # channel-major f_rest
        header += [f"element sh {n}", *(f"property uchar f_rest_{i}" for i in range(rest_cm.shape[1]))]
        sh_bytes = np.clip(np.trunc((rest_cm / 8.0 + 0.5) * 256.0), 0, 255).astype(np.uint8).tobytes()
    header.append("end_header\n")
    with atomic_write(path) as f:
        f.write("\n".join(header).encode("ascii"))
        f.write(chunk.tobytes())
        f.write(vertex.tobytes())
        f.write(sh_bytes)
    return path


def _chunk_normalise(values: np.ndarray, num_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) values -> (their place in [0, 1] within their chunk's range (N, 3),
    (num_chunks, 6) float32 min x, y, z then max x, y, z)."""
    n = len(values)
    padded = np.empty((num_chunks * CHUNK_SIZE, 3), dtype=np.float32)
    padded[:n] = values
    padded[n:] = values[-1] if n else 0.0  # the last chunk's spare slots repeat its last splat
    blocks = padded.reshape(num_chunks, CHUNK_SIZE, 3)
    lo, hi = blocks.min(axis=1), blocks.max(axis=1)
    span = (hi.astype(np.float64) - lo)
    wide = span >= _RANGE_EPS
    t = (blocks - lo[:, None, :]) / np.where(wide, span, 1.0)[:, None, :]
    t = np.where(wide[:, None, :], np.clip(t, 0.0, 1.0), 0.0)
    return t.reshape(-1, 3)[:n], np.concatenate([lo, hi], axis=1)


def _pack_11_10_11(values: np.ndarray, num_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    t, ranges = _chunk_normalise(values, num_chunks)
    packed = (unorm(t[:, 0], 11) << 21) | (unorm(t[:, 1], 10) << 11) | unorm(t[:, 2], 11)
    return packed, ranges


# -- reading ------------------------------------------------------------------------------------


def is_compressed_header(elements: list) -> bool:
    """Whether parsed PLY elements are PlayCanvas's compressed layout: a `chunk` element and a
    `vertex` element with the four packed_* properties."""
    names = {e.name: e for e in elements}
    vertex = names.get("vertex")
    return "chunk" in names and vertex is not None and all(
        p in [name for name, _ in vertex.properties] for p in _VERTEX_PROPERTIES
    )


def load_compressed_ply(path: str | os.PathLike) -> Gaussians:
    """Read a PlayCanvas compressed PLY as a one-scene `Gaussians` (linear colours, opacities in
    [0, 1], linear scales, unit quaternions w, x, y, z); ValueError names the file and the problem."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            order, elements, start = ply._read_header(f, path)
            if order != "<" or any(e.has_list for e in elements):
                raise ValueError(f"{path}: a compressed PLY must be binary_little_endian without list properties.")
            if not is_compressed_header(elements):
                raise ValueError(
                    f"{path}: not a PlayCanvas compressed PLY (it needs a 'chunk' element and a 'vertex' "
                    "element with packed_position, packed_rotation, packed_scale, packed_color)."
                )
            _check_layout(path, elements)
            arrays = ply._read_binary(f, path, order, elements, start)
            comments = ply.header_comments(f, start)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"{path}: cannot read the compressed PLY file ({error}).") from error
    return _decode(path, arrays, comments)


def _check_layout(path: Path, elements: list) -> None:
    by_name = {e.name: e for e in elements}
    chunk, vertex = by_name["chunk"], by_name["vertex"]
    chunk_props = dict(chunk.properties)
    needed = _CHUNK_PROPERTIES[:12] + (_CHUNK_PROPERTIES[12:] if "min_r" in chunk_props else ())
    wrong = [p for p in needed if chunk_props.get(p) != "f4"]
    if wrong:
        raise ValueError(f"{path}: compressed PLY chunk element lacks float properties {', '.join(wrong)}.")
    vertex_props = dict(vertex.properties)
    wrong = [p for p in _VERTEX_PROPERTIES if vertex_props.get(p) != "u4"]
    if wrong:
        raise ValueError(f"{path}: compressed PLY vertex properties {', '.join(wrong)} must be uint.")
    if chunk.count != math.ceil(vertex.count / CHUNK_SIZE):
        raise ValueError(
            f"{path}: compressed PLY has {chunk.count} chunks for {vertex.count} splats; "
            f"it needs ceil(N / {CHUNK_SIZE}) = {math.ceil(vertex.count / CHUNK_SIZE)}."
        )
    sh = by_name.get("sh")
    if sh is not None:
        props = [name for name, _ in sh.properties]
        if props != [f"f_rest_{i}" for i in range(len(props))] or len(props) // 3 not in _SH_REST_COUNTS \
                or len(props) % 3 or any(code != "u1" for _, code in sh.properties):
            raise ValueError(f"{path}: compressed PLY 'sh' element must hold 9, 24 or 45 uchar f_rest_* properties.")
        if sh.count != vertex.count:
            raise ValueError(f"{path}: compressed PLY has {sh.count} SH rows for {vertex.count} splats.")


def _decode(path: Path, arrays: dict, comments: dict[str, list[str]]) -> Gaussians:
    chunk, vertex = arrays["chunk"], arrays["vertex"]
    n = len(vertex)
    ci = np.arange(n) // CHUNK_SIZE

    def ranges(prefix_min: tuple[str, str, str], prefix_max: tuple[str, str, str]):
        lo = np.stack([chunk[p] for p in prefix_min], axis=1).astype(np.float64)[ci]
        hi = np.stack([chunk[p] for p in prefix_max], axis=1).astype(np.float64)[ci]
        return lo, hi

    def lerp_11_10_11(packed: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        t = np.stack([from_unorm(packed >> 21, 11), from_unorm(packed >> 11, 10), from_unorm(packed, 11)], axis=1)
        return lo * (1.0 - t) + hi * t

    chunk_table = np.stack([chunk[p] for p in chunk.dtype.names], axis=1) if len(chunk) else np.zeros((0, 1))
    if not np.isfinite(chunk_table).all():
        raise ValueError(f"{path}: compressed PLY chunk ranges contain NaN or infinite values.")
    means = lerp_11_10_11(vertex["packed_position"], *ranges(("min_x", "min_y", "min_z"), ("max_x", "max_y", "max_z")))
    log_scales = lerp_11_10_11(
        vertex["packed_scale"], *ranges(("min_scale_x", "min_scale_y", "min_scale_z"), ("max_scale_x", "max_scale_y", "max_scale_z"))
    )
    packed_color = vertex["packed_color"]
    t = np.stack([from_unorm(packed_color >> s, 8) for s in (24, 16, 8)], axis=1)
    if "min_r" in chunk.dtype.names:
        lo, hi = ranges(("min_r", "min_g", "min_b"), ("max_r", "max_g", "max_b"))
        srgb = lo * (1.0 - t) + hi * t
    else:
        srgb = t
    opacity = from_unorm(packed_color, 8)
    packed_rotation = vertex["packed_rotation"]
    rest = np.stack([from_unorm(packed_rotation >> s, 10) for s in (20, 10, 0)], axis=1)
    quats = from_smallest_three(packed_rotation >> 30, (rest - 0.5) * math.sqrt(2))
    sh_rest = None
    if "sh" in arrays:
        raw = np.stack([arrays["sh"][name] for name in arrays["sh"].dtype.names], axis=1).astype(np.float32)
        v = np.where(raw == 0, 0.0, np.where(raw == 255, 1.0, (raw + 0.5) / 256.0))
        sh_rest = ((v - 0.5) * 8.0).astype(np.float32).reshape(n, 3, -1).transpose(0, 2, 1)

    focal, image_size = ply.camera_from_comments(path, comments)
    fields = dict(
        means=torch.from_numpy(means.astype(np.float32)),
        scales=torch.from_numpy(np.exp(log_scales).astype(np.float32)),
        quats=torch.from_numpy(quats),
        colors=srgb_to_linear(torch.from_numpy(srgb.astype(np.float32))),
        opacities=torch.from_numpy(opacity.astype(np.float32)),
        focal_px=[focal],
        image_size=[image_size],
    )
    if sh_rest is not None:
        fields["sh_rest"] = torch.from_numpy(np.ascontiguousarray(sh_rest))
    try:
        return Gaussians(**fields)
    except TypeError:  # a Gaussians without SH support: the bands are dropped
        fields.pop("sh_rest", None)
        return Gaussians(**fields)


def _sniff(head: bytes, path: Path) -> bool:
    if not (head.startswith(b"ply\n") or head.startswith(b"ply\r\n")):
        return False
    header = head.split(b"end_header", 1)[0]
    return b"\nelement chunk " in header and b"packed_position" in header


FORMATS = (
    SplatFormat(
        name="compressed-ply", label="compressed PLY (PlayCanvas)", extensions=(".compressed.ply",),
        write=save_compressed_ply, read=load_compressed_ply, sniff=_sniff,
    ),
)
