"""What ComfyUI sees of the pack: the entry module, node definitions, tooltips, Load Image (focal
length) and the example photos copied at start."""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_env import ROOT, comfy_base  # noqa: F401

import folder_paths
from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

EXPECTED = {
    "SharpModelLoader": "Load SHARP Model",
    "SharpPredict": "SHARP Predict",
    "SharpLoadImage": "Load Image (focal length)",
    "SharpRender": "SHARP Render",
    "SharpSaveGaussians": "Save Gaussians (PLY)",
    "SharpLoadGaussians": "Load Gaussians",
    "SharpEditGaussians": "Edit Gaussians",
    "SharpPreviewGaussians": "Preview Gaussians (SHARP)",
    "SharpToMesh": "SHARP to Mesh",
}


def load_pack_like_comfyui(name: str):
    """Import the repository root the way ComfyUI's load_custom_node does (path-named module)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_entry_module_imports_cleanly(comfy_base, caplog):
    name = str(ROOT).replace(".", "_x_")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        pack = load_pack_like_comfyui(name)
    try:
        assert pack.WEB_DIRECTORY == "./web"
        assert set(EXPECTED) <= set(pack.NODE_CLASS_MAPPINGS)
        assert {k: pack.NODE_DISPLAY_NAME_MAPPINGS[k] for k in EXPECTED} == EXPECTED
        assert caught == [] and [r for r in caplog.records if r.levelno >= logging.WARNING] == []
        # the pack's nodes use the pack's own copy of the engine, not a top-level one
        assert sys.modules[f"{name}.nodes.predict"].predict.__module__ == f"{name}.sharp_core.prediction"
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


def test_mappings():
    assert {k: NODE_DISPLAY_NAME_MAPPINGS[k] for k in EXPECTED} == EXPECTED
    assert set(NODE_CLASS_MAPPINGS) == set(NODE_DISPLAY_NAME_MAPPINGS)
    assert all(k.startswith("Sharp") for k in NODE_CLASS_MAPPINGS)  # never shadow core node ids


@pytest.mark.parametrize("node_id", sorted(EXPECTED))
def test_node_definition(comfy_base, node_id):
    cls = NODE_CLASS_MAPPINGS[node_id]
    assert cls.CATEGORY == "SHARP"
    assert callable(getattr(cls, cls.FUNCTION))
    assert isinstance(cls.DESCRIPTION, str) and cls.DESCRIPTION
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS)
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"}
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            kind, options = entry
            assert isinstance(kind, (str, list)), name
            assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
            if kind in ("INT", "FLOAT") and "default" in options:
                assert options["min"] <= options["default"] <= options["max"], name
            if isinstance(kind, list) and "default" in options:
                assert options["default"] in kind, name
    # the node function accepts every declared input by name
    params = cls.__dict__[cls.FUNCTION].__code__.co_varnames
    for section in ("required", "optional"):
        for name in spec.get(section, {}):
            assert name in params, f"{node_id}.{cls.FUNCTION} lacks parameter {name}"


def test_output_nodes():
    assert NODE_CLASS_MAPPINGS["SharpSaveGaussians"].OUTPUT_NODE is True
    assert NODE_CLASS_MAPPINGS["SharpPreviewGaussians"].OUTPUT_NODE is True
    assert not getattr(NODE_CLASS_MAPPINGS["SharpPredict"], "OUTPUT_NODE", False)


def test_sharp_folder_is_registered_and_keeps_extra_paths(comfy_base, tmp_path_factory):
    extra = tmp_path_factory.mktemp("extra_sharp")
    (extra / "mine.safetensors").write_bytes(b"x")
    folder_paths.add_model_folder_path("sharp", str(extra))  # as extra_model_paths.yaml would
    from nodes.model_loader import register_model_folder

    register_model_folder()
    assert folder_paths.get_folder_paths("sharp") == [str(comfy_base / "models" / "sharp"), str(extra)]
    names = NODE_CLASS_MAPPINGS["SharpModelLoader"].INPUT_TYPES()["required"]["ckpt_name"][0]
    assert "mine.safetensors" in names


# -- Load Image (focal length) -----------------------------------------------------------------------
LoadImage = NODE_CLASS_MAPPINGS["SharpLoadImage"]


def _save(path, array, exif=None, **kwargs):
    image = Image.fromarray(array)
    if exif is not None:
        kwargs["exif"] = exif
    image.save(path, **kwargs)


def test_load_image_exif_focal_and_rotation(comfy_base):
    array = np.zeros((20, 30, 3), dtype=np.uint8)
    array[:6, :6] = (255, 0, 0)  # top-left marker
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    exif.get_ifd(0x8769)[0xA405] = 26  # FocalLengthIn35mmFilm
    _save(comfy_base / "input" / "phone.jpg", array, exif, quality=100)
    assert "phone.jpg" in LoadImage.INPUT_TYPES()["required"]["image"][0]
    image, mask, focal = LoadImage().load_image("phone.jpg", 30.0)
    assert image.shape == (1, 30, 20, 3)  # upright: width and height swapped
    assert image[0, 1, -2, 0] > 0.8 and image[0, 1, 1, 0] < 0.2  # the marker moved to the top-right
    assert focal == 26.0
    assert mask.shape == (1, 64, 64) and float(mask.abs().max()) == 0.0


def test_load_image_without_exif_uses_the_fallback(comfy_base):
    _save(comfy_base / "input" / "plain.png", np.full((10, 12, 3), 100, dtype=np.uint8))
    _, _, focal = LoadImage().load_image("plain.png", 42.0)
    assert focal == 42.0


def test_load_image_alpha_becomes_mask(comfy_base):
    rgba = np.zeros((8, 9, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[2:4, 3:5, 3] = 0  # a transparent hole
    _save(comfy_base / "input" / "cut.png", rgba)
    image, mask, _ = LoadImage().load_image("cut.png", 30.0)
    assert image.shape == (1, 8, 9, 3) and mask.shape == (1, 8, 9)
    assert torch.equal(mask[0, 2:4, 3:5], torch.ones(2, 2)) and float(mask.sum()) == 4.0


def test_load_image_is_changed_and_validate(comfy_base):
    path = comfy_base / "input" / "a.png"
    _save(path, np.zeros((5, 5, 3), dtype=np.uint8))
    first = LoadImage.IS_CHANGED("a.png", fallback_focal_mm=30.0)
    _save(path, np.ones((5, 5, 3), dtype=np.uint8))
    assert LoadImage.IS_CHANGED("a.png", fallback_focal_mm=30.0) != first
    assert LoadImage.VALIDATE_INPUTS("a.png") is True
    _save(comfy_base / "output" / "b.png", np.zeros((5, 5, 3), dtype=np.uint8))
    assert LoadImage.VALIDATE_INPUTS("b.png [output]") is True


# -- example photos at start ----------------------------------------------------------------------------
def _prestartup():
    spec = importlib.util.spec_from_file_location("sharp_prestartup_test", ROOT / "prestartup_script.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # runs _main() against the stand-in folder_paths
    return module


def test_prestartup_copies_examples_without_overwriting(comfy_base):
    examples = sorted(p.name for p in (ROOT / "examples").iterdir() if p.suffix in (".png", ".jpg"))
    assert examples, "the pack ships example photos"
    user_file = comfy_base / "input" / examples[0]
    user_file.write_bytes(b"the user's own file")
    _prestartup()
    assert user_file.read_bytes() == b"the user's own file"
    for name in examples[1:]:
        assert (comfy_base / "input" / name).read_bytes() == (ROOT / "examples" / name).read_bytes()
    assert not list((comfy_base / "input").glob("*.partial"))
    assert _prestartup().copy_example_inputs(str(ROOT / "examples"), str(comfy_base / "input")) == []


def test_example_photos_are_small_and_documented():
    notice = (ROOT / "examples" / "NOTICE.md").read_text()
    for path in (ROOT / "examples").iterdir():
        if path.suffix in (".png", ".jpg"):
            assert path.stat().st_size < 1_000_000 and path.name in notice
