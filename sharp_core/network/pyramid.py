"""Sliding-pyramid encoder (Depth Pro's design): one ViT applied to overlapping 384 px windows of a
three-level image pyramid, merged back into five multi-resolution feature maps.

At 1536 px: 5x5 windows at full resolution (25 % overlap), 3x3 at half (50 %), 1 at quarter
resolution; a second ViT sees the quarter-resolution image alone. On a GPU the 35 windows run as one
ViT batch; on CPU, where one pass takes a minute, in steps of `CPU_WINDOWS_PER_STEP` windows, so
progress can be reported and Cancel honoured between them (same numbers per window either way).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import SharpConfig
from .layers import project_upsample
from .vit import ViT

__all__ = ["SlidingPyramidEncoder", "split_windows", "merge_windows", "CPU_WINDOWS_PER_STEP"]

CPU_WINDOWS_PER_STEP = 5  # one row of the full-resolution grid: 7 steps for the 35 windows


def split_windows(image: torch.Tensor, window: int, overlap: float) -> torch.Tensor:
    """(B, C, S, S) -> (n*n*B, C, window, window), row-major windows, batch innermost."""
    stride = int(window * (1 - overlap))
    steps = math.ceil((image.shape[-1] - window) / stride) + 1
    return torch.cat([image[..., j * stride:j * stride + window, i * stride:i * stride + window]
                      for j in range(steps) for i in range(steps)], dim=0)


def merge_windows(windows: torch.Tensor, batch: int, crop: int) -> torch.Tensor:
    """Inverse of `split_windows` on feature maps: trim `crop` cells on inner window borders, tile."""
    steps = math.isqrt(windows.shape[0] // batch)
    rows = []
    for j in range(steps):
        row = []
        for i in range(steps):
            w = windows[(j * steps + i) * batch:(j * steps + i + 1) * batch]
            top, left = (crop if j > 0 else 0), (crop if i > 0 else 0)
            bottom = w.shape[-2] - (crop if j < steps - 1 else 0)
            right = w.shape[-1] - (crop if i < steps - 1 else 0)
            row.append(w[..., top:bottom, left:right])
        rows.append(torch.cat(row, dim=-1))
    return torch.cat(rows, dim=-2)


class SlidingPyramidEncoder(nn.Module):
    """(B, 3, 1536, 1536) in [-1, 1] -> five maps at 768, 384, 192, 96 and 48 px (widths `encoder_dims`)."""

    def __init__(self, cfg: SharpConfig) -> None:
        super().__init__()
        dims, d_patch = cfg.encoder_dims, cfg.patch_vit.embed_dim
        self.hook_blocks = cfg.hook_blocks
        self.window = cfg.patch_vit.img_size
        self.patch_encoder = ViT(cfg.patch_vit)
        self.image_encoder = ViT(cfg.image_vit)
        self.upsample_latent0 = project_upsample(d_patch, dims[0], 3, dim_intermediate=dims[1])
        self.upsample_latent1 = project_upsample(d_patch, dims[1], 2)
        self.upsample0 = project_upsample(d_patch, dims[2], 1)
        self.upsample1 = project_upsample(d_patch, dims[3], 1)
        self.upsample2 = project_upsample(d_patch, dims[4], 1)
        self.upsample_lowres = nn.ConvTranspose2d(cfg.image_vit.embed_dim, dims[4], 2, stride=2)
        self.fuse_lowres = nn.Conv2d(2 * dims[4], dims[4], 1)

    def window_steps(self, device: torch.device, batch: int = 1) -> int:
        """How many steps the patch ViT's windows take for `batch` images on `device` (see forward)."""
        total = self._windows_per_image() * batch
        per_step = self._windows_per_step(device, total)
        return -(-total // per_step)

    def _windows_per_image(self) -> int:
        size = self.window * 4
        full = math.ceil((size - self.window) / int(self.window * 0.75)) + 1
        half = math.ceil((size // 2 - self.window) / int(self.window * 0.5)) + 1
        return full * full + half * half + 1

    @staticmethod
    def _windows_per_step(device: torch.device, total: int) -> int:
        return CPU_WINDOWS_PER_STEP if device.type == "cpu" else total

    def forward(self, x: torch.Tensor, progress: Callable[[str], None] | None = None) -> list[torch.Tensor]:
        """`progress(stage)` is called after each step of patch windows and after the image ViT."""
        b, w = x.shape[0], self.window
        half = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        quarter = F.interpolate(x, scale_factor=0.25, mode="bilinear", align_corners=False)
        full_windows = split_windows(x, w, overlap=0.25)
        half_windows = split_windows(half, w, overlap=0.5)
        n_full, n_half = full_windows.shape[0], half_windows.shape[0]
        # Neighbouring full-resolution windows share 6 token cells: each keeps 3 of them. The
        # half-resolution windows overlap twice as much.
        crop = 3

        windows = torch.cat([full_windows, half_windows, quarter])
        del full_windows, half_windows
        per_step = self._windows_per_step(x.device, windows.shape[0])
        finals, hooks = [], ([], [])
        for start in range(0, windows.shape[0], per_step):
            # Only the full-resolution windows' hooked tokens are used: keep no others.
            keep = self.hook_blocks[:2] if start < n_full else ()
            tokens, hooked = self.patch_encoder(windows[start:start + per_step], keep_blocks=keep)
            finals.append(tokens)
            for kept, block in zip(hooks, keep):
                kept.append(hooked[block][:n_full - start])
            del hooked
            if progress is not None:
                progress("patch encoder windows")
        del windows
        tokens_final = finals[0] if len(finals) == 1 else torch.cat(finals)
        del finals
        to_map = self.patch_encoder.tokens_to_map
        latent0 = merge_windows(to_map(torch.cat(hooks[0])), b, crop)
        latent1 = merge_windows(to_map(torch.cat(hooks[1])), b, crop)
        del hooks
        full_maps, half_maps, quarter_map = tokens_final.split([n_full, n_half, b])
        full_map = merge_windows(full_maps, b, crop)
        half_map = merge_windows(half_maps, b, 2 * crop)
        del tokens_final, full_maps, half_maps

        lowres, _ = self.image_encoder(quarter)
        quarter_map = self.upsample2(quarter_map)
        lowres = self.fuse_lowres(torch.cat([quarter_map, self.upsample_lowres(lowres)], dim=1))
        if progress is not None:
            progress("image encoder")
        return [
            self.upsample_latent0(latent0),
            self.upsample_latent1(latent1),
            self.upsample0(full_map),
            self.upsample1(half_map),
            lowres,
        ]
