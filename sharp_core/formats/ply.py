"""Read and write Gaussian scenes as PLY files in SHARP's layout (readable by 3DGS viewers).

File layout written (binary little endian), matching SHARP's own exporter:
- `vertex` (N): float x, y, z (metres, OpenCV camera frame), f_dc_0..2 (degree-0 spherical
  harmonics of the sRGB colour), opacity (logit), scale_0..2 (log of the std-devs in metres),
  rot_0..3 (quaternion w, x, y, z);
- `extrinsic` (16 float, identity 4x4), `intrinsic` (9 float: the source image's 3x3 camera
  matrix f, 0, W/2, 0, f, H/2, 0, 0, 1), `image_size` (2 uint: W, H), `frame` (2 int: 1, N),
  `disparity` (2 float: the 10 % and 90 % quantiles of 1/z), `color_space` (1 uchar: 0 = sRGB),
  `version` (3 uchar: 1, 5, 0).

The reader also takes generic 3DGS files (extra vertex properties, any property order, float or
double, ASCII or either byte order, no SHARP elements) and keeps their higher spherical-harmonic
bands: `f_rest_*` (3 K values, channel-major: f_rest[c * K + k] is coefficient k of channel c) become
`Gaussians.sh_rest` (N, K, 3) with K = 3, 8 or 15 (SH degree 1-3; a degree-4 file keeps its first
15 per channel). `save_ply` writes SHARP's layout only (no f_rest); the "ply" format
(formats/ply_3dgs.py) writes them. Files without SHARP's `intrinsic` element may carry the source
camera as header comments `sharp_focal_px F` and `sharp_image_size W H` (our other PLY writers do).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..color import SH_C0, linear_to_srgb, srgb_to_linear
from ..gaussians import SH_REST_COUNTS, Gaussians
from .base import SplatFormat

__all__ = ["save_ply", "load_ply", "header_comments", "camera_from_comments", "SH_C0", "SCALE_FLOOR"]

# Opacities are clamped to [eps, 1 - eps] before the logit so 0 and 1 stay finite. 2^-24 is the
# float32 spacing just below 1, the smallest eps for which 1 - eps is still a float32 below 1;
# it stores logits of about +-16.6 and reads back within one float32 ulp of 0 and 1.
OPACITY_EPS = 2.0**-24

# Scales are floored at the smallest normal float32 before the log so a zero scale is stored as
# a finite log (-87.3) instead of -inf.
SCALE_FLOOR = _SCALE_FLOOR = float(np.finfo(np.float32).tiny)

# Metadata the reference reader assumes for files without SHARP's `intrinsic` element.
DEFAULT_FOCAL_PX = 512.0
DEFAULT_IMAGE_SIZE = (640, 480)

_VERTEX_PROPERTIES = (
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_TYPE_NAMES = {"f4": "float", "u4": "uint", "i4": "int", "u1": "uchar"}
_MAX_HEADER_BYTES = 1 << 20


# -- writing ------------------------------------------------------------------------------------


@torch.no_grad()
def save_ply(gaussians: Gaussians, path: str | os.PathLike) -> Path:
    """Write one scene to `path` in SHARP's PLY layout; returns the path.

    Colours are stored as sRGB (what public 3DGS viewers display), opacities as logits, scales as
    logs. Works for tensors on any device and floating dtype: the per-splat maths runs where the
    tensors live and the result crosses to the CPU once. The file is written under a temporary
    name in the same folder and moved into place, so a failure never leaves a partial file.
    """
    path = Path(path)
    if gaussians.batch_size != 1:
        raise ValueError(
            f"save_ply writes one scene but got a batch of {gaussians.batch_size}; "
            f"save each scene separately, e.g. save_ply(gaussians[i], path) for i in range(B)."
        )
    gaussians.check_finite(f"save {path.name}")
    vertex = _vertex_array(gaussians)
    width, height = gaussians.image_size[0]
    focal = gaussians.focal_px[0]
    n = len(vertex)
    supplements = [
        ("extrinsic", "f4", np.eye(4).ravel()),
        ("intrinsic", "f4", [focal, 0, width / 2, 0, focal, height / 2, 0, 0, 1]),
        ("image_size", "u4", [width, height]),
        ("frame", "i4", [1, n]),
        ("disparity", "f4", _disparity_quantiles(vertex[:, 2], (0.1, 0.9))),
        ("color_space", "u1", [0]),  # sRGB
        ("version", "u1", [1, 5, 0]),
    ]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in _VERTEX_PROPERTIES]
    for name, dtype, values in supplements:
        header += [f"element {name} {len(values)}", f"property {_TYPE_NAMES[dtype]} {name}"]
    header.append("end_header\n")
    tail = b"".join(np.asarray(values, dtype="<" + dtype).tobytes() for _, dtype, values in supplements)

    with atomic_write(path) as f:
        f.write("\n".join(header).encode("ascii"))
        if n:  # memoryview cannot cast an empty array
            f.write(memoryview(vertex).cast("B"))
        f.write(tail)
    return path


def _vertex_array(gaussians: Gaussians) -> np.ndarray:
    """(N, 14) little-endian float32 rows in `_VERTEX_PROPERTIES` order."""
    g = gaussians.to(dtype=torch.float32) if gaussians.dtype != torch.float32 else gaussians
    colors_sh = (linear_to_srgb(g.colors[0]) - 0.5) / SH_C0
    opacity_logit = torch.logit(g.opacities[0].clamp(OPACITY_EPS, 1.0 - OPACITY_EPS)).unsqueeze(-1)
    log_scales = g.scales[0].clamp(min=_SCALE_FLOOR).log()
    columns = (g.means[0], colors_sh, opacity_logit, log_scales, g.quats[0])
    rows = torch.cat(columns, dim=-1).cpu().numpy()
    return rows.astype("<f4", copy=False)


def _disparity_quantiles(z: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Quantiles of 1/z with linear interpolation (as torch.quantile), exact and O(N) via
    np.partition; torch.quantile refuses inputs above 16 M elements and sorts everything.
    Splats at z = 0 (possible after re-centring) have no finite disparity and are left out."""
    z = z[z != 0]
    if len(z) == 0:
        return [0.0] * len(qs)
    disparity = np.float32(1.0) / z
    positions = [q * (len(disparity) - 1) for q in qs]
    ranks = sorted({int(math.floor(p)) for p in positions} | {int(math.ceil(p)) for p in positions})
    ordered = np.partition(disparity, ranks)
    out = []
    for p in positions:
        lo, hi = ordered[int(math.floor(p))], ordered[int(math.ceil(p))]
        out.append(float(lo) + (p - math.floor(p)) * (float(hi) - float(lo)))
    return out


