"""Splat file formats behind one public pair: `save_gaussians` and `load_gaussians`.

Each format lives in its own module of this package and describes itself with one `SplatFormat`
(name, file extensions, writer, reader, byte sniffer). `save_gaussians` picks the format from
`format=` or the file name; `load_gaussians` recognises the bytes first and falls back to the
file name, so a renamed file still loads. Writers are atomic: a file appears complete or not at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..gaussians import Gaussians
from . import compressed_ply, ksplat, ply
from .base import SplatFormat

__all__ = ["SplatFormat", "FORMATS", "save_gaussians", "load_gaussians", "format_for_path", "save_ply", "load_ply"]

save_ply = ply.save_ply
load_ply = ply.load_ply
_SNIFF_BYTES = 4096


FORMATS: dict[str, SplatFormat] = {f.name: f for module in (ply, compressed_ply, ksplat) for f in module.FORMATS}


def format_for_path(path: str | os.PathLike, writing: bool = True) -> SplatFormat:
    """The format a file name asks for: the longest matching extension; ".ply" means SHARP's PLY."""
    name = Path(path).name.lower()
    candidates = [
        (len(ext), f) for f in FORMATS.values() for ext in f.extensions
        if name.endswith(ext) and (f.write if writing else f.read) is not None
    ]
    if not candidates:
        supported = ", ".join(sorted({e for f in FORMATS.values() for e in f.extensions}))
        raise ValueError(f"{path}: unknown splat file type; use one of {supported} (or pass format=).")
    return max(candidates, key=lambda c: c[0])[1]


def _named(format: str) -> SplatFormat:
    try:
        return FORMATS[format.lower()]
    except KeyError:
        raise ValueError(f"Unknown splat format {format!r}; choose one of {', '.join(FORMATS)}.") from None


def save_gaussians(gaussians: Gaussians, path: str | os.PathLike, format: str | None = None, **options) -> Path:
    """Write one scene (a batch of one) to `path` in `format` (default: from the file name).

    `options` are the format's own (see its module). Returns the path written.
    """
    fmt = _named(format) if format else format_for_path(path)
    if fmt.write is None:
        raise ValueError(f"{fmt.label} files can be read but not written.")
    if gaussians.batch_size != 1:
        raise ValueError(
            f"save_gaussians writes one scene but got a batch of {gaussians.batch_size}; "
            "save each scene separately, e.g. save_gaussians(gaussians[i], path_i)."
        )
    gaussians.check_finite(f"save {Path(path).name}")
    fmt.write(gaussians, Path(path), **options)
    return Path(path)


def load_gaussians(path: str | os.PathLike, format: str | None = None) -> Gaussians:
    """Read a splat file as a one-scene `Gaussians`, recognising its format from its bytes or name."""
    path = Path(path)
    if format:
        fmt = _named(format)
    else:
        if not path.exists():
            raise FileNotFoundError(f"Splat file not found: {path}")
        head = b""
        if path.is_file():
            with open(path, "rb") as f:
                head = f.read(_SNIFF_BYTES)
        sniffed = [f for f in FORMATS.values() if f.read is not None and f.sniff is not None and f.sniff(head, path)]
        fmt = sniffed[0] if sniffed else format_for_path(path, writing=False)
    if fmt.read is None:
        raise ValueError(f"{path}: {fmt.label} files can be written but not read.")
    return fmt.read(path)
