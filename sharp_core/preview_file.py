"""Compact preview file for the in-graph WebGL2 viewer: 16 bytes per splat, written atomically.

SHARP's PLY costs 56 bytes per splat (66 MB for 1.18 M splats). The viewer only needs what it
draws, quantised so the browser gets about a quarter of that; the GPU receives the records as they
are (one RGBA32UI texel per splat) and the vertex shader unpacks them, so the browser does no
per-splat decoding beyond the positions its depth sort needs.

Layout (all little-endian; the JavaScript decoder in web/sharp_preview_format.js repeats it):

    header, 128 bytes (version 2; version 1 files had only the first 64 and are still read)
      0  4s   magic b"SHPV"
      4  u32  version (2)
      8  u32  splat count N
     12  u32  flags: bit 0 set = the scene is "camera-framed" (see `initial_view`);
              bit 1 set = records are ordered most visible first (files written since
              this bit exists always set it), so any prefix is a coarse version of the
              scene: the viewer draws a prefix while the rest streams in, and its quality
              setting draws the first K records only
     16  f32  focal length of the source image, pixels
     20  u32  source image width, pixels
     24  u32  source image height, pixels
     28  f32  log_scale_min  (natural log of metres)
     32  f32  log_scale_max
     36  3f32 bounding box min (x, y, z), metres
     48  3f32 bounding box max (x, y, z), metres
     60  f32  focus depth: opacity-weighted median z of the splats in front of the source
              camera, metres (1.0 when none is)
     64  3f32 initial view: orbit target (x, y, z), metres
     76  f32  initial view: distance from the camera to the target, metres
     80  3f32 initial view: forward, the unit direction the camera looks along
     92  3f32 initial view: up, a unit vector orthogonal to forward (the image's "up")
    104  24 bytes reserved, zero
    A version 1 file reads as the source camera's view: target (0, 0, focus depth), distance
    focus depth, forward +z, up -y.
    then N records of four u32 words, most visible first (`sharp_core.edit.visibility_scores`:
    opacity x projected area in the source view, descending; ties keep the scene's order)
      w0  bits 0-15 x, bits 16-31 y        IEEE float16, metres, OpenCV camera frame
      w1  bits 0-15 z (float16), bits 16-23 scale0, bits 24-31 scale1
      w2  bits 0-7 R, 8-15 G, 16-23 B      sRGB-encoded colour, 8 bits each
          bits 24-31 opacity               linear, 8 bits
      w3  bits 0-7 scale2
          bits 8-9 index (0..3 of w,x,y,z) of the quaternion's largest-magnitude component,
              which is made non-negative and dropped ("smallest three")
          bits 10-16, 17-23, 24-30 the three other components in (w,x,y,z) order, each
              7 bits over [-1/sqrt(2), 1/sqrt(2)]; bit 31 zero
      A scale byte q stands for exp(log_scale_min + q / 255 * (log_scale_max - log_scale_min)).

Quantisation error (what `decode_preview` returns against the scene that was written):
    position   float16 rounding: |err| <= 2^-11 |x| (|x| >= 6.1e-5 m); |x| is capped at 65000 m
    colour     sRGB 8 bits: <= 0.5/255 in sRGB (the shader turns it back to linear and blends there)
    opacity    <= 0.5/255
    scale      |ln s' - ln s| <= 0.5 * (log_scale_max - log_scale_min) / 255
    rotation   each stored component <= sqrt(2)/127/2 = 0.0056; compare covariances, not quaternions
"""

from __future__ import annotations

import dataclasses
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .color import linear_to_srgb, srgb_to_linear
from .edit import visibility_scores
from .gaussians import Gaussians

__all__ = [
    "PREVIEW_MAGIC", "PREVIEW_VERSION", "HEADER_BYTES", "RECORD_BYTES", "DEFAULT_MAX_SPLATS",
    "HEADER_BYTES_V1", "FLAG_CAMERA_FRAMED", "FLAG_VISIBILITY_ORDERED", "InitialView", "initial_view",
    "PreviewScene", "preview_order", "encode_preview", "write_preview", "decode_preview",
    "read_preview",
]

