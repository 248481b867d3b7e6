"""SHARP Render's stereo, camera input and per-frame (video) mode, and SHARP Predict on a clip (disk-backed
scenes), through the nodes with ComfyUI's stand-ins; no network needed (Predict's engine call is replaced)."""

from __future__ import annotations

import gc
import json
import weakref

import pytest
import torch

from comfy_env import cancel_after, comfy_base, files_under, small_scene  # noqa: F401

import comfy.model_management as mm
import nodes.predict as predict_node
import sharp_core
from nodes import NODE_CLASS_MAPPINGS
from sharp_core import (
    Camera, SceneSequence, align_scale, camera_from_view, camera_path, look_at, median_depth, render, render_stereo,
    stack_scenes,
)

Predict = NODE_CLASS_MAPPINGS["SharpPredict"]
Render = NODE_CLASS_MAPPINGS["SharpRender"]
W, H = 64, 48


def run(scene, **kw):
    args = dict(camera_path="original", frames=4, width=0, height=0, background="black", backend="torch",
                motion_scale=1.0, yaw=0.0, pitch=0.0, roll=0.0, offset_x=0.0, offset_y=0.0, offset_z=0.0, zoom=1.0)
    args.update(kw)
    return Render().render(scene, **args)


@pytest.fixture(scope="module")
def scene():
    return small_scene(n=300, size=(W, H))


# -- stereo ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, shape", [("side-by-side", (H, 2 * W)), ("side-by-side half width", (H, W)),
                                         ("top-bottom", (2 * H, W)), ("anaglyph red-cyan", (H, W))])
def test_render_node_stereo_maps_its_widgets(scene, mode, shape):
    images, alpha, depth = run(scene, stereo=mode, interaxial_mm=80.0, convergence_m=0.0)
    assert images.shape == (1, *shape, 3) and alpha.shape == (1, *shape) and depth.shape == (1, *shape, 3)
    expected = render_stereo(scene, Camera.scene_camera(scene, W, H), W, H, mode, 0.080, median_depth(scene),
                             backend="torch")
    assert torch.allclose(images[0], expected.color, atol=1e-6)
    explicit, _, _ = run(scene, stereo=mode, interaxial_mm=80.0, convergence_m=1.5)
    expected = render_stereo(scene, Camera.scene_camera(scene, W, H), W, H, mode, 0.080, 1.5, backend="torch")
    assert torch.allclose(explicit[0], expected.color, atol=1e-6)


def test_render_node_stereo_works_with_every_path(scene):
    for path in ("rotate_forward", "swipe", "shake", "rotate", "custom"):
        images, _, _ = run(scene, camera_path=path, frames=2, stereo="side-by-side", yaw=5.0)
        assert images.shape == (2, H, 2 * W, 3), path
        assert not torch.equal(images[0, :, :W], images[0, :, W:])  # two different eyes


def test_render_node_refuses_bad_stereo_input(scene):
    with pytest.raises(ValueError, match="Unknown stereo 'sbs'"):
        run(scene, stereo="sbs")
    with pytest.raises(ValueError, match="interaxial_mm"):
        run(scene, stereo="top-bottom", interaxial_mm=float("nan"))
    with pytest.raises(ValueError, match="even width"):
        run(scene, stereo="side-by-side half width", width=33, height=20)


# -- camera input ---------------------------------------------------------------------------------
def viewer_view(eye=(0.1, -0.05, 0.2), width=200, height=100, fov=45.0) -> dict:
    return {"world_to_camera": look_at(eye, (0.0, 0.0, 3.0)).double().tolist(), "fov_y_deg": fov,
            "width": width, "height": height}


def test_one_camera_view_renders_that_shot(scene):
    v = viewer_view()
    images, _, _ = run(scene, camera_path="rotate_forward", frames=5, camera=[v])
    # one view: one frame, at the source height with the view's aspect ratio (2:1 -> 96 x 48)
    assert images.shape == (1, H, 2 * H, 3)
    expected = render(scene, camera_from_view(v, 2 * H, H), 2 * H, H, backend="torch")
    assert torch.allclose(images[0], expected.color, atol=1e-6)
    typed, _, _ = run(scene, camera_json=json.dumps(v), frames=5)
    assert torch.equal(typed, images)
    sized, _, _ = run(scene, camera=[v], width=80, height=60)
    assert sized.shape == (1, 60, 80, 3)


def test_several_views_are_interpolated_over_frames(scene):
    views = [viewer_view((0.0, 0.0, 0.0)), viewer_view((0.3, 0.0, 0.1)), viewer_view((0.0, -0.2, 0.3))]
    images, _, _ = run(scene, camera=views, frames=7, width=64, height=32)
    assert images.shape == (7, 32, 64, 3)
    last = render(scene, camera_from_view(views[-1], 64, 32), 64, 32, backend="torch")
    assert torch.allclose(images[-1], last.color, atol=1e-5)
    with pytest.raises(ValueError, match="camera view 2 of 2"):
        run(scene, camera_json=json.dumps([views[0], {"fov_y_deg": 10}]))


# -- video: scene i at camera i -------------------------------------------------------------------
def drifting_clip(scene, factors):
    """The same scene predicted with a metric scale that drifts frame to frame (SHARP's failure mode)."""
    base = median_depth(scene)
    return stack_scenes([align_scale(scene, base * f)[0] for f in factors])


