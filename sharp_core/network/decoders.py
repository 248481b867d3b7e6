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
        x = self.fusions[-1](self.convs[-1](encodings[-1]))
        for i in range(len(encodings) - 2, -1, -1):
            x = self.fusions[i](x, self.convs[i](encodings[i]))
        return x


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

    def disparity(self, features: torch.Tensor, rows_per_strip: int = 128) -> torch.Tensor:
        """Run `head` on horizontal strips of the decoder output (B, d, S/2, S/2) -> (B, L, S, S).

        The head's widest activation (d/2 channels at full resolution, 1.2 GB at 1536 px) is never
        materialised whole. Strips carry a 2-row halo, which covers the two 3x3 convolutions around
        the x2 upsampling, so the result equals the unsplit computation exactly.
        """
        rows = features.shape[-2]
        if rows <= rows_per_strip:
            return self.head(features)
        halo, out = 2, []
        for top in range(0, rows, rows_per_strip):
            bottom = min(top + rows_per_strip, rows)
            lo, hi = max(top - halo, 0), min(bottom + halo, rows)
            strip = self.head(features[..., lo:hi, :])
            out.append(strip[..., 2 * (top - lo):2 * (bottom - lo), :])
        return torch.cat(out, dim=-2)


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
        x = self.fusion(self.decoder(encodings), self.image_encoder(feature_input))
        return self.texture_head(x), self.geometry_head(x)
