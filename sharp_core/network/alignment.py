"""Parameter layout of SHARP's depth-alignment UNet.

The released checkpoint carries this network (it aligns monodepth to ground-truth depth during
training). Inference never runs it, so only its parameters are declared: enough to check every
tensor of a checkpoint on load, after which the loader drops the module. Its GroupNorm group count
(`SharpConfig.alignment_norm_groups`, 4 in the released model) leaves no trace in tensor shapes.
"""

from __future__ import annotations

from torch import nn

from .layers import norm_act_conv_block

__all__ = ["AlignmentUNetLayout"]



class _Encoder(nn.Module):
    def __init__(self, widths: list[int], steps: int, groups: int) -> None:
        super().__init__()
        self.conv_in = nn.Sequential(nn.Conv2d(2, widths[0], 3, padding=1), nn.GroupNorm(groups, widths[0]), nn.ReLU())
        self.convs_down = nn.ModuleList(
            nn.Sequential(nn.AvgPool2d(2), norm_act_conv_block(widths[i], widths[i + 1], norm_groups=groups),
                          norm_act_conv_block(widths[i + 1], widths[i + 1], norm_groups=groups))
            for i in range(steps))


class _Decoder(nn.Module):
    def __init__(self, widths: list[int], steps: int, groups: int) -> None:
        super().__init__()
        dims = widths[::-1][:steps + 1]
        self.convs_up = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2),
                          norm_act_conv_block(dims[i] * (1 if i == 0 else 2), dims[i + 1], norm_groups=groups),
                          norm_act_conv_block(dims[i + 1], dims[i + 1], norm_groups=groups))
            for i in range(steps))
        last = dims[-1] * 2
        self.conv_out = nn.Sequential(nn.GroupNorm(groups, last), nn.ReLU(), nn.Conv2d(last, widths[0], 1),
                                      nn.GroupNorm(groups, widths[0]), nn.ReLU())


class AlignmentUNetLayout(nn.Module):
    def __init__(self, base_width: int, steps: tuple[int, int], groups: int = 4) -> None:
        super().__init__()
        widths = [min(base_width << i, 1024) for i in range(steps[0] + 1)]
        self.encoder = _Encoder(widths, steps[0], groups)
        self.decoder = _Decoder(widths, steps[1], groups)
        self.conv_out = nn.Conv2d(widths[0], 1, 1)
