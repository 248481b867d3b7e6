"""What tensor shapes cannot tell (ViT heads, hook blocks, GroupNorm groups) comes from the checkpoint's
own description (safetensors metadata, config.json beside it, keyword arguments), never from a guess."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import sharp_core
from sharp_core.checkpoint import convert_checkpoint, read_description
from sharp_core.cli import main
from sharp_core.network import SharpModel
from sharp_core.network.config import ArchitectureDescription, SharpConfig, ViTConfig, describe_config

from helpers import TINY

# A reduced network whose four values differ from anything shapes could suggest: depth 6 with hooks
# (1, 2, 4, 5) (the old guess was the last block of each quarter: 0, 2, 3, 5), 2 heads of width 24
# (the old guess: 3 heads of 16), 4 GroupNorm groups (released: 8), alignment groups 2 (released: 4).
HOOKS = (1, 2, 4, 5)
OTHER = SharpConfig(
    patch_vit=ViTConfig(embed_dim=48, depth=6, num_heads=2, mlp_hidden=96, num_classes=7),
    image_vit=ViTConfig(embed_dim=48, depth=2, num_heads=2, mlp_hidden=96, num_classes=7),
    encoder_dims=(24, 16, 24, 32, 32), hook_blocks=HOOKS, monodepth_decoder_dims=(24,) * 5,
    monodepth_head_dims=(8, 2), gaussian_decoder_dims=(16,) * 5, gaussian_feature_dim=8, norm_groups=4,
    alignment_width=8, alignment_steps=(2, 2), alignment_norm_groups=2,
)
DESCRIPTION = {"vit": {"embed_dim": 48, "depth": 6, "num_heads": 2}, "patch_encoder_hook_blocks": list(HOOKS),
               "norm_groups": 4, "alignment_norm_groups": 2}


def _state_dict(cfg: SharpConfig) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    model = SharpModel(cfg)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    for name, tensor in sd.items():  # every stage active: random weights everywhere, not just the init
        if tensor.is_floating_point() and tensor.dim() > 1:
            # Sharp attention (large query/key weights), so the head count shows in the result.
            gain = 3.0 if name.endswith("attn.qkv.weight") else 0.3
            tensor.normal_(std=gain / tensor[0].numel() ** 0.5)
    for p in ("prediction_head.geometry_prediction_head", "prediction_head.texture_prediction_head"):
        sd[p + ".weight"].normal_(std=0.5)
    return sd


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    """(state dict, the encodings the true architecture computes, a folder to write copies into)."""
    sd = _state_dict(OTHER)
    return sd, _encodings(_built(OTHER, sd)), tmp_path_factory.mktemp("other")


def _built(cfg: SharpConfig, sd: dict) -> SharpModel:
    model = SharpModel(cfg)
    model.load_state_dict(sd)
    return model.eval()


def _encodings(model: SharpModel) -> torch.Tensor:
    """The sliding-pyramid encoder's first two maps (the hooked blocks' tokens, after heads and
    hooks had their say); the decoders after them run at 1536 px and cost too much for a unit test."""
    size = model.internal_resolution
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.inference_mode():
        encodings = model.monodepth_model.monodepth_predictor.encoder(image)
    return torch.cat([encodings[0].flatten(), encodings[1].flatten()])


def _same_network(model: SharpModel, sd: dict) -> bool:
    """Architecture and weights equal to OTHER's: the forward pass is then the same function."""
    loaded = model.state_dict()
    return model.cfg == OTHER and all(torch.equal(loaded[k], sd[k]) for k in loaded)


def test_the_old_guess_would_predict_something_else(other):
    """The premise: a wrong hook or head count changes the result (so the tests below can fail)."""
    sd, truth, _ = other
    for wrong in (replace(OTHER, hook_blocks=(0, 2, 3, 5)),
                  replace(OTHER, patch_vit=replace(OTHER.patch_vit, num_heads=3))):
        assert (_encodings(_built(wrong, sd)) - truth).abs().max() > 0.05 * truth.abs().max()


