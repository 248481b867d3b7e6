"""The command line: conversion to safetensors, prediction to PLY, the offline download message."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from safetensors import safe_open

import sharp_core
from sharp_core import weights
from sharp_core.checkpoint import convert_checkpoint
from sharp_core.cli import main
from sharp_core.network import SharpModel
from sharp_core.network.config import SharpConfig, ViTConfig

from helpers import TINY


def test_convert_refuses_to_guess_then_records_the_true_head_count_and_casts(tmp_path):
    cfg = SharpConfig(
        patch_vit=ViTConfig(embed_dim=64, depth=4, num_heads=2, mlp_hidden=64, num_classes=5),
        image_vit=ViTConfig(embed_dim=64, depth=1, num_heads=2, mlp_hidden=64, num_classes=5),
        encoder_dims=(16, 16, 16, 16, 16), hook_blocks=(0, 1, 2, 3), monodepth_decoder_dims=(16,) * 5,
        monodepth_head_dims=(8, 2), gaussian_decoder_dims=(16,) * 5, gaussian_feature_dim=8,
    )
    src = tmp_path / "model.pt"
    torch.save(SharpModel(cfg).state_dict(), src)
    # Shapes alone would suggest one 64-wide head: the conversion refuses rather than guess.
    with pytest.raises(ValueError, match="vit.num_heads, patch_encoder_hook_blocks"):
        convert_checkpoint(src, tmp_path / "guessed.safetensors")
    assert not (tmp_path / "guessed.safetensors").exists()
    out = convert_checkpoint(src, tmp_path / "model.safetensors", dtype="fp16", inference_only=True, num_heads=2,
                             hook_blocks=(0, 1, 2, 3), norm_groups=8)
    with safe_open(str(out), "pt") as f:
        assert f.get_tensor("prediction_head.texture_prediction_head.weight").dtype == torch.float16
        names = list(f.keys())
        assert not any(k.startswith("depth_alignment") or "_encoder.head." in k for k in names)
        described = json.loads(f.metadata()["sharp_config"])
    assert described["vit"]["num_heads"] == 2 and described["patch_encoder_hook_blocks"] == [0, 1, 2, 3]
    model = sharp_core.load_model(out)
    assert model.cfg.patch_vit.num_heads == 2 and not hasattr(model, "depth_alignment")
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


def test_convert_records_the_description_on_a_round_trip(tmp_path):
    once = convert_checkpoint(TINY / "weights.safetensors", tmp_path / "a.safetensors")  # config.json beside it
    twice = convert_checkpoint(once, tmp_path / "b.safetensors", dtype="bf16")  # nothing beside it
    with safe_open(str(twice), "pt") as f:
        described = json.loads(f.metadata()["sharp_config"])
        assert len(list(f.keys())) == 477
    assert described["vit"]["num_heads"] == 2 and described["patch_encoder_hook_blocks"] == [0, 1, 2, 3]


def test_convert_refuses_other_suffix(tmp_path):
    with pytest.raises(ValueError, match="must end in .safetensors"):
        convert_checkpoint(TINY / "weights.safetensors", tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


def test_predict_command_writes_one_ply_per_image(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, colour in (("a.png", (200, 30, 30)), ("b.jpg", (30, 200, 30))):
        Image.new("RGB", (48, 32), colour).save(photos / name)
    out = tmp_path / "out"
    code = main(["predict", str(photos), "-o", str(out), "--checkpoint", str(TINY / "weights.safetensors"),
                 "--device", "cpu", "--dtype", "fp32", "--focal-mm", "35"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.ply", "b.ply"]
    scene = sharp_core.load_ply(out / "a.ply")
    assert scene.num_gaussians == 2 * 768 * 768 and scene.image_size == [(48, 32)]
    assert scene.focal_px[0] == pytest.approx(35.0 * (48**2 + 32**2) ** 0.5 / 43.2666153, rel=1e-5)


def test_offline_download_says_where_to_put_the_file(tmp_path, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(weights.CheckpointUnavailable) as err:
        weights.download_checkpoint(tmp_path / "models" / "sharp")
    message = str(err.value)
    assert "sharp_2572gikvuh.pt" in message and str(tmp_path / "models" / "sharp") in message
    assert "huggingface.co/apple/Sharp" in message
