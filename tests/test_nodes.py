"""The nodes end to end on the tiny checkpoint (one real prediction, shared by the module), and
their behaviour around it: batching, progress, memory management, Cancel, outputs' devices."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from comfy_env import cancel_after, comfy_base, files_under, small_scene, use_base, TINY_NAME  # noqa: F401

import comfy.model_management as mm
import sharp_core
import nodes.predict as predict_node
import nodes.render as render_node
from nodes import NODE_CLASS_MAPPINGS
from nodes.model_loader import ManagedSharpModel
from sharp_core.edit import decimate

Loader = NODE_CLASS_MAPPINGS["SharpModelLoader"]
Predict = NODE_CLASS_MAPPINGS["SharpPredict"]
Render = NODE_CLASS_MAPPINGS["SharpRender"]
Save = NODE_CLASS_MAPPINGS["SharpSaveGaussians"]
LoadPly = NODE_CLASS_MAPPINGS["SharpLoadGaussians"]
Edit = NODE_CLASS_MAPPINGS["SharpEditGaussians"]

H, W = 36, 48  # a small photo; SHARP still works at 1536 px inside


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Loader + Predict on the tiny checkpoint, run once for the module (CPU forward ~10-30 s)."""
    use_base(tmp_path_factory.mktemp("comfy"))
    (model,) = Loader().load(TINY_NAME, "auto", False)
    gen = torch.Generator().manual_seed(3)
    image = torch.rand(1, H, W, 3, generator=gen)
    calls_before = len(mm._load_calls)
    gaussians, depth, focal_px = Predict().predict(model, image, 30.0, "mm (35 mm equivalent)")
    return {"model": model, "image": image, "gaussians": gaussians, "depth": depth, "focal_px": focal_px,
            "load_calls": mm._load_calls[calls_before:]}


def test_loader_returns_a_managed_model(tiny_run):
    model = tiny_run["model"]
    assert isinstance(model, ManagedSharpModel)
    assert model.dtype == torch.float32  # auto on CPU
    assert model.patcher.load_device == mm.get_torch_device()
    assert model.patcher.offload_device == mm.unet_offload_device()
    assert model.patcher.model_size() == sum(p.numel() * 4 for p in model.net.state_dict().values())


def test_predict_joins_memory_management_before_running(tiny_run):
    calls = tiny_run["load_calls"]
    assert len(calls) == 1
    assert calls[0]["models"] == [tiny_run["model"].patcher]
    assert calls[0]["memory_required"] > 0 and calls[0]["force_full_load"]


def test_predict_outputs(tiny_run):
    g, depth, focal_px = tiny_run["gaussians"], tiny_run["depth"], tiny_run["focal_px"]
    assert g.batch_size == 1 and g.num_gaussians == 2 * 768 * 768
    assert g.image_size == [(W, H)]
    assert focal_px == pytest.approx(sharp_core.focal_px_from_mm(30.0, W, H))
    assert g.focal_px[0] == pytest.approx(focal_px)
    assert g.device == tiny_run["model"].patcher.load_device  # stays on the model's device
    assert depth.shape == (1, H, W, 3) and depth.device == mm.intermediate_device()
    assert float(depth.min()) >= 0 and float(depth.max()) == pytest.approx(1.0)
    # near = bright: the brightest depth pixel is where the metric depth is smallest
    metric = g.depth[0]
    assert torch.equal(depth[0, ..., 0].flatten().argmax(), metric.flatten().argmin())
    assert bool(torch.isfinite(g.means).all()) and bool((g.opacities >= 0).all())


def test_predict_pixels_and_wired_focal(tiny_run, monkeypatch):
    seen = []
    monkeypatch.setattr(predict_node, "predict", lambda net, image, progress=None, **kw: seen.append(kw) or small_scene(size=(W, H)))
    image = torch.rand(1, H, W, 3)
    Predict().predict(tiny_run["model"], image, 55.0, "pixels")
    Predict().predict(tiny_run["model"], image, 55.0, "pixels", focal_length_mm=24.0)
    assert seen == [{"focal_px": 55.0}, {"focal_mm": 24.0}]


def test_predict_batch_one_image_per_pass_with_progress(tiny_run, monkeypatch):
    shapes = []

    def fake_predict(net, image, **kw):
        shapes.append(tuple(image.shape))
        return small_scene(seed=len(shapes), size=(W, H))

    monkeypatch.setattr(predict_node, "predict", fake_predict)
    progress = cancel_after(10**9)  # records progress without cancelling
    g, depth, _ = Predict().predict(tiny_run["model"], torch.rand(3, H, W, 4), 30.0, "mm (35 mm equivalent)")
    assert shapes == [(H, W, 3)] * 3  # RGBA handed over as RGB, one image per call
    steps = sharp_core.prediction_steps(tiny_run["model"].net)  # the bar counts stages of every image
    assert progress == [steps, 2 * steps, 3 * steps]
    assert g.batch_size == 3 and torch.equal(g.means[2], small_scene(seed=3, size=(W, H)).means[0])
    assert depth.shape == (3, H, W, 3)