def test_loads_right_from_safetensors_metadata(other):
    sd, truth, folder = other
    path = folder / "meta" / "net.safetensors"
    path.parent.mkdir()
    save_file(sd, str(path), metadata={"sharp_config": json.dumps(DESCRIPTION)})
    model = sharp_core.load_model(path)
    assert _same_network(model, sd)
    assert torch.equal(_encodings(model), truth)


@pytest.mark.parametrize("name", ["net.config.json", "config.json"])
def test_loads_right_from_a_config_json_beside_the_weights(other, name):
    sd, truth, folder = other
    path = folder / name.replace(".", "_") / "net.pt"
    path.parent.mkdir()
    torch.save(sd, path)
    (path.parent / name).write_text(json.dumps(DESCRIPTION))
    assert _same_network(sharp_core.load_model(path), sd)


def test_stem_config_wins_over_the_folder_config(other):
    sd, _, folder = other
    path = folder / "both" / "net.safetensors"
    path.parent.mkdir()
    save_file(sd, str(path))
    (path.parent / "config.json").write_text(json.dumps({**DESCRIPTION, "patch_encoder_hook_blocks": [0, 1, 2, 3]}))
    (path.parent / "net.config.json").write_text(json.dumps(DESCRIPTION))
    assert sharp_core.load_model(path).cfg.hook_blocks == HOOKS


def test_refused_without_a_description_naming_what_is_missing_and_the_ways(other):
    sd, _, folder = other
    path = folder / "bare" / "net.safetensors"
    path.parent.mkdir()
    save_file(sd, str(path))
    with pytest.raises(ValueError) as err:
        sharp_core.load_model(path)
    message = str(err.value)
    for needed in ("vit.num_heads", "patch_encoder_hook_blocks", "norm_groups", "alignment_norm_groups",
                   "sharp_config", "config.json", "load_model(path, num_heads=", "hook_blocks="):
        assert needed in message, needed
    assert str(path) in message


def test_keyword_arguments_describe_it_too(other):
    sd, truth, folder = other
    path = folder / "kw" / "net.safetensors"
    path.parent.mkdir()
    save_file(sd, str(path))
    model = sharp_core.load_model(path, num_heads=2, hook_blocks=HOOKS, norm_groups=4, alignment_norm_groups=2)
    assert _same_network(model, sd)
    # Half a description still names what is missing.
    with pytest.raises(ValueError, match="patch_encoder_hook_blocks") as err:
        sharp_core.load_model(path, num_heads=2)
    assert "vit.num_heads" not in str(err.value).split("(tensor shapes")[0]


def test_keyword_arguments_win_over_the_file(other):
    sd, _, folder = other
    path = folder / "override" / "net.safetensors"
    path.parent.mkdir()
    save_file(sd, str(path), metadata={"sharp_config": json.dumps({**DESCRIPTION, "patch_encoder_hook_blocks": [0, 1, 2, 3]})})
    assert sharp_core.load_model(path, hook_blocks=HOOKS).cfg.hook_blocks == HOOKS


@pytest.mark.parametrize("change, problem", [
    ({"vit": {"embed_dim": 64, "num_heads": 2}}, "vit.embed_dim = 64, but the tensors have 48"),
    ({"vit": {"depth": 24, "num_heads": 2}}, "vit.depth = 24, but the tensors have 6"),
    ({"vit": {"num_heads": 5}}, "num_heads = 5 does not divide the ViT width 48"),
    ({"patch_encoder_hook_blocks": [1, 2, 4, 6]}, "reach past the patch ViT's 6 blocks"),
    ({"patch_encoder_hook_blocks": [4, 2, 1, 5]}, "at least two increasing block indices"),
    ({"norm_groups": 3}, "norm_groups = 3 does not divide"),
    ({"norm_groups": "8"}, "norm_groups must be a positive integer"),
    ({"alignment_norm_groups": 3}, "alignment_norm_groups = 3 does not divide"),
])
def test_a_description_that_does_not_fit_is_refused(other, change, problem):
    sd, _, folder = other
    path = folder / f"bad{abs(hash(problem))}" / "net.safetensors"
    path.parent.mkdir()
    save_file(sd, str(path), metadata={"sharp_config": json.dumps({**DESCRIPTION, **change})})
    with pytest.raises(ValueError, match="sharp_config") as err:
        sharp_core.load_model(path)
    assert problem in str(err.value)


