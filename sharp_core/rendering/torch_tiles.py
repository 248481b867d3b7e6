"""Tile rasterizer in plain PyTorch that draws exactly what gsplat's "classic" 3DGS path draws.

Pipeline (all vectorised; Python only loops over screen bands):
1. `project_gaussians`: EWA projection of the 3D covariances (gsplat's clamped Jacobian), 2D
   low-pass `eps2d`, near/far, opacity-aware 3.33-sigma radius and off-screen culling.
2. `bin_tiles`: every splat is paired with the 16 x 16 tiles its radius box touches; one stable
   sort gives each tile its splats front to back (the (tile, depth) order of gsplat).
3. compositing front to back with gsplat's rules: pixel centres at +0.5, alpha =
   min(0.999, opacity exp(-sigma)), skip alpha < 1/255 or sigma < 0, stop a pixel before the
   splat that would bring its transmittance to <= 1e-4, and a splat only reaches the pixels of
   the tiles it was binned to. `native.composite_native` runs that loop per tile, compiled;
   `composite_eager` (any device, no compiler) expands splats to (pixel, splat) pairs, sorts
   them by (pixel, depth) and replaces the loop by a segmented scan.
Work is split into bands of rows so pair lists and temporaries stay inside `memory_budget_mb`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from . import native
from .base import (
    ALPHA_MAX, ALPHA_MIN, FOV_MARGIN, MAX_EXTEND_SIGMA, TILE_SIZE, TRANSMITTANCE_MIN, RasterOutput, RasterSettings,
    SceneTensors,
)

# Bytes of working memory per (tile, splat) pair (native path) and per (pixel, splat) candidate
# (eager path, all temporaries alive at its peak); they turn the budget into band sizes.
_BYTES_PER_PAIR = 64
_BYTES_PER_ELEMENT = 120
_BYTES_PER_SPLAT_PROJECTION = 400


@dataclass
class Projected:
    """Screen-space splats that survived culling (M of them), in input order.

    means2d (M, 2) pixels; conics (M, 3) upper triangle (a, b, c) of the inverse 2D covariance;
    opacities (M,) after optional antialiasing compensation; depths (M,) camera z in metres;
    radii (M, 2) integer half-extents of gsplat's tile box; extents (M, 2) half-extents in pixels
    of the ellipse where alpha can reach 1/255 (a tighter box for the native compositor);
    features (M, 4) linear RGB and depth.
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    opacities: torch.Tensor
    depths: torch.Tensor
    radii: torch.Tensor
    extents: torch.Tensor
    features: torch.Tensor


def project_gaussians(
    scene: SceneTensors,
    intrinsics: torch.Tensor,
    world_to_camera: torch.Tensor,
    width: int,
    height: int,
    settings: RasterSettings,
) -> Projected:
    """Project the scene's splats to screen splats for one camera; see `Projected`.

    intrinsics (3, 3) pixels; world_to_camera (4, 4); both float32 on the scene's device.
    """
    n = scene.means.shape[0]
    chunk = max(1 << 14, int(settings.memory_budget_mb * 2**20 / _BYTES_PER_SPLAT_PROJECTION))
    cov = scene.covariances
    parts = [
        _project_chunk(
            scene.means[s : s + chunk], cov[s : s + chunk], scene.opacities[s : s + chunk],
            scene.colors[s : s + chunk], intrinsics, world_to_camera, width, height, settings,
        )
        for s in range(0, max(n, 1), chunk)  # one (empty) chunk for an empty scene
    ]
    if len(parts) == 1:
        return parts[0]
    return Projected(*(torch.cat(column) for column in zip(*(
        (p.means2d, p.conics, p.opacities, p.depths, p.radii, p.extents, p.features) for p in parts
    ))))


