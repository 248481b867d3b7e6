"""Save Gaussians / Load Gaussians with the plain 3DGS PLY, SPZ and .splat formats: the format list comes
from the engine's registry with readable labels, each format saves through the node and loads back
through Load Gaussians (also from the input folder's list)."""

from __future__ import annotations

import pytest
import torch

from comfy_env import comfy_base, small_scene  # noqa: F401

import sharp_core
from nodes import NODE_CLASS_MAPPINGS
from nodes.ply_files import save_formats, splat_extensions
from sharp_core.color import linear_to_srgb

Save = NODE_CLASS_MAPPINGS["SharpSaveGaussians"]
Load = NODE_CLASS_MAPPINGS["SharpLoadGaussians"]

# label, extension, position bound (m), sRGB colour bound: the formats' own (module docstrings)
CASES = [
    ("PLY (3DGS)", ".ply", 1e-6, 1e-5),
    ("SPZ (Niantic)", ".spz", 2**-13 + 1e-6, 3.7e-3),
    (".splat (antimatter15)", ".splat", 1e-6, 1 / 510 + 1e-6),
]


def test_format_choice_comes_from_the_registry():
    formats = save_formats()
    labels = list(formats)
    assert labels[0] == "SHARP PLY"
    for label, extension, _, _ in CASES:
        assert label in labels and formats[label].extensions[0] == extension
    assert labels == [f.label for f in formats.values()] and len(set(labels)) == len(labels)
    assert set(labels) == {f.label for f in sharp_core.FORMATS.values() if f.write is not None}
    choice, options = Save.INPUT_TYPES()["optional"]["format"]
    assert choice == labels and options["default"] == "SHARP PLY"
    assert {".ply", ".spz", ".splat"} <= set(splat_extensions())


@pytest.mark.parametrize("label, extension, position_bound, color_bound", CASES)
def test_save_and_load_each_format(comfy_base, label, extension, position_bound, color_bound):
    scene = small_scene(n=300)
    out = Save().save(scene, "formats/scene", format=label)
    path = comfy_base / "output" / "formats" / f"scene_00001_{extension}"
    assert out["result"] == (str(path),) and path.is_file()
    assert out["ui"]["ply"] == [{"filename": path.name, "subfolder": "formats", "type": "output"}]
    (back,) = Load().load("", f"formats/{path.name} [output]")
    assert back.num_gaussians == scene.num_gaussians
    back = back.to("cpu")
    if extension == ".splat":  # stored in size x opacity order: compare as sets of splats, sorted by x
        a, b = scene.means[0][:, 0].argsort(), back.means[0][:, 0].argsort()
    else:
        a = b = torch.arange(scene.num_gaussians)
    assert (back.means[0][b] - scene.means[0][a]).abs().max() <= position_bound  # SPZ's RUB turned back
    srgb_error = (linear_to_srgb(back.colors[0][b]) - linear_to_srgb(scene.colors[0][a])).abs().max()
    assert srgb_error <= color_bound


def test_input_folder_lists_and_loads_the_new_formats(comfy_base):
    scene = small_scene(n=50)
    sharp_core.save_gaussians(scene, comfy_base / "input" / "mine.spz")
    sharp_core.save_gaussians(scene, comfy_base / "input" / "sub" / "mine.splat")
    listed = Load.INPUT_TYPES()["required"]["ply"][0]
    assert "mine.spz" in listed and "sub/mine.splat" in listed
    assert Load().load("mine.spz")[0].num_gaussians == 50
    assert Load().load("sub/mine.splat")[0].num_gaussians == 50
    (comfy_base / "input" / "broken.spz").write_bytes(b"\x1f\x8b" + bytes(30))
    with pytest.raises(ValueError, match="broken.spz"):
        Load().load("broken.spz")
