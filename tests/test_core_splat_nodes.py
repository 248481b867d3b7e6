"""SHARP -> Splat and Splat -> SHARP against a stand-in of ComfyUI core's splat type (the real class
signature and field names, tests/comfy_stubs/core_splat), their absence where ComfyUI lacks the type,
and (with a real ComfyUI 0.3.64 checkout) their silent absence there."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from comfy_env import PACK, ROOT

import nodes
from sharp_core.color import SH_C0, linear_to_srgb
from sharp_core.gaussians import Gaussians

STUB_ROOT = Path(__file__).resolve().parent / "comfy_stubs" / "core_splat"
MODULE_FILE = ROOT / "nodes" / "core_splat.py"


def _forget_comfy_api() -> None:
    for name in [m for m in sys.modules if m == "comfy_api" or m.startswith("comfy_api.")]:
        del sys.modules[name]


def _load_converters(name: str = "_core_splat_probe"):
    """A fresh import of nodes/core_splat.py inside the pack, so its import-time detection runs again."""
    full = f"{PACK}.nodes.{name}"
    spec = importlib.util.spec_from_file_location(full, MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[full]
    return module


@pytest.fixture
def core_api(monkeypatch):
    """The stand-in `comfy_api.latest` (with IO.Splat / Types.SPLAT) importable for this test only."""
    _forget_comfy_api()
    monkeypatch.syspath_prepend(str(STUB_ROOT))
    import comfy_api.latest as latest

    yield latest
    _forget_comfy_api()


@pytest.fixture
def converters(core_api):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = _load_converters()
    return module


def _scene(b: int = 2, n: int = 40, k: int = 8, dtype=torch.float32, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, n, 4, generator=g)
    return Gaussians(
        means=torch.randn(b, n, 3, generator=g), scales=torch.rand(b, n, 3, generator=g) * 0.1 + 1e-3,
        quats=q / q.norm(dim=-1, keepdim=True), colors=torch.rand(b, n, 3, generator=g),
        opacities=torch.rand(b, n, generator=g).clamp(0.01, 1.0),
        focal_px=[700.0 + i for i in range(b)], image_size=[(320 + i, 240) for i in range(b)],
        depth=torch.rand(b, 6, 8, generator=g) + 1.0,
        sh_rest=None if k == 0 else torch.randn(b, n, k, 3, generator=g) * 0.3,
    ).to(dtype=dtype)


# -- registration ---------------------------------------------------------------------------------


def test_absent_where_comfyui_has_no_splat_type(caplog):
    _forget_comfy_api()
    assert nodes.core_splat.NODE_CLASS_MAPPINGS == {} and nodes.core_splat.NODE_DISPLAY_NAME_MAPPINGS == {}
    assert not {"SharpToSplat", "SplatToSharp"} & set(nodes.NODE_CLASS_MAPPINGS)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.DEBUG):
        warnings.simplefilter("always")
        module = _load_converters()
    assert module.NODE_CLASS_MAPPINGS == {} and module.core_splat_type() is None
    assert caught == [] and caplog.records == []


def test_registered_with_the_splat_type(converters, core_api):
    assert set(converters.NODE_CLASS_MAPPINGS) == {"SharpToSplat", "SplatToSharp"}
    assert converters.NODE_DISPLAY_NAME_MAPPINGS == {"SharpToSplat": "SHARP -> Splat", "SplatToSharp": "Splat -> SHARP"}
    to_splat, to_sharp = converters.NODE_CLASS_MAPPINGS["SharpToSplat"], converters.NODE_CLASS_MAPPINGS["SplatToSharp"]
    assert to_splat.RETURN_TYPES == ("SPLAT",) and to_sharp.INPUT_TYPES()["required"]["splat"][0] == "SPLAT"
    assert to_sharp.RETURN_TYPES == ("SHARP_GAUSSIANS",)
    for cls in (to_splat, to_sharp):
        assert cls.CATEGORY == "SHARP" and "focal length" in cls.DESCRIPTION and "depth" in cls.DESCRIPTION
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS)
        for _, (_, options) in cls.INPUT_TYPES()["required"].items():
            assert options.get("tooltip")


def test_registered_with_the_pre_rename_gaussian_type(core_api, monkeypatch):
    class Gaussian:
        io_type = "GAUSSIAN"

    class GAUSSIAN(core_api.Types.SPLAT):
        pass

    monkeypatch.delattr(core_api.IO, "Splat")
    monkeypatch.delattr(core_api.Types, "SPLAT")
    monkeypatch.setattr(core_api.IO, "Gaussian", Gaussian, raising=False)
    monkeypatch.setattr(core_api.Types, "GAUSSIAN", GAUSSIAN, raising=False)
    module = _load_converters()
    assert module.core_splat_type() == ("GAUSSIAN", GAUSSIAN)
    assert module.NODE_CLASS_MAPPINGS["SharpToSplat"].RETURN_TYPES == ("GAUSSIAN",)
    (splat,) = module.NODE_CLASS_MAPPINGS["SharpToSplat"]().convert(_scene(b=1))
    assert type(splat) is GAUSSIAN


# -- conversion -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,k", [(torch.float32, 8), (torch.float64, 15), (torch.float32, 0), (torch.float64, 3)])
def test_sharp_to_splat_to_sharp_round_trip(converters, core_api, dtype, k):
    scene = _scene(dtype=dtype, k=k)
    (splat,) = converters.NODE_CLASS_MAPPINGS["SharpToSplat"]().convert(scene)
    # the core type's fields, field by field
    assert isinstance(splat, core_api.Types.SPLAT) and splat.counts is None
    assert torch.equal(splat.positions, scene.means) and torch.equal(splat.scales, scene.scales)
    assert torch.equal(splat.rotations, scene.quats)
    assert splat.opacities.shape == (2, 40, 1) and torch.equal(splat.opacities[..., 0], scene.opacities)
    assert splat.sh.shape == (2, 40, k + 1, 3) and splat.sh.dtype == dtype
    # the DC term decodes the way core's renderer and writers decode it: display sRGB = sh * C0 + 0.5
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(splat.sh[:, :, 0] * SH_C0 + 0.5, linear_to_srgb(scene.colors), atol=tol, rtol=0)
    if k:
        assert torch.equal(splat.sh[:, :, 1:], scene.sh_rest)

    (back,) = converters.NODE_CLASS_MAPPINGS["SplatToSharp"]().convert(splat)
    for name in ("means", "scales", "quats", "opacities", "depth"):
        assert torch.equal(getattr(back, name), getattr(scene, name)), name
    assert (back.sh_rest is None) if k == 0 else torch.equal(back.sh_rest, scene.sh_rest)
    torch.testing.assert_close(back.colors, scene.colors, atol=tol, rtol=0)
    assert back.dtype == dtype and back.focal_px == scene.focal_px and back.image_size == scene.image_size


def _padded_splat(core_api, lengths=(5, 3), k=4, seed=1):
    """A zero-padded batch as core's MergeSplat builds it: (B, max, ...) with int64 counts."""
    g = torch.Generator().manual_seed(seed)
    n = max(lengths)
    q = torch.randn(len(lengths), n, 4, generator=g)
    fields = {
        "positions": torch.randn(len(lengths), n, 3, generator=g), "scales": torch.rand(len(lengths), n, 3, generator=g) + 0.01,
        "rotations": q / q.norm(dim=-1, keepdim=True), "opacities": torch.rand(len(lengths), n, 1, generator=g) + 0.01,
        "sh": torch.randn(len(lengths), n, k, 3, generator=g) * 0.5,
    }
    for i, length in enumerate(lengths):
        for t in fields.values():
            t[i, length:] = 0
    counts = torch.tensor(lengths, dtype=torch.int64) if len(set(lengths)) > 1 else None
    return core_api.Types.SPLAT(**fields, counts=counts)


