"""PlayCanvas SOG ("spatially ordered Gaussians", version 2): WebP images plus a `meta.json`.

What SuperSplat, the PlayCanvas engine and splat-transform read and write. A scene is a set of
lossless RGBA WebP images, one texel a splat (row-major, texel i = splat i), W x H with
W = ceil(sqrt(N) / 4) * 4 and H = ceil(N / W / 4) * 4, described by `meta.json`:

    {"version": 2, "asset": {"generator": ...}, "count": N,
     "means": {"mins": [3], "maxs": [3], "files": ["means_l.webp", "means_u.webp"]},
     "scales": {"codebook": [256], "files": ["scales.webp"]},
     "quats": {"files": ["quats.webp"]},
     "sh0": {"codebook": [256], "files": ["sh0.webp"]},
     "shN": {"count": P, "bands": 1..3, "codebook": [256], "files": ["shN_centroids.webp", "shN_labels.webp"]}}

`.sog` is the same set in one zip archive (entries stored, `meta.json` last); the unbundled form is
`meta.json` (or `<name>meta.json`) beside its images (ours are named `<name>means_l.webp` ..., so
several scenes can share a folder).

Conventions (splat-transform's reader undoes exactly this):
- frame: a PLY's, i.e. ours unchanged (OpenCV: x right, y down, z forward, metres);
- means: each axis v = sign(x) ln(1 + |x|), placed between the file's min and max of v as a 16-bit
  integer, low byte in means_l, high byte in means_u (RGB = x, y, z; alpha 255):
  |error of v| <= (max - min) / 131070, so |error of x| <= (|x| + 1) (max - min) / 131070 (+ float32);
- quats: "smallest three" of (w, x, y, z): alpha = 252 + index of the largest |component|, RGB the
  other three in order, as round(255 (q_i sqrt(2) / 2 + 0.5)) after flipping q's sign so the largest
  is positive: each stored component within 1 / (255 sqrt 2) = 2.8e-3, the rebuilt largest within
  3 times that (8.4e-3), up to q's sign;
- scales: natural logs of the std-devs (floored at the smallest normal float32, so zero stays
  finite) pooled over the three axes into one 256-entry codebook (1D k-means, extremes pinned):
  RGB = each axis's entry; |error of ln s| <= half the widest gap between neighbouring entries;
- sh0: RGB = codebook entries of the DC coefficient f_dc = (srgb(c) - 0.5) / C0 (C0 = 0.28209479,
  our linear colours are sRGB-encoded first; one codebook for the three channels, same bound as
  scales), alpha = round(255 opacity) with opacity linear in [0, 1] (not a logit): |error| <= 1/510;
  0 and 1 are stored as 0 and 255 (splat-transform clamps the logit it derives, so no inf);
- shN (scenes with SH bands beyond DC): the (N, 3K) channel-major f_rest vectors are clustered into a
  palette of P centroids (k-means, P <= `sh_palette`); each centroid value is a codebook entry; the
  centroid image holds 64 centroids a row, K texels each (RGB = the three channels' codebook indices),
  and shN_labels each splat's centroid index (R low byte, G high byte). Lossy beyond the codebook:
  the error is the clustering's, so no per-value bound is promised for SH.

Our writer sorts splats along a Morton curve first (as splat-transform does), so images compress
well and the file's splat order is not the scene's. The source camera's focal length and image size
ride along as `"sharp": {"focal_px", "image_size"}` in meta.json (other readers ignore it); files
without it read with the PLY defaults. Writes are atomic: the bundle, or the images and meta.json
(written last), appear whole or not at all.

Reading checks every size before decoding: at most `MAX_SPLATS` splats, each image's header must
hold `count` texels and no more than about twice that, zip entries are bounded before inflation; any
problem is a ValueError naming the file.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_target, atomic_targets
from ..color import SH_C0, linear_to_srgb
from ..gaussians import Gaussians
from . import ply
from .base import SplatFormat, camera_entry, camera_from_entry, scene_from_arrays
from .quantize import codebook_1d, from_smallest_three, morton_order, smallest_three

__all__ = ["save_sog", "load_sog", "MAX_SPLATS", "SOG_VERSION"]

SOG_VERSION = 2
MAX_SPLATS = 1 << 26  # 67 M: far above any single SOG (splat-transform stops at ~1-2 M per file)
_MAX_META_BYTES = 16 << 20
_SCALE_FLOOR = float(np.finfo(np.float32).tiny)
_SH_COEFFS = {1: 3, 2: 8, 3: 15}
_BANDS_OF = {k: b for b, k in _SH_COEFFS.items()}
_IMAGE_KEYS = ("means", "scales", "quats", "sh0")


# -- writing ------------------------------------------------------------------------------------


def texture_size(n: int) -> tuple[int, int]:
    """(width, height) of the images for n splats: splat-transform's layout (multiples of 4)."""
    width = max(4, math.ceil(math.sqrt(n) / 4) * 4)
    height = max(4, math.ceil(n / width / 4) * 4)
    return width, height