def test_broken_config_json_names_the_file(other):
    sd, _, folder = other
    path = folder / "badjson" / "net.safetensors"
    path.parent.mkdir()
    save_file(sd, str(path))
    (path.parent / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        sharp_core.load_model(path)


def test_released_layout_needs_no_description():
    from helpers import MANIFEST

    manifest = json.loads(MANIFEST.read_text())["tensors"]
    with torch.device("meta"):
        sd = {k: torch.empty(v) for k, v in manifest.items()}
    from sharp_core.network.config import config_from_state_dict

    assert config_from_state_dict(sd) == SharpConfig()
    # A description still wins (a retrained network of the released widths with other hooks).
    told = ArchitectureDescription(hook_blocks=(3, 7, 15, 23), source="test")
    assert config_from_state_dict(sd, told).hook_blocks == (3, 7, 15, 23)


def test_tiny_fixture_is_described_by_its_config_json():
    description = read_description(TINY / "weights.safetensors", {})
    assert description is not None and description.source.endswith("config.json")
    cfg = sharp_core.load_model(TINY / "weights.safetensors").cfg
    ref = json.loads((TINY / "config.json").read_text())
    assert cfg.patch_vit.num_heads == ref["vit"]["num_heads"] == 2
    assert list(cfg.hook_blocks) == ref["patch_encoder_hook_blocks"]
    assert cfg.norm_groups == SharpConfig().norm_groups  # "every other hyper-parameter as released"


def test_convert_writes_the_full_description_and_refuses_what_it_cannot_know(other, tmp_path):
    sd, truth, _ = other
    src = tmp_path / "src.pt"
    torch.save(sd, src)
    with pytest.raises(ValueError, match="patch_encoder_hook_blocks"):
        convert_checkpoint(src, tmp_path / "x.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.pt"], "a refused conversion left a file"
    code = main(["convert", str(src), str(tmp_path / "out.safetensors"), "--num-heads", "2", "--hook-blocks",
                 "1,2,4,5", "--norm-groups", "4", "--alignment-norm-groups", "2"])
    assert code == 0
    with safe_open(str(tmp_path / "out.safetensors"), "pt") as f:
        written = json.loads(f.metadata()["sharp_config"])
    assert written == describe_config(OTHER)
    model = sharp_core.load_model(tmp_path / "out.safetensors")  # self-contained: nothing beside it
    assert _same_network(model, sd)
    # Inference-only: the UNet's groups are no longer part of the description.
    lean = convert_checkpoint(tmp_path / "out.safetensors", tmp_path / "lean.safetensors", inference_only=True)
    with safe_open(str(lean), "pt") as f:
        assert "alignment_norm_groups" not in json.loads(f.metadata()["sharp_config"])
    cfg = sharp_core.load_model(lean).cfg
    assert (cfg.patch_vit.num_heads, cfg.image_vit.num_heads, cfg.hook_blocks, cfg.norm_groups) == (2, 2, HOOKS, 4)


def test_convert_of_the_tiny_fixture_carries_its_config_json(tmp_path):
    out = convert_checkpoint(TINY / "weights.safetensors", tmp_path / "tiny.safetensors", dtype="bf16")
    assert sharp_core.load_model(out).cfg == sharp_core.load_model(TINY / "weights.safetensors").cfg
    assert len(load_file(out)) == 477
