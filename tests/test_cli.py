"""The command line: conversion to safetensors, prediction to PLY, the offline download message."""

from __future__ import annotations

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


def test_convert_keeps_head_count_and_casts(tmp_path):
    cfg = SharpConfig(
        patch_vit=ViTConfig(embed_dim=64, depth=4, num_heads=2, mlp_hidden=64, num_classes=5),
        image_vit=ViTConfig(embed_dim=64, depth=1, num_heads=2, mlp_hidden=64, num_classes=5),
        encoder_dims=(16, 16, 16, 16, 16), hook_blocks=(0, 1, 2, 3), monodepth_decoder_dims=(16,) * 5,
        monodepth_head_dims=(8, 2), gaussian_decoder_dims=(16,) * 5, gaussian_feature_dim=8,
    )
    src = tmp_path / "model.pt"
    torch.save(SharpModel(cfg).state_dict(), src)
    # Shapes alone suggest one 64-wide head; the conversion records the true count.
    guessed = convert_checkpoint(src, tmp_path / "guessed.safetensors")
    assert sharp_core.load_model(guessed).cfg.patch_vit.num_heads == 1
    out = convert_checkpoint(src, tmp_path / "model.safetensors", dtype="fp16", inference_only=True, num_heads=2)
    with safe_open(str(out), "pt") as f:
        assert f.get_tensor("prediction_head.texture_prediction_head.weight").dtype == torch.float16
        names = list(f.keys())
        assert not any(k.startswith("depth_alignment") or "_encoder.head." in k for k in names)
        assert f.metadata()["sharp.num_heads"] == "2"
    model = sharp_core.load_model(out)
    assert model.cfg.patch_vit.num_heads == 2 and not hasattr(model, "depth_alignment")
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


def test_convert_records_heads_from_metadata_round_trip(tmp_path):
    once = convert_checkpoint(TINY / "weights.safetensors", tmp_path / "a.safetensors")
    twice = convert_checkpoint(once, tmp_path / "b.safetensors", dtype="bf16")
    with safe_open(str(twice), "pt") as f:
        assert f.metadata()["sharp.num_heads"] == "2"
        assert len(list(f.keys())) == 477


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


# -- export -------------------------------------------------------------------------------------


def test_export_converts_decimates_and_turns_y_up(tmp_path):
    from format_scenes import sharp_like_scene

    scene = sharp_like_scene()
    src = sharp_core.save_ply(scene, tmp_path / "scene.ply")
    assert main(["export", str(src), str(tmp_path / "small.sog"), "--max-splats", "1000"]) == 0
    small = sharp_core.load_gaussians(tmp_path / "small.sog")
    assert small.num_gaussians == 1000
    # the kept splats are the most visible ones, as the Edit node's decimate keeps them
    kept = sharp_core.decimate(sharp_core.load_ply(src), 1000)
    assert torch.allclose(small.means[0].mean(0), kept.means[0].mean(0), atol=1e-3)
    assert main(["export", str(src), str(tmp_path / "up.glb"), "--y-up"]) == 0
    # the y-up .glb holds the scene turned twice (our y-up, then the glTF frame's), i.e. as it was,
    # and reading it undoes the glTF frame once: the y-up scene
    up = sharp_core.load_gaussians(tmp_path / "up.glb")
    torch.testing.assert_close(up.means[0], scene.means[0] * torch.tensor([1.0, -1.0, -1.0]), atol=1e-6, rtol=1e-6)
    # by bytes, not by name, and with an explicit output format
    renamed = tmp_path / "scene.bin"
    renamed.write_bytes(src.read_bytes())
    assert main(["export", str(renamed), str(tmp_path / "out.dat"), "--format", "glb"]) == 0
    assert sharp_core.load_gaussians(tmp_path / "out.dat").num_gaussians == scene.num_gaussians


def test_export_errors_name_the_problem(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.ply"), str(tmp_path / "x.sog")]) == 2
    assert "missing.ply" in capsys.readouterr().err
    src = sharp_core.save_ply(sharp_core.Gaussians(
        means=torch.ones(4, 3), scales=torch.ones(4, 3), quats=torch.tensor([[1.0, 0, 0, 0]] * 4),
        colors=torch.rand(4, 3), opacities=torch.rand(4), focal_px=[10.0], image_size=[(4, 4)]), tmp_path / "s.ply")
    assert main(["export", str(src), str(tmp_path / "x.unknown")]) == 2
    assert "unknown splat file type" in capsys.readouterr().err
    assert not (tmp_path / "x.unknown").exists()
