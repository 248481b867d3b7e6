"""Test environment for the nodes: ComfyUI stand-ins on sys.path, the pack imported as a package
the way ComfyUI imports it, and a temporary ComfyUI base folder (models/sharp holding the tiny
checkpoint, input/, output/, temp/).

The nodes import the engine relatively (`from ..sharp_core import ...`), so they only work inside
the pack's package. ComfyUI names that package after the pack's folder; here it is `PACK` and its
`sharp_core` is the very module the tests import, so objects built in a test (a `Gaussians`) are
instances of the classes the nodes check against. `nodes` and `nodes.<module>` are aliases of the
pack's node modules. Test modules import the fixtures they use from here
(`from comfy_env import comfy_base`).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

STUBS = Path(__file__).resolve().parent / "comfy_stubs"
if str(STUBS) not in sys.path:
    sys.path.insert(0, str(STUBS))

import comfy.model_management as mm  # noqa: E402
import comfy.utils  # noqa: E402
import folder_paths  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PACK = "sharp_splats_pack"


def _import_pack() -> None:
    """Import the repository root as package PACK (its __init__ registers the nodes) and alias
    `nodes` / `nodes.*` to the pack's node modules."""
    if PACK in sys.modules:
        return
    import sharp_core

    for name in [m for m in sys.modules if m == "sharp_core" or m.startswith("sharp_core.")]:
        sys.modules[f"{PACK}.{name}"] = sys.modules[name]
    spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[PACK] = pack
    spec.loader.exec_module(pack)
    pack.sharp_core = sharp_core
    for name in [m for m in sys.modules if m == f"{PACK}.nodes" or m.startswith(f"{PACK}.nodes.")]:
        sys.modules[name[len(PACK) + 1:]] = sys.modules[name]


_import_pack()
SHARED = ROOT.parent / "shared"
TINY_DIR = SHARED / "fixtures" / "sharp-tiny"
TINY_CKPT = TINY_DIR / "weights.safetensors"
TINY_NAME = "sharp-tiny.safetensors"


def reset_comfy_state() -> None:
    mm.interrupt_current_processing(False)
    mm._load_calls.clear()
    mm.current_loaded_models.clear()
    comfy.utils.set_progress_bar_global_hook(None)


def use_base(base: Path) -> Path:
    """Point the stand-in folder_paths at `base` with the tiny checkpoint in models/sharp."""
    folder_paths._use_base_directory(str(base))
    sharp_dir = base / "models" / "sharp"
    sharp_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(TINY_CKPT, sharp_dir / TINY_NAME)
    # Its description (head count, hook blocks: not in tensor shapes), as <weights stem>.config.json.
    shutil.copy(TINY_DIR / "config.json", sharp_dir / (Path(TINY_NAME).stem + ".config.json"))
    from nodes.model_loader import register_model_folder

    register_model_folder()
    reset_comfy_state()
    return base


@pytest.fixture
def comfy_base(tmp_path):
    yield use_base(tmp_path)
    reset_comfy_state()


def cancel_after(updates: int) -> list[int]:
    """Make ComfyUI's progress hook press Cancel after `updates` progress steps; returns the log."""
    seen: list[int] = []

    def hook(value, total, preview, node_id=None):
        seen.append(value)
        if len(seen) == updates:
            mm.interrupt_current_processing(True)

    comfy.utils.set_progress_bar_global_hook(hook)
    return seen


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def small_scene(b: int = 1, n: int = 400, seed: int = 0, size: tuple[int, int] = (64, 48)):
    """A random scene in front of the camera (z in 1..6 m), for node tests that need no network."""
    import torch

    from sharp_core.gaussians import Gaussians

    gen = torch.Generator().manual_seed(seed)
    xy = (torch.rand(b, n, 2, generator=gen) - 0.5) * 2.0
    z = torch.rand(b, n, 1, generator=gen) * 5.0 + 1.0
    quats = torch.randn(b, n, 4, generator=gen)
    return Gaussians(
        means=torch.cat([xy * z * 0.5, z], dim=-1),
        scales=torch.rand(b, n, 3, generator=gen) * 0.03 + 0.005,
        quats=quats / quats.norm(dim=-1, keepdim=True),
        colors=torch.rand(b, n, 3, generator=gen),
        opacities=torch.rand(b, n, generator=gen) * 0.9 + 0.1,
        focal_px=[60.0] * b,
        image_size=[size] * b,
        depth=torch.rand(b, size[1], size[0], generator=gen) + 1.0,
    )
