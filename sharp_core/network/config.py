"""SHARP hyper-parameters, and their inference from a checkpoint's tensor names and shapes.

Every width, depth and layer count is read off the state dict, so the released model, the reduced test
fixture and any other width of the same design load through one code path. Two values leave no trace
in tensor shapes: the ViT head count (taken from file metadata when present, else 64-wide heads as in
every DINOv2 model, or 16-wide when the width is not a multiple of 64) and the patch-encoder hook
blocks (SHARP taps the last block of each quarter of the ViT: 5, 11, 17, 23 for depth 24).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["ViTConfig", "SharpConfig", "config_from_state_dict", "has_training_parts", "UNUSED_PREFIXES"]

MONODEPTH_PREFIX = "monodepth_model.monodepth_predictor."
ENCODER_PREFIX = MONODEPTH_PREFIX + "encoder."
ALIGNMENT_PREFIX = "depth_alignment.scale_map_estimator."
# Tensors the checkpoint carries that inference never uses: accepted on load, then freed.
UNUSED_PREFIXES = (ALIGNMENT_PREFIX, ENCODER_PREFIX + "patch_encoder.head.", ENCODER_PREFIX + "image_encoder.head.")


@dataclass(frozen=True)
class ViTConfig:
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    patch_size: int = 16
    img_size: int = 384
    mlp_hidden: int = 4096
    qkv_bias: bool = True
    layer_scale: bool = True
    num_classes: int = 21841

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size


@dataclass(frozen=True)
class SharpConfig:
    """Architecture of one SHARP network. Defaults are the released model's."""

    patch_vit: ViTConfig = field(default_factory=ViTConfig)
    image_vit: ViTConfig = field(default_factory=ViTConfig)
    # Widths of the five sliding-pyramid encodings, highest resolution first.
    encoder_dims: tuple[int, ...] = (256, 256, 512, 1024, 1024)
    hook_blocks: tuple[int, ...] = (5, 11, 17, 23)
    monodepth_decoder_dims: tuple[int, ...] = (256, 256, 256, 256, 256)
    monodepth_head_dims: tuple[int, int] = (32, 2)  # hidden width, number of depth layers
    gaussian_decoder_dims: tuple[int, ...] = (128, 128, 128, 128, 128)
    gaussian_input_dim: int = 5  # RGB + two disparity layers
    gaussian_feature_dim: int = 32
    num_layers: int = 2  # Gaussian layers per pixel
    stride: int = 2  # Gaussians per 2x2 pixels of the 1536 input
    norm_groups: int = 8
    # Depth-alignment UNet (training only): base width and down/up steps.
    alignment_width: int = 16
    alignment_steps: tuple[int, int] = (4, 4)

    @property
    def internal_resolution(self) -> int:
        return self.patch_vit.img_size * 4


def _shape(sd: dict, name: str) -> tuple[int, ...]:
    try:
        return tuple(sd[name].shape)
    except KeyError:
        raise KeyError(name) from None


def _count(sd: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd for m in [rx.match(k)] if m})


def default_num_heads(embed_dim: int) -> int:
    head_dim = 64 if embed_dim % 64 == 0 else 16 if embed_dim % 16 == 0 else embed_dim
    return embed_dim // head_dim


def _vit_config(sd: dict, prefix: str, num_heads: int | None) -> ViTConfig:
    d, _, p, _ = _shape(sd, prefix + "patch_embed.proj.weight")
    tokens = _shape(sd, prefix + "pos_embed")[1]
    grid = round((tokens - 1) ** 0.5)
    if grid * grid + 1 != tokens:
        raise ValueError(f"{prefix}pos_embed has {tokens} tokens, expected a square grid plus a class token")
    head = sd.get(prefix + "head.weight")
    return ViTConfig(
        embed_dim=d,
        depth=_count(sd, re.escape(prefix) + r"blocks\.(\d+)\."),
        num_heads=num_heads or default_num_heads(d),
        patch_size=p,
        img_size=grid * p,
        mlp_hidden=_shape(sd, prefix + "blocks.0.mlp.fc1.weight")[0],
        qkv_bias=prefix + "blocks.0.attn.qkv.bias" in sd,
        layer_scale=prefix + "blocks.0.ls1.gamma" in sd,
        num_classes=0 if head is None else head.shape[0],
    )


def config_from_state_dict(sd: dict, num_heads: int | None = None) -> SharpConfig:
    """Read the architecture off tensor shapes. Raises KeyError naming a missing tensor."""
    patch = _vit_config(sd, ENCODER_PREFIX + "patch_encoder.", num_heads)
    image = _vit_config(sd, ENCODER_PREFIX + "image_encoder.", num_heads)
    enc = ENCODER_PREFIX
    encoder_dims = (
        _shape(sd, enc + "upsample_latent0.3.weight")[1],
        _shape(sd, enc + "upsample_latent1.0.weight")[0],
        _shape(sd, enc + "upsample0.0.weight")[0],
        _shape(sd, enc + "upsample1.0.weight")[0],
        _shape(sd, enc + "upsample2.0.weight")[0],
    )
    n_fusions = _count(sd, re.escape(MONODEPTH_PREFIX + "decoder.fusions.") + r"(\d+)\.")
    mono_dims = tuple(_shape(sd, f"{MONODEPTH_PREFIX}decoder.fusions.{i}.out_conv.weight")[1]
                      for i in range(n_fusions))
    gdec = "feature_model.decoder."
    n_gfusions = _count(sd, re.escape(gdec + "fusions.") + r"(\d+)\.")
    gauss_dims = tuple(_shape(sd, f"{gdec}fusions.{i}.out_conv.weight")[1] for i in range(n_gfusions))
    image_conv = _shape(sd, "feature_model.image_encoder.conv.weight")
    geometry = _shape(sd, "prediction_head.geometry_prediction_head.weight")
    depth = patch.depth
    return SharpConfig(
        patch_vit=patch,
        image_vit=image,
        encoder_dims=encoder_dims,
        hook_blocks=tuple(max((k + 1) * depth // 4 - 1, 0) for k in range(4)),
        monodepth_decoder_dims=mono_dims,
        monodepth_head_dims=(
            _shape(sd, MONODEPTH_PREFIX + "head.2.weight")[0],
            _shape(sd, MONODEPTH_PREFIX + "head.4.weight")[0],
        ),
        gaussian_decoder_dims=gauss_dims,
        gaussian_input_dim=image_conv[1],
        gaussian_feature_dim=_shape(sd, "feature_model.texture_head.3.weight")[0],
        num_layers=geometry[0] // 3,
        stride=image_conv[2],
        **_alignment_fields(sd),
    )


def has_training_parts(sd: dict) -> bool:
    """Whether the checkpoint carries the depth-alignment UNet (files converted for inference may not)."""
    return any(k.startswith(ALIGNMENT_PREFIX) for k in sd)


def _alignment_fields(sd: dict) -> dict:
    if not has_training_parts(sd):
        return {}
    align = ALIGNMENT_PREFIX
    return {
        "alignment_width": _shape(sd, align + "encoder.conv_in.0.weight")[0],
        "alignment_steps": (
            _count(sd, re.escape(align + "encoder.convs_down.") + r"(\d+)\."),
            _count(sd, re.escape(align + "decoder.convs_up.") + r"(\d+)\."),
        ),
    }