def test_cancel_during_predict_stops_between_images(tiny_run, monkeypatch, comfy_base):
    calls = []
    monkeypatch.setattr(predict_node, "predict", lambda net, image, **kw: calls.append(1) or small_scene(size=(W, H)))
    cancel_after(1)
    with pytest.raises(mm.InterruptProcessingException):
        Predict().predict(tiny_run["model"], torch.rand(3, H, W, 3), 30.0, "mm (35 mm equivalent)")
    assert len(calls) == 1
    assert files_under(comfy_base / "output") == [] and files_under(comfy_base / "temp") == []


# -- render ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def light_scene(tiny_run):
    """The tiny prediction thinned to 4k splats so CPU rendering stays quick."""
    return decimate(tiny_run["gaussians"], 4000)


def _needs_renderer():
    pytest.importorskip("sharp_core.trajectory")
    pytest.importorskip("sharp_core.rendering")


def render(scene, **kw):
    args = dict(camera_path="rotate_forward", frames=4, width=0, height=0, background="black", backend="auto",
                motion_scale=1.0, yaw=0.0, pitch=0.0, roll=0.0, offset_x=0.0, offset_y=0.0, offset_z=0.0, zoom=1.0)
    args.update(kw)
    return Render().render(scene, **args)


def test_render_paths_shapes_and_devices(light_scene):
    _needs_renderer()
    progress = cancel_after(10**9)
    images, alpha, depth = render(light_scene, frames=5)
    assert images.shape == (5, H, W, 3) and alpha.shape == (5, H, W) and depth.shape == (5, H, W, 3)
    assert progress == [1, 2, 3, 4, 5]
    for t in (images, alpha, depth):
        assert t.device == mm.intermediate_device() and t.dtype == torch.float32
        assert float(t.min()) >= 0 and float(t.max()) <= 1
    assert float(alpha.max()) > 0.5  # the splats cover part of the view
    assert not torch.equal(images[0], images[2])  # the camera moves
    (one, _, _) = render(light_scene, camera_path="original", frames=9, width=32, height=24)
    assert one.shape == (1, 24, 32, 3)
    odd = dataclasses.replace(light_scene, image_size=[(W - 1, H - 1)])
    (evened, _, _) = render(odd, camera_path="original")
    assert evened.shape == (1, H, W, 3)  # rounded up to even sizes, which H.264 needs


def test_render_custom_move_ends_at_the_pose(light_scene):
    _needs_renderer()
    frames, _, _ = render(light_scene, camera_path="custom", frames=3, yaw=8.0, zoom=1.5)
    still, _, _ = render(light_scene, camera_path="original")
    assert torch.allclose(frames[0], still[0], atol=1e-4)  # starts at the source view
    assert not torch.allclose(frames[-1], still[0], atol=1e-3)


def test_render_custom_single_frame_is_the_pose():
    """frames=1 with camera_path custom renders the pose set in the widgets, not the source view."""
    _needs_renderer()
    scene = small_scene()
    posed, _, _ = render(scene, camera_path="custom", frames=1, yaw=10.0, zoom=1.5)
    path, _, _ = render(scene, camera_path="custom", frames=3, yaw=10.0, zoom=1.5)
    assert posed.shape[0] == 1
    assert torch.allclose(posed[0], path[-1], atol=1e-4)


def test_render_background_fills_uncovered_pixels(light_scene):
    _needs_renderer()
    white, alpha, _ = render(light_scene, camera_path="original", background="white")
    empty = alpha[0] < 1e-3
    if bool(empty.any()):
        assert torch.allclose(white[0][empty], torch.ones(3), atol=1e-3)


def test_cancel_during_render_stops_mid_path(light_scene, monkeypatch, comfy_base):
    _needs_renderer()
    real_render, calls = render_node.render, []
    monkeypatch.setattr(render_node, "render", lambda *a, **k: calls.append(1) or real_render(*a, **k))
    cancel_after(2)
    with pytest.raises(mm.InterruptProcessingException):
        render(light_scene, frames=30)
    assert len(calls) == 2
    assert files_under(comfy_base / "output") == [] and files_under(comfy_base / "temp") == []


