"""Quantisation building blocks shared by the compact splat formats (numpy, vectorised, deterministic).

- `morton_order`: a Z-order permutation of splat centres, so splats stored next to each other are
  near each other in space (tighter per-chunk ranges, better image compression).
- `smallest_three` / `from_smallest_three`: a unit quaternion as the index of its largest-magnitude
  component plus the other three (in their original order) after flipping the sign so the largest
  is positive; each of the three lies in [-1/sqrt 2, 1/sqrt 2]. q and -q are the same rotation.
- `unorm` / `from_unorm`: [0, 1] to `bits`-bit integers with round-half-up, and back.
- `codebook_1d`: a k-entry codebook for a pool of scalars (1D k-means, the extreme values pinned as
  end entries) and each value's nearest entry, so every value's error is at most half the widest gap
  between neighbouring entries.
"""

from __future__ import annotations

import numpy as np

__all__ = ["morton_order", "smallest_three", "from_smallest_three", "unorm", "from_unorm", "codebook_1d"]

_MORTON_BITS = 21  # per axis: 63-bit codes


def _spread_bits(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits between each of the low 21 bits of `v` (uint64)."""
    v = v & np.uint64(0x1FFFFF)
    v = (v | (v << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    v = (v | (v << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    v = (v | (v << np.uint64(2))) & np.uint64(0x1249249249249249)
    return v


def morton_order(means: np.ndarray) -> np.ndarray:
    """(N,) int64 permutation sorting (N, 3) centres along a Z-order curve over their bounding box
    (21 bits per axis). Stable, so equal codes keep their input order; non-finite values sort as 0."""
    p = np.nan_to_num(np.asarray(means, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if len(p) == 0:
        return np.zeros(0, dtype=np.int64)
    lo = p.min(axis=0)
    span = p.max(axis=0) - lo
    span[span == 0] = 1.0
    top = (1 << _MORTON_BITS) - 1
    cells = np.minimum((p - lo) / span * (top + 1), top).astype(np.uint64)
    code = _spread_bits(cells[:, 0]) | (_spread_bits(cells[:, 1]) << np.uint64(1)) | (_spread_bits(cells[:, 2]) << np.uint64(2))
    return np.argsort(code, kind="stable")


def smallest_three(quats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) quaternions (any norm but zero; zero reads as identity) -> (largest index (N,) uint8,
    the other three components (N, 3) of the normalised, sign-fixed quaternion, in index order)."""
    q = np.asarray(quats, dtype=np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    zero = norm[:, 0] == 0
    q = np.where(zero[:, None], np.array([1.0, 0.0, 0.0, 0.0]), q / np.where(norm == 0, 1.0, norm))
    largest = np.abs(q).argmax(axis=1)
    n = len(q)
    sign = np.where(q[np.arange(n), largest] < 0, -1.0, 1.0)
    q = q * sign[:, None]
    keep = _OTHERS[largest]  # (N, 3) indices of the three stored components
    return largest.astype(np.uint8), np.take_along_axis(q, keep, axis=1)


_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


def from_smallest_three(largest: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Inverse of `smallest_three`: (N,) index in 0..3 and (N, 3) components -> (N, 4) float32 unit
    quaternions (the largest rebuilt as sqrt(1 - sum of squares), clamped at 0, then renormalised)."""
    largest = np.asarray(largest).astype(np.int64) & 3
    rest = np.asarray(rest, dtype=np.float64)
    n = len(rest)
    q = np.empty((n, 4), dtype=np.float64)
    np.put_along_axis(q, _OTHERS[largest], rest, axis=1)
    q[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1.0 - (rest * rest).sum(axis=1)))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.astype(np.float32)


def unorm(t: np.ndarray, bits: int) -> np.ndarray:
    """[0, 1] -> integers 0 .. 2^bits - 1 (round half up, clamped); uint32."""
    top = (1 << bits) - 1
    return np.clip(np.floor(np.asarray(t, dtype=np.float64) * top + 0.5), 0, top).astype(np.uint32)


def from_unorm(v: np.ndarray, bits: int) -> np.ndarray:
    """Integers 0 .. 2^bits - 1 -> [0, 1] float64 (the low `bits` bits of `v`)."""
    top = (1 << bits) - 1
    return (np.asarray(v).astype(np.uint32) & np.uint32(top)) / float(top)


def codebook_1d(values: np.ndarray, k: int = 256, iterations: int = 16, sample: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """(codebook (k,) float32 ascending, labels (same shape as values) uint8 or uint16) for finite `values`.

    Lloyd's 1D k-means, fitted on an evenly strided subsample of the sorted values (deterministic,
    at most `sample` of them) and started at its quantiles, with the smallest and largest value pinned
    as the first and last entries, so no value lies outside the codebook. Labels are each value's
    nearest entry (a binary search over the midpoints), so |value - codebook[label]| <= half the widest
    gap between neighbouring entries.
    """
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        return np.zeros(k, np.float32), np.zeros(np.shape(values), np.uint8 if k <= 256 else np.uint16)
    lo, hi = float(flat.min()), float(flat.max())
    if hi <= lo:
        codebook = np.full(k, lo, dtype=np.float64)
    else:
        step = max(1, flat.size // sample)
        fit = np.sort(flat[::step] if step > 1 else flat)
        codebook = np.quantile(fit, np.linspace(0.0, 1.0, k))
        codebook[0], codebook[-1] = lo, hi
        for _ in range(iterations):
            label = np.searchsorted((codebook[1:] + codebook[:-1]) * 0.5, fit, side="right")
            sums = np.bincount(label, weights=fit, minlength=k)
            counts = np.bincount(label, minlength=k)
            moved = np.where(counts > 0, sums / np.maximum(counts, 1), codebook)
            moved[0], moved[-1] = lo, hi
            moved.sort()
            if np.array_equal(moved, codebook):
                break
            codebook = moved
    codebook = codebook.astype(np.float32)
    mids = (codebook[1:].astype(np.float64) + codebook[:-1]) * 0.5
    labels = np.searchsorted(mids, flat, side="right")
    dtype = np.uint8 if k <= 256 else np.uint16
    return codebook, labels.astype(dtype).reshape(np.shape(values))
