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
        return self.fuse_finest(self.fuse_coarse(encodings), encodings[0])

    def fuse_coarse(self, encodings: list[torch.Tensor]) -> torch.Tensor:
        """Every fusion but the last: features at the finest resolution, before the finest skip."""
        x = self.fusions[-1](self.convs[-1](encodings[-1]))
        for i in range(len(encodings) - 2, 0, -1):
            x = self.fusions[i](x, self.convs[i](encodings[i]))
        return x

    def fuse_finest(self, x: torch.Tensor, finest: torch.Tensor) -> torch.Tensor:
        return self.fusions[0](x, self.convs[0](finest))


def run_in_row_strips(fn, inputs: list[torch.Tensor], halo: int, upscale: int, rows_per_strip: int) -> torch.Tensor:
    """fn(*inputs) computed on horizontal strips (inputs share their height), concatenated.

    `fn` must be made of local operations whose receptive field spans at most `halo` input rows
    each side, with outputs `upscale` times taller than inputs. Each strip carries its halo and
    the halo's rows are cropped, so the result equals fn(*inputs) exactly, while fn's
    temporaries only ever exist one strip at a time.
    """
    rows = inputs[0].shape[-2]
    if rows <= rows_per_strip:
        return fn(*inputs)
    out = []
    for top in range(0, rows, rows_per_strip):
        bottom = min(top + rows_per_strip, rows)
        lo, hi = max(top - halo, 0), min(bottom + halo, rows)
        strip = fn(*(t[..., lo:hi, :] for t in inputs))
        out.append(strip[..., upscale * (top - lo):upscale * (bottom - lo), :])
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

    def disparity(self, encodings: list[torch.Tensor], rows_per_strip: int = 96) -> torch.Tensor:
        """Decode encodings to disparity (B, L, S, S).

        The last fusion and the head run at S/2 and S px on the widest features (1.2 GB per
        activation at 1536 px in float32), so they run on exact halo strips: four 3x3 convolutions
        in the fusion block, two in the head around the x2 upsampling, hence a 6-row halo.
        """
        coarse = self.decoder.fuse_coarse(encodings)

        def finest_and_head(x: torch.Tensor, finest: torch.Tensor) -> torch.Tensor:
            return self.head(self.decoder.fuse_finest(x, finest))

        return run_in_row_strips(finest_and_head, [coarse, encodings[0]], halo=6, upscale=2,
                                 rows_per_strip=rows_per_strip)


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
