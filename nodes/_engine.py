"""The one place the nodes import the engine from, so every node shares one copy of `sharp_core`.

Inside ComfyUI the pack is a package (`<pack>.nodes`), and `sharp_core` is its sibling; in tests
and scripts the repository root is on `sys.path` and `nodes` is top-level.
"""

from __future__ import annotations

import importlib
from types import ModuleType

if __package__ and "." in __package__:
    from .. import sharp_core
else:
    import sharp_core

__all__ = ["sharp_core", "engine_module"]


def engine_module(name: str) -> ModuleType:
    """A `sharp_core` submodule (e.g. "edit", "trajectory") from the same copy of the engine."""
    return importlib.import_module(f"{sharp_core.__name__}.{name}")
