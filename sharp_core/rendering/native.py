"""The compositing loop of the tile rasterizer as a small C++ kernel, built on first use.

Eager PyTorch must evaluate every splat of a tile against all 256 pixels and materialise each
intermediate; a compiled loop visits only the pixels inside each splat's alpha >= 1/255
ellipse box and stops a tile as soon as all its pixels are saturated. The kernel is plain C++
with OpenMP (no PyTorch headers, so it builds in about a second with the system compiler),
loaded with ctypes and cached on disk keyed by its source, compiler and flags. Without a
compiler, or when the build fails, `available()` is False and the eager path is used.
Set SHARP_CORE_NATIVE=0 to disable it.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

from .base import ALPHA_MAX, ALPHA_MIN, TILE_SIZE, TRANSMITTANCE_MIN

log = logging.getLogger(__name__)

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

extern "C" void sharp_composite_tiles(
    int64_t n_tiles, int64_t tiles_x, int64_t first_tile_row, int64_t tile_size,
    int64_t width, int64_t height,
    const int64_t* offsets, const int32_t* ids,
    const float* means2d, const float* conics, const float* opacities,
    const float* features, const float* extents,
    float alpha_min, float alpha_max, float transmittance_min,
    float* out_features, float* out_transmittance)
{
    #pragma omp parallel for schedule(dynamic, 2)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
        const int64_t tx0 = (tile % tiles_x) * tile_size;
        const int64_t ty0 = (tile / tiles_x + first_tile_row) * tile_size;
        const int64_t tx1 = tx0 + tile_size < width ? tx0 + tile_size : width;
        const int64_t ty1 = ty0 + tile_size < height ? ty0 + tile_size : height;
        const int64_t tw = tx1 - tx0;
        const int64_t area = tw * (ty1 - ty0);
        if (area <= 0) continue;
        float trans[1024];
        float acc[1024 * 4];
        unsigned char done[1024];
        for (int64_t p = 0; p < area; ++p) { trans[p] = 1.0f; done[p] = 0; }
        memset(acc, 0, sizeof(float) * 4 * area);
        int64_t remaining = area;
        for (int64_t e = offsets[tile]; e < offsets[tile + 1] && remaining > 0; ++e) {
            const int64_t g = ids[e];
            const float mx = means2d[2 * g], my = means2d[2 * g + 1];
            const float ca = conics[3 * g], cb = conics[3 * g + 1], cc = conics[3 * g + 2];
            const float op = opacities[g];
            const float* f = features + 4 * g;
            // pixel centres j + 0.5 within the extent box, clipped to this tile
            int64_t x0 = (int64_t)floorf(mx - extents[2 * g] - 0.5f);
            int64_t x1 = (int64_t)ceilf(mx + extents[2 * g] - 0.5f);
            int64_t y0 = (int64_t)floorf(my - extents[2 * g + 1] - 0.5f);
            int64_t y1 = (int64_t)ceilf(my + extents[2 * g + 1] - 0.5f);
            if (x0 < tx0) x0 = tx0;
            if (y0 < ty0) y0 = ty0;
            if (x1 > tx1 - 1) x1 = tx1 - 1;
            if (y1 > ty1 - 1) y1 = ty1 - 1;
            for (int64_t y = y0; y <= y1; ++y) {
                const float dy = my - ((float)y + 0.5f);
                for (int64_t x = x0; x <= x1; ++x) {
                    const int64_t p = (y - ty0) * tw + (x - tx0);
                    if (done[p]) continue;
                    const float dx = mx - ((float)x + 0.5f);
                    const float sigma = 0.5f * (ca * dx * dx + cc * dy * dy) + cb * dx * dy;
                    float alpha = op * expf(-sigma);
                    if (alpha > alpha_max) alpha = alpha_max;
                    if (sigma < 0.0f || alpha < alpha_min) continue;
                    const float next = trans[p] * (1.0f - alpha);
                    if (next <= transmittance_min) { done[p] = 1; --remaining; continue; }
                    const float w = alpha * trans[p];
                    acc[4 * p] += f[0] * w;
                    acc[4 * p + 1] += f[1] * w;
                    acc[4 * p + 2] += f[2] * w;
                    acc[4 * p + 3] += f[3] * w;
                    trans[p] = next;
                }
            }
        }
        for (int64_t y = ty0; y < ty1; ++y) {
            for (int64_t x = tx0; x < tx1; ++x) {
                const int64_t p = (y - ty0) * tw + (x - tx0);
                const int64_t o = y * width + x;
                out_transmittance[o] = trans[p];
                for (int c = 0; c < 4; ++c) out_features[4 * o + c] = acc[4 * p + c];
            }
        }
    }
}

extern "C" void sharp_set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
}
"""

_FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno"]
# OpenMP first; Apple's clang has none, so the kernel then builds single-threaded.
_FLAG_SETS = (_FLAGS + ["-fopenmp"], _FLAGS)
_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_failure: str | None = None


def _cache_dir() -> Path:
    root = os.environ.get("SHARP_CORE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sharp_core"
    )
    return Path(root)


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _load() -> ctypes.CDLL | None:
    """Build (once per machine) and load the kernel; remember why when that is impossible."""
    global _library, _failure
    with _lock:
        if _library is not None or _failure is not None:
            return _library
        if os.environ.get("SHARP_CORE_NATIVE", "1") == "0":
            _failure = "disabled by SHARP_CORE_NATIVE=0"
            return None
        compiler = _compiler()
        if compiler is None:
            _failure = "no C++ compiler (g++, c++ or clang++) on PATH"
            return None
        lib, errors = None, []
        for flags in _FLAG_SETS:
            try:
                lib = ctypes.CDLL(str(_build(compiler, flags)))
                break
            except (OSError, subprocess.SubprocessError) as exc:
                errors.append((getattr(exc, "stderr", "") or str(exc)).strip()[:500])
        if lib is None:
            _failure = f"building the compositing kernel failed: {errors[-1]}"
            log.warning("sharp_core: %s; rendering falls back to the eager PyTorch compositor.", _failure)
            return None
        i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
        lib.sharp_composite_tiles.argtypes = [i64] * 6 + [ptr] * 7 + [f32] * 3 + [ptr] * 2
        lib.sharp_composite_tiles.restype = None
        lib.sharp_set_threads.argtypes = [ctypes.c_int]
        _library = lib
        return lib


def _build(compiler: str, flags: list[str]) -> Path:
    """Compile the kernel once per (source, compiler, flags) into the cache; return the library path."""
    key = hashlib.sha256("\0".join([_SOURCE, compiler, *flags]).encode()).hexdigest()[:16]
    target = _cache_dir() / f"composite_{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            src = Path(tmp) / "composite.cpp"
            src.write_text(_SOURCE)
            built = Path(tmp) / "composite.so"
            subprocess.run([compiler, *flags, str(src), "-o", str(built)],
                           check=True, capture_output=True, text=True, timeout=300)
            os.replace(built, target)  # atomic: other processes see all or nothing
    return target


def available() -> bool:
    """True when the compiled compositor can be used in this process (builds it if needed)."""
    return _load() is not None


def unavailable_reason() -> str:
    _load()
    return _failure or ""


def composite_native(proj, bins, width: int, height: int, out_features: torch.Tensor,
                     out_transmittance: torch.Tensor) -> None:
    """Composite one band of tiles into (H, W, 4) feature sums and (H, W) transmittance.

    proj: the band's screen splats (`torch_tiles.Projected`); bins: its `torch_tiles.TileBins`.
    """
    lib = _load()
    if lib is None:
        raise RuntimeError(f"native compositor unavailable: {_failure}")
    tensors = [
        bins.offsets.contiguous(), bins.ids.contiguous(),
        *(t.float().contiguous() for t in (proj.means2d, proj.conics, proj.opacities, proj.features, proj.extents)),
    ]
    if not (out_features.is_contiguous() and out_transmittance.is_contiguous()):
        raise ValueError("output buffers must be contiguous")
    tiles_x = -(-width // TILE_SIZE)
    first, end = bins.tile_rows
    lib.sharp_set_threads(torch.get_num_threads())
    lib.sharp_composite_tiles(
        (end - first) * tiles_x, tiles_x, first, TILE_SIZE, width, height,
        *(t.data_ptr() for t in tensors),
        ALPHA_MIN, ALPHA_MAX, TRANSMITTANCE_MIN,
        out_features.data_ptr(), out_transmittance.data_ptr(),
    )
