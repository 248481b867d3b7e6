"""Small convolutional building blocks shared by SHARP's decoders.

Module and attribute names mirror the checkpoint's tensor names (`residual.<i>`, `resnet1`, `deconv`,
`out_conv`, ...), so `load_state_dict` maps the released weights without any renaming table.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ResidualBlock", "norm_act_conv_block", "fusion_residual", "FusionBlock", "project_upsample"]


class ResidualBlock(nn.Module):
    """x -> shortcut(x) + residual(x); shortcut is the identity unless widths differ."""

    def __init__(self, residual: nn.Sequential, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.residual = residual
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.residual(x).add_(skip)  # the residual output is fresh: add in place


def norm_act_conv_block(dim_in: int, dim_out: int, dim_hidden: int | None = None,
                        norm_groups: int = 8) -> ResidualBlock:
    """Pre-activation block: (GroupNorm, ReLU, 3x3 conv) twice, 1x1 shortcut when widths differ."""
    hidden = dim_out // 2 if dim_hidden is None else dim_hidden
    residual = nn.Sequential(  # each ReLU follows a fresh GroupNorm output: safe in place
        nn.GroupNorm(norm_groups, dim_in), nn.ReLU(inplace=True), nn.Conv2d(dim_in, hidden, 3, padding=1),
        nn.GroupNorm(norm_groups, hidden), nn.ReLU(inplace=True), nn.Conv2d(hidden, dim_out, 3, padding=1),
    )
    return ResidualBlock(residual, nn.Conv2d(dim_in, dim_out, 1) if dim_in != dim_out else None)


def fusion_residual(dim: int) -> ResidualBlock:
    """(ReLU, 3x3 conv) twice with an identity shortcut, as in DPT's fusion blocks."""
    # The second ReLU acts on a fresh conv output, so it may work in place (saves one activation).
    return ResidualBlock(nn.Sequential(
        nn.ReLU(), nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 3, padding=1),
    ))


class FusionBlock(nn.Module):
    """DPT feature fusion: add a refined skip input, refine, optionally upsample x2, project."""

    def __init__(self, dim: int, dim_out: int | None = None, upsample: bool = False) -> None:
        super().__init__()
        self.resnet1 = fusion_residual(dim)
        self.resnet2 = fusion_residual(dim)
        self.deconv = nn.ConvTranspose2d(dim, dim, 2, stride=2, bias=False) if upsample else nn.Identity()
        self.out_conv = nn.Conv2d(dim, dim if dim_out is None else dim_out, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            x = self.resnet1(skip).add_(x)
        return self.out_conv(self.deconv(self.resnet2(x)))


def project_upsample(dim_in: int, dim_out: int, num_upsamplings: int,
                     dim_intermediate: int | None = None) -> nn.Sequential:
    """1x1 projection (no bias) followed by `num_upsamplings` x2 transposed convolutions."""
    mid = dim_out if dim_intermediate is None else dim_intermediate
    layers: list[nn.Module] = [nn.Conv2d(dim_in, mid, 1, bias=False)]
    layers += [nn.ConvTranspose2d(mid if i == 0 else dim_out, dim_out, 2, stride=2, bias=False)
               for i in range(num_upsamplings)]
    return nn.Sequential(*layers)
