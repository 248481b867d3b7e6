"""SHARP-layout PLY files: kept at this path for existing imports; the code is `formats/ply.py`."""

from .formats.ply import load_ply, save_ply

__all__ = ["save_ply", "load_ply"]
