"""The network's activation-memory estimate, which Load SHARP Model hands to ComfyUI's memory
management: plausible for the released model, and it follows dtype, batch, resolution and widths."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from comfy_env import TINY_NAME, comfy_base  # noqa: F401
from sharp_core.network import SharpModel
from sharp_core.network.config import SharpConfig, ViTConfig

GB = 1e9


def meta_model(cfg: SharpConfig | None = None) -> SharpModel:
    with torch.device("meta"):
        return SharpModel(cfg)


@pytest.fixture(scope="module")
def released():
    return meta_model()


def test_released_model_estimate_is_plausible(released):
    fp32 = released.estimate_activation_memory(1)
    # measured ~3.1 GB per float32 image at 1536 px on CPU, plus a margin: not less, not wildly more
    assert 3.1 * GB < fp32 < 6.0 * GB
    assert isinstance(fp32, int)


def test_estimate_follows_dtype_and_batch(released):
    fp32 = released.estimate_activation_memory(1)
    assert released.estimate_activation_memory(3) == pytest.approx(3 * fp32, rel=1e-9)
    for half in (torch.float16, torch.bfloat16):
        assert released.estimate_activation_memory(1, dtype=half) == pytest.approx(fp32 / 2, rel=1e-9)
    cast = meta_model().to(torch.bfloat16)  # by default the weights' dtype decides
    assert cast.estimate_activation_memory(2) == pytest.approx(fp32, rel=1e-9)


def test_estimate_follows_resolution_and_width(released):
    fp32 = released.estimate_activation_memory(1)
    small_vit = ViTConfig(img_size=192)
    half_res = meta_model(replace(SharpConfig(), patch_vit=small_vit, image_vit=small_vit))
    assert half_res.internal_resolution == 768
    assert half_res.estimate_activation_memory(1) == pytest.approx(fp32 / 4, rel=1e-9)
    cfg = SharpConfig()
    narrow = replace(cfg, encoder_dims=tuple(d // 2 for d in cfg.encoder_dims),
                     monodepth_decoder_dims=tuple(d // 2 for d in cfg.monodepth_decoder_dims),
                     gaussian_decoder_dims=tuple(d // 2 for d in cfg.gaussian_decoder_dims))
    assert meta_model(narrow).estimate_activation_memory(1) == pytest.approx(fp32 / 2, rel=1e-9)


def test_estimate_refuses_an_empty_batch(released):
    with pytest.raises(ValueError, match="batch_size"):
        released.estimate_activation_memory(0)


def test_model_loader_asks_the_network(comfy_base):
    from nodes import NODE_CLASS_MAPPINGS

    (model,) = NODE_CLASS_MAPPINGS["SharpModelLoader"]().load(TINY_NAME, "fp32", False)
    expected = model.net.estimate_activation_memory(2)
    assert model.activation_bytes(2) == expected
    # the reduced-width fixture needs far less than the released model
    assert 0 < expected < meta_model().estimate_activation_memory(2) / 4