def _project_chunk(
    means, covariances, opacities, colors, intrinsics, world_to_camera, width, height, settings: RasterSettings,
) -> Projected:
    eps2d, antialiased = settings.eps2d, settings.antialiased
    near_plane, far_plane = settings.near_plane, settings.far_plane
    rot = world_to_camera[:3, :3]
    p = means @ rot.T + world_to_camera[:3, 3]
    x, y, z = p.unbind(-1)
    keep = (z >= near_plane) & (z <= far_plane)
    if bool(keep.all()):  # the usual case for the source view: no gathers
        idx = torch.arange(z.numel(), device=z.device)
        cov = rot @ covariances @ rot.T  # camera-frame (M, 3, 3)
        opac = opacities
    else:
        idx = keep.nonzero().squeeze(1)
        x, y, z = x[idx], y[idx], z[idx]
        cov = rot @ covariances[idx] @ rot.T
        opac = opacities[idx]

    fx, fy = intrinsics[0, 0], intrinsics[1, 1]
    cx, cy = intrinsics[0, 2], intrinsics[1, 2]
    lim_x_pos = (width - cx) / fx + FOV_MARGIN * 0.5 * width / fx
    lim_x_neg = cx / fx + FOV_MARGIN * 0.5 * width / fx
    lim_y_pos = (height - cy) / fy + FOV_MARGIN * 0.5 * height / fy
    lim_y_neg = cy / fy + FOV_MARGIN * 0.5 * height / fy
    rz = 1.0 / z
    tx = z * torch.minimum(lim_x_pos, torch.maximum(-lim_x_neg, x * rz))
    ty = z * torch.minimum(lim_y_pos, torch.maximum(-lim_y_neg, y * rz))
    # Jacobian rows (ja, 0, je) and (0, jb, jg) of the perspective map at the clamped point.
    ja, jb = fx * rz, fy * rz
    je, jg = -fx * tx * rz * rz, -fy * ty * rz * rz
    s00, s01, s02 = cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2]
    s11, s12, s22 = cov[:, 1, 1], cov[:, 1, 2], cov[:, 2, 2]
    c00 = ja * ja * s00 + 2 * ja * je * s02 + je * je * s22
    c01 = ja * jb * s01 + ja * jg * s02 + je * jb * s12 + je * jg * s22
    c11 = jb * jb * s11 + 2 * jb * jg * s12 + jg * jg * s22
    mx = fx * x * rz + cx
    my = fy * y * rz + cy

    det_orig = c00 * c11 - c01 * c01
    c00 = c00 + eps2d
    c11 = c11 + eps2d
    det = c00 * c11 - c01 * c01
    if antialiased:
        opac = opac * torch.sqrt(torch.clamp(det_orig / det, min=0.0))
    # opacity-aware extent: beyond sqrt(2 ln(255 opacity)) sigma alpha is below 1/255
    log_ratio = torch.log(torch.clamp(opac / ALPHA_MIN, min=1.0))
    extend = torch.clamp(torch.sqrt(2.0 * log_ratio), max=MAX_EXTEND_SIGMA)
    safe00, safe11 = torch.clamp(c00, min=0.0), torch.clamp(c11, min=0.0)
    rx = torch.ceil(extend * torch.sqrt(safe00))
    ry = torch.ceil(extend * torch.sqrt(safe11))
    ok = (
        (det > 0)
        & (opac >= ALPHA_MIN)
        & (rx > 0) & (ry > 0)
        & (mx + rx > 0) & (mx - rx < width)
        & (my + ry > 0) & (my - ry < height)
    )
    sel = ok.nonzero().squeeze(1)
    det = det[sel]
    c00, c01, c11 = c00[sel], c01[sel], c11[sel]
    conics = torch.stack([c11 / det, -c01 / det, c00 / det], dim=-1)
    reach = torch.sqrt(2.0 * log_ratio[sel])
    extents = torch.stack([reach * torch.sqrt(c00), reach * torch.sqrt(c11)], -1) * 1.001 + 0.01
    src = idx[sel]
    features = torch.cat([colors[src], z[sel, None]], dim=-1)
    return Projected(
        means2d=torch.stack([mx[sel], my[sel]], -1),
        conics=conics,
        opacities=opac[sel],
        depths=z[sel],
        radii=torch.stack([rx[sel], ry[sel]], -1),
        extents=extents,
        features=features,
    )


@dataclass
class TileBins:
    """Splat lists of one band of tile rows, each list front to back.

    tile_rows: (first, end) tile rows of the band; offsets (T + 1,) int64 starts of each tile's
    list in `ids` (tiles row-major within the band); ids (P,) int32 indices into `Projected`.
    """

    tile_rows: tuple[int, int]
    offsets: torch.Tensor
    ids: torch.Tensor


