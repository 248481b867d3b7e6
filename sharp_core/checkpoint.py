"""Load SHARP weights (.pt/.pth or .safetensors) into our network, built on `meta` and materialised
straight from the file: no 700 M-parameter random initialisation, no unpickling of code."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Sequence

import torch

from .atomic import atomic_target
from .network import SharpModel
from .network.config import (
    UNUSED_PREFIXES, ArchitectureDescription, MissingArchitecture, SharpConfig, config_from_state_dict,
    describe_config, has_training_parts,
)

__all__ = ["ArchitectureUnknown", "load_model", "read_state_dict", "read_description", "check_state_dict",
           "convert_checkpoint", "resolve_dtype", "description_files", "DTYPES", "CHECKPOINT_SUFFIXES",
           "DESCRIPTION_KEY"]

# The names users pick (node widget, CLI) first; the long torch spellings are accepted too.
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
          "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
CHECKPOINT_SUFFIXES = PICKLE_SUFFIXES + SAFETENSORS_SUFFIXES
DESCRIPTION_KEY = "sharp_config"  # safetensors metadata entry: the architecture description as JSON
LEGACY_HEADS_KEY = "sharp.num_heads"  # what earlier conversions wrote (the head count only)
MAX_DESCRIPTION_BYTES = 1 << 20  # a config.json is a few hundred bytes; never read a huge file whole
_SHOW = 8  # tensor names listed in an error before "... and N more"


def sniff_checkpoint(path: Path) -> str:
    """What the file's first bytes say it is: "safetensors", "torch-zip" (torch.save's default),
    "torch-legacy" (an old non-zip torch.save pickle) or "unknown"."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "torch-legacy"
    return "unknown"


def _check_checkpoint_file(path: Path) -> str:
    """The file's kind (see `sniff_checkpoint`), or a ValueError saying what the path really is."""
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES)[:3]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise ValueError(f"{path} is a folder, not a checkpoint file{hint}; give the path of the file itself.")
    if not path.is_file():
        raise FileNotFoundError(f"SHARP checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes), probably an interrupted download; delete it and download "
                         "the checkpoint again.")
    kind = sniff_checkpoint(path)
    suffix = path.suffix.lower()
    if kind == "unknown":
        raise ValueError(f"{path} is neither a safetensors file nor a PyTorch checkpoint (it does not start like "
                         "either); check that this is the SHARP checkpoint and that its download finished.")
    if suffix in SAFETENSORS_SUFFIXES and kind != "safetensors":
        raise ValueError(f"{path} is a PyTorch (torch.save) checkpoint named {suffix}; rename it to .pt (`python -m sharp_core "
                         "convert` can then turn it into a real safetensors file).")
    if suffix in PICKLE_SUFFIXES and kind == "safetensors":
        raise ValueError(f"{path} is a safetensors file named {suffix}; rename it to .safetensors.")
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ValueError(f"{path}: unsupported checkpoint type {suffix!r}; use one of {', '.join(CHECKPOINT_SUFFIXES)}")
    return kind


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors of a checkpoint (memory-mapped where the format allows) and its string metadata.

    Never unpickles code: PyTorch files load with `weights_only=True`. Errors name the file and say
    what it is instead (folder, empty, another format, truncated, a pickled model object).
    """
    path = Path(path)
    kind = _check_checkpoint_file(path)
    try:
        if kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=kind == "torch-zip")
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise ValueError(f"{path} holds pickled Python objects (a whole model?) rather than a state dict of "
                             "tensors; we never unpickle code. Save it with torch.save(model.state_dict(), path) "
                             "or use the released sharp_2572gikvuh.pt.") from None
        raise ValueError(f"{path} is a corrupt PyTorch checkpoint ({_first_line(exc)}).") from None
    except Exception as exc:  # truncated zip, bad safetensors header, ...
        raise ValueError(f"{path} is not a readable SHARP checkpoint (truncated or corrupt?): {_first_line(exc)}") from None
    for key in ("state_dict", "model"):  # common wrappers
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return obj, {}


def _first_line(exc: Exception) -> str:
    """An exception's first line without terminal colour codes (torch's messages carry ANSI escapes)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOW])
    return shown + (f" ... and {len(names) - _SHOW} more" if len(names) > _SHOW else "")


