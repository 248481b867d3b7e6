"""DPT-style multi-resolution decoders: SHARP's monodepth network and its Gaussian feature network."""

from __future__ import annotations

import torch
from torch import nn

from .config import SharpConfig
from .layers import FusionBlock, norm_act_conv_block

__all__ = ["MultiresDecoder", "MonodepthNetwork", "GaussianFeatureNetwork"]


class MultiresDecoder(nn.Module):
    """Fuse encodings from coarsest to finest; output at the finest encoding's resolution."""

    def __init__(self, dims_in: tuple[int, ...], dims: tuple[int, ...]) -> None:
        super().__init__()
        first = nn.Conv2d(dims_in[0], dims[0], 1, bias=False) if dims_in[0] != dims[0] else nn.Identity()
        self.convs = nn.ModuleList([first] + [nn.Conv2d(dims_in[i], dims[i], 3, padding=1, bias=False)
                                              for i in range(1, len(dims))])
        self.fusions = nn.ModuleList(FusionBlock(dims[i], dims[max(i - 1, 0)], upsample=i > 0)
                                     for i in range(len(dims)))

    def forward(self, encodings: list[torch.Tensor]) -> torch.Tensor:
        return self.fuse_fine(self.fuse_coarse(encodings, 1), encodings[:1])

    def fuse_coarse(self, encodings: list[torch.Tensor], last_level: int) -> torch.Tensor:
        """Fusions from the coarsest level down to `last_level` (inclusive)."""
        x = self.fusions[-1](self.convs[-1](encodings[-1]))
        for i in range(len(encodings) - 2, last_level - 1, -1):
            x = self.fusions[i](x, self.convs[i](encodings[i]))
        return x

    def fuse_fine(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """The remaining fusions, levels len(skips) - 1 down to 0, with skips[i] at level i."""
        for i in range(len(skips) - 1, -1, -1):
            x = self.fusions[i](x, self.convs[i](skips[i]))
        return x


def run_in_row_strips(fn, inputs: list[torch.Tensor], factors: list[int], halo: int, upscale: int,
                      rows_per_strip: int) -> torch.Tensor:
    """fn(*inputs) computed on horizontal strips and concatenated, equal to the unsplit result.

    Strips are cut on a grid of `inputs[0]`'s rows; input i has `factors[i]` rows per grid row, and
    fn's output `upscale`. fn must be made of local operations whose receptive field spans at most
    `halo` grid rows each side: each strip carries that halo, which is cropped from its output, so
    fn's temporaries only ever exist one strip at a time.
    """
    rows = inputs[0].shape[-2]
    if rows <= rows_per_strip:
        return fn(*inputs)
    out = []
    for top in range(0, rows, rows_per_strip):
        bottom = min(top + rows_per_strip, rows)
        lo, hi = max(top - halo, 0), min(bottom + halo, rows)
        strip = fn(*(t[..., f * lo:f * hi, :] for t, f in zip(inputs, factors)))
        out.append(strip[..., upscale * (top - lo):upscale * (bottom - lo), :])
        del strip
    return torch.cat(out, dim=-2)


class MonodepthNetwork(nn.Module):
    """Two-layer disparity at 1536 px from the sliding-pyramid encodings (the encoder lives beside it)."""

    def __init__(self, cfg: SharpConfig, encoder: nn.Module) -> None:
        super().__init__()
        dims_in = (cfg.monodepth_decoder_dims[0],) + tuple(cfg.encoder_dims[1:])
        self.encoder = encoder
        self.decoder = MultiresDecoder(dims_in, cfg.monodepth_decoder_dims)
        d = cfg.monodepth_decoder_dims[0]
        hidden, layers = cfg.monodepth_head_dims
        self.head = nn.Sequential(
            nn.Conv2d(d, d // 2, 3, padding=1),
            nn.ConvTranspose2d(d // 2, d // 2, 2, stride=2),
            nn.Conv2d(d // 2, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, layers, 1),
            nn.ReLU(inplace=True),
        )

    def disparity(self, encodings: list[torch.Tensor], rows_per_strip: int = 32) -> torch.Tensor:
        """Decode encodings to disparity (B, L, S, S).

        The last two fusions and the head work at S/4 to S px on the widest features (1.2 GB per
        activation at 1536 px in float32), so they run on exact halo strips of the S/4 grid: four
        3x3 convolutions per fusion block (4 rows at S/4, then 2 at S/2) and two in the head
        (under 1 row) need an 8-row halo.
        """
        coarse = self.decoder.fuse_coarse(encodings, 2)

        def fine_and_head(x: torch.Tensor, level1: torch.Tensor, level0: torch.Tensor) -> torch.Tensor:
            return self.head(self.decoder.fuse_fine(x, [level0, level1]))

        return run_in_row_strips(fine_and_head, [coarse, encodings[1], encodings[0]], [1, 1, 2],
                                 halo=8, upscale=4, rows_per_strip=rows_per_strip)


class SkipConv(nn.Module):
    def __init__(self, dim_in: int, dim_out: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim_in, dim_out, stride, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class GaussianFeatureNetwork(nn.Module):
    """Decode monodepth encodings + (image, disparity) input into texture and geometry features."""

    def __init__(self, cfg: SharpConfig) -> None:
        super().__init__()
        dims = cfg.gaussian_decoder_dims
        d = dims[0]
        self.decoder = MultiresDecoder(cfg.encoder_dims, dims)
        self.image_encoder = SkipConv(cfg.gaussian_input_dim, d, cfg.stride)
        self.fusion = FusionBlock(d)
        self.texture_head = self._head(d, cfg.gaussian_feature_dim, cfg.norm_groups)
        self.geometry_head = self._head(d, cfg.gaussian_feature_dim, cfg.norm_groups)

    @staticmethod
    def _head(d: int, d_out: int, groups: int) -> nn.Sequential:
        return nn.Sequential(
            norm_act_conv_block(d, d, d // 2, groups),
            norm_act_conv_block(d, d, d // 2, groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(d, d_out, 1),
            nn.ReLU(inplace=True),
        )

    def forward(self, feature_input: torch.Tensor, encodings: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.fuse(feature_input, encodings))

    def fuse(self, feature_input: torch.Tensor, encodings: list[torch.Tensor], rows_per_strip: int = 48) -> torch.Tensor:
        """Decoded encodings fused with the (image, disparity) input: (B, d, S/2, S/2).

        The last two decoder fusions and the input fusion run on exact halo strips of the S/4
        grid (4 + 2 + 2 rows of 3x3 receptive field), like the monodepth head.
        """
        coarse = self.decoder.fuse_coarse(encodings, 2)

        def fine(x: torch.Tensor, level1: torch.Tensor, level0: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
            return self.fusion(self.decoder.fuse_fine(x, [level0, level1]), self.image_encoder(pixels))

        factor = feature_input.shape[-2] // coarse.shape[-2]
        return run_in_row_strips(fine, [coarse, encodings[1], encodings[0], feature_input], [1, 1, 2, factor],
                                 halo=8, upscale=2, rows_per_strip=rows_per_strip)

    def heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Texture and geometry features; GroupNorm needs whole maps, so no strips here."""
        return self.texture_head(features), self.geometry_head(features)