def tile_boxes(proj: Projected, width: int, height: int) -> torch.Tensor:
    """(M, 4) int64 [x0, x1, y0, y1) tile ranges of each splat's radius box (gsplat's rule)."""
    tiles_x = math.ceil(width / TILE_SIZE)
    tiles_y = math.ceil(height / TILE_SIZE)
    centre = proj.means2d / TILE_SIZE
    half = proj.radii / TILE_SIZE
    low = torch.floor(centre - half).long()
    high = torch.ceil(centre + half).long()
    return torch.stack([
        low[:, 0].clamp(0, tiles_x), high[:, 0].clamp(0, tiles_x),
        low[:, 1].clamp(0, tiles_y), high[:, 1].clamp(0, tiles_y),
    ], -1)


def plan_bands(boxes: torch.Tensor, height: int, memory_budget_mb: float) -> list[tuple[int, int]]:
    """Split the tile rows into bands whose (tile, splat) pairs fit the memory budget."""
    widths = boxes[:, 1] - boxes[:, 0]
    tiles_y = math.ceil(height / TILE_SIZE)
    limit = memory_budget_mb * 2**20 / _BYTES_PER_PAIR
    return _bands_from_row_counts(boxes[:, 2], boxes[:, 3], widths, tiles_y, limit)


def bin_tiles(depth_order: torch.Tensor, boxes: torch.Tensor, width: int, band: tuple[int, int]) -> TileBins:
    """Pairs of (tile, splat) for the band, grouped by tile and front to back within a tile.

    `depth_order` (M,) is a stable argsort of the splat depths, so generating pairs in that
    order and stably sorting them by tile yields gsplat's (tile, depth) key order.
    """
    tiles_x = math.ceil(width / TILE_SIZE)
    first, end = band
    device = boxes.device
    b = boxes[depth_order]
    row0 = b[:, 2].clamp(min=first)
    row1 = b[:, 3].clamp(max=end)
    nx = b[:, 1] - b[:, 0]
    counts = nx * (row1 - row0).clamp(min=0)
    sel = (counts > 0).nonzero().squeeze(1)
    counts = counts[sel]
    owner = torch.repeat_interleave(torch.arange(sel.numel(), device=device), counts)
    starts = counts.cumsum(0) - counts
    local = torch.arange(owner.numel(), device=device) - starts[owner]
    sel_owner = sel[owner]
    nx_owner = nx[sel_owner]
    tile_x = b[sel_owner, 0] + local % nx_owner
    tile_y = row0[sel_owner] + local // nx_owner
    tile = (tile_y - first) * tiles_x + tile_x
    tile_sorted, order = torch.sort(tile.int(), stable=True)
    ids = depth_order[sel_owner[order]].int()
    n_tiles = (end - first) * tiles_x
    counts_per_tile = torch.bincount(tile_sorted.long(), minlength=n_tiles)
    offsets = torch.zeros(n_tiles + 1, dtype=torch.int64, device=device)
    offsets[1:] = counts_per_tile.cumsum(0)
    return TileBins(tile_rows=band, offsets=offsets, ids=ids)