# -- PLY ------------------------------------------------------------------------------------------
def test_save_then_load_ply_round_trip(light_scene, comfy_base):
    pytest.importorskip("sharp_core.ply")
    out = Save().save(light_scene, "sharp/scene")
    path = comfy_base / "output" / "sharp" / "scene_00001_.ply"
    assert out["result"] == (str(path),) and path.is_file()
    assert out["ui"]["ply"] == [{"filename": "scene_00001_.ply", "subfolder": "sharp", "type": "output"}]
    assert all(isinstance(v, list) for v in out["ui"].values())
    second = Save().save(light_scene, "sharp/scene")
    assert second["result"][0].endswith("scene_00002_.ply")

    (loaded,) = LoadPly().load("", "sharp/scene_00001_.ply [output]")
    assert loaded.num_gaussians == light_scene.num_gaussians
    assert torch.allclose(loaded.means.cpu(), light_scene.means.cpu(), atol=1e-5)
    assert torch.allclose(loaded.opacities.cpu(), light_scene.opacities.cpu(), atol=1e-5)
    assert LoadPly.VALIDATE_INPUTS(ply="", path=str(path)) is True


def test_save_batch_and_date_prefix(comfy_base):
    pytest.importorskip("sharp_core.ply")
    out = Save().save(small_scene(b=2), "run_%year%/s")
    paths = out["result"][0].split("\n")
    assert len(paths) == 2 and len(out["ui"]["ply"]) == 2
    year = str(__import__("time").localtime().tm_year)
    assert all(f"run_{year}" in p for p in paths) and paths[1].endswith("s_00002_.ply")


def test_load_ply_from_input_list(comfy_base):
    pytest.importorskip("sharp_core.ply")
    sharp_core.save_ply(small_scene(), comfy_base / "input" / "mine.ply")
    assert "mine.ply" in LoadPly.INPUT_TYPES()["required"]["ply"][0]
    (g,) = LoadPly().load("mine.ply")
    assert g.num_gaussians == 400
    before = LoadPly.IS_CHANGED(ply="mine.ply")
    sharp_core.save_ply(small_scene(n=10), comfy_base / "input" / "mine.ply")
    assert LoadPly.IS_CHANGED(ply="mine.ply") != before


def test_load_ply_without_splats_says_so(comfy_base):
    scene = small_scene()
    sharp_core.save_ply(scene.select(torch.zeros(scene.num_gaussians, dtype=torch.bool)),
                        comfy_base / "input" / "empty.ply")
    with pytest.raises(ValueError, match="empty.ply holds no splats"):
        LoadPly().load("empty.ply")


# -- edit -----------------------------------------------------------------------------------------
def edit(scene, **kw):
    args = dict(min_depth=0.0, max_depth=0.0, x_min=-1000.0, x_max=1000.0, y_min=-1000.0, y_max=1000.0,
                min_opacity=0.0, max_splats=0, recenter="off", orientation="keep (OpenCV: y down, z forward)",
                rotate_x=0.0, rotate_y=0.0, rotate_z=0.0, scale=1.0)
    args.update(kw)
    return Edit().edit(scene, **args)[0]


def test_edit_defaults_change_nothing():
    g = small_scene()
    out = edit(g)
    assert torch.equal(out.means, g.means) and torch.equal(out.quats, g.quats)


def test_edit_pipeline():
    g = small_scene(n=2000)
    out = edit(g, min_depth=2.0, max_depth=5.0, x_min=-1.0, min_opacity=0.3, max_splats=300)
    z, x = out.means[0, :, 2], out.means[0, :, 0]
    assert out.num_gaussians == 300
    assert bool(((z >= 2) & (z <= 5) & (x >= -1) & (out.opacities[0] >= 0.3)).all())
    upright = edit(g, orientation="OpenCV -> y-up viewer", scale=2.0)
    assert torch.allclose(upright.means, g.means * torch.tensor([2.0, -2.0, -2.0]), atol=1e-6)
    centred = edit(g, recenter="median")
    assert torch.allclose(centred.means.median(dim=1).values, torch.zeros(1, 3), atol=1e-6)
    turned = edit(g, rotate_z=90.0)
    assert torch.allclose(turned.means[0, :, 1], g.means[0, :, 0], atol=1e-5)


def test_edit_batch_crop_with_budget_keeps_every_scene():
    """Scenes of a batch that keep different counts after a crop still batch when max_splats is
    set, as the engine's error message advises (each scene keeps its max_splats most visible)."""
    g = small_scene(b=2, n=2000, seed=5)
    out = edit(g, max_depth=4.0, max_splats=300)
    assert out.batch_size == 2 and out.num_gaussians == 300
    assert bool((out.means[..., 2] <= 4.0).all())
    for i in range(2):
        alone = edit(g[i], max_depth=4.0, max_splats=300)
        assert torch.equal(out.means[i], alone.means[0]) and torch.equal(out.opacities[i], alone.opacities[0])
    with pytest.raises(ValueError, match="max_splats"):
        edit(g, max_depth=4.0)