PREVIEW_MAGIC = b"SHPV"
PREVIEW_VERSION = 2
HEADER_BYTES = 128
HEADER_BYTES_V1 = 64
RECORD_BYTES = 16
_HEADER_V1 = struct.Struct("<4sIIIfIIff3f3ff")
_VIEW = struct.Struct("<3ff3f3f24x")
assert _HEADER_V1.size == HEADER_BYTES_V1 and HEADER_BYTES_V1 + _VIEW.size == HEADER_BYTES
FLAG_CAMERA_FRAMED = 1
FLAG_VISIBILITY_ORDERED = 2
_FLOAT16_LIMIT = 65000.0
_ROT_RANGE = 1.0 / np.sqrt(2.0)  # a non-largest unit-quaternion component never exceeds this
_ROT_LEVELS = 127
_NEAR_M = 0.01
# Initial-view heuristic (see `initial_view`).
_FRAMED_SHARE = 0.75        # opacity share that must lie in the generous frustum
_FRUSTUM_SLACK = 1.5        # the generous frustum: the image's half-angle tangents times this
_QUANTILE_SAMPLE = 1 << 18  # splats used for the weighted quantiles (evenly strided)
_EXTENT_QUANTILES = (0.1, 0.5, 0.9)
_FRAME_MARGIN = 1.1         # the robust extent fills at most 1/1.1 of the image
_SIZE_DEPTH_CORRELATION = 0.5  # SHARP outputs measure 0.9+; flatness varying with depth alone gives ~0.25
# Default cap on splats: 960,000 records + header = 15.36 MB, inside the 16 MB a preview may cost
# (SHARP's 1,179,648 splats at 16 bytes would be 18.9 MB).
DEFAULT_MAX_SPLATS = 960_000


@dataclass(frozen=True)
class InitialView:
    """Where the viewer opens, and the point it orbits about (world frame of the scene, metres).

    The camera sits at target - distance * forward, looks along `forward` (unit) with `up` (unit,
    orthogonal to forward) pointing up in the image. camera_framed: the scene lies in front of
    its source camera, and this is exactly that camera (target (0, 0, focus depth), forward +z,
    up -y: OpenCV's identity pose).
    """

    target: tuple[float, float, float]
    distance: float
    forward: tuple[float, float, float]
    up: tuple[float, float, float]
    camera_framed: bool

    @classmethod
    def source_camera(cls, focus_depth: float) -> "InitialView":
        """The source camera at the origin, orbiting about (0, 0, focus_depth)."""
        return cls((0.0, 0.0, focus_depth), focus_depth, (0.0, 0.0, 1.0), (0.0, -1.0, 0.0), True)

    def world_to_camera(self) -> np.ndarray:
        """(4,4) float64 world -> camera matrix, OpenCV camera axes (x right, y down, z forward)."""
        z_axis = np.asarray(self.forward, dtype=np.float64)
        y_axis = -np.asarray(self.up, dtype=np.float64)
        rotation = np.stack([np.cross(y_axis, z_axis), y_axis, z_axis])  # rows: camera axes in world
        centre = np.asarray(self.target, dtype=np.float64) - self.distance * z_axis
        out = np.eye(4)
        out[:3, :3] = rotation
        out[:3, 3] = -rotation @ centre
        return out


