"""Every shipped workflow loads in the front end and matches the nodes it names.

Checks: the UI-format fields the front end's schema requires; every node type is one of ours or a
ComfyUI core node (table below, taken from ComfyUI 0.3.64's source); widgets_values match the
widgets in count, type, range and choices; links join an output and an input of the same type.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import pytest

from comfy_env import ROOT, comfy_base  # noqa: F401

from nodes import NODE_CLASS_MAPPINGS

WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))

# Core nodes the workflows use: inputs in declaration order as (name, type, options) and output
# types, as written in Comfy-Org/ComfyUI 0.3.64 (nodes.py, comfy_extras/nodes_video.py,
# nodes_images.py, nodes_mask.py, comfy/samplers.py). "COMBO" options list the valid choices.
SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "lms", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_sde", "ddim",
            "uni_pc", "lcm"]  # a subset of KSAMPLER_NAMES + ddim / uni_pc
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
              "linear_quadratic", "kl_optimal"]
MAX_RESOLUTION = 16384
CORE_NODES: dict[str, dict] = {
    "LoadImage": {"inputs": [("image", "COMBO", {"image_upload": True})], "outputs": ["IMAGE", "MASK"]},
    "CheckpointLoaderSimple": {"inputs": [("ckpt_name", "COMBO", {})], "outputs": ["MODEL", "CLIP", "VAE"]},
    "CLIPTextEncode": {"inputs": [("text", "STRING", {"multiline": True}), ("clip", "CLIP", {})],
                       "outputs": ["CONDITIONING"]},
    "EmptyLatentImage": {"inputs": [("width", "INT", {"min": 16, "max": MAX_RESOLUTION, "step": 8}),
                                    ("height", "INT", {"min": 16, "max": MAX_RESOLUTION, "step": 8}),
                                    ("batch_size", "INT", {"min": 1, "max": 4096})],
                         "outputs": ["LATENT"]},
    "KSampler": {"inputs": [("model", "MODEL", {}),
                            ("seed", "INT", {"min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}),
                            ("steps", "INT", {"min": 1, "max": 10000}),
                            ("cfg", "FLOAT", {"min": 0.0, "max": 100.0}),
                            ("sampler_name", "COMBO", {"options": SAMPLERS}),
                            ("scheduler", "COMBO", {"options": SCHEDULERS}),
                            ("positive", "CONDITIONING", {}), ("negative", "CONDITIONING", {}),
                            ("latent_image", "LATENT", {}),
                            ("denoise", "FLOAT", {"min": 0.0, "max": 1.0})],
                 "outputs": ["LATENT"]},
    "VAEDecode": {"inputs": [("samples", "LATENT", {}), ("vae", "VAE", {})], "outputs": ["IMAGE"]},
    "SaveImage": {"inputs": [("images", "IMAGE", {}), ("filename_prefix", "STRING", {})], "outputs": []},
    "PreviewImage": {"inputs": [("images", "IMAGE", {})], "outputs": []},
    "SaveAnimatedWEBP": {"inputs": [("images", "IMAGE", {}), ("filename_prefix", "STRING", {}),
                                    ("fps", "FLOAT", {"min": 0.01, "max": 1000.0}), ("lossless", "BOOLEAN", {}),
                                    ("quality", "INT", {"min": 0, "max": 100}),
                                    ("method", "COMBO", {"options": ["default", "fastest", "slowest"]})],
                         "outputs": []},
    "CreateVideo": {"inputs": [("images", "IMAGE", {}), ("fps", "FLOAT", {"min": 1.0, "max": 120.0}),
                               ("audio", "AUDIO", {"optional": True})],
                    "outputs": ["VIDEO"]},
    "SaveVideo": {"inputs": [("video", "VIDEO", {}), ("filename_prefix", "STRING", {}),
                             ("format", "COMBO", {"options": ["auto", "mp4"]}),
                             ("codec", "COMBO", {"options": ["auto", "h264"]})],
                  "outputs": []},
    # LoadVideo's combo carries upload=video, which the front end turns into the same upload button as
    # an image upload's (saved workflows hold [file, "image"])
    "LoadVideo": {"inputs": [("file", "COMBO", {"video_upload": True})], "outputs": ["VIDEO"]},
    "GetVideoComponents": {"inputs": [("video", "VIDEO", {})], "outputs": ["IMAGE", "AUDIO", "FLOAT"]},
    "MaskToImage": {"inputs": [("mask", "MASK", {})], "outputs": ["IMAGE"]},
    # comfy_extras/nodes_load_3d.py; the front end adds the 3D canvas as a widget named "image"
    # (Comfy.Preview3D's beforeRegisterNodeDef: required.image = ["PREVIEW_3D"]) that saves "".
    "Preview3D": {"inputs": [("model_file", "STRING", {}), ("image", "PREVIEW_3D", {}),
                             ("camera_info", "LOAD3D_CAMERA", {"optional": True})],
                  "outputs": []},
}
FRONTEND_ONLY = {"Note", "MarkdownNote"}  # front-end nodes that never reach the server
# Combos of our nodes that list the user's own files (empty on a fresh install): a saved value need
# not be in today's list. ComfyUI skips its list check for an input the node's VALIDATE_INPUTS takes,
# which the node must therefore do (checked in `our_inputs`).
USER_FILE_COMBOS = {("SharpLoadGaussians", "ply")}
FRONTEND_WIDGETS = {"PREVIEW_3D": ""}  # widgets the front end adds to core nodes -> the value it saves
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO", *FRONTEND_WIDGETS}
SEED_CONTROL = {"fixed", "increment", "decrement", "randomize"}


def our_inputs(node_type: str) -> list[tuple[str, str, dict]]:
    spec = NODE_CLASS_MAPPINGS[node_type].INPUT_TYPES()
    rows = []
    for section in ("required", "optional"):
        for name, (kind, options) in spec.get(section, {}).items():
            options = dict(options, optional=section == "optional")
            if isinstance(kind, list) and (node_type, name) in USER_FILE_COMBOS:
                validate = getattr(NODE_CLASS_MAPPINGS[node_type], "VALIDATE_INPUTS", None)
                assert validate is not None and name in inspect.signature(validate).parameters, (
                    f"{node_type}.{name} lists user files: VALIDATE_INPUTS must take it, or ComfyUI rejects "
                    "a workflow whose file is not in the list")
                rows.append((name, "COMBO", options))
            elif isinstance(kind, list):
                rows.append((name, "COMBO", dict(options, options=kind)))
            else:
                rows.append((name, kind, options))
    return rows


def node_signature(node_type: str) -> tuple[list[tuple[str, str, dict]], list[str]]:
    if node_type in NODE_CLASS_MAPPINGS:
        return our_inputs(node_type), list(NODE_CLASS_MAPPINGS[node_type].RETURN_TYPES)
    core = CORE_NODES[node_type]
    return core["inputs"], core["outputs"]


def expected_widgets(inputs: list[tuple[str, str, dict]]) -> list[tuple[str, str, dict]]:
    """The widget values the front end saves, in order, including the extra seed-control and
    upload-button values it adds.

    The front end's image-upload extension (Comfy.UploadImage) appends an `upload` input to the
    node's *required* inputs, so its button (which saves "image") comes after every required
    widget and before the optional ones, not beside the combo it fills. A seed's "control after
    generate" value follows the seed. Checked by saving fresh nodes from front ends 1.27.10 and
    1.58.1 (tests/test_comfyui_e2e.py checks it again on a real server): Load Image (focal length)
    saves [image, fallback_focal_mm, "image"].
    """
    required, optional, upload = [], [], False
    for name, kind, options in inputs:
        if (options.get("image_upload") or options.get("video_upload")) and not options.get("optional"):
            upload = True
        if kind not in WIDGET_TYPES or options.get("forceInput"):
            continue
        into = optional if options.get("optional") else required
        into.append((name, kind, options))
        if options.get("control_after_generate"):
            into.append((f"{name} control", "SEED_CONTROL", {}))
    return required + ([("upload", "UPLOAD", {})] if upload else []) + optional


def check_value(where: str, kind: str, options: dict, value) -> None:
    if kind == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an INT"
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: {value!r} is not a FLOAT"
    elif kind == "STRING":
        assert isinstance(value, str), f"{where}: {value!r} is not a STRING"
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), f"{where}: {value!r} is not a BOOLEAN"
    elif kind == "COMBO" and "options" in options:
        assert value in options["options"], f"{where}: {value!r} not in {options['options']}"
    elif kind == "COMBO":  # file lists (checkpoints, uploads) depend on the user's folders
        assert isinstance(value, str) and value, f"{where}: {value!r} is not a file name"
    elif kind == "SEED_CONTROL":
        assert value in SEED_CONTROL, f"{where}: {value!r} is not a seed control"
    elif kind in FRONTEND_WIDGETS:
        assert value == FRONTEND_WIDGETS[kind], f"{where}: the front end saves {FRONTEND_WIDGETS[kind]!r}, got {value!r}"
    elif kind == "UPLOAD":
        assert value == "image", f"{where}: the upload button saves 'image', got {value!r}"
    if kind in ("INT", "FLOAT"):
        assert options.get("min", value) <= value <= options.get("max", value), f"{where}: {value} out of range"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_workflows_are_shipped():
    assert len(WORKFLOWS) >= 4
    names = " ".join(p.name for p in WORKFLOWS)
    for piece in ("ply", "video", "text", "focal", "stereo", "moving_shot"):
        assert piece in names


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_ui_format_fields(path):
    wf = load(path)
    for key in ("last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra", "version"):
        assert key in wf, f"{path.name} lacks top-level '{key}'"
    ids = [n["id"] for n in wf["nodes"]]
    assert len(set(ids)) == len(ids) and wf["last_node_id"] >= max(ids)
    assert wf["last_link_id"] >= max((link[0] for link in wf["links"]), default=0)
    for node in wf["nodes"]:
        for key in ("id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties",
                    "widgets_values"):
            assert key in node, f"{path.name}: node {node.get('id')} lacks '{key}'"
    assert sorted(n["order"] for n in wf["nodes"]) == list(range(len(wf["nodes"])))
    assert any(n["type"] in FRONTEND_ONLY and n["widgets_values"][0].strip() for n in wf["nodes"]), \
        f"{path.name} has no note explaining it"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_node_types_and_widgets(comfy_base, path):
    # after start-up the example photos are in input/, so our file lists must offer them
    spec = importlib.util.spec_from_file_location("sharp_prestartup_wf", ROOT / "prestartup_script.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    for node in load(path)["nodes"]:
        kind = node["type"]
        if kind in FRONTEND_ONLY:
            continue
        assert kind in NODE_CLASS_MAPPINGS or kind in CORE_NODES, f"{path.name}: unknown node type {kind}"
        inputs, _ = node_signature(kind)
        widgets = expected_widgets(inputs)
        values = node["widgets_values"]
        assert len(values) == len(widgets), (
            f"{path.name}: {kind} has {len(values)} widget values, expected {[w[0] for w in widgets]}")
        for (name, wkind, options), value in zip(widgets, values):
            check_value(f"{path.name}: {kind}.{name}", wkind, options, value)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_links_connect_compatible_types(path):
    wf = load(path)
    nodes = {n["id"]: n for n in wf["nodes"]}
    for link_id, src, src_slot, dst, dst_slot, link_type in wf["links"]:
        source, target = nodes[src], nodes[dst]
        _, outputs = node_signature(source["type"])
        inputs, _ = node_signature(target["type"])
        out_type = outputs[src_slot]
        socket = target["inputs"][dst_slot]
        declared = {name: kind for name, kind, _ in inputs}
        where = f"{path.name}: link {link_id} {source['type']}[{src_slot}] -> {target['type']}.{socket['name']}"
        assert socket["name"] in declared, f"{where}: no such input"
        assert out_type == link_type == declared[socket["name"]] == socket["type"], f"{where}: type mismatch"
        assert socket["link"] == link_id and link_id in source["outputs"][src_slot]["links"], f"{where}: dangling"
        assert source["outputs"][src_slot]["type"] == out_type


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_required_sockets_are_connected(path):
    for node in load(path)["nodes"]:
        if node["type"] in FRONTEND_ONLY:
            continue
        inputs, _ = node_signature(node["type"])
        linked = {s["name"] for s in node["inputs"] if s["link"] is not None}
        for name, kind, options in inputs:
            socket = kind not in WIDGET_TYPES or options.get("forceInput")
            if socket and not options.get("optional"):
                assert name in linked, f"{path.name}: {node['type']}.{name} is not connected"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_photos_the_workflows_load_are_bundled(path):
    bundled = {p.name for p in (ROOT / "examples").iterdir()}
    for node in load(path)["nodes"]:
        if node["type"] in ("LoadImage", "SharpLoadImage", "LoadVideo"):
            assert node["widgets_values"][0] in bundled


def test_photo_to_ply_previews_the_prediction():
    wf = load(ROOT / "workflows" / "sharp_1_photo_to_ply.json")
    nodes = {n["id"]: n for n in wf["nodes"]}
    sources = {(link[3], link[4]): nodes[link[1]]["type"] for link in wf["links"]}
    previews = [n for n in wf["nodes"] if n["type"] == "SharpPreviewGaussians"]
    assert len(previews) == 1, "workflow 1 shows the scene in Preview Gaussians"
    assert sources[(previews[0]["id"], 0)] == "SharpPredict"


def test_ply_edit_workflow_previews_the_edited_scene():
    wf = load(ROOT / "workflows" / "sharp_5_ply_edit_preview.json")
    nodes = {n["id"]: n for n in wf["nodes"]}
    sources = {(link[3], link[4]): nodes[link[1]]["type"] for link in wf["links"]}
    by_type = {n["type"]: n for n in wf["nodes"]}
    assert sources[(by_type["SharpEditGaussians"]["id"], 0)] == "SharpLoadGaussians"
    for shown in ("SharpPreviewGaussians", "SharpSaveGaussians"):
        assert sources[(by_type[shown]["id"], 0)] == "SharpEditGaussians", f"{shown} shows the edited scene"
    edit_values = dict(zip([w[0] for w in expected_widgets(our_inputs("SharpEditGaussians"))],
                           by_type["SharpEditGaussians"]["widgets_values"]))
    assert edit_values["orientation"] == "OpenCV -> y-up viewer" and edit_values["max_splats"] > 0
    # the file workflow 1 writes, loaded from the output folder
    saved = nodes[[n["id"] for n in wf["nodes"] if n["type"] == "SharpSaveGaussians"][0]]
    workflow_1 = load(ROOT / "workflows" / "sharp_1_photo_to_ply.json")
    prefix = next(n for n in workflow_1["nodes"] if n["type"] == "SharpSaveGaussians")["widgets_values"][0]
    assert by_type["SharpLoadGaussians"]["widgets_values"][1] == f"{prefix}_00001_.ply [output]"
    assert saved["widgets_values"][0] != prefix, "the edited PLY gets its own name, apart from workflow 1's"


def test_photo_to_mesh_previews_the_saved_glb():
    wf = load(ROOT / "workflows" / "sharp_7_photo_to_mesh.json")
    nodes = {n["id"]: n for n in wf["nodes"]}
    sources = {(link[3], link[4]): nodes[link[1]]["type"] for link in wf["links"]}
    by_type = {n["type"]: n for n in wf["nodes"]}
    mesh, preview = by_type["SharpToMesh"], by_type["Preview3D"]
    assert sources[(mesh["id"], 0)] == "SharpPredict" and sources[(mesh["id"], 1)] == "LoadImage"
    model_file = [i for i, s in enumerate(preview["inputs"]) if s["name"] == "model_file"][0]
    assert sources[(preview["id"], model_file)] == "SharpToMesh"
    values = dict(zip([w[0] for w in expected_widgets(our_inputs("SharpToMesh"))], mesh["widgets_values"]))
    assert values["format"] == "glb" and values["filename_prefix"].startswith("3d/")  # where ComfyUI's 3D nodes look


def _sources(wf: dict) -> dict[tuple[int, int], str]:
    nodes = {n["id"]: n for n in wf["nodes"]}
    return {(link[3], link[4]): nodes[link[1]]["type"] for link in wf["links"]}


def _widget_values(node: dict) -> dict:
    return dict(zip([w[0] for w in expected_widgets(node_signature(node["type"])[0])], node["widgets_values"]))


def test_photo_to_stereo_video_renders_side_by_side_into_a_video():
    wf = load(ROOT / "workflows" / "sharp_6_photo_to_stereo_video.json")
    sources, by_type = _sources(wf), {n["type"]: n for n in wf["nodes"]}
    render, create, save = by_type["SharpRender"], by_type["CreateVideo"], by_type["SaveVideo"]
    assert sources[(by_type["SharpPredict"]["id"], 1)] == "LoadImage"
    assert sources[(render["id"], 0)] == "SharpPredict"
    assert sources[(create["id"], 0)] == "SharpRender" and sources[(save["id"], 0)] == "CreateVideo"
    values = _widget_values(render)
    assert values["camera_path"] == "rotate_forward" and values["stereo"] == "side-by-side"
    assert values["interaxial_mm"] == 63.0 and values["frames"] > 1


def test_video_to_moving_shot_renders_scene_i_at_camera_i():
    wf = load(ROOT / "workflows" / "sharp_8_video_to_moving_shot.json")
    sources, by_type = _sources(wf), {n["type"]: n for n in wf["nodes"]}
    predict, render = by_type["SharpPredict"], by_type["SharpRender"]
    assert sources[(by_type["GetVideoComponents"]["id"], 0)] == "LoadVideo"
    assert sources[(predict["id"], 1)] == "GetVideoComponents"
    assert sources[(render["id"], 0)] == "SharpPredict"
    assert sources[(by_type["CreateVideo"]["id"], 0)] == "SharpRender"
    assert sources[(by_type["SaveVideo"]["id"], 0)] == "CreateVideo"
    values = _widget_values(render)
    assert values["sequence"] == "scene i at camera i" and values["align_scale"] is True
    clip = ROOT / "examples" / by_type["LoadVideo"]["widgets_values"][0]
    data = clip.read_bytes()
    assert data[4:8] == b"ftyp" and len(data) < 300_000, "a small MP4 the core Load Video lists (video/mp4)"


def test_compact_formats_workflow_saves_one_prediction_in_each_compact_format():
    from sharp_core import FORMATS

    wf = load(ROOT / "workflows" / "sharp_9_compact_formats.json")
    nodes = {n["id"]: n for n in wf["nodes"]}
    sources = {(link[3], link[4]): nodes[link[1]]["type"] for link in wf["links"]}
    assert [n["type"] for n in wf["nodes"]].count("SharpPredict") == 1, "the photo is predicted once"
    names = [w[0] for w in expected_widgets(our_inputs("SharpSaveGaussians"))]
    saves = [dict(zip(names, n["widgets_values"])) | {"id": n["id"]} for n in wf["nodes"] if n["type"] == "SharpSaveGaussians"]
    by_label = {f.label: f.name for f in FORMATS.values()}
    formats = {by_label[s["format"]] for s in saves}
    assert {"sog", "compressed-ply", "glb"} <= formats and "sharp-ply" not in formats
    assert all(sources[(s["id"], 0)] == "SharpPredict" for s in saves)
    assert len({s["filename_prefix"] for s in saves}) == len(saves), "each file gets its own name"
    headset = [s for s in saves if s["max_splats"]]
    assert len(headset) == 1 and 200_000 <= headset[0]["max_splats"] <= 400_000


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_workflow_has_a_thumbnail(path):
    """The template browser shows `<name>.jpg` beside `<name>.json` as the workflow's picture."""
    from PIL import Image

    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{path.name} has no thumbnail {thumbnail.name} beside it"
    size = thumbnail.stat().st_size
    assert 8_000 <= size <= 100_000, f"{thumbnail.name} is {size} bytes: keep it a small picture (about 30-60 KB)"
    with Image.open(thumbnail) as image:
        assert image.format == "JPEG", f"{thumbnail.name} is a {image.format}, not a JPEG"
        width, height = image.size
        assert 256 <= width <= 1024 and 192 <= height <= 1024, f"{thumbnail.name} is {width}x{height}"
        colours = image.convert("RGB").resize((32, 32)).getcolors(1024)
        assert colours is None or len(colours) > 16, f"{thumbnail.name} is (nearly) a flat colour"
