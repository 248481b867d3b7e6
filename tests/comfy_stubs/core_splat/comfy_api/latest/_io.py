"""Stand-in for `comfy_api.latest._io`: the splat ComfyType. The real one is declared with
`@comfytype(io_type="SPLAT") class Splat(ComfyTypeIO): Type = SPLAT`; the converters read only
`io_type`."""

from ._util import SPLAT


class Splat:
    io_type = "SPLAT"
    Type = SPLAT
