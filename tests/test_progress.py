"""Progress inside one prediction: stages reported in order with exact counts, a raising callback stops
between stages, the windowed encoder computes what the one-batch encoder computes, the tqdm helper and
the SHARP Predict node's bar (per image x stages, Cancel between stages)."""

from __future__ import annotations

import io

import pytest
import torch

import sharp_core
from sharp_core.network.pyramid import CPU_WINDOWS_PER_STEP, SlidingPyramidEncoder

from helpers import TINY, tiny_input


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def model():
    return sharp_core.load_model(TINY / "weights.safetensors")


def test_stages_in_order_with_exact_counts(model):
    seen = []
    scene = sharp_core.predict(model, tiny_input()[:40, :56], progress=lambda *a: seen.append(a))
    total = sharp_core.prediction_steps(model)
    windows = -(-35 // CPU_WINDOWS_PER_STEP)  # 5 x 5 + 3 x 3 + 1 windows at 1536 px, on CPU in steps
    assert total == windows + 5
    assert [s for s, _, _ in seen] == (["patch encoder windows"] * windows + ["image encoder", "depth decoder",
                                       "feature decoder", "prediction head", "unprojection"])
    assert [d for _, d, _ in seen] == list(range(1, total + 1)) and {t for _, _, t in seen} == {total}
    assert scene.num_gaussians == 2 * 768 * 768
    assert sharp_core.prediction_steps(model, 3) == 3 * total


def test_a_raising_callback_stops_between_stages(model):
    seen = []

    def cancel_at_third(stage, done, total):
        seen.append(stage)
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        sharp_core.predict(model, tiny_input()[:40, :56], progress=cancel_at_third)
    assert len(seen) == 3  # nothing ran (or reported) after the Cancel


def test_windowed_encoder_equals_one_batch(model, monkeypatch):
    """On CPU the patch ViT runs 5 windows per step; the same windows in one batch give the same maps."""
    encoder = model.monodepth_model.monodepth_predictor.encoder
    image = torch.rand(1, 3, 1536, 1536, generator=torch.Generator().manual_seed(0)) * 2 - 1
    reports = []
    steps = encoder.window_steps(torch.device("cpu"))
    with torch.inference_mode():
        stepped = encoder(image, reports.append)
        monkeypatch.setattr(SlidingPyramidEncoder, "_windows_per_step", staticmethod(lambda device, total: total))
        whole = encoder(image)
    assert len(reports) == steps + 1 == 8
    for a, b in zip(stepped, whole):
        assert a.shape == b.shape
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()


def test_tqdm_helper_spans_several_calls():
    out = io.StringIO()
    with sharp_core.TqdmProgress(images=2, file=out, mininterval=0) as bar:
        for i in range(2):
            for done in range(1, 8):
                bar.image(i)("depth decoder", done, 7)
        assert bar.bar.total == 14 and bar.bar.n == 14
    assert "14/14" in out.getvalue() and "depth decoder" in out.getvalue()
    single = sharp_core.TqdmProgress(file=io.StringIO())
    single("unprojection", 3, 5)
    assert single.bar.n == 3 and single.bar.total == 5
    single.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only: no host-device sync added by the callback")
def test_progress_adds_no_device_sync_on_cuda(model):
    import warnings

    cuda_model = sharp_core.load_model(TINY / "weights.safetensors", device="cuda")
    image = torch.rand(1, 3, 1536, 1536, device="cuda")
    factor = torch.tensor([0.9], device="cuda")

    def syncs(progress) -> int:
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                with torch.inference_mode():
                    cuda_model(image, factor, progress=progress)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    calls = []
    assert syncs(lambda stage: calls.append(stage)) == syncs(None)
    assert len(calls) == cuda_model.progress_steps() == 5  # all windows in one batch on a GPU