def pixel_boxes(proj: Projected, boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(M, 4) int64 inclusive pixel ranges [x0, x1, y0, y1] each splat can touch.

    The alpha >= 1/255 ellipse box (`extents`) clipped to the splat's gsplat tile box and the
    image, so a splat reaches exactly the pixels gsplat would let it reach.
    """
    lo = torch.floor(proj.means2d - proj.extents - 0.5).long()
    hi = torch.ceil(proj.means2d + proj.extents - 0.5).long()
    x0 = torch.maximum(lo[:, 0], boxes[:, 0] * TILE_SIZE).clamp(min=0)
    x1 = torch.minimum(hi[:, 0], boxes[:, 1] * TILE_SIZE - 1).clamp(max=width - 1)
    y0 = torch.maximum(lo[:, 1], boxes[:, 2] * TILE_SIZE).clamp(min=0)
    y1 = torch.minimum(hi[:, 1], boxes[:, 3] * TILE_SIZE - 1).clamp(max=height - 1)
    return torch.stack([x0, x1, y0, y1], -1)


def plan_pixel_bands(pix: torch.Tensor, height: int, memory_budget_mb: float) -> list[tuple[int, int]]:
    """Split the pixel rows into bands whose (pixel, splat) candidates fit the memory budget."""
    widths = (pix[:, 1] - pix[:, 0] + 1).clamp(min=0)
    rows_end = torch.maximum(pix[:, 3] + 1, pix[:, 2])
    return _bands_from_row_counts(pix[:, 2], rows_end, widths, height, memory_budget_mb * 2**20 / _BYTES_PER_ELEMENT)


def composite_eager(
    proj: Projected, pix: torch.Tensor, depth_order: torch.Tensor, width: int, band: tuple[int, int],
    out_features: torch.Tensor, out_transmittance: torch.Tensor,
) -> tuple[float, float]:
    """Front-to-back compositing of pixel rows [band) with tensor ops, written into the (H, W, 4)
    weighted (linear RGB, depth) sums and the (H, W) final transmittance.

    Every splat is expanded to the pixels of its box (in depth order), pairs below 1/255 are
    dropped, and one stable sort by pixel groups them front to back. A segmented cumulative sum
    of log(1 - alpha) gives each pair its transmittance, so gsplat's per-pixel stop (exclude the
    splat that would bring T to <= 1e-4, and all after it) is reproduced exactly. Returns the
    seconds spent expanding + sorting and compositing.
    """
    t0 = time.perf_counter()
    device = proj.means2d.device
    first, end = band
    b = pix[depth_order]
    y0 = b[:, 2].clamp(min=first)
    y1 = b[:, 3].clamp(max=end - 1)
    nx = (b[:, 1] - b[:, 0] + 1).clamp(min=0)
    counts = nx * (y1 - y0 + 1).clamp(min=0)
    sel = (counts > 0).nonzero().squeeze(1)
    counts = counts[sel]
    g_sel = depth_order[sel]
    # per-splat rows repeated once per covered pixel: one gather-free expansion for all fields
    per_splat = torch.cat([
        proj.means2d[g_sel], proj.conics[g_sel], proj.opacities[g_sel, None],
        b[sel, :1].float(), y0[sel, None].float(), nx[sel, None].float(),
    ], dim=1)
    rep = torch.repeat_interleave(per_splat, counts, dim=0)
    owner = torch.repeat_interleave(torch.arange(sel.numel(), device=device, dtype=torch.int32), counts)
    starts = counts.cumsum(0) - counts
    local = (torch.arange(rep.shape[0], device=device) - torch.repeat_interleave(starts, counts)).float()
    del per_splat
    mx, my, ca, cb, cc, opac, x0f, y0f, nxf = rep.unbind(1)
    row = torch.floor((local + 0.5) / nxf)  # small integers: exact in float32
    px = x0f + (local - row * nxf)
    py = y0f + row
    dx = mx - (px + 0.5)
    dy = my - (py + 0.5)
    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
    alpha = torch.clamp(opac * torch.exp(-sigma), max=ALPHA_MAX)
    hit = ((sigma >= 0) & (alpha >= ALPHA_MIN)).nonzero().squeeze(1)
    pixel = ((py[hit] - first) * width + px[hit]).int()
    alpha = alpha[hit]
    g = g_sel[owner[hit].long()]
    del rep, local, row, px, py, dx, dy, sigma, hit, owner
    pixel, order = torch.sort(pixel, stable=True)  # per pixel, still front to back
    g, alpha = g[order], alpha[order]
    t1 = time.perf_counter()

    log_keep = torch.log1p(-alpha.to(_scan_dtype(device)))
    incl = _segmented_cumsum(log_keep, pixel)
    t_incl = torch.exp(incl)
    used = (t_incl > TRANSMITTANCE_MIN).nonzero().squeeze(1)
    pixel, g, alpha = pixel[used].long(), g[used], alpha[used]
    t_incl = t_incl[used]
    weight = (alpha * torch.exp(incl[used] - log_keep[used])).float()  # alpha x T before
    n_pix = (end - first) * width
    sums = torch.zeros(n_pix, 4, device=device)
    sums.index_add_(0, pixel, proj.features[g] * weight[:, None])
    trans = torch.ones(n_pix, device=device)
    trans.scatter_reduce_(0, pixel, t_incl.float(), reduce="amin")
    out_features[first:end] = sums.view(end - first, width, 4)
    out_transmittance[first:end] = trans.view(end - first, width)
    return t1 - t0, time.perf_counter() - t1


def _scan_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def _segmented_cumsum(values: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Inclusive cumulative sums of `values` restarted wherever the sorted `keys` change.

    In float64 one global cumsum minus each run's starting value is exact enough; in float32
    the global sum would swamp the per-run ones, so runs are scanned by doubling steps instead.
    """
    new_run = torch.ones_like(keys, dtype=torch.bool)
    new_run[1:] = keys[1:] != keys[:-1]
    run_id = new_run.long().cumsum(0) - 1
    if values.dtype == torch.float64:
        total = values.cumsum(0)
        before_run = (total - values)[new_run]
        return total - before_run[run_id]
    run_start = new_run.nonzero().squeeze(1)
    offset = torch.arange(values.numel(), device=values.device) - run_start[run_id]
    longest = int(offset.max()) + 1 if values.numel() else 0
    out, shift = values.clone(), 1
    while shift < longest:  # log2(longest run) steps
        shifted = torch.zeros_like(out)
        shifted[shift:] = out[:-shift]
        out = out + torch.where(offset >= shift, shifted, 0.0)
        shift *= 2
    return out