def test_zero_padded_batch_of_different_counts_round_trips(converters, core_api):
    splat = _padded_splat(core_api)
    (scene,) = converters.NODE_CLASS_MAPPINGS["SplatToSharp"]().convert(splat)
    assert scene.num_gaussians == 5 and scene.sh_degree == 1
    # scene 1 holds 3 real splats and 2 invisible ones (zero opacity and size, valid rotation)
    assert torch.equal(scene.means[1, :3], splat.positions[1, :3]) and torch.equal(scene.opacities[1, 3:], torch.zeros(2))
    assert torch.equal(scene.scales[1, 3:], torch.zeros(2, 3))
    assert torch.equal(scene.quats[1, 3:], torch.tensor([[1.0, 0, 0, 0]] * 2))
    assert scene.focal_px == [512.0, 512.0] and scene.image_size == [(640, 480)] * 2

    (again,) = converters.NODE_CLASS_MAPPINGS["SharpToSplat"]().convert(scene)
    assert again.counts.dtype == torch.int64 and again.counts.tolist() == [5, 3]
    for name in ("positions", "scales", "rotations", "opacities"):
        assert torch.equal(getattr(again, name), getattr(splat, name)), name
    assert torch.equal(again.sh[:, :, 1:], splat.sh[:, :, 1:])
    torch.testing.assert_close(again.sh, splat.sh, atol=2e-6, rtol=0)  # DC through linear colour and back
    assert torch.equal(again.sh[1, 3:], torch.zeros(2, 4, 3))  # padding is zeros, as in core's batches


