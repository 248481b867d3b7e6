"""Render Gaussian scenes on any device: gsplat on CUDA when it works, our tile rasterizer anywhere.

    renderer.py        render / render_many: checks, backend choice, background and sRGB encoding
    base.py            what every backend shares: SceneTensors, RasterOutput, RasterSettings, constants
    gsplat_backend.py  gsplat (CUDA), imported lazily
    torch_tiles.py     our PyTorch tile rasterizer (any device)
    native.py          its compositing loop as a small C++ kernel (CPU), built on first use
"""

from .base import DEFAULT_MEMORY_BUDGET_MB, RasterSettings
from .renderer import RenderResult, render, render_many

__all__ = ["RenderResult", "RasterSettings", "render", "render_many", "DEFAULT_MEMORY_BUDGET_MB"]