class ArchitectureUnknown(ValueError):
    """A checkpoint of another layout than the released one without a description of what tensor
    shapes cannot tell: the file is fine, the user must say (metadata, config.json, keywords)."""


def description_files(path: str | os.PathLike) -> list[Path]:
    """Where a description beside the weights may live, in the order tried: `<stem>.config.json`,
    then `config.json` in the same folder."""
    path = Path(path)
    return [path.with_name(path.stem + ".config.json"), path.with_name("config.json")]


def _parse_description(text: str, source: str) -> ArchitectureDescription:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source} is not valid JSON ({exc}); fix or delete it.") from None
    return ArchitectureDescription.from_json(obj, source)


def read_description(path: str | os.PathLike, metadata: dict[str, str]) -> ArchitectureDescription | None:
    """The checkpoint's own description of what shapes cannot tell: the safetensors metadata entry
    `sharp_config` (JSON), else the first of `description_files(path)` that exists; None when neither.
    Files converted before the description existed store only `sharp.num_heads`: read as that."""
    path = Path(path)
    if DESCRIPTION_KEY in metadata:
        return _parse_description(metadata[DESCRIPTION_KEY], f"the {DESCRIPTION_KEY!r} metadata of {path}")
    if LEGACY_HEADS_KEY in metadata:
        try:
            heads = int(metadata[LEGACY_HEADS_KEY])
        except ValueError:
            raise ValueError(f"{path}: metadata {LEGACY_HEADS_KEY} = {metadata[LEGACY_HEADS_KEY]!r} is not a "
                             "number") from None
        return ArchitectureDescription(num_heads=heads, source=f"the {LEGACY_HEADS_KEY!r} metadata of {path}")
    for candidate in description_files(path):
        if candidate.is_file():
            if candidate.stat().st_size > MAX_DESCRIPTION_BYTES:
                raise ValueError(f"{candidate} is {candidate.stat().st_size} bytes, too large for an architecture "
                                 "description; is it the right file?")
            return _parse_description(candidate.read_text(encoding="utf-8", errors="replace"), str(candidate))
    return None


def _missing_message(source: str, missing: list[str]) -> str:
    keywords = {"vit.num_heads": "num_heads=...", "patch_encoder_hook_blocks": "hook_blocks=(...)",
                "norm_groups": "norm_groups=...", "alignment_norm_groups": "alignment_norm_groups=..."}
    example = ", ".join(keywords[m] for m in missing if m in keywords)
    return (f"{source} is a SHARP network of another layout than the released one, and nothing says its "
            f"{', '.join(missing)} (tensor shapes do not record them, and they are never guessed). Give them in "
            f"one of these ways: a JSON entry {DESCRIPTION_KEY!r} in the safetensors metadata (`python -m "
            "sharp_core convert` writes it); a config.json (or <weights name>.config.json) beside the weights, "
            'e.g. {"vit": {"num_heads": 16}, "patch_encoder_hook_blocks": [5, 11, 17, 23], "norm_groups": 8}; or '
            f"keyword arguments: load_model(path, {example}).")


def check_state_dict(sd: dict[str, torch.Tensor], source: str,
                     description: ArchitectureDescription | None = None) -> SharpConfig:
    """Infer the architecture (shapes plus `description`, see `network.config`) and verify every
    tensor name and shape; ValueError names the culprits, or the values nothing gave."""
    try:
        cfg = config_from_state_dict(sd, description)
    except KeyError as exc:
        raise ValueError(f"{source} is not a SHARP checkpoint: tensor {exc.args[0]!r} is missing "
                         f"({len(sd)} tensors found)") from None
    except MissingArchitecture as exc:
        raise ArchitectureUnknown(_missing_message(source, exc.missing)) from None
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


