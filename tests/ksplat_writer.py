"""A test-only `.ksplat` encoder, written from the layout documented in sharp_core/formats/ksplat.py
(GaussianSplats3D's SplatBuffer: compression levels 0-2, sections, buckets, SH degrees 0-2), so the
reader can be checked against files whose every byte we chose. Not shipped: the pack reads .ksplat only.

Like GaussianSplats3D's writer it floors the display colour and the opacity to bytes, stores level 1/2
centres as u16 offsets from bucket centres (buckets: cubes of `block_size` split into runs of
`bucket_size` splats, full runs first) and level 2 SH as bytes over the file's SH range.
"""

from __future__ import annotations

import struct

import numpy as np

HEADER_BYTES, SECTION_HEADER_BYTES = 4096, 1024
SCALE_RANGE = {0: 1, 1: 32767, 2: 32767}


def encode_ksplat(
    means: np.ndarray, scales: np.ndarray, quats: np.ndarray, srgb: np.ndarray, opacities: np.ndarray,
    sh_rest: np.ndarray | None = None, *, level: int = 0, sections: tuple[int, ...] | None = None,
    block_size: float = 5.0, bucket_size: int = 256, version: tuple[int, int] = (0, 1),
) -> tuple[bytes, np.ndarray]:
    """(file bytes, order): splat i of the file is input splat order[i] (level >= 1 groups splats by
    bucket). means / scales (N, 3), quats (N, 4) w, x, y, z, srgb (N, 3) display colour in [0, 1],
    opacities (N,), sh_rest (N, K, 3) with K = 3 or 8 (3DGS f_rest order), sections: splats per section."""
    n = len(means)
    sections = sections or (n,)
    assert sum(sections) == n
    k = 0 if sh_rest is None else sh_rest.shape[1]
    degree = {0: 0, 3: 1, 8: 2}[k]
    sh_values = _sh_values(sh_rest, degree) if degree else np.zeros((n, 0))
    sh_lo, sh_hi = (float(sh_values.min()), float(sh_values.max())) if degree else (0.0, 0.0)
    if sh_hi <= sh_lo:
        sh_lo, sh_hi = -1.5, 1.5
    header = bytearray(HEADER_BYTES)
    header[0], header[1] = version
    struct.pack_into("<4I", header, 4, len(sections), len(sections), n, n)
    struct.pack_into("<H", header, 20, level)
    struct.pack_into("<5f", header, 24, 0.0, 0.0, 0.0, sh_lo if level == 2 else 0.0, sh_hi if level == 2 else 0.0)
    section_headers, bodies, order = [], [], []
    start = 0
    for count in sections:
        idx = np.arange(start, start + count)
        start += count
        head, body, sec_order = _section(means[idx], scales[idx], quats[idx], srgb[idx], opacities[idx],
                                         sh_values[idx], level, degree, block_size, bucket_size, (sh_lo, sh_hi))
        section_headers.append(head)
        bodies.append(body)
        order.append(idx[sec_order])
    return bytes(header) + b"".join(section_headers) + b"".join(bodies), np.concatenate(order)


def _sh_values(sh_rest: np.ndarray, degree: int) -> np.ndarray:
    """(N, K, 3) -> (N, 9 or 24) in the file's order: per band, channel-major."""
    bands = [sh_rest[:, 0:3]] + ([sh_rest[:, 3:8]] if degree == 2 else [])
    return np.concatenate([b.transpose(0, 2, 1).reshape(len(sh_rest), -1) for b in bands], axis=1)


def _section(means, scales, quats, srgb, opacities, sh, level, degree, block_size, bucket_size, sh_range):
    n = len(means)
    rgba = np.clip(np.floor(np.concatenate([srgb, opacities[:, None]], axis=1) * 255), 0, 255).astype(np.uint8)
    sh_t = {0: "<f4", 1: "<f2", 2: "u1"}[level]
    float_t = "<f4" if level == 0 else "<f2"
    record = np.dtype([("center", "<f4" if level == 0 else "<u2", 3), ("scale", float_t, 3),
                       ("rotation", float_t, 4), ("rgba", "u1", 4), ("sh", sh_t, sh.shape[1])])
    order = np.arange(n)
    bucket_block = b""
    full = partial = bucket_count = 0
    scale_range = SCALE_RANGE[level]
    splats = np.zeros(n, dtype=record)
    if level == 0:
        splats["center"] = means
    else:
        cells = np.floor(means / block_size).astype(np.int64)
        groups: dict[tuple, list[int]] = {}
        for i, cell in enumerate(map(tuple, cells)):
            groups.setdefault(cell, []).append(i)
        full_runs, partial_runs = [], []
        for cell, members in groups.items():
            centre = (np.array(cell) + 0.5) * block_size
            for s in range(0, len(members), bucket_size):
                run = members[s:s + bucket_size]
                (full_runs if len(run) == bucket_size else partial_runs).append((centre, run))
        runs = full_runs + partial_runs
        order = np.array([i for _, run in runs for i in run], dtype=np.int64)
        centres = np.array([c for c, _ in runs], dtype=np.float32).reshape(-1, 3)
        bucket_of = np.repeat(np.arange(len(runs)), [len(r) for _, r in runs])
        factor = scale_range / (block_size * 0.5)
        offsets = np.round((means[order] - centres[bucket_of]) * factor) + scale_range
        splats["center"] = np.clip(offsets, 0, 2 * scale_range + 1)
        full, partial, bucket_count = len(full_runs), len(partial_runs), len(runs)
        lengths = np.array([len(r) for _, r in partial_runs], dtype="<u4")
        bucket_block = lengths.tobytes() + centres.astype("<f4").tobytes()
    splats["scale"] = scales[order]
    splats["rotation"] = quats[order] / np.linalg.norm(quats[order], axis=1, keepdims=True)
    splats["rgba"] = rgba[order]
    if degree:
        values = sh[order]
        if level == 2:
            lo, hi = sh_range
            values = np.clip(np.floor((np.clip(values, lo, hi) - lo) / (hi - lo) * 255), 0, 255)
        splats["sh"] = values
    head = bytearray(SECTION_HEADER_BYTES)
    struct.pack_into("<4I", head, 0, n, n, bucket_size if level else 0, bucket_count)
    struct.pack_into("<f", head, 16, block_size if level else 0.0)
    struct.pack_into("<H", head, 20, 12 if level else 0)
    struct.pack_into("<4I", head, 24, scale_range if level else 0, len(bucket_block) + splats.nbytes, full, partial)
    struct.pack_into("<H", head, 40, degree)
    return bytes(head), bucket_block + splats.tobytes(), order
