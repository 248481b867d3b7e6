"""The viewer drives the render: what it stores renders to what it shows; loading is progressive.

In headless Chromium (SwiftShader WebGL2) the viewer opens a preview file on a 320 x 240 canvas, the
camera is moved as a user would (orbit, zoom, then keyboard fly with D + E), and "use view" / "+ key"
store the camera views (JSON, the Preview node's `camera_views` widget). Each stored view, parsed by
`sharp_core.parse_camera_views` and rendered by `sharp_core.render(scene, camera_from_view(view))`,
must match the viewer's own screenshot of that view:
  - same framing and colours: PSNR >= 40 dB against the decoded preview scene (the renderers differ
    only in sort and blending precision; measured 59.5 and 59.3 dB);
  - and the comparison can fail: the same render with the camera turned by 1 degree scores at least
    10 dB lower (measured 21.7 and 20.3 dB).
A 1,179,648-splat preview sent at about 50 MB/s (1 MB every 20 ms) draws a coarse picture from its
first 16,384 records (the most visible: 78 % of the pixels covered, as many as the full scene)
before the file is complete, then the whole scene; the times are printed, not asserted (first
picture 448 ms after the response, complete 6.5 s, in SwiftShader on 2 quiet cores; the records are
ready after about 25 ms, the rest is software rasterization; `python -m benchmarks.viewer` gives the
frame times).
The viewer's state (background, quality, view) restored into a new viewer gives the same picture.
"""

from __future__ import annotations

import base64
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from chromium_harness import PageError, find_chromium, module_page, run_page
from sharp_core import Camera, camera_from_view, parse_camera_views
from sharp_core.preview_file import decode_preview, encode_preview
from sharp_core.rendering import render
from test_viewer_browser import fixture_scene, psnr

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="Chromium not installed (apt-get install -y chromium)")

WIDTH, HEIGHT = 320, 240
FIRST_PICTURE_SPLATS = 16_384  # web/sharp_viewer_controls.js

CAMERA_PAGE = """
const { SplatViewer } = await import("/web/sharp_viewer.js");
const box = document.createElement("div");
box.style.cssText = "width: %(w)dpx; height: %(h)dpx";
document.body.appendChild(box);
let stored = "";
const viewer = new SplatViewer(box, {pixelRatio: 1, cameraViews: {get: () => stored, set: (t) => { stored = t; }}});
if (!viewer.supported) { await report({error: "WebGL2 unavailable in this Chromium"}); return; }
await viewer.loadStream(await fetch("/__page/scene.shpv"));
const shot = async () => {
  await viewer.sortNow();
  const px = viewer.readPixels();
  let bin = "";
  for (let i = 0; i < px.length; i += 8192) bin += String.fromCharCode.apply(null, px.subarray(i, i + 8192));
  return btoa(bin);
};
const frames = (n) => new Promise((done) => {
  const step = () => (n-- > 0 ? requestAnimationFrame(step) : done());
  requestAnimationFrame(step);
});
// orbit and zoom, as a drag and the wheel do
viewer.orbit.yaw += 0.15;
viewer.orbit.pitch -= 0.1;
viewer.orbit.distance *= 0.8;
const first = await shot();
const views1 = viewer.storeView("use");
// fly: D (right) and E (up) held for a few frames
viewer.root.focus();
for (const code of ["KeyD", "KeyE"]) viewer.root.dispatchEvent(new KeyboardEvent("keydown", {code, bubbles: true}));
await frames(8);
for (const code of ["KeyD", "KeyE"]) viewer.root.dispatchEvent(new KeyboardEvent("keyup", {code, bubbles: true}));
await frames(3);
const second = await shot();
const views2 = viewer.storeView("add");
await report({views: stored, counts: [views1, views2], images: [first, second],
              width: viewer.canvas.width, height: viewer.canvas.height});
viewer.dispose();
"""