def check_finite_weights(sd: dict[str, torch.Tensor], source: str) -> None:
    """ValueError naming the tensors that hold NaN or infinite values (a corrupt or diverged file)."""
    bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"{source}: {len(bad)} tensors hold NaN or infinite values ({_listing(bad)}); the "
                         "checkpoint is corrupt: download it again.")


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unsupported dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


def _architecture(path, metadata: dict[str, str], num_heads, hook_blocks, norm_groups,
                  alignment_norm_groups) -> ArchitectureDescription | None:
    """Keyword arguments over the file's own description (metadata, else config.json)."""
    given = ArchitectureDescription(num_heads=num_heads, hook_blocks=hook_blocks, norm_groups=norm_groups,
                                    alignment_norm_groups=alignment_norm_groups, source="the keyword arguments")
    own = read_description(path, metadata)
    return given.over(own) if given.stated() else own


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu",
               dtype: torch.dtype | str = torch.float32, num_heads: int | None = None,
               hook_blocks: Sequence[int] | None = None, norm_groups: int | None = None,
               alignment_norm_groups: int | None = None) -> SharpModel:
    """Build SHARP from a checkpoint, inferring its architecture, on `device` in `dtype`, eval mode.

    What tensor shapes cannot tell (ViT head count, patch-encoder hook blocks, GroupNorm groups) is
    known for the released layout and otherwise read from the file's description: safetensors
    metadata `sharp_config`, else `<stem>.config.json` or `config.json` beside it (see
    `network.config`). Keyword arguments override it; with none of these a non-released layout is
    refused with a message naming the missing values.
    """
    dtype = resolve_dtype(dtype)
    sd, metadata = read_state_dict(path)
    description = _architecture(path, metadata, num_heads, hook_blocks, norm_groups, alignment_norm_groups)
    cfg = check_state_dict(sd, str(path), description)
    check_finite_weights(sd, str(path))
    with torch.device("meta"):
        model = SharpModel(cfg, with_training_parts=has_training_parts(sd))
    model.load_state_dict(sd, strict=True, assign=True)
    del sd
    model.drop_training_parts()
    model.to(device=device, dtype=dtype)
    return model.eval().requires_grad_(False)


def convert_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, dtype: torch.dtype | str | None = None,
                       inference_only: bool = False, num_heads: int | None = None,
                       hook_blocks: Sequence[int] | None = None, norm_groups: int | None = None,
                       alignment_norm_groups: int | None = None) -> Path:
    """Re-save a checkpoint as .safetensors (faster, no pickle), optionally cast and stripped of the
    tensors inference never uses, with the full architecture description in its metadata
    (`sharp_config`), so the file is self-contained.

    The description holds only known values: the released layout's, the source's own description,
    the keyword arguments (as for `load_model`); when they do not say everything it refuses, naming
    what is missing. Written to a temporary name, then renamed."""
    dst = Path(dst)
    if dst.suffix.lower() != ".safetensors":
        raise ValueError(f"{dst}: the converted file must end in .safetensors")
    sd, metadata = read_state_dict(src)
    description = _architecture(src, metadata, num_heads, hook_blocks, norm_groups, alignment_norm_groups)
    cfg = check_state_dict(sd, str(src), description)
    out = {k: v for k, v in sd.items() if not (inference_only and k.startswith(UNUSED_PREFIXES))}
    del sd
    cast = None if dtype is None else resolve_dtype(dtype)
    out = {k: (v.to(cast) if cast is not None and v.is_floating_point() else v).contiguous() for k, v in out.items()}
    described = json.dumps(describe_config(cfg, with_alignment=has_training_parts(out)), separators=(",", ":"))
    from safetensors.torch import save_file

    with atomic_target(dst) as tmp:
        save_file(out, str(tmp), metadata={DESCRIPTION_KEY: described, "source": Path(src).name})
    return dst