def _bands_from_row_counts(row_start, row_end, widths, n_rows, limit) -> list[tuple[int, int]]:
    """Group consecutive rows so each group's summed width (pairs) stays under `limit`."""
    per_row = torch.zeros(n_rows + 1, dtype=torch.int64, device=widths.device)
    per_row.index_add_(0, row_start.clamp(0, n_rows), widths)
    per_row.index_add_(0, row_end.clamp(0, n_rows), -widths)
    per_row = per_row.cumsum(0)[:n_rows].cpu()
    limit = max(1, int(limit))
    bands, start, acc = [], 0, 0
    for row, count in enumerate(per_row.tolist()):  # loop over rows, not splats
        if acc and acc + count > limit:
            bands.append((start, row))
            start, acc = row, 0
        acc += count
    bands.append((start, n_rows))
    return bands


def rasterize(
    scene: SceneTensors,
    intrinsics: torch.Tensor,
    world_to_camera: torch.Tensor,
    width: int,
    height: int,
    settings: RasterSettings,
) -> RasterOutput:
    """Project, bin and composite one view; see the module docstring for the stages.

    intrinsics (3, 3) pixels and world_to_camera (4, 4), float32 on the scene's device; returns
    features (H, W, 4) and transmittance (H, W).
    """
    compositor, memory_budget_mb = settings.compositor, settings.memory_budget_mb
    timings = {"projection": 0.0, "binning": 0.0, "compositing": 0.0}
    device = scene.means.device
    use_native = compositor == "native" or (compositor == "auto" and device.type == "cpu" and native.available())
    if compositor == "native" and device.type != "cpu":
        raise ValueError("compositor='native' runs on CPU tensors only; use 'eager' on other devices.")
    if compositor == "native" and not native.available():
        raise RuntimeError(f"compositor='native' is unavailable: {native.unavailable_reason()}")

    t0 = time.perf_counter()
    proj = project_gaussians(scene, intrinsics, world_to_camera, width, height, settings)
    boxes = tile_boxes(proj, width, height)
    depth_order = torch.sort(proj.depths, stable=True).indices
    if use_native:
        bands = plan_bands(boxes, height, memory_budget_mb)
    else:
        pix = pixel_boxes(proj, boxes, width, height)
        bands = plan_pixel_bands(pix, height, memory_budget_mb)
    timings["projection"] += time.perf_counter() - t0

    features = torch.zeros(height, width, 4, device=device)
    transmittance = torch.ones(height, width, device=device)
    for band in bands:
        if use_native:
            t0 = time.perf_counter()
            bins = bin_tiles(depth_order, boxes, width, band)
            t1 = time.perf_counter()
            native.composite_native(proj, bins, width, height, features, transmittance)
            timings["binning"] += t1 - t0
            timings["compositing"] += time.perf_counter() - t1
        else:
            binning, compositing = composite_eager(proj, pix, depth_order, width, band, features, transmittance)
            timings["binning"] += binning
            timings["compositing"] += compositing
    return RasterOutput(features, transmittance, timings, "native" if use_native else "eager")
