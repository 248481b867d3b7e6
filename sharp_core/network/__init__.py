"""Our implementation of the SHARP network (inference path), laid out to load the released weights."""

from .config import SharpConfig, ViTConfig
from .model import SharpModel

__all__ = ["SharpConfig", "ViTConfig", "SharpModel"]