def test_counts_trim_uniform_padding(converters, core_api):
    splat = _padded_splat(core_api, lengths=(3, 3))
    splat.counts = torch.tensor([3, 3])
    (scene,) = converters.NODE_CLASS_MAPPINGS["SplatToSharp"]().convert(splat)
    assert scene.num_gaussians == 3 and torch.equal(scene.means, splat.positions[:, :3])


def test_focal_and_size_widgets_override_and_defaults(converters, core_api):
    scene = _scene(b=2)
    (splat,) = converters.NODE_CLASS_MAPPINGS["SharpToSplat"]().convert(scene)
    (back,) = converters.NODE_CLASS_MAPPINGS["SplatToSharp"]().convert(splat, focal_px=900.0, width=1024)
    assert back.focal_px == [900.0, 900.0] and back.image_size == [(1024, 240), (1024, 240)]
    # a splat a core node rebuilt (no carried camera) gets the defaults or the widgets
    rebuilt = core_api.Types.SPLAT(splat.positions, splat.scales, splat.rotations, splat.opacities, splat.sh)
    (plain,) = converters.NODE_CLASS_MAPPINGS["SplatToSharp"]().convert(rebuilt)
    assert plain.focal_px == [512.0, 512.0] and plain.image_size == [(640, 480)] * 2 and plain.depth is None
    (sized,) = converters.NODE_CLASS_MAPPINGS["SplatToSharp"]().convert(rebuilt, 800.0, 200, 100)
    assert sized.focal_px == [800.0, 800.0] and sized.image_size == [(200, 100)] * 2


def test_bad_splats_are_named(converters, core_api):
    to_sharp = converters.NODE_CLASS_MAPPINGS["SplatToSharp"]()
    splat = _padded_splat(core_api)
    bad_sh = core_api.Types.SPLAT(splat.positions, splat.scales, splat.rotations, splat.opacities,
                                  torch.zeros(2, 5, 5, 3), splat.counts)
    with pytest.raises(ValueError, match="sh has shape"):
        to_sharp.convert(bad_sh)
    bad_counts = core_api.Types.SPLAT(splat.positions, splat.scales, splat.rotations, splat.opacities, splat.sh,
                                      torch.tensor([9, 3]))
    with pytest.raises(ValueError, match="counts"):
        to_sharp.convert(bad_counts)
    bad_rot = core_api.Types.SPLAT(splat.positions, splat.scales, splat.rotations[..., :3], splat.opacities, splat.sh)
    with pytest.raises(ValueError, match="rotations"):
        to_sharp.convert(bad_rot)


# -- a real ComfyUI without the type ----------------------------------------------------------------

COMFYUI_ENV = "SHARP_COMFYUI_DIR"  # a ComfyUI checkout whose own dependencies (av, einops, ...) import
COMFYUI_PYTHON_ENV = "SHARP_COMFYUI_PYTHON"  # optional: the Python that has them (default: this one)

_PROBE = textwrap.dedent("""
    import importlib.util, logging, sys, types, warnings
    comfy_dir, root = sys.argv[1], sys.argv[2]
    sys.path.insert(0, comfy_dir)
    import comfyui_version, comfy_api.latest
    for name, path in (("sharp_pack", root), ("sharp_pack.nodes", root + "/nodes")):
        module = types.ModuleType(name); module.__path__ = [path]; sys.modules[name] = module
    import sharp_pack.nodes.common  # torch and friends first: only the converters' import is watched
    records = []
    handler = logging.Handler(logging.DEBUG); handler.emit = records.append
    logging.getLogger().addHandler(handler); logging.getLogger().setLevel(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from sharp_pack.nodes import core_splat
    logging.getLogger().removeHandler(handler)
    print("VERSION", comfyui_version.__version__)
    print("HAS_IO", hasattr(comfy_api.latest, "IO"))
    print("MAPPINGS", sorted(core_splat.NODE_CLASS_MAPPINGS))
    print("WARNINGS", [str(w.message) for w in caught])
    print("LOGS", [r.getMessage() for r in records])
""")


@pytest.mark.skipif(not os.environ.get(COMFYUI_ENV), reason=f"set {COMFYUI_ENV} to a ComfyUI checkout to run")
def test_real_comfyui_without_the_type_gets_no_converters_and_no_warning():
    python = os.environ.get(COMFYUI_PYTHON_ENV, sys.executable)
    result = subprocess.run([python, "-c", _PROBE, os.environ[COMFYUI_ENV], str(ROOT)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.split(" ", 1)[0].isupper())
    version = lines["VERSION"]
    if tuple(int(p) for p in version.split(".")[:2]) >= (0, 23):
        pytest.skip(f"ComfyUI {version} may have the splat type; this test is for one without it")
    assert lines["HAS_IO"] == "False"
    assert lines["MAPPINGS"] == "[]" and lines["WARNINGS"] == "[]" and lines["LOGS"] == "[]", result.stdout
