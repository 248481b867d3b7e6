"""Load SHARP weights (.pt/.pth or .safetensors) into our network, built on `meta` and materialised
straight from the file: no 700 M-parameter random initialisation, no unpickling of code."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .atomic import atomic_target
from .network import SharpModel
from .network.config import UNUSED_PREFIXES, SharpConfig, config_from_state_dict, has_training_parts

__all__ = ["load_model", "read_state_dict", "check_state_dict", "convert_checkpoint", "resolve_dtype", "DTYPES",
           "CHECKPOINT_SUFFIXES"]

# The names users pick (node widget, CLI) first; the long torch spellings are accepted too.
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
          "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
CHECKPOINT_SUFFIXES = PICKLE_SUFFIXES + SAFETENSORS_SUFFIXES
METADATA_HEADS = "sharp.num_heads"
_SHOW = 8  # tensor names listed in an error before "... and N more"


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors of a checkpoint (memory-mapped where the format allows) and its string metadata."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SHARP checkpoint not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in SAFETENSORS_SUFFIXES:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        if suffix in PICKLE_SUFFIXES:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        else:
            raise ValueError(f"{path}: unsupported checkpoint type {suffix!r}; use one of {', '.join(CHECKPOINT_SUFFIXES)}")
    except ValueError:
        raise
    except Exception as exc:  # truncated or not a checkpoint at all
        raise ValueError(f"{path} is not a readable SHARP checkpoint (truncated or corrupt?): {exc}") from exc
    for key in ("state_dict", "model"):  # common wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return obj, {}


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOW])
    return shown + (f" ... and {len(names) - _SHOW} more" if len(names) > _SHOW else "")


def check_state_dict(sd: dict[str, torch.Tensor], source: str, num_heads: int | None = None) -> SharpConfig:
    """Infer the architecture and verify every tensor name and shape; ValueError names the culprits."""
    try:
        cfg = config_from_state_dict(sd, num_heads)
    except KeyError as exc:
        raise ValueError(f"{source} is not a SHARP checkpoint: tensor {exc.args[0]!r} is missing "
                         f"({len(sd)} tensors found)") from None
    except (ValueError, IndexError) as exc:
        raise ValueError(f"{source}: cannot infer the SHARP architecture: {exc}") from None
    with torch.device("meta"):
        model = SharpModel(cfg, with_training_parts=has_training_parts(sd))
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    misshaped = [f"{k} {tuple(sd[k].shape)} (expected {expected[k]})"
                 for k in sorted(set(expected) & set(sd)) if tuple(sd[k].shape) != expected[k]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_listing(unexpected)}")
    if misshaped:
        problems.append(f"{len(misshaped)} mis-shaped: {_listing(misshaped)}")
    if problems:
        raise ValueError(f"{source} does not match the SHARP architecture: " + "; ".join(problems))
    return cfg


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unsupported dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu",
               dtype: torch.dtype | str = torch.float32, num_heads: int | None = None) -> SharpModel:
    """Build SHARP from a checkpoint, inferring its architecture, on `device` in `dtype`, eval mode.

    `num_heads` overrides the ViT head count, which tensor shapes do not record (see
    `network.config`); files written by `python -m sharp_core convert` store it in their metadata.
    """
    dtype = resolve_dtype(dtype)
    sd, metadata = read_state_dict(path)
    if num_heads is None and METADATA_HEADS in metadata:
        num_heads = int(metadata[METADATA_HEADS])
    cfg = check_state_dict(sd, str(path), num_heads)
    with torch.device("meta"):
        model = SharpModel(cfg, with_training_parts=has_training_parts(sd))
    model.load_state_dict(sd, strict=True, assign=True)
    del sd
    model.drop_training_parts()
    model.to(device=device, dtype=dtype)
    return model.eval().requires_grad_(False)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype | str | None = None,
                       inference_only: bool = False, num_heads: int | None = None) -> Path:
    """Re-save a checkpoint as .safetensors (faster, no pickle), optionally cast and stripped of the
    tensors inference never uses. The ViT head count (not visible in shapes) is stored as metadata.
    Written to a temporary name, then renamed."""
    dst = Path(dst)
    if dst.suffix.lower() != ".safetensors":
        raise ValueError(f"{dst}: the converted file must end in .safetensors")
    sd, metadata = read_state_dict(src)
    if num_heads is None and METADATA_HEADS in metadata:
        num_heads = int(metadata[METADATA_HEADS])
    cfg = check_state_dict(sd, str(src), num_heads)
    cast = None if dtype is None else resolve_dtype(dtype)
    out = {k: (v.to(cast) if cast is not None and v.is_floating_point() else v).contiguous()
           for k, v in sd.items() if not (inference_only and k.startswith(UNUSED_PREFIXES))}
    from safetensors.torch import save_file

    with atomic_target(dst) as tmp:
        save_file(out, str(tmp), metadata={METADATA_HEADS: str(cfg.patch_vit.num_heads), "source": Path(src).name})
    return dst