def initial_view(gaussians: Gaussians) -> InitialView:
    """The view the preview opens at, for scene 0 (what `encode_preview` stores in the header).

    Camera-framed scenes (SHARP's predictions: at least 75 % of the opacity in front of the source
    camera, inside its frustum widened 1.5x) keep the source camera, so the preview frames the photo.
    Any other scene (moved by Edit Gaussians, or a PLY from another tool) is framed instead:
      - target: the opacity-weighted per-axis median of the splat centres;
      - direction: the source camera's, in whichever of the two frames the pack produces the scene
        seems to use: OpenCV (look along +z, up -y) or y-up ("OpenCV -> y-up", a half turn about
        x: look along -z, up +y). SHARP's splats grow with their distance from the camera, so the
        sign of the opacity-weighted correlation between z and log splat size (mean log of each
        splat's two largest axes) tells the camera's side (positive: camera towards -z; SHARP's
        outputs measure |r| > 0.9). When it is weak (|r| < 0.5: PLYs from other tools, or splats
        whose flatness alone varies with depth), the camera goes to the side where the median z
        lies (-z if it is negative, else +z);
      - distance: far enough that the box spanning the weighted 10-90 % quantiles on each axis
        (made symmetric about the target) fits inside the source image's field of view, with a
        10 % margin, in front of the camera.
    Quantiles use at most 262,144 evenly strided splats, so a 1.18 M-splat scene costs tens of ms.
    """
    g = (gaussians if gaussians.batch_size == 1 else gaussians[0]).to(device="cpu", dtype=torch.float32)
    if g.num_gaussians == 0:
        raise ValueError("The scene has no splats; there is no view to frame.")
    return _initial_view(g, _focus_depth(g.means[0][:, 2], g.opacities[0].nan_to_num(0.0).clamp(0.0, 1.0)))


