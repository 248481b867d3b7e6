"""Paths and small builders shared by the tests (no ComfyUI here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TINY = SHARED / "fixtures" / "sharp-tiny"
MANIFEST = SHARED / "reference" / "sharp_state_dict_manifest.json"


def tiny_input() -> torch.Tensor:
    """The fixture photo as (H, W, 3) float in [0, 1], exactly as the reference read it."""
    return torch.from_numpy(np.array(Image.open(TINY / "input.png").convert("RGB"))).float() / 255.0