def _image(columns: list[np.ndarray], n: int, width: int, height: int, alpha: np.ndarray | None = None) -> np.ndarray:
    """(height, width, 4) uint8 image whose texel i holds columns[c][i] (spare texels zero, alpha 255)."""
    out = np.zeros((width * height, 4), dtype=np.uint8)
    for c, values in enumerate(columns):
        out[:n, c] = values
    out[:, 3] = 255
    if alpha is not None:
        out[:n, 3] = alpha
    return out.reshape(height, width, 4)


def _webp(rgba: np.ndarray, quality: int, method: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="WEBP", lossless=True, quality=quality, method=method, exact=True)
    return buffer.getvalue()


def _kmeans(data: np.ndarray, k: int, iterations: int, fit_sample: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """(k, D) float32 centroids and (N,) int64 labels for (N, D) data: Lloyd's k-means fitted on an
    evenly strided subsample (deterministic), then every point assigned to its nearest centroid."""
    x = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    n = len(x)
    k = max(1, min(k, n))
    fit = x[:: max(1, n // max(fit_sample, k))]
    centroids = fit[torch.linspace(0, len(fit) - 1, k).round().long()].clone()

    def assign(points: torch.Tensor) -> torch.Tensor:
        labels = torch.empty(len(points), dtype=torch.long)
        c_sq = (centroids * centroids).sum(1)
        step = max(1, (1 << 24) // k)
        for s in range(0, len(points), step):
            p = points[s:s + step]
            labels[s:s + step] = (c_sq[None, :] - 2.0 * (p @ centroids.T)).argmin(1)
        return labels

    for _ in range(iterations):
        labels = assign(fit)
        sums = torch.zeros_like(centroids).index_add_(0, labels, fit)
        counts = torch.bincount(labels, minlength=k).to(fit.dtype)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
    return centroids.numpy(), assign(x).numpy()


def _prefix(path: Path, bundle: bool) -> str:
    """File-name prefix of the images of an unbundled scene: what comes before "meta.json"."""
    if bundle:
        return ""
    name = path.name
    return name[: -len("meta.json")] if name.lower().endswith("meta.json") else f"{path.stem}_"


@torch.no_grad()
def save_sog(gaussians: Gaussians, path: str | os.PathLike, bundle: bool | None = None, sh_palette: int = 4096,
             sh_iterations: int = 10, webp_quality: int = 70, webp_method: int = 4) -> Path:
    """Write one scene as PlayCanvas SOG (see the module docstring); returns `path`.

    bundle: one `.sog` zip (default when the name ends in .sog) or `meta.json` plus WebP images
    beside it. sh_palette: most SH centroids (a scene with SH bands; up to 65536, time grows with it).
    webp_quality / webp_method: libwebp's lossless effort (70 / 4 match splat-transform's default).
    """
    path = Path(path)
    if bundle is None:
        bundle = path.name.lower().endswith(".sog")
    if gaussians.batch_size != 1:
        raise ValueError(f"save_sog writes one scene but got a batch of {gaussians.batch_size}.")
    if not 1 <= sh_palette <= 65536:
        raise ValueError(f"sh_palette must be between 1 and 65536, got {sh_palette}.")
    g = gaussians.to(device="cpu", dtype=torch.float32)
    n = g.num_gaussians
    if n > MAX_SPLATS:
        raise ValueError(f"SOG holds at most {MAX_SPLATS} splats in one file, got {n}; decimate first (max_splats=).")
    means = g.means[0].numpy()
    order = morton_order(means)
    width, height = texture_size(n)
    prefix = _prefix(path, bundle)
    images: dict[str, np.ndarray] = {}
    meta: dict = {"version": SOG_VERSION, "asset": {"generator": "sharp_core"}, "count": n}

    v = np.log1p(np.abs(means[order].astype(np.float64))) * np.sign(means[order])
    lo = v.min(axis=0) if n else np.zeros(3)
    hi = v.max(axis=0) if n else np.zeros(3)
    span = np.where(hi > lo, hi - lo, 1.0)
    q16 = np.clip(np.floor((v - lo) / span * 65535.0 + 0.5), 0, 65535).astype(np.uint32)
    images[f"{prefix}means_l.webp"] = _image([q16[:, a] & 0xFF for a in range(3)], n, width, height)
    images[f"{prefix}means_u.webp"] = _image([q16[:, a] >> 8 for a in range(3)], n, width, height)
    meta["means"] = {"mins": lo.tolist(), "maxs": hi.tolist(), "files": [f"{prefix}means_l.webp", f"{prefix}means_u.webp"]}

    scale_book, scale_labels = codebook_1d(np.log(np.maximum(g.scales[0].numpy()[order], _SCALE_FLOOR)), 256)
    images[f"{prefix}scales.webp"] = _image([scale_labels[:, a] for a in range(3)], n, width, height)
    meta["scales"] = {"codebook": scale_book.tolist(), "files": [f"{prefix}scales.webp"]}

    largest, rest = smallest_three(g.quats[0].numpy()[order])
    q8 = np.clip(np.floor((rest * (math.sqrt(2) / 2) + 0.5) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    images[f"{prefix}quats.webp"] = _image([q8[:, a] for a in range(3)], n, width, height, alpha=252 + largest)
    meta["quats"] = {"files": [f"{prefix}quats.webp"]}

    f_dc = (linear_to_srgb(g.colors[0]).numpy()[order].astype(np.float64) - 0.5) / SH_C0
    color_book, color_labels = codebook_1d(f_dc, 256)
    alpha = np.clip(np.floor(g.opacities[0].numpy()[order].astype(np.float64) * 255.0 + 0.5), 0, 255).astype(np.uint8)
    images[f"{prefix}sh0.webp"] = _image([color_labels[:, a] for a in range(3)], n, width, height, alpha=alpha)
    meta["sh0"] = {"codebook": color_book.tolist(), "files": [f"{prefix}sh0.webp"]}

    if g.sh_rest is not None and n:
        k_coeffs = g.sh_rest.shape[2]
        rest_cm = g.sh_rest[0].numpy()[order].transpose(0, 2, 1).reshape(n, 3 * k_coeffs)  # channel-major f_rest
        centroids, labels = _kmeans(rest_cm, sh_palette, sh_iterations)
        palette = len(centroids)
        book, cent_labels = codebook_1d(centroids, 256)
        texels = cent_labels.reshape(palette, 3, k_coeffs).transpose(0, 2, 1)  # (P, K, RGB)
        rows = math.ceil(palette / 64)
        cent_img = np.zeros((rows * 64 * k_coeffs, 4), dtype=np.uint8)
        cent_img[: palette * k_coeffs, :3] = texels.reshape(-1, 3)
        cent_img[:, 3] = 255
        images[f"{prefix}shN_centroids.webp"] = cent_img.reshape(rows, 64 * k_coeffs, 4)
        images[f"{prefix}shN_labels.webp"] = _image([labels & 0xFF, labels >> 8], n, width, height)
        meta["shN"] = {"count": palette, "bands": _BANDS_OF[k_coeffs], "codebook": book.tolist(),
                       "files": [f"{prefix}shN_centroids.webp", f"{prefix}shN_labels.webp"]}
    meta["sharp"] = camera_entry(g)

    with ThreadPoolExecutor(max_workers=min(len(images), os.cpu_count() or 1)) as pool:
        encoded = dict(zip(images, pool.map(lambda a: _webp(a, webp_quality, webp_method), images.values())))
    meta_bytes = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    if bundle:
        with atomic_target(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, data in encoded.items():
                archive.writestr(name, data)
            archive.writestr("meta.json", meta_bytes)
    else:
        names = list(encoded)
        with atomic_targets([path.parent / name for name in names] + [path]) as temps:
            for tmp, name in zip(temps, names):
                tmp.write_bytes(encoded[name])
            temps[-1].write_bytes(meta_bytes)
    return path


# -- reading ------------------------------------------------------------------------------------


class _Source:
    """The files of one SOG scene: a zip bundle or a folder holding meta.json."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive: zipfile.ZipFile | None = None
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"
        if zipped and not zipfile.is_zipfile(path):
            raise ValueError(f"{path}: truncated or corrupt .sog zip archive (its central directory is missing).")
        if zipped or zipfile.is_zipfile(path):
            try:
                self.archive = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as error:
                raise ValueError(f"{path}: not a readable .sog zip archive ({error}).") from None

    def read(self, name: str, limit: int) -> bytes:
        """The bytes of entry / file `name`, refusing anything over `limit` bytes before reading it."""
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"{self.path}: meta.json names an invalid image file {name!r} (plain file names only).")
        try:
            if self.archive is not None:
                try:
                    info = self.archive.getinfo(name)
                except KeyError:
                    raise ValueError(f"{self.path}: the .sog archive has no {name!r} (missing image).") from None
                if info.file_size > limit:
                    raise ValueError(f"{self.path}: {name} inflates to {info.file_size} bytes, over the "
                                     f"{limit}-byte limit for this scene (corrupt file or zip bomb).")
                with self.archive.open(info) as f:
                    return f.read(limit + 1)[:limit + 1]
            file = self.path.parent / name
            if not file.is_file():
                raise ValueError(f"{self.path}: meta.json names {name}, which is missing beside it ({file}).")
            if file.stat().st_size > limit:
                raise ValueError(f"{self.path}: {name} is {file.stat().st_size} bytes, over the {limit}-byte limit.")
            return file.read_bytes()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise ValueError(f"{self.path}: cannot read {name} ({error}); the file is truncated or corrupt.") from None

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def load_sog(path: str | os.PathLike) -> Gaussians:
    """Read a PlayCanvas SOG scene (a `.sog` bundle or a `meta.json` beside its WebP images) as a
    one-scene `Gaussians`; ValueError names the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Splat file not found: {path}")
    source = _Source(path)
    try:
        if source.archive is not None:
            meta_bytes = source.read("meta.json", _MAX_META_BYTES)
        else:
            if path.stat().st_size > _MAX_META_BYTES:
                raise ValueError(f"{path}: meta.json is over {_MAX_META_BYTES} bytes; not a SOG meta file.")
            meta_bytes = path.read_bytes()
        try:
            meta = json.loads(meta_bytes.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: meta.json is not valid JSON ({error}).") from None
        return _decode(path, source, meta)
    finally:
        source.close()


def _check_meta(path: Path, meta) -> int:
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: meta.json must be a JSON object.")
    version = meta.get("version")
    if version != SOG_VERSION:
        raise ValueError(
            f"{path}: SOG meta version {version!r} is not supported; this reader takes version {SOG_VERSION} "
            "(re-save the scene with a current splat-transform / SuperSplat)."
        )
    count = meta.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"{path}: meta.json 'count' must be a non-negative integer, got {count!r}.")
    if count > MAX_SPLATS:
        raise ValueError(f"{path}: meta.json claims {count} splats, over the {MAX_SPLATS} this reader accepts.")
    for key in _IMAGE_KEYS:
        if not isinstance(meta.get(key), dict) or not isinstance(meta[key].get("files"), list):
            raise ValueError(f"{path}: meta.json lacks the '{key}' entry with its 'files'.")
    return count


def _numbers(path: Path, values, length: int, what: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.shape != (length,) or not np.isfinite(array).all():
        raise ValueError(f"{path}: meta.json {what} must be {length} finite numbers.")
    return array


def _texels(path: Path, source: _Source, meta: dict, key: str, index: int, count: int,
            shape: tuple[int, int] | None = None) -> np.ndarray:
    """(count, 4) uint8 texels of image meta[key].files[index] (or the whole (h*w, 4) image when
    `shape` gives its expected (width, height)); sizes are checked on the header before decoding."""
    from PIL import Image

    files = meta[key]["files"]
    if len(files) <= index:
        raise ValueError(f"{path}: meta.json '{key}' names {len(files)} files, it needs {index + 1}.")
    name = files[index]
    expected_area = shape[0] * shape[1] if shape else count
    data = source.read(name, 64 * expected_area + (1 << 20))
    try:
        image = Image.open(io.BytesIO(data), formats=["WEBP"])
        width, height = image.size
        if shape is not None and (width, height) != shape:
            raise ValueError(f"{path}: {name} is {width} x {height} texels, {shape[0]} x {shape[1]} expected.")
        if shape is None and (width * height < count or width * height > 2 * count + 65536):
            raise ValueError(f"{path}: {name} is {width} x {height} texels, which cannot hold the {count} splats "
                             "meta.json claims (count and images disagree).")
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8).reshape(-1, 4)
    except ValueError:
        raise
    except Exception as error:  # Pillow raises many types for a corrupt image
        raise ValueError(f"{path}: {name} is not a readable WebP image ({error}).") from None
    return rgba if shape is not None else rgba[:count]


def _decode(path: Path, source: _Source, meta) -> Gaussians:
    n = _check_meta(path, meta)
    lo = _numbers(path, meta["means"].get("mins"), 3, "means.mins")
    hi = _numbers(path, meta["means"].get("maxs"), 3, "means.maxs")
    scale_book = _numbers(path, meta["scales"].get("codebook"), 256, "scales.codebook")
    color_book = _numbers(path, meta["sh0"].get("codebook"), 256, "sh0.codebook")

    low = _texels(path, source, meta, "means", 0, n).astype(np.uint32)
    high = _texels(path, source, meta, "means", 1, n).astype(np.uint32)
    t = ((high[:, :3] << 8) | low[:, :3]) / 65535.0
    span = np.where(hi - lo != 0, hi - lo, 1.0)
    v = lo + span * t
    means = np.sign(v) * np.expm1(np.abs(v))

    quat_texels = _texels(path, source, meta, "quats", 0, n)
    tag = quat_texels[:, 3].astype(np.int64)
    if n and (tag.min() < 252):
        raise ValueError(f"{path}: {meta['quats']['files'][0]} has rotation tags below 252 (corrupt quats image).")
    rest = (quat_texels[:, :3] / 255.0 * 2.0 - 1.0) / math.sqrt(2)
    quats = from_smallest_three(tag - 252, rest)

    scales = np.exp(scale_book[_texels(path, source, meta, "scales", 0, n)[:, :3]])
    sh0 = _texels(path, source, meta, "sh0", 0, n)
    srgb = color_book[sh0[:, :3]] * SH_C0 + 0.5
    opacity = sh0[:, 3] / 255.0

    sh_rest = None
    shn = meta.get("shN")
    if shn is not None and n:
        sh_rest = _decode_sh(path, source, meta, shn, n)

    focal, image_size = camera_from_entry(path, meta.get("sharp"), "meta.json 'sharp' entry",
                                          ply.DEFAULT_FOCAL_PX, ply.DEFAULT_IMAGE_SIZE)
    return scene_from_arrays(means, scales, quats, srgb, opacity, focal, image_size, sh_rest)


def _decode_sh(path: Path, source: _Source, meta: dict, shn, n: int) -> np.ndarray:
    if not isinstance(shn, dict) or not isinstance(shn.get("files"), list):
        raise ValueError(f"{path}: meta.json 'shN' entry lacks its 'files'.")
    bands, palette = shn.get("bands"), shn.get("count")
    if bands not in _SH_COEFFS:
        raise ValueError(f"{path}: meta.json shN.bands must be 1, 2 or 3, got {bands!r}.")
    if not isinstance(palette, int) or not 1 <= palette <= 65536:
        raise ValueError(f"{path}: meta.json shN.count must be an integer in 1..65536, got {palette!r}.")
    k = _SH_COEFFS[bands]
    book = _numbers(path, shn.get("codebook"), 256, "shN.codebook")
    rows = math.ceil(palette / 64)
    centroids = _texels(path, source, meta, "shN", 0, n, shape=(64 * k, rows))
    labels = _texels(path, source, meta, "shN", 1, n)
    index = labels[:, 0].astype(np.int64) | (labels[:, 1].astype(np.int64) << 8)
    if index.max() >= palette:
        raise ValueError(f"{path}: shN labels point past the {palette}-entry palette (corrupt shN_labels image).")
    values = book[centroids[:, :3]].reshape(rows * 64, k, 3)[:palette]  # (P, K, RGB)
    return values[index].astype(np.float32)


def _sniff(head: bytes, path: Path) -> bool:
    name = path.name.lower()
    if head.startswith(b"PK\x03\x04"):
        return name.endswith(".sog") or b"means_l.webp" in head or b"meta.json" in head
    stripped = head.lstrip()
    return stripped.startswith(b"{") and b'"means"' in head and b'"count"' in head


FORMATS = (
    SplatFormat(
        name="sog", label="SOG (PlayCanvas)", extensions=(".sog", "meta.json"),
        write=save_sog, read=load_sog, sniff=_sniff,
    ),
)
