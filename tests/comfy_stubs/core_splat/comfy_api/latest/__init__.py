"""Stand-in for `comfy_api.latest` of a ComfyUI with the core splat type: `IO` (the `_io` module,
as the real package aliases it) and `Types.SPLAT`."""

from . import _io as io
from ._util import SPLAT

IO = io


class Types:
    SPLAT = SPLAT


__all__ = ["IO", "Types", "io"]
