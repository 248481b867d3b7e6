from .geometry_types import SPLAT

__all__ = ["SPLAT"]
