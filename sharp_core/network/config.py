"""SHARP hyper-parameters, read from a checkpoint's tensor shapes plus its own description.

Every width, depth and layer count is read off the state dict, so the released model, the reduced test
fixture and any other width of the same design load through one code path. Four values leave no trace
in tensor shapes: the ViT head counts, the patch-encoder hook blocks, the GroupNorm group count of the
Gaussian decoder's heads (`norm_groups`) and that of the depth-alignment UNet. They are never guessed:

- the released layout (the tensor names and shapes of `sharp_2572gikvuh.pt`) needs nothing more, its
  values are known (16 heads, hooks 5/11/17/23, 8 and 4 groups);
- any other layout needs an `ArchitectureDescription` (from file metadata, a config.json beside the
  weights or keyword arguments; see `sharp_core.checkpoint`) stating at least the head count and the
  hook blocks. The description uses the reference implementation's config layout, which lists what
  differs from the released model: group counts it leaves out are the released ones;
- without either, `MissingArchitecture` names the values that are missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

__all__ = ["ViTConfig", "SharpConfig", "ArchitectureDescription", "MissingArchitecture", "config_from_state_dict",
           "describe_config", "has_training_parts", "UNUSED_PREFIXES"]

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
    norm_groups: int = 8  # GroupNorm groups in the Gaussian decoder's texture and geometry heads
    # Depth-alignment UNet (training only): base width, down/up steps, GroupNorm groups.
    alignment_width: int = 16
    alignment_steps: tuple[int, int] = (4, 4)
    alignment_norm_groups: int = 4

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


class MissingArchitecture(ValueError):
    """Tensor shapes do not tell these values and no description gave them; `missing` holds their
    names in the description's layout (e.g. "vit.num_heads")."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__("not stated: " + ", ".join(missing))
        self.missing = missing


