"""Bad inputs give one clear message (what is wrong and how to fix it) and leave nothing behind."""

from __future__ import annotations

import os

import pytest
import torch

from comfy_env import TINY_NAME, comfy_base, files_under, small_scene  # noqa: F401

import sharp_core
import nodes.predict as predict_node
from nodes import NODE_CLASS_MAPPINGS
from nodes.model_loader import OFFICIAL_FILENAME

Loader = NODE_CLASS_MAPPINGS["SharpModelLoader"]
Predict = NODE_CLASS_MAPPINGS["SharpPredict"]
Save = NODE_CLASS_MAPPINGS["SharpSaveGaussians"]
LoadPly = NODE_CLASS_MAPPINGS["SharpLoadGaussians"]
LoadImage = NODE_CLASS_MAPPINGS["SharpLoadImage"]
Render = NODE_CLASS_MAPPINGS["SharpRender"]

MM = "mm (35 mm equivalent)"


# -- checkpoints ------------------------------------------------------------------------------------
def test_missing_checkpoint_names_the_folder(comfy_base):
    with pytest.raises(FileNotFoundError) as err:
        Loader().load("nope.safetensors", "auto", True)
    assert "nope.safetensors" in str(err.value) and str(comfy_base / "models" / "sharp") in str(err.value)
    assert OFFICIAL_FILENAME in str(err.value)


def test_official_checkpoint_offline_says_where_to_put_it(comfy_base, monkeypatch):
    import huggingface_hub

    from sharp_core import weights

    def offline(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setattr(weights, "hub_unreachable_reason", lambda timeout: None)  # the probe passes, the download fails
    before = sorted(p.name for p in (comfy_base / "models" / "sharp").iterdir())
    with pytest.raises(RuntimeError) as err:
        Loader().load(OFFICIAL_FILENAME, "auto", True)
    message = str(err.value)
    assert "Network is unreachable" in message and str(comfy_base / "models" / "sharp") in message
    assert sorted(p.name for p in (comfy_base / "models" / "sharp").iterdir()) == before
    with pytest.raises(FileNotFoundError, match="download_if_missing"):
        Loader().load(OFFICIAL_FILENAME, "auto", False)


def test_official_checkpoint_offline_mode_fails_at_once_without_trying(comfy_base, monkeypatch):
    import huggingface_hub

    def never(*args, **kwargs):
        raise AssertionError("downloaded although HF_HUB_OFFLINE is set")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", never)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = sorted(p.name for p in (comfy_base / "models" / "sharp").iterdir())
    with pytest.raises(RuntimeError) as err:
        Loader().load(OFFICIAL_FILENAME, "auto", True)
    assert "HF_HUB_OFFLINE" in str(err.value) and str(comfy_base / "models" / "sharp") in str(err.value)
    assert sorted(p.name for p in (comfy_base / "models" / "sharp").iterdir()) == before


def test_official_checkpoint_is_always_offered(comfy_base):
    names = Loader.INPUT_TYPES()["required"]["ckpt_name"][0]
    assert OFFICIAL_FILENAME in names and TINY_NAME in names


def test_corrupt_checkpoint(comfy_base):
    (comfy_base / "models" / "sharp" / "broken.safetensors").write_bytes(os.urandom(4096))
    with pytest.raises(RuntimeError, match="Could not load the SHARP checkpoint .*broken.safetensors"):
        Loader().load("broken.safetensors", "auto", False)


def test_truncated_checkpoint(comfy_base):
    src = comfy_base / "models" / "sharp" / TINY_NAME
    (comfy_base / "models" / "sharp" / "half.safetensors").write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(RuntimeError, match="incomplete or not a SHARP checkpoint"):
        Loader().load("half.safetensors", "auto", False)


def test_wrong_checkpoint(comfy_base):
    from safetensors.torch import save_file

    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4)},
              str(comfy_base / "models" / "sharp" / "sd15.safetensors"))
    with pytest.raises(RuntimeError, match="not a SHARP checkpoint"):
        Loader().load("sd15.safetensors", "auto", False)


def test_checkpoint_without_description_says_how_to_describe_it(comfy_base):
    sharp_dir = comfy_base / "models" / "sharp"
    (sharp_dir / "mine.safetensors").write_bytes((sharp_dir / TINY_NAME).read_bytes())  # no config beside it
    with pytest.raises(RuntimeError) as err:
        Loader().load("mine.safetensors", "auto", False)
    message = str(err.value)
    assert "mine.safetensors" in message and "vit.num_heads" in message and "config.json" in message
    assert "download" not in message  # the file is fine: no advice to fetch it again