def test_scale_alignment_removes_the_drift(scene):
    factors = [1.0, 1.15, 0.85, 1.3, 0.9]
    steady = stack_scenes([scene] * len(factors))
    drifting = drifting_clip(scene, factors)
    common = dict(camera_path="swipe", frames=99, sequence="scene i at camera i", motion_scale=3.0)
    reference, _, _ = run(steady, **common)
    aligned, _, _ = run(drifting, align_scale=True, **common)
    raw, _, _ = run(drifting, align_scale=False, **common)
    assert reference.shape == (5, H, W, 3)  # one frame per scene, whatever `frames` says
    # the path is built once from the first scene, scene i drawn at camera i
    cams = camera_path(scene, "swipe", 5, W, H, max_disparity=0.08 * 3, max_zoom=0.15 * 3)
    assert torch.allclose(reference[3], render(scene, cams[3], W, H, backend="torch").color, atol=1e-6)
    err_aligned = [float((aligned[i] - reference[i]).abs().mean()) for i in range(5)]
    err_raw = [float((raw[i] - reference[i]).abs().mean()) for i in range(5)]
    print("mean abs error per frame, aligned:", err_aligned, "unaligned:", err_raw)
    assert max(err_aligned) < 1e-4
    # the drift shows in every frame whose camera left the source position (swipe: frame 2 is the centre, where a
    # scale about the camera changes nothing, as it should)
    assert torch.allclose(cams[2].position, torch.zeros(3), atol=1e-6) and err_raw[2] < 1e-4
    assert min(err_raw[i] for i in (1, 3, 4)) > 0.01


def test_per_frame_stereo_is_a_3d_video(scene):
    clip = stack_scenes([scene, scene, scene])
    images, _, _ = run(clip, camera_path="rotate_forward", sequence="scene i at camera i", stereo="top-bottom")
    assert images.shape == (3, 2 * H, W, 3)


class FakeModel:
    """The bits of ManagedSharpModel SHARP Predict touches."""
    net = None

    def load_for_inference(self, batch_size=1):
        return torch.device("cpu")


@pytest.fixture(autouse=True)
def one_progress_step_per_image(monkeypatch):
    """The stand-in network has no stages to count: one progress step per image."""
    monkeypatch.setattr(predict_node, "prediction_steps", lambda net, images=1: images)


def test_predict_streams_a_clip_to_disk_and_render_holds_few_scenes(comfy_base, monkeypatch):
    frames = 7
    monkeypatch.setattr(predict_node, "predict",
                        lambda net, image, **kw: small_scene(n=300, seed=int(image[0, 0, 0] * 1000), size=(W, H)))
    clip = torch.rand(frames, H, W, 3)
    gaussians, depth, focal = Predict().predict(FakeModel(), clip, 30.0, "mm (35 mm equivalent)")
    assert isinstance(gaussians, SceneSequence) and len(gaussians) == frames
    assert depth.shape == (frames, H, W, 3) and focal == 60.0
    stored = files_under(comfy_base / "temp")
    assert len(stored) == frames and all(s.startswith("sharp_clips/") for s in stored)
    live, peak = [], [0]
    real_getitem = SceneSequence.__getitem__

    def counting_getitem(self, index):
        loaded = real_getitem(self, index)
        live.append(weakref.ref(loaded.means))
        peak[0] = max(peak[0], sum(r() is not None for r in live))
        return loaded

    monkeypatch.setattr(SceneSequence, "__getitem__", counting_getitem)
    images, _, _ = run(gaussians, camera_path="rotate_forward", sequence="scene i at camera i")
    assert images.shape == (frames, H, W, 3)
    assert len(live) == frames and peak[0] <= 2, f"{peak[0]} scenes were in memory at once"
    # a short batch stays an ordinary in-memory batch
    small, _, _ = Predict().predict(FakeModel(), clip[:3], 30.0, "mm (35 mm equivalent)")
    assert isinstance(small, sharp_core.Gaussians) and small.batch_size == 3
    del gaussians
    gc.collect()
    assert files_under(comfy_base / "temp") == []  # the clip's files go with the last reference


def test_cancelled_clip_leaves_nothing_in_temp(comfy_base, monkeypatch):
    monkeypatch.setattr(predict_node, "predict", lambda net, image, **kw: small_scene(n=300, size=(W, H)))
    cancel_after(3)
    with pytest.raises(mm.InterruptProcessingException) as excinfo:
        Predict().predict(FakeModel(), torch.rand(6, H, W, 3), 30.0, "mm (35 mm equivalent)")
    del excinfo  # ComfyUI drops the failed run the same way
    gc.collect()
    assert files_under(comfy_base / "temp") == [] and files_under(comfy_base / "output") == []


def test_save_and_preview_walk_a_clip(comfy_base, monkeypatch):
    monkeypatch.setattr(predict_node, "predict", lambda net, image, **kw: small_scene(n=300, size=(W, H)))
    clip, _, _ = Predict().predict(FakeModel(), torch.rand(4, H, W, 3), 30.0, "mm (35 mm equivalent)")
    assert isinstance(clip, SceneSequence)
    result = NODE_CLASS_MAPPINGS["SharpSaveGaussians"]().save(clip, "sharp/clip", None, 0, 1000)
    assert len(result["result"][0].splitlines()) == 4
    assert len(files_under(comfy_base / "output" / "sharp")) == 4
    assert len(result["ui"]["sharp_preview"]) == 4  # the in-graph preview of every scene