def _positive_int(value, name: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{source}: {name} must be a positive integer, got {value!r}")
    return value


def _lookup(obj: dict, dotted: str):
    """obj["vit"]["num_heads"] for "vit.num_heads" (nested, the reference's layout), else a flat key."""
    head, _, tail = dotted.partition(".")
    if tail and isinstance(obj.get(head), dict) and tail in obj[head]:
        return obj[head][tail]
    return obj.get(dotted)


@dataclass(frozen=True)
class ArchitectureDescription:
    """The values tensor shapes cannot tell, as one checkpoint states them (None: not stated).

    `embed_dim` / `depth` (and the image ViT's) are only checked against the shapes, so a description
    that belongs to another network is refused rather than applied. `source` names where it came from
    for error messages.
    """

    num_heads: int | None = None  # the patch ViT's, and the image ViT's unless image_num_heads is given
    image_num_heads: int | None = None
    hook_blocks: tuple[int, ...] | None = None
    norm_groups: int | None = None
    alignment_norm_groups: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    image_embed_dim: int | None = None
    image_depth: int | None = None
    source: str = "keyword arguments"

    # Keys of the JSON layout (../shared/fixtures/sharp-tiny/config.json) -> attribute names.
    KEYS = {"vit.num_heads": "num_heads", "image_vit.num_heads": "image_num_heads",
            "patch_encoder_hook_blocks": "hook_blocks", "norm_groups": "norm_groups",
            "alignment_norm_groups": "alignment_norm_groups", "vit.embed_dim": "embed_dim", "vit.depth": "depth",
            "image_vit.embed_dim": "image_embed_dim", "image_vit.depth": "image_depth"}

    def __post_init__(self) -> None:
        for key, attr in self.KEYS.items():
            value = getattr(self, attr)
            if value is None:
                continue
            if attr == "hook_blocks":
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    raise ValueError(f"{self.source}: {key} must be a list of block indices, got {value!r}")
                blocks = tuple(value)
                if len(blocks) < 2 or any(isinstance(b, bool) or not isinstance(b, int) or b < 0 for b in blocks) \
                        or list(blocks) != sorted(set(blocks)):
                    raise ValueError(f"{self.source}: {key} must list at least two increasing block indices "
                                     f"(0-based), got {value!r}")
                object.__setattr__(self, attr, blocks)
            else:
                _positive_int(value, key, self.source)

    @classmethod
    def from_json(cls, obj, source: str) -> "ArchitectureDescription":
        """Parse the reference's config layout (nested `vit.num_heads` or flat dotted keys); other
        keys (input size, description, ...) are ignored."""
        if not isinstance(obj, dict):
            raise ValueError(f"{source}: an architecture description must be a JSON object, got {type(obj).__name__}")
        return cls(source=source, **{attr: _lookup(obj, key) for key, attr in cls.KEYS.items()})

    def stated(self) -> dict[str, object]:
        return {attr: getattr(self, attr) for attr in self.KEYS.values() if getattr(self, attr) is not None}

    def over(self, base: "ArchitectureDescription | None") -> "ArchitectureDescription":
        """This description's stated values, the others from `base`."""
        if base is None:
            return self
        merged = {**base.stated(), **self.stated()}
        sources = [d.source for d in (self, base) if d.stated()]
        return ArchitectureDescription(source=" and ".join(sources) or self.source, **merged)


def describe_config(cfg: SharpConfig, with_alignment: bool = True) -> dict:
    """The description of `cfg` in the reference's JSON layout: every value shapes cannot tell, plus
    the ViT widths and depths they are checked against."""
    out = {
        "vit": {"embed_dim": cfg.patch_vit.embed_dim, "depth": cfg.patch_vit.depth,
                "num_heads": cfg.patch_vit.num_heads},
        "image_vit": {"embed_dim": cfg.image_vit.embed_dim, "depth": cfg.image_vit.depth,
                      "num_heads": cfg.image_vit.num_heads},
        "patch_encoder_hook_blocks": list(cfg.hook_blocks),
        "norm_groups": cfg.norm_groups,
    }
    if with_alignment:
        out["alignment_norm_groups"] = cfg.alignment_norm_groups
    return out


def _vit_config(sd: dict, prefix: str) -> ViTConfig:
    """Everything of a ViT but its head count (left at the released value here)."""
    d, _, p, _ = _shape(sd, prefix + "patch_embed.proj.weight")
    tokens = _shape(sd, prefix + "pos_embed")[1]
    grid = round((tokens - 1) ** 0.5)
    if grid * grid + 1 != tokens:
        raise ValueError(f"{prefix}pos_embed has {tokens} tokens, expected a square grid plus a class token")
    head = sd.get(prefix + "head.weight")
    return ViTConfig(
        embed_dim=d,
        depth=_count(sd, re.escape(prefix) + r"blocks\.(\d+)\."),
        patch_size=p,
        img_size=grid * p,
        mlp_hidden=_shape(sd, prefix + "blocks.0.mlp.fc1.weight")[0],
        qkv_bias=prefix + "blocks.0.attn.qkv.bias" in sd,
        layer_scale=prefix + "blocks.0.ls1.gamma" in sd,
        num_classes=0 if head is None else head.shape[0],
    )


def _shape_config(sd: dict) -> SharpConfig:
    """The architecture as far as tensor shapes tell; the values they cannot tell stay released."""
    patch = _vit_config(sd, ENCODER_PREFIX + "patch_encoder.")
    image = _vit_config(sd, ENCODER_PREFIX + "image_encoder.")
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
    return SharpConfig(
        patch_vit=patch,
        image_vit=image,
        encoder_dims=encoder_dims,
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


def config_from_state_dict(sd: dict, description: ArchitectureDescription | None = None) -> SharpConfig:
    """The architecture of a state dict: shapes, plus `description` for what shapes cannot tell.

    The released layout needs no description (a description's values still win over the released
    ones). Raises KeyError naming a missing tensor, MissingArchitecture naming the values no source
    gave, ValueError when a description contradicts the shapes or does not fit the widths.
    """
    cfg = _shape_config(sd)
    released = cfg == SharpConfig()
    stated = description.stated() if description is not None else {}
    training = has_training_parts(sd)
    if not released:
        needed = {"vit.num_heads": "num_heads", "patch_encoder_hook_blocks": "hook_blocks"}
        if not stated:  # nothing at all: name the group counts too, they are not known either
            needed.update({"norm_groups": "norm_groups"})
            if training:
                needed["alignment_norm_groups"] = "alignment_norm_groups"
        missing = [key for key, attr in needed.items() if attr not in stated]
        if missing:
            raise MissingArchitecture(missing)
    if not stated:
        return cfg
    source = description.source

    def check(attr: str, actual: int, key: str) -> None:
        if attr in stated and stated[attr] != actual:
            raise ValueError(f"{source} says {key} = {stated[attr]}, but the tensors have {actual}: "
                             "the description belongs to another network")

    check("embed_dim", cfg.patch_vit.embed_dim, "vit.embed_dim")
    check("depth", cfg.patch_vit.depth, "vit.depth")
    check("image_embed_dim", cfg.image_vit.embed_dim, "image_vit.embed_dim")
    check("image_depth", cfg.image_vit.depth, "image_vit.depth")
    heads = stated.get("num_heads", cfg.patch_vit.num_heads)
    image_heads = stated.get("image_num_heads", stated.get("num_heads", cfg.image_vit.num_heads))
    for name, vit, h in (("vit", cfg.patch_vit, heads), ("image_vit", cfg.image_vit, image_heads)):
        if vit.embed_dim % h:
            raise ValueError(f"{source}: {name}.num_heads = {h} does not divide the ViT width {vit.embed_dim}")
    hooks = stated.get("hook_blocks", cfg.hook_blocks)
    if hooks[-1] >= cfg.patch_vit.depth:
        raise ValueError(f"{source}: patch_encoder_hook_blocks {list(hooks)} reach past the patch ViT's "
                         f"{cfg.patch_vit.depth} blocks (0-based indices)")
    groups = stated.get("norm_groups", cfg.norm_groups)
    d = cfg.gaussian_decoder_dims[0]
    if d % groups or (d // 2) % groups:
        raise ValueError(f"{source}: norm_groups = {groups} does not divide the Gaussian decoder's widths "
                         f"{d} and {d // 2}")
    align_groups = stated.get("alignment_norm_groups", cfg.alignment_norm_groups)
    if training and cfg.alignment_width % align_groups:
        raise ValueError(f"{source}: alignment_norm_groups = {align_groups} does not divide the alignment "
                         f"UNet's width {cfg.alignment_width}")
    return replace(cfg, patch_vit=replace(cfg.patch_vit, num_heads=heads),
                   image_vit=replace(cfg.image_vit, num_heads=image_heads),
                   hook_blocks=tuple(hooks), norm_groups=groups, alignment_norm_groups=align_groups)


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
