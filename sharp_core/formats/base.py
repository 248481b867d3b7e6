"""What every splat format module provides: one `SplatFormat` per format it reads or writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..gaussians import Gaussians

__all__ = ["SplatFormat"]


@dataclass(frozen=True)
class SplatFormat:
    """One splat file format.

    name: the `format=` value ("sharp-ply", "spz", ...); label: what a UI shows.
    extensions: lower-case file-name endings, e.g. (".compressed.ply",); the longest match wins.
    write(scene, path, **options): writes one scene (a batch of one) atomically to `path`.
    read(path) -> Gaussians: one scene; raises ValueError naming the file and the problem.
    sniff(head, path) -> bool: whether the first bytes (up to 4 KiB) are this format's.
    """

    name: str
    label: str
    extensions: tuple[str, ...]
    write: Callable[..., object] | None
    read: Callable[[Path], Gaussians] | None
    sniff: Callable[[bytes, Path], bool] | None = None