def _initial_view(g: Gaussians, focus: float) -> InitialView:
    """`initial_view` of a CPU float32 batch of one whose focus depth (metres) is known."""
    means = g.means[0].numpy()
    weights = g.opacities[0].nan_to_num(0.0).clamp(0.0, 1.0).numpy() + np.float32(1e-6)
    width, height = (max(int(v), 1) for v in g.image_size[0])
    focal = float(g.focal_px[0])
    if not (np.isfinite(focal) and focal > 0):  # a foreign file's bad intrinsics: assume a 53 degree view
        focal = float(max(width, height))
    if _camera_framed(means, weights, focal, width, height):
        return InitialView.source_camera(focus)

    step = max(1, -(-means.shape[0] // _QUANTILE_SAMPLE))
    sample, sample_weights = means[::step].astype(np.float64), weights[::step].astype(np.float64)
    low, centre, high = _weighted_quantiles(sample, sample_weights, _EXTENT_QUANTILES)
    half_extent = np.maximum(high - centre, centre - low)  # (3,) metres

    log_scales = np.log(np.clip(np.nan_to_num(g.scales[0].numpy()[::step], nan=1e-12), 1e-12, None)).astype(np.float64)
    log_size = np.sort(log_scales, axis=1)[:, 1:].mean(axis=1)  # the two largest axes: flat splats too
    r = _weighted_correlation(sample[:, 2], log_size, sample_weights)
    if abs(r) >= _SIZE_DEPTH_CORRELATION:
        camera_towards_plus_z = r < 0
    else:
        camera_towards_plus_z = centre[2] < 0
    forward = np.array([0.0, 0.0, -1.0 if camera_towards_plus_z else 1.0])
    up = np.array([0.0, 1.0 if camera_towards_plus_z else -1.0, 0.0])

    y_axis = -up
    x_axis = np.cross(y_axis, forward)
    half_w = float(np.abs(x_axis) @ half_extent)
    half_h = float(np.abs(y_axis) @ half_extent)
    half_d = float(np.abs(forward) @ half_extent)
    tan_x, tan_y = 0.5 * width / focal, 0.5 * height / focal
    distance = half_d + _FRAME_MARGIN * max(half_w / tan_x, half_h / tan_y)
    distance = max(distance, 1e-3)
    return InitialView(tuple(float(v) for v in centre), float(distance), tuple(float(v) for v in forward),
                       tuple(float(v) for v in up), False)


@dataclass
class PreviewScene:
    """A decoded preview file, one scene, numpy arrays.

    means (N,3) metres, scales (N,3) linear std-devs, quats (N,4) unit (w,x,y,z),
    colors (N,3) LINEAR RGB (decoded from the stored sRGB bytes), opacities (N,),
    focal_px, image_size (W,H), bbox_min/bbox_max (3,) metres, focus_depth metres,
    view: the stored initial view (version 1 files: the source camera).
    """

    means: np.ndarray
    scales: np.ndarray
    quats: np.ndarray
    colors: np.ndarray
    opacities: np.ndarray
    focal_px: float
    image_size: tuple[int, int]
    log_scale_range: tuple[float, float]
    bbox_min: np.ndarray
    bbox_max: np.ndarray
    focus_depth: float
    view: InitialView

    def to_gaussians(self) -> Gaussians:
        """The decoded scene as a batch-of-one `Gaussians` (float32, CPU)."""
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        return Gaussians(
            means=t(self.means), scales=t(self.scales), quats=t(self.quats), colors=t(self.colors),
            opacities=t(self.opacities), focal_px=[self.focal_px], image_size=[self.image_size],
        )


def preview_order(gaussians: Gaussians, max_splats: int | None = None) -> torch.Tensor:
    """(K,) int64 indices of scene 0's splats in the order a preview file stores them: most visible
    first (`visibility_scores` descending, ties in the scene's order), cut to max_splats (None/0: all)."""
    scores = visibility_scores(gaussians[0].to(dtype=torch.float32))[0].nan_to_num(0.0)
    order = scores.argsort(descending=True, stable=True).cpu()
    return order[: int(max_splats)] if max_splats else order


def encode_preview(gaussians: Gaussians, max_splats: int | None = None) -> bytes:
    """Scene 0 of `gaussians` as preview-file bytes (see the module docstring for the layout).

    Records are written most visible first (`sharp_core.edit.visibility_scores`, descending), so
    a prefix of the file is a coarse scene. max_splats: keep at most this many splats, the most
    visible (the same set `sharp_core.edit.decimate` keeps); None or 0 keeps all.
    """
    if gaussians.batch_size != 1:
        gaussians = gaussians[0]
    if gaussians.num_gaussians == 0:
        raise ValueError("The scene has no splats; there is nothing to preview.")
    if max_splats is not None and max_splats < 0:
        raise ValueError(f"max_splats must be positive (or 0 / None for all), got {max_splats}.")
    g = gaussians.to(device="cpu", dtype=torch.float32)
    g = g.select(preview_order(g, max_splats))
    means = g.means[0]
    if not torch.isfinite(means).all():
        raise ValueError("The scene has non-finite splat positions (NaN or inf); fix or filter them first.")
    means = means.clamp(-_FLOAT16_LIMIT, _FLOAT16_LIMIT)
    opacities = g.opacities[0].nan_to_num(0.0).clamp(0.0, 1.0)

    half = means.numpy().astype(np.float16).view(np.uint16).astype(np.uint32)   # (N,3)
    log_scales = g.scales[0].nan_to_num(1e-12).clamp(min=1e-12).log().numpy()  # (N,3)
    lo, hi = float(log_scales.min()), float(log_scales.max())
    hi = max(hi, lo + 1e-6)
    scale_q = np.rint((log_scales - lo) / (hi - lo) * 255.0).clip(0, 255).astype(np.uint32)
    srgb = linear_to_srgb(g.colors[0].nan_to_num(0.0).clamp(0.0, 1.0))
    rgb_q = (srgb * 255.0).round().clamp(0, 255).to(torch.int64).numpy().astype(np.uint32)
    alpha_q = (opacities * 255.0).round().to(torch.int64).numpy().astype(np.uint32)
    rot_bits = _pack_quaternions(g.quats[0].numpy())

    words = np.empty((means.shape[0], 4), dtype="<u4")
    words[:, 0] = half[:, 0] | (half[:, 1] << 16)
    words[:, 1] = half[:, 2] | (scale_q[:, 0] << 16) | (scale_q[:, 1] << 24)
    words[:, 2] = rgb_q[:, 0] | (rgb_q[:, 1] << 8) | (rgb_q[:, 2] << 16) | (alpha_q << 24)
    words[:, 3] = scale_q[:, 2] | (rot_bits << 8)

    focus = _focus_depth(means[:, 2], opacities)
    view = _initial_view(dataclasses.replace(g, means=means[None]), focus)  # frames what is stored
    header = _HEADER_V1.pack(
        PREVIEW_MAGIC, PREVIEW_VERSION, means.shape[0],
        FLAG_VISIBILITY_ORDERED | (FLAG_CAMERA_FRAMED if view.camera_framed else 0),
        float(g.focal_px[0]), int(g.image_size[0][0]), int(g.image_size[0][1]), lo, hi,
        *means.min(dim=0).values.tolist(), *means.max(dim=0).values.tolist(), focus,
    ) + _VIEW.pack(*view.target, view.distance, *view.forward, *view.up)
    return header + words.tobytes()


def write_preview(gaussians: Gaussians, path: str | os.PathLike, max_splats: int | None = None) -> Path:
    """Write scene 0 as a preview file at `path`: to a temporary name first, then renamed.

    Returns the final path. A failure leaves no partial file behind.
    """
    path = Path(path)
    data = encode_preview(gaussians, max_splats)
    with atomic_write(path) as fh:
        fh.write(data)
    return path


def decode_preview(data: bytes) -> PreviewScene:
    """Parse preview-file bytes back into a `PreviewScene` (used by tests and tools)."""
    if len(data) < HEADER_BYTES_V1:
        raise ValueError(f"Preview file too short ({len(data)} bytes); expected a {HEADER_BYTES}-byte header.")
    (magic, version, count, flags, focal, width, height, lo, hi,
     *rest) = _HEADER_V1.unpack_from(data, 0)
    if magic != PREVIEW_MAGIC:
        raise ValueError(f"Not a SHARP preview file (magic {magic!r}, expected {PREVIEW_MAGIC!r}).")
    if version not in (1, PREVIEW_VERSION):
        raise ValueError(f"Preview file version {version} is not supported (this reader knows 1 and "
                         f"{PREVIEW_VERSION}); update the SHARP node pack.")
    header_bytes = HEADER_BYTES_V1 if version == 1 else HEADER_BYTES
    expected = header_bytes + count * RECORD_BYTES
    if len(data) != expected:
        raise ValueError(f"Preview file has {len(data)} bytes; {count} splats need {expected}.")
    bbox_min, bbox_max, focus = np.array(rest[0:3]), np.array(rest[3:6]), rest[6]
    if version == 1:
        view = InitialView.source_camera(float(focus))
    else:
        v = _VIEW.unpack_from(data, HEADER_BYTES_V1)
        view = InitialView(tuple(v[0:3]), float(v[3]), tuple(v[4:7]), tuple(v[7:10]),
                           bool(flags & FLAG_CAMERA_FRAMED))
    words = np.frombuffer(data, dtype="<u4", offset=header_bytes).reshape(count, 4)

    halves = np.stack([words[:, 0] & 0xFFFF, words[:, 0] >> 16, words[:, 1] & 0xFFFF], axis=1)
    means = halves.astype(np.uint16).view(np.float16).astype(np.float32)
    scale_q = np.stack([(words[:, 1] >> 16) & 0xFF, words[:, 1] >> 24, words[:, 3] & 0xFF], axis=1)
    scales = np.exp(lo + scale_q.astype(np.float32) / 255.0 * (hi - lo)).astype(np.float32)
    rgb = np.stack([(words[:, 2] >> s) & 0xFF for s in (0, 8, 16)], axis=1).astype(np.float32) / 255.0
    colors = srgb_to_linear(torch.from_numpy(rgb)).numpy()
    opacities = (words[:, 2] >> 24).astype(np.float32) / 255.0
    quats = _unpack_quaternions(words[:, 3] >> 8)
    return PreviewScene(
        means=means, scales=scales, quats=quats, colors=colors, opacities=opacities,
        focal_px=float(focal), image_size=(int(width), int(height)), log_scale_range=(lo, hi),
        bbox_min=bbox_min, bbox_max=bbox_max, focus_depth=float(focus), view=view,
    )


def read_preview(path: str | os.PathLike) -> PreviewScene:
    return decode_preview(Path(path).read_bytes())


def _focus_depth(z: torch.Tensor, weight: torch.Tensor) -> float:
    """Opacity-weighted median depth of the splats in front of the camera (metres)."""
    front = z > _NEAR_M
    if not front.any():
        return 1.0
    z, weight = z[front], weight[front] + 1e-6
    order = z.argsort()
    cumulative = weight[order].cumsum(0)
    i = int(torch.searchsorted(cumulative, cumulative[-1] * 0.5).clamp(max=z.numel() - 1))
    return float(z[order][i])


def _camera_framed(means: np.ndarray, weights: np.ndarray, focal: float, width: int, height: int) -> bool:
    """Whether most of the opacity (means (N,3) metres, weights (N,)) lies in front of the source
    camera and inside its frustum widened by _FRUSTUM_SLACK."""
    x, y, z = means[:, 0], means[:, 1], means[:, 2]
    tan_x = _FRUSTUM_SLACK * 0.5 * width / focal
    tan_y = _FRUSTUM_SLACK * 0.5 * height / focal
    inside = (z > _NEAR_M) & (np.abs(x) <= tan_x * z) & (np.abs(y) <= tan_y * z)
    return float(weights[inside].sum()) >= _FRAMED_SHARE * float(weights.sum())


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """(Q, D) weighted quantiles of each column of values (M, D) with weights (M,)."""
    order = np.argsort(values, axis=0)
    ordered = np.take_along_axis(values, order, axis=0)
    cumulative = np.cumsum(weights[order], axis=0)  # (M, D)
    out = np.empty((len(quantiles), values.shape[1]))
    for axis in range(values.shape[1]):
        at = np.searchsorted(cumulative[:, axis], np.asarray(quantiles) * cumulative[-1, axis])
        out[:, axis] = ordered[np.minimum(at, values.shape[0] - 1), axis]
    return out


def _weighted_correlation(a: np.ndarray, b: np.ndarray, weights: np.ndarray) -> float:
    """Weighted Pearson correlation of a (M,) and b (M,); 0 when either is constant."""
    w = weights / weights.sum()
    da, db = a - w @ a, b - w @ b
    var = float(w @ (da * da)) * float(w @ (db * db))
    return float(w @ (da * db)) / np.sqrt(var) if var > 1e-30 else 0.0


def _pack_quaternions(quats: np.ndarray) -> np.ndarray:
    """(N,4) (w,x,y,z) -> (N,) uint32 smallest-three codes in the low 24 bits."""
    q = quats.astype(np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 1e-12, q / np.maximum(norm, 1e-12), np.array([1.0, 0.0, 0.0, 0.0]))
    largest = np.abs(q).argmax(axis=1)
    rows = np.arange(q.shape[0])
    q = q * np.where(q[rows, largest] < 0, -1.0, 1.0)[:, None]
    others = np.array([[j for j in range(4) if j != i] for i in range(4)])[largest]  # (N,3)
    kept = q[rows[:, None], others]
    code = np.rint((kept / _ROT_RANGE + 1.0) * 0.5 * _ROT_LEVELS).clip(0, _ROT_LEVELS).astype(np.uint32)
    return largest.astype(np.uint32) | (code[:, 0] << 2) | (code[:, 1] << 9) | (code[:, 2] << 16)


def _unpack_quaternions(bits: np.ndarray) -> np.ndarray:
    """(N,) smallest-three codes -> (N,4) unit (w,x,y,z) float32."""
    largest = (bits & 0x3).astype(np.int64)
    codes = np.stack([(bits >> s) & 0x7F for s in (2, 9, 16)], axis=1).astype(np.float64)
    kept = (codes / _ROT_LEVELS * 2.0 - 1.0) * _ROT_RANGE
    big = np.sqrt(np.clip(1.0 - (kept**2).sum(axis=1), 0.0, None))
    q = np.empty((bits.shape[0], 4))
    rows = np.arange(bits.shape[0])
    others = np.array([[j for j in range(4) if j != i] for i in range(4)])[largest]
    q[rows[:, None], others] = kept
    q[rows, largest] = big
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.astype(np.float32)
