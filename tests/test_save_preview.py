"""Save Gaussians (PLY) also shows the scene: its `ui` carries the viewer's `sharp_preview` entries
next to the saved files, every value a list, with the preview's splat budget as an optional input."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from comfy_env import comfy_base, files_under, small_scene  # noqa: F401

from nodes import NODE_CLASS_MAPPINGS
from nodes.preview import DEFAULT_MAX_SPLATS
from sharp_core.preview_file import read_preview

Save = NODE_CLASS_MAPPINGS["SharpSaveGaussians"]
LoadPly = NODE_CLASS_MAPPINGS["SharpLoadGaussians"]


def test_save_input_declares_the_preview_budget():
    spec = Save.INPUT_TYPES()
    kind, options = spec["optional"]["preview_max_splats"]
    assert kind == "INT" and options["default"] == DEFAULT_MAX_SPLATS and options["min"] == 0
    assert "preview_max_splats" not in spec["required"]  # old workflows without the widget still run


def test_save_returns_files_and_preview_entries(comfy_base):
    scenes = small_scene(b=2, n=300)
    out = Save().save(scenes, "sharp/scene", preview_max_splats=120)
    ui = out["ui"]
    assert set(ui) == {"ply", "text", "sharp_preview"}
    assert all(isinstance(v, list) for v in ui.values())
    assert [e["filename"] for e in ui["ply"]] == ["scene_00001_.ply", "scene_00002_.ply"]
    assert ui["text"] == [out["result"][0]]
    previews = ui["sharp_preview"]
    assert len(previews) == 2
    for i, entry in enumerate(previews):
        assert entry["type"] == "temp" and entry["splats"] == 120 and entry["total_splats"] == 300
        decoded = read_preview(comfy_base / "temp" / entry["subfolder"] / entry["filename"])
        assert decoded.means.shape == (120, 3)
        # the preview holds splats of scene i (float16 positions), not of the other scene
        assert np.isin(decoded.means[:, 2], scenes.means[i, :, 2].numpy().astype(np.float16)).all()
    assert decoded.image_size == tuple(scenes.image_size[1])


def test_save_preview_zero_keeps_all_and_default_applies(comfy_base):
    out = Save().save(small_scene(n=250), "sharp/all", preview_max_splats=0)
    assert out["ui"]["sharp_preview"][0]["splats"] == 250
    default = Save().save(small_scene(n=250), "sharp/default")  # the optional input left out
    assert default["ui"]["sharp_preview"][0]["splats"] == 250  # fewer splats than the default budget
    assert len(files_under(comfy_base / "temp")) == 2


def test_save_keeps_the_ply_when_the_preview_fails(comfy_base, caplog, monkeypatch):
    import nodes.preview as preview_node

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(preview_node, "write_preview", disk_full)
    with caplog.at_level(logging.WARNING):
        out = Save().save(small_scene(n=50), "sharp/full", preview_max_splats=0)
    assert (comfy_base / "output" / "sharp" / "full_00001_.ply").is_file()
    assert "sharp_preview" not in out["ui"] and out["ui"]["ply"][0]["filename"] == "full_00001_.ply"
    assert any("3D preview" in r.getMessage() and "No space" in r.getMessage() for r in caplog.records)
    assert files_under(comfy_base / "temp") == []


def test_save_refuses_non_finite_scenes_before_writing(comfy_base):
    scene = small_scene(b=2, n=50)
    scene.means[1, 7, 0] = float("nan")  # the second scene: the first must not be written either
    with pytest.raises(ValueError, match="means hold NaN"):
        Save().save(scene, "sharp/nan", preview_max_splats=0)
    assert files_under(comfy_base / "output") == []


@pytest.mark.parametrize("prefix", ["", "   ", ".", "sharp/.hidden", "a\x00b"])
def test_save_refuses_prefixes_without_a_visible_name(comfy_base, prefix):
    with pytest.raises(ValueError, match="filename_prefix"):
        Save().save(small_scene(n=20), prefix)
    assert files_under(comfy_base / "output") == []


def test_save_refuses_a_negative_preview_budget_before_writing(comfy_base):
    with pytest.raises(ValueError, match="preview_max_splats"):
        Save().save(small_scene(n=20), "sharp/neg", preview_max_splats=-1)
    assert files_under(comfy_base / "output") == []


def test_save_offers_every_writable_format_and_reads_it_back(comfy_base):
    import sharp_core

    spec = Save.INPUT_TYPES()["optional"]["format"]
    labels = spec[0]
    assert spec[1]["default"] == labels[0] == "SHARP PLY"
    assert set(labels) == {f.label for f in sharp_core.FORMATS.values() if f.write is not None}
    scene = small_scene(n=300)
    for i, label in enumerate(labels):
        out = Save().save(scene, f"sharp/fmt{i}", format=label, max_splats=120, preview_max_splats=0)
        path = out["result"][0]
        fmt = next(f for f in sharp_core.FORMATS.values() if f.label == label)
        assert path.endswith(fmt.extensions[0])
        back = LoadPly().load("", path)[0]
        assert back.num_gaussians == 120  # decimated to the most visible splats before writing
    with pytest.raises(ValueError, match="Unknown format 'webp'"):
        Save().save(scene, "sharp/bad", format="webp")