def reference(gaussians, camera: Camera, width: int, height: int) -> np.ndarray:
    color = render(gaussians, camera, width, height, background=(0.0, 0.0, 0.0), backend="torch").color
    return (color.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


def turned(camera: Camera, degrees: float) -> Camera:
    """The camera turned about its own vertical axis."""
    a = math.radians(degrees)
    rot = torch.eye(4)
    rot[0, 0], rot[0, 2], rot[2, 0], rot[2, 2] = math.cos(a), math.sin(a), -math.sin(a), math.cos(a)
    return Camera(intrinsics=camera.intrinsics, world_to_camera=rot @ camera.world_to_camera)


def test_stored_views_render_to_what_the_viewer_shows():
    scene = fixture_scene()
    preview = encode_preview(scene)
    decoded = decode_preview(preview).to_gaussians()
    try:
        result = run_page(module_page(CAMERA_PAGE % {"w": WIDTH, "h": HEIGHT}), {"scene.shpv": preview},
                          timeout_s=180)
    except PageError as err:
        pytest.fail(str(err))
    assert (result["width"], result["height"]) == (WIDTH, HEIGHT)
    assert result["counts"] == [1, 2], "use view keeps one view, + key appends one"
    views = parse_camera_views(result["views"])  # what the Preview node outputs as SHARP_CAMERA
    assert [(v["width"], v["height"]) for v in views] == [(WIDTH, HEIGHT)] * 2
    cameras = [camera_from_view(v) for v in views]
    for i, (camera, encoded) in enumerate(zip(cameras, result["images"])):
        image = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).reshape(HEIGHT, WIDTH, 4)[..., :3]
        expected = reference(decoded, camera, WIDTH, HEIGHT)
        assert expected.mean() > 10, "the stored view should look at the scene"
        value = psnr(image, expected)
        print(f"view {i + 1}: viewer screenshot vs sharp_core.render of the stored view: PSNR {value:.1f} dB")
        assert value >= 40.0, f"view {i + 1}: PSNR {value:.1f} dB < 40 dB: the stored view is not the one shown"
        off = psnr(image, reference(decoded, turned(camera, 1.0), WIDTH, HEIGHT))
        print(f"view {i + 1}: same, camera turned by 1 degree: PSNR {off:.1f} dB")
        assert off < value - 10.0, "a 1-degree error in the stored camera must show"
    # the fly keys moved the camera right (+x) and up (-y) in its own frame, without turning it
    r0, r1 = cameras[0].world_to_camera[:3, :3], cameras[1].world_to_camera[:3, :3]
    assert torch.allclose(r0, r1, atol=1e-6)
    moved = r0 @ (cameras[1].position - cameras[0].position)
    assert moved[0] > 1e-3 and moved[1] < -1e-3 and abs(float(moved[2])) < 1e-4, moved


STREAM_PAGE = """
const { SplatViewer } = await import("/web/sharp_viewer.js");
const box = document.createElement("div");
box.style.cssText = "width: 160px; height: 160px";
document.body.appendChild(box);
const coverage = (px) => {
  let on = 0;
  for (let i = 0; i < px.length; i += 4) if (Math.max(px[i], px[i + 1], px[i + 2]) > 8) on++;
  return on / (px.length / 4);
};
const pictures = [];
const viewer = new SplatViewer(box, {pixelRatio: 1, interactive: false,
  onPicture: (p) => pictures.push({...p, coverage: coverage(viewer.readPixels())})});
if (!viewer.supported) { await report({error: "WebGL2 unavailable in this Chromium"}); return; }
const response = await fetch("/__page/big.shpv");
await viewer.loadStream(response);
const total = viewer.header.count;
const full = viewer.readPixels();
viewer.setQuality(3);
await viewer.sortNow();
const capped = {limit: viewer.sortedLimit, visible: viewer.visible, coverage: coverage(viewer.readPixels())};
// the state a workflow keeps, restored in a fresh viewer, shows the same picture
viewer.toggleBackground();
viewer.applyState({...viewer.getState(), orbit: {...viewer.orbit, yaw: viewer.orbit.yaw + 0.2}});
const state = JSON.parse(JSON.stringify(viewer.getState()));
await viewer.sortNow();
const before = viewer.readPixels();
viewer.dispose();
const box2 = document.createElement("div");
box2.style.cssText = "width: 160px; height: 160px";
document.body.appendChild(box2);
const again = new SplatViewer(box2, {pixelRatio: 1, interactive: false});
again.applyState(state);
await again.loadStream(await fetch("/__page/big.shpv"));
const after = again.readPixels();
let same = 0;
for (let i = 0; i < after.length; i++) if (Math.abs(after[i] - before[i]) <= 1) same++;
await report({total, timing: viewer.timing, pictures, fullCoverage: coverage(full), capped, state,
              restored: again.getState(), sameFraction: same / after.length});
again.dispose();
"""


@pytest.fixture(scope="module")
def big_preview() -> bytes:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.preview import sharp_like_scene

    return encode_preview(sharp_like_scene(), max_splats=0)


def test_a_full_size_preview_loads_progressively(big_preview):
    try:
        result = run_page(module_page(STREAM_PAGE), {"big.shpv": big_preview}, timeout_s=300,
                          trickle=(1 << 20, 0.02))
    except PageError as err:
        pytest.fail(str(err))
    total, timing, pictures = result["total"], result["timing"], result["pictures"]
    assert total == 2 * 768 * 768
    print(f"{total:,} splats, {len(big_preview) / 1e6:.1f} MB at ~50 MB/s: first picture "
          f"{timing['firstPictureMs']:.0f} ms after the response ({timing['firstSplats']:,} splats), "
          f"complete {timing['completeMs']:.0f} ms; coverage first {pictures[0]['coverage']:.0%}, "
          f"full {result['fullCoverage']:.0%}")
    first, last = pictures[0], pictures[-1]
    assert first["splats"] == FIRST_PICTURE_SPLATS < total, "the first picture is drawn from a prefix, early"
    assert last["splats"] == total and timing["firstPictureMs"] < timing["completeMs"]
    assert first["coverage"] > 0.5, "the most visible 5 % of the splats already show the scene"
    assert result["fullCoverage"] >= first["coverage"] - 0.01
    capped = result["capped"]
    assert capped["limit"] == 100_000 and 0 < capped["visible"] <= 100_000 and capped["coverage"] > 0.5
    state = result["state"]
    assert state["background"] == 1 and state["quality"] == 3 and state["orbit"]["yaw"] != 0
    assert result["restored"] == state
    assert result["sameFraction"] > 0.999, "a restored state shows the same picture"