# -- reading ------------------------------------------------------------------------------------


@dataclass
class _Element:
    name: str
    count: int
    properties: list[tuple[str, str]]  # (name, numpy type code without byte order)
    has_list: bool = False


def load_ply(path: str | os.PathLike) -> Gaussians:
    """Read a Gaussian splat PLY (SHARP's or a generic 3DGS file) as a one-scene `Gaussians`.

    Returns linear-RGB colours (files with `color_space` 0 and files without that element, i.e.
    generic 3DGS files whose colours are meant to be shown as-is, are decoded from sRGB;
    `color_space` 1 means already linear), scales = exp(scale), opacities = sigmoid(opacity) and
    unit quaternions. Focal length and image size come from SHARP's `intrinsic`/`image_size`
    elements (also the legacy 4-value intrinsic fx, fy, W, H); a 9-value intrinsic without
    `image_size` gives W = 2 cx, H = 2 cy; files without `intrinsic` get f = 512 px and
    640 x 480 like the reference reader unless its header comments name them (see the module
    docstring). `f_rest_*` properties become `sh_rest`; other extra vertex properties (normals) are
    ignored.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            fmt, elements, data_start = _read_header(f, path)
            if fmt is None or any(e.has_list for e in elements):
                arrays = _read_with_plyfile(path, elements)
            else:
                arrays = _read_binary(f, path, fmt, elements, data_start)
            comments = header_comments(f, data_start)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise ValueError(f"{path}: cannot read the PLY file ({error}).") from error
    return _to_gaussians(path, arrays, comments)


def _read_header(f, path: Path) -> tuple[str | None, list[_Element], int]:
    if f.read(4).rstrip(b"\r\n") != b"ply":
        raise ValueError(f"{path}: not a PLY file (it does not start with 'ply').")
    f.seek(0)
    lines: list[str] = []
    size = 0
    while True:
        raw = f.readline()
        size += len(raw)
        if not raw or size > _MAX_HEADER_BYTES:
            raise ValueError(f"{path}: PLY header has no 'end_header' line (truncated or not a PLY).")
        line = raw.decode("ascii", errors="replace").strip()
        if line == "end_header":
            break
        lines.append(line)
    fmt_name, elements = None, []
    for number, line in enumerate(lines[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) < 2 or words[1] not in _FORMATS:
                raise ValueError(f"{path}: unsupported PLY format line {line!r} (header line {number}).")
            fmt_name = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append(_Element(words[1], int(words[2]), []))
        elif words[0] == "property" and elements:
            if len(words) == 5 and words[1] == "list":
                elements[-1].has_list = True
                elements[-1].properties.append((words[4], "list"))
            elif len(words) == 3 and words[1] in _TYPES:
                elements[-1].properties.append((words[2], _TYPES[words[1]]))
            else:
                raise ValueError(f"{path}: cannot parse PLY header line {number}: {line!r}.")
        else:
            raise ValueError(f"{path}: cannot parse PLY header line {number}: {line!r}.")
    if fmt_name is None:
        raise ValueError(f"{path}: PLY header has no 'format' line.")
    for e in elements:
        names = [name for name, _ in e.properties]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{path}: PLY element '{e.name}' declares the property {', '.join(twice)} twice.")
    return _FORMATS[fmt_name], elements, size


def _read_binary(f, path: Path, order: str, elements: list[_Element], start: int) -> dict:
    dtypes = [np.dtype([(name, order + code) for name, code in e.properties]) for e in elements]
    declared = sum(dt.itemsize * e.count for dt, e in zip(dtypes, elements))
    actual = os.fstat(f.fileno()).st_size - start
    if actual < declared:
        raise ValueError(
            f"{path}: truncated PLY file: the header declares {declared:,} bytes of data but only "
            f"{actual:,} follow it."
        )
    arrays = {}
    offset = start
    for e, dt in zip(elements, dtypes):
        if e.name not in arrays:
            f.seek(offset)
            arrays[e.name] = np.fromfile(f, dtype=dt, count=e.count)
        offset += dt.itemsize * e.count
    return arrays


def _read_with_plyfile(path: Path, elements: list[_Element]) -> dict:
    """ASCII files and files with list properties (e.g. meshes): rare for splats, so plyfile."""
    from plyfile import PlyData

    try:
        data = PlyData.read(str(path))
    except Exception as error:  # plyfile raises several types for malformed or short data
        raise ValueError(f"{path}: cannot parse the PLY data ({error}); is the file truncated?") from error
    return {e.name: e.data for e in data.elements}


def _to_gaussians(path: Path, arrays: dict, comments: dict[str, list[str]] | None = None) -> Gaussians:
    vertex = arrays.get("vertex")
    if vertex is None:
        raise ValueError(
            f"{path}: PLY file has no 'vertex' element (elements: {', '.join(arrays) or 'none'}); "
            "a Gaussian splat file stores one vertex per splat."
        )
    names = vertex.dtype.names or ()
    missing = [p for p in _VERTEX_PROPERTIES if p not in names]
    if missing:
        raise ValueError(
            f"{path}: PLY vertex element lacks the Gaussian splat properties {', '.join(missing)}; "
            "this looks like a point cloud or mesh, not a 3D Gaussian splat file."
        )
    table = _vertex_table(vertex)
    _check_values(path, table)
    t = torch.from_numpy(table)
    means, sh, opacity, log_scales, quats = t.split((3, 3, 1, 3, 4), dim=-1)
    colors = sh * SH_C0 + 0.5
    focal, image_size, color_space = _metadata(path, arrays)
    if "intrinsic" not in arrays and comments:
        focal, image_size = camera_from_comments(path, comments)
    if color_space == 0:
        colors = srgb_to_linear(colors)
    scales = log_scales.exp()
    if not bool(torch.isfinite(scales).all()):
        raise ValueError(f"{path}: PLY scale_0..2 hold log-scales up to {float(log_scales.max()):g}, which overflow "
                         "(splats wider than the universe); the file is corrupt.")
    norm = quats.norm(dim=-1, keepdim=True)
    quats = quats / norm.clamp(min=1e-30)
    quats[:, 0] += (norm[:, 0] == 0).to(quats.dtype)  # an all-zero quaternion reads as identity
    return Gaussians(
        means=means.contiguous(),
        scales=scales,
        quats=quats,
        colors=colors,
        opacities=opacity.squeeze(-1).sigmoid(),
        focal_px=[focal],
        image_size=[image_size],
        sh_rest=_sh_rest(path, vertex),
    )


def _sh_rest(path: Path, vertex: np.ndarray) -> torch.Tensor | None:
    """(N, K, 3) float32 from the channel-major f_rest_0 .. f_rest_{3K'-1} properties, K the largest
    of 3, 8, 15 with K <= K' (so a degree-4 file keeps degrees 1-3); None without them."""
    names = set(vertex.dtype.names or ())
    count = 0
    while f"f_rest_{count}" in names:
        count += 1
    per_channel = count // 3
    k = max(c for c in SH_REST_COUNTS if c <= per_channel)
    if k == 0:
        return None
    rest = np.empty((len(vertex), 3, k), dtype=np.float32)
    for c in range(3):
        for i in range(k):
            rest[:, c, i] = vertex[f"f_rest_{c * per_channel + i}"]
    if not np.isfinite(rest).all():
        raise ValueError(f"{path}: PLY f_rest_* (spherical-harmonic) properties contain NaN or infinite values.")
    return torch.from_numpy(np.ascontiguousarray(rest.transpose(0, 2, 1)))


def header_comments(f, header_size: int) -> dict[str, list[str]]:
    """Our `comment sharp_<key> values...` header lines as {"sharp_<key>": [values]}."""
    f.seek(0)
    header = f.read(header_size).decode("ascii", errors="replace")
    out = {}
    for line in header.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "comment" and words[1].startswith("sharp_"):
            out[words[1]] = words[2:]
    return out


def camera_from_comments(path: Path, comments: dict[str, list[str]]) -> tuple[float, tuple[int, int]]:
    """(focal_px, (W, H)) from `sharp_focal_px` / `sharp_image_size` comments, else the defaults."""
    try:
        focal = float(comments["sharp_focal_px"][0]) if "sharp_focal_px" in comments else DEFAULT_FOCAL_PX
        size = comments.get("sharp_image_size")
        image_size = (int(size[0]), int(size[1])) if size else DEFAULT_IMAGE_SIZE
    except (ValueError, IndexError):
        raise ValueError(f"{path}: malformed sharp_focal_px / sharp_image_size header comment.") from None
    if not math.isfinite(focal) or focal <= 0 or min(image_size) <= 0:
        raise ValueError(f"{path}: header comments give an invalid focal length or image size.")
    return focal, image_size


def _check_values(path: Path, table: np.ndarray) -> None:
    """Reject NaN anywhere and infinities except -inf / +inf opacity logits and -inf log-scales
    (zero scales), which decode to valid splats; +inf log-scales would be infinitely large."""
    if np.isfinite(table).all():
        return
    nan = np.isnan(table).any(axis=0)
    inf = np.isinf(table).any(axis=0)
    pos_inf = np.isposinf(table).any(axis=0)
    # Which infinities are an error, per property: none for opacity, +inf for scales, any elsewhere.
    bad_inf = {"opacity": np.zeros_like(inf), "scale_0": pos_inf, "scale_1": pos_inf, "scale_2": pos_inf}
    bad = [
        name for i, name in enumerate(_VERTEX_PROPERTIES)
        if nan[i] or bad_inf.get(name, inf)[i]
    ]
    if bad:
        raise ValueError(f"{path}: PLY vertex properties {', '.join(bad)} contain NaN or infinite values.")


def _vertex_table(vertex: np.ndarray) -> np.ndarray:
    """(N, 14) native float32 columns in `_VERTEX_PROPERTIES` order, from any vertex layout."""
    dt = vertex.dtype
    if dt.names == _VERTEX_PROPERTIES and all(dt[i] == np.dtype("<f4") for i in range(len(dt))):
        return np.ascontiguousarray(vertex).view("<f4").reshape(len(vertex), 14)  # SHARP's layout
    table = np.empty((len(vertex), len(_VERTEX_PROPERTIES)), dtype=np.float32)
    for i, name in enumerate(_VERTEX_PROPERTIES):
        table[:, i] = vertex[name]
    return table


def _scalar_values(arrays: dict, name: str) -> np.ndarray | None:
    element = arrays.get(name)
    if element is None or not element.dtype.names:
        return None
    field = name if name in element.dtype.names else element.dtype.names[0]
    return np.asarray(element[field], dtype=np.float64).ravel()


def _metadata(path: Path, arrays: dict) -> tuple[float, tuple[int, int], int]:
    """(focal_px, (W, H), color_space) from SHARP's supplementary elements, with defaults."""
    intrinsic = _scalar_values(arrays, "intrinsic")
    image_size = _scalar_values(arrays, "image_size")
    extrinsic = _scalar_values(arrays, "extrinsic")
    color_space = _scalar_values(arrays, "color_space")
    if extrinsic is not None and len(extrinsic) not in (12, 16):
        raise ValueError(f"{path}: PLY 'extrinsic' has {len(extrinsic)} values, expected 16 (or legacy 12).")
    if intrinsic is None:
        focal = DEFAULT_FOCAL_PX
        size = DEFAULT_IMAGE_SIZE if image_size is None or len(image_size) != 2 else image_size
    elif len(intrinsic) == 4:  # legacy: fx, fy, W, H
        focal, size = intrinsic[0], intrinsic[2:4]
    elif len(intrinsic) == 9:
        focal = intrinsic[0]
        size = image_size if image_size is not None and len(image_size) == 2 else 2 * intrinsic[[2, 5]]
    else:
        raise ValueError(f"{path}: PLY 'intrinsic' has {len(intrinsic)} values, expected 9 (or legacy 4).")
    space = 0 if color_space is None or len(color_space) == 0 else int(color_space[0])
    if not (math.isfinite(focal) and focal > 0 and all(math.isfinite(v) and 1 <= v < 2**31 for v in size)):
        raise ValueError(f"{path}: PLY camera metadata is invalid (focal length {focal:g} px, image size "
                         f"{size[0]:g} x {size[1]:g}); a focal length > 0 and a positive image size are needed.")
    return float(focal), (int(round(size[0])), int(round(size[1]))), space


def _sniff_ply(head: bytes, path: Path) -> bool:
    """A PLY that is not PlayCanvas's compressed layout (whose header declares `element chunk`)."""
    is_ply = head.startswith(b"ply\n") or head.startswith(b"ply\r\n")
    return is_ply and b"\nelement chunk " not in head.split(b"end_header", 1)[0]


FORMATS = (
    SplatFormat(
        name="sharp-ply", label="SHARP PLY", extensions=(".ply",),
        write=save_ply, read=load_ply, sniff=_sniff_ply,
    ),
)
