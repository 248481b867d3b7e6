"""SHARP assembled: monodepth -> Gaussian initializer -> feature decoder -> deltas -> NDC Gaussians.

Data flow of one forward pass (S = 1536, shapes for one image, released widths):

    image (1, 3, S, S) in [0, 1]
      |  x 2 - 1
      v
    SlidingPyramidEncoder (pyramid.py)
      |  3-level pyramid -> 35 overlapping 384 px windows -> patch ViT (hooks 5/11/17/23)
      |  + quarter-res image -> image ViT; merged back into 5 maps, S/2 .. S/32
      v
    encodings [5 x (1, C_i, H_i, W_i)] -----------------------------------------+
      |                                                                          |
    MonodepthNetwork.disparity (decoders.py: multires decoder + head)            |
      v                                                                          |
    disparity (1, 2, S, S) -> depth = (f_px / W) / disparity                     |
      |                                                                          |
    initialize (gaussian_head.py): one Gaussian per 2 x 2 pixels and layer       |
      |  -> base Gaussians (NDC) + feature input (RGB + 2 disparities, S/2)      |
      v                                                                          v
    GaussianFeatureNetwork.fuse (decoders.py) <------------------------------ encodings
      |  -> texture / geometry features (S/2)
      v
    PredictionHead -> deltas -> compose -> NdcGaussians (1, 2 x 768 x 768, ...)
      |
      v  (prediction.py, outside the network)
    unprojection with the source intrinsics -> Gaussians in metres (OpenCV camera frame)

Attribute paths match the released checkpoint's tensor names exactly, so loading needs no renaming.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .alignment import AlignmentUNetLayout
from .config import SharpConfig
from .decoders import GaussianFeatureNetwork, MonodepthNetwork
from .gaussian_head import NdcGaussians, PredictionHead, compose, initialize
from .pyramid import SlidingPyramidEncoder

__all__ = ["SharpModel"]


class _Holder(nn.Module):
    """A named slot, so parameter names carry the checkpoint's intermediate path segment."""

    def __init__(self, **children: nn.Module) -> None:
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)


class SharpModel(nn.Module):
    """Image (B, 3, S, S) in [0, 1] at S = 1536 -> Gaussians in SHARP's NDC frame + monodepth disparity."""

    def __init__(self, cfg: SharpConfig | None = None, with_training_parts: bool = True) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SharpConfig()
        self.monodepth_model = _Holder(monodepth_predictor=MonodepthNetwork(cfg, SlidingPyramidEncoder(cfg)))
        self.feature_model = GaussianFeatureNetwork(cfg)
        self.prediction_head = PredictionHead(cfg.gaussian_feature_dim, cfg.num_layers)
        if with_training_parts:
            self.depth_alignment = _Holder(
                scale_map_estimator=AlignmentUNetLayout(cfg.alignment_width, cfg.alignment_steps,
                                                        cfg.alignment_norm_groups))

    @property
    def internal_resolution(self) -> int:
        return self.cfg.internal_resolution

    @property
    def dtype(self) -> torch.dtype:
        return self.prediction_head.geometry_prediction_head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.prediction_head.geometry_prediction_head.weight.device

    def drop_training_parts(self) -> None:
        """Free what inference never calls: the depth-alignment UNet and the ViT classifier heads."""
        if hasattr(self, "depth_alignment"):
            del self.depth_alignment
        encoder = self.monodepth_model.monodepth_predictor.encoder
        encoder.patch_encoder.head = nn.Identity()
        encoder.image_encoder.head = nn.Identity()

    def progress_steps(self, batch: int = 1) -> int:
        """How often `forward` calls its `progress` for `batch` images on the weights' device."""
        encoder = self.monodepth_model.monodepth_predictor.encoder
        return encoder.window_steps(self.device, batch) + 1 + len(self.FORWARD_STAGES)

    FORWARD_STAGES = ("depth decoder", "feature decoder", "prediction head")

    def forward(self, image: torch.Tensor, disparity_factor: torch.Tensor,
                progress: Callable[[str], None] | None = None) -> tuple[NdcGaussians, torch.Tensor]:
        """image: (B, 3, S, S) in [0, 1]; disparity_factor: (B,) focal / width.

        Returns NDC Gaussians and the monodepth disparity (B, L, S, S), both float32: the networks run
        in the weights' dtype, the geometric glue between them in float32. `progress(stage)` is
        called after each step (`progress_steps` in all); it may raise to stop the pass there. It
        is called from the host as work is queued, with no device synchronisation.
        """
        mono = self.monodepth_model.monodepth_predictor
        report = progress or (lambda stage: None)
        image = image.float()
        encodings = mono.encoder((image * 2.0 - 1.0).to(self.dtype), progress)
        disparity = mono.disparity(encodings).float()
        report(self.FORWARD_STAGES[0])
        depth = disparity_factor.float()[:, None, None, None] / disparity.clamp(min=1e-4, max=1e4)
        base, feature_input = initialize(image, depth, self.cfg.stride, self.cfg.num_layers)
        del depth
        features = self.feature_model.fuse(feature_input.to(self.dtype), encodings)
        del encodings, feature_input  # free the 1536/768 px maps before the heads run
        report(self.FORWARD_STAGES[1])
        delta = self.prediction_head(*self.feature_model.heads(features)).float()
        del features
        ndc = compose(base, delta, self.cfg.num_layers)
        report(self.FORWARD_STAGES[2])
        return ndc, disparity

    # -- memory planning ------------------------------------------------------------------------
    # Peak activations of one float32 forward of the released widths at 1536 px, measured on CPU
    # (peak RSS 5.9 GB less 2.8 GB of float32 weights), plus a 20 % margin for other allocators.
    _MEASURED_ACTIVATION_BYTES_FP32 = 3.1e9
    _ACTIVATION_MARGIN = 1.2

    def estimate_activation_memory(self, batch_size: int = 1, dtype: torch.dtype | None = None) -> int:
        """Bytes a forward pass of `batch_size` images needs beyond the weights, for memory planning.

        Scales the measured figure by (internal_resolution / 1536)^2 (feature maps grow with the
        pixel count), by the summed widths of the encoder and decoder feature maps relative to the
        released model's (the maps held at high resolution dominate the peak), and by the element
        size of `dtype` (the weights' dtype by default) relative to float32's 4 bytes.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        released, cfg = SharpConfig(), self.cfg

        def widths(c: SharpConfig) -> int:
            return sum(c.encoder_dims) + sum(c.monodepth_decoder_dims) + sum(c.gaussian_decoder_dims)

        resolution_ratio = (cfg.internal_resolution / released.internal_resolution) ** 2
        width_ratio = widths(cfg) / widths(released)
        element_ratio = (dtype or self.dtype).itemsize / 4
        per_image = (self._MEASURED_ACTIVATION_BYTES_FP32 * self._ACTIVATION_MARGIN
                     * resolution_ratio * width_ratio * element_ratio)
        return int(per_image * batch_size)