# -- images and focal lengths -----------------------------------------------------------------------
@pytest.fixture
def model(comfy_base):
    return Loader().load(TINY_NAME, "fp32", False)[0]


@pytest.fixture
def never_predict(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("predict must not run for a bad input")

    monkeypatch.setattr(predict_node, "predict", fail)


@pytest.mark.parametrize("shape, match", [
    ((0, 32, 32, 3), "empty image batch"),
    ((1, 1, 1, 3), "1 x 1 pixels"),
    ((1, 8, 300, 3), "300 x 8 pixels"),
    ((1, 32, 32, 2), "1, 3 or 4 colour channels"),
    ((32, 32, 3), r"\(B, H, W, C\)"),
])
def test_bad_images(model, never_predict, shape, match):
    with pytest.raises(ValueError, match=match):
        Predict().predict(model, torch.rand(shape), 30.0, MM)


@pytest.mark.parametrize("focal, unit, wired", [(0.0, MM, None), (-5.0, "pixels", None), (30.0, MM, 0.0),
                                                (30.0, MM, float("nan"))])
def test_non_positive_focal(model, never_predict, focal, unit, wired):
    with pytest.raises(ValueError, match="must be greater than 0"):
        Predict().predict(model, torch.rand(1, 32, 32, 3), focal, unit, focal_length_mm=wired)


def test_focal_widget_minimum_is_positive():
    spec = Predict.INPUT_TYPES()["required"]["focal_length"][1]
    assert spec["min"] > 0  # ComfyUI's own validation rejects <= 0 before the node runs


# -- files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["../escape", "sharp/../../escape", "/tmp/abs/escape"])
def test_save_refuses_prefixes_outside_output(comfy_base, prefix):
    with pytest.raises(ValueError, match="inside ComfyUI's output folder"):
        Save().save(small_scene(), prefix)
    assert files_under(comfy_base / "output") == []
    assert not (comfy_base / "escape").exists() and not any(comfy_base.parent.glob("escape*"))


def test_load_ply_refuses_paths_outside_the_folders(comfy_base, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "secret.ply"
    outside.write_bytes(b"ply\n")
    os.symlink(outside, comfy_base / "input" / "link.ply")
    for ply, path in [("", str(outside)), ("", "../../elsewhere/secret.ply"), ("link.ply", ""), ("", "/etc/passwd")]:
        with pytest.raises(ValueError, match="outside ComfyUI's input, output and temp folders"):
            LoadPly().load(ply, path)
        assert "outside" in LoadPly.VALIDATE_INPUTS(ply=ply, path=path)


def test_load_ply_missing_or_not_a_ply(comfy_base):
    with pytest.raises(FileNotFoundError, match="not found"):
        LoadPly().load("", "gone.ply")
    (comfy_base / "input" / "junk.ply").write_bytes(b"this is not a ply file")
    with pytest.raises(ValueError, match="Cannot read junk.ply as a Gaussian splat file") as caught:
        LoadPly().load("junk.ply")
    assert str(caught.value).count("junk.ply") == 1, f"the file is named once: {caught.value}"
    (comfy_base / "input" / "points.ply").write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nend_header\n\0\0\0\0")
    with pytest.raises(ValueError, match="points.ply as a Gaussian splat file: PLY vertex element lacks") as caught:
        LoadPly().load("points.ply")
    assert str(caught.value).count("points.ply") == 1, f"the file is named once: {caught.value}"
    with pytest.raises(ValueError, match="No splat file chosen"):
        LoadPly().load("", "")


def test_load_image_bad_files(comfy_base):
    assert LoadImage.VALIDATE_INPUTS("missing.png") == "Invalid image file: missing.png"
    (comfy_base / "input" / "fake.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="Cannot open image 'fake.png'"):
        LoadImage().load_image("fake.png", 30.0)


# -- the rest of the graph keeps working ----------------------------------------------------------------
def test_a_failed_node_leaves_the_model_usable(model, monkeypatch):
    with pytest.raises(ValueError):
        Predict().predict(model, torch.rand(1, 1, 1, 3), 30.0, MM)
    monkeypatch.setattr(predict_node, "predict", lambda net, image, **kw: small_scene(size=(32, 32)))
    g, _, _ = Predict().predict(model, torch.rand(1, 32, 32, 3), 30.0, MM)
    assert g.num_gaussians == 400


def test_render_rejects_unknown_choices():
    with pytest.raises(ValueError, match="Unknown background"):
        Render().render(small_scene(), background="purple")
    with pytest.raises(ValueError, match="frames must be at least 1"):
        Render().render(small_scene(), frames=0)


