"""SHARP Predict's progress bar inside one image: one step per stage of the engine (per image x
stages), and Cancel honoured between stages rather than only between images."""

from __future__ import annotations

import pytest
import torch

from comfy_env import TINY_NAME, cancel_after, comfy_base, files_under  # noqa: F401

import comfy.model_management as mm
import sharp_core
from nodes import NODE_CLASS_MAPPINGS

Loader = NODE_CLASS_MAPPINGS["SharpModelLoader"]
Predict = NODE_CLASS_MAPPINGS["SharpPredict"]


def test_cancel_inside_one_image_stops_at_the_next_stage(comfy_base, monkeypatch):
    (model,) = Loader().load(TINY_NAME, "fp32", False)
    stages = []
    real_predict = sharp_core.predict

    def watched(net, image, progress=None, **kw):
        def spy(stage, done, total):
            stages.append((stage, done, total))
            progress(stage, done, total)

        return real_predict(net, image, progress=spy, **kw)

    import nodes.predict as predict_node

    monkeypatch.setattr(predict_node, "predict", watched)
    seen = cancel_after(2)  # Cancel pressed while the second stage is reported
    with pytest.raises(mm.InterruptProcessingException):
        Predict().predict(model, torch.rand(2, 36, 48, 3), 30.0, "mm (35 mm equivalent)")
    steps = sharp_core.prediction_steps(model.net)
    assert seen == [1, 2]  # ComfyUI's bar: stages of the first image, out of 2 x steps
    assert [d for _, d, _ in stages] == [1, 2] and stages[0][2] == steps
    assert stages[0][0] == "patch encoder windows"
    assert files_under(comfy_base / "output") == []
