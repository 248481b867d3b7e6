"""Splat file formats behind one public pair: `save_gaussians` and `load_gaussians`.

Each format lives in its own module of this package and describes itself with one `SplatFormat`
(name, file extensions, writer, reader, byte sniffer). `save_gaussians` picks the format from
`format=` or the file name; `load_gaussians` recognises the bytes first and falls back to the
file name, so a renamed file still loads. Writers are atomic: a file appears complete or not at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..edit import decimate
from ..gaussians import Gaussians
from . import compressed_ply, gltf, ksplat, ply, ply_3dgs, sog, splat, spz
from .base import SplatFormat

__all__ = ["SplatFormat", "FORMATS", "save_gaussians", "load_gaussians", "format_for_path", "save_ply", "load_ply"]

save_ply = ply.save_ply
load_ply = ply.load_ply
_SNIFF_BYTES = 4096
_MAX_SIZE_TRIES = 6


# Order matters twice: for equal file endings the earlier format wins when saving (".ply" is SHARP's
# PLY), and when several sniffers accept the bytes the one whose extension the name has wins, else the
# earlier one (the header-less .splat sniffs by plausibility only, so it comes last).
_MODULES = (ply, ply_3dgs, compressed_ply, spz, sog, gltf, ksplat, splat)
FORMATS: dict[str, SplatFormat] = {f.name: f for module in _MODULES for f in module.FORMATS}


def format_for_path(path: str | os.PathLike, writing: bool = True) -> SplatFormat:
    """The format a file name asks for: the longest matching extension; ".ply" means SHARP's PLY."""
    name = Path(path).name.lower()
    matches = [(len(ext), f) for f in FORMATS.values() for ext in f.extensions if name.endswith(ext)]
    candidates = [(n, f) for n, f in matches if (f.write if writing else f.read) is not None]
    if not candidates:
        able = [f for f in FORMATS.values() if (f.write if writing else f.read) is not None]
        supported = ", ".join(sorted({e for f in able for e in f.extensions}))
        if matches:
            label = max(matches, key=lambda c: c[0])[1].label
            done = "read but not written" if writing else "written but not read"
            raise ValueError(f"{path}: {label} files can be {done}; use one of {supported}.")
        raise ValueError(f"{path}: unknown splat file type; use one of {supported} (or pass format=).")
    return max(candidates, key=lambda c: c[0])[1]


def _named(format: str) -> SplatFormat:
    try:
        return FORMATS[format.lower()]
    except KeyError:
        raise ValueError(f"Unknown splat format {format!r}; choose one of {', '.join(FORMATS)}.") from None


def save_gaussians(gaussians: Gaussians, path: str | os.PathLike, format: str | None = None,
                   max_splats: int | None = None, max_bytes: int | None = None, **options) -> Path:
    """Write one scene (a batch of one) to `path` in `format` (default: from the file name).

    max_splats: keep at most this many splats, the most visible ones (`edit.decimate`), e.g. about
    300 000 for a VR headset. max_bytes: the largest file wanted (single-file formats): the scene is
    decimated until the file fits, aiming within 2 % below it (each try is a full write to a temporary
    file; sizes are near-linear in the splat count, so two or three tries). `options` are the
    format's own (see its module). Returns the path written.
    """
    fmt = _named(format) if format else format_for_path(path)
    if fmt.write is None:
        raise ValueError(f"{fmt.label} files can be read but not written.")
    if gaussians.batch_size != 1:
        raise ValueError(
            f"save_gaussians writes one scene but got a batch of {gaussians.batch_size}; "
            "save each scene separately, e.g. save_gaussians(gaussians[i], path_i)."
        )
    path = Path(path)
    gaussians.check_finite(f"save {path.name}")
    if max_splats is not None:
        gaussians = decimate(gaussians, int(max_splats))
    if max_bytes is None:
        fmt.write(gaussians, path, **options)
        return path
    return _save_within(gaussians, path, fmt, int(max_bytes), options)


def _save_within(gaussians: Gaussians, path: Path, fmt: SplatFormat, max_bytes: int, options: dict) -> Path:
    """Write the largest most-visible subset of the scene whose file is at most `max_bytes`."""
    if path.name.lower().endswith("meta.json"):
        raise ValueError(f"{path}: max_bytes needs a single-file format; write a .sog bundle instead of meta.json.")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}.")
    count = gaussians.num_gaussians
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:  # each try is written under the target's own name (formats read options from it), then moved
        trial = folder / path.name
        for _ in range(_MAX_SIZE_TRIES):
            fmt.write(decimate(gaussians, count) if count < gaussians.num_gaussians else gaussians, trial, **options)
            size = trial.stat().st_size
            if size <= max_bytes:
                os.replace(trial, path)
                return path
            if count <= 1:
                break
            count = max(1, min(count - 1, int(count * max_bytes / size * 0.99)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    raise ValueError(f"{path}: cannot fit the scene into {max_bytes} bytes as {fmt.label} "
                     f"(the last try, {count} splats, took {size} bytes); allow more bytes.")


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
        named = [f for f in sniffed if path.name.lower().endswith(f.extensions)]
        fmt = (named or sniffed)[0] if sniffed else format_for_path(path, writing=False)
    if fmt.read is None:
        raise ValueError(f"{path}: {fmt.label} files can be written but not read.")
    return fmt.read(path)
