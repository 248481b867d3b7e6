// The viewer's initial view (web/sharp_viewer.js: viewBasis, initialOrbit, initialCamera), under
// `node --test tests/js/`. Pure functions: no WebGL needed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

import { initialCamera, initialOrbit, orbitWorldToCamera, viewBasis } from "../../web/sharp_viewer.js";
import { parseHeader } from "../../web/sharp_preview_format.js";
import { python } from "./python_helper.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function header(view, { focalPx = 500, imageWidth = 640, imageHeight = 480 } = {}) {
  return { focalPx, imageWidth, imageHeight, focusDepth: 2.5, view };
}

// world point -> [u, v, depth] through a camera {fx, fy, cx, cy, worldToCamera (row-major 4x4)}
function project(cam, p) {
  const m = cam.worldToCamera;
  const c = [0, 1, 2].map((r) => m[4 * r] * p[0] + m[4 * r + 1] * p[1] + m[4 * r + 2] * p[2] + m[4 * r + 3]);
  return [cam.fx * c[0] / c[2] + cam.cx, cam.fy * c[1] / c[2] + cam.cy, c[2]];
}

const near = (a, b, tol = 1e-9) => Math.abs(a - b) <= tol;

test("a camera-framed scene opens exactly at the source camera (identity pose)", () => {
  const h = header({ target: [0, 0, 2.5], distance: 2.5, forward: [0, 0, 1], up: [0, -1, 0], cameraFramed: true });
  const cam = initialCamera(h, 320, 240);
  assert.deepEqual(cam.worldToCamera.map((x) => x + 0), [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  assert.deepEqual([cam.fx, cam.fy, cam.cx, cam.cy], [250, 250, 160, 120]);  // the photo fitted to the canvas
  const o = initialOrbit(h);
  assert.deepEqual([o.focus, o.distance, o.yaw, o.pitch], [[0, 0, 2.5], 2.5, 0, 0]);
  // a pivot closer than 5 cm moves out, the camera stays at the origin
  const tiny = initialOrbit(header({ target: [0, 0, 0.01], distance: 0.01, forward: [0, 0, 1], up: [0, -1, 0],
    cameraFramed: true }));
  assert.deepEqual([tiny.focus, tiny.distance], [[0, 0, 0.05], 0.05]);
  assert.deepEqual(orbitWorldToCamera(tiny).map((x) => x + 0), [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
});

test("a y-up scene is seen from +z, upright: target at the image centre, +y up, +x right", () => {
  const target = [1, 2, -3];
  const h = header({ target, distance: 4, forward: [0, 0, -1], up: [0, 1, 0], cameraFramed: false });
  const cam = initialCamera(h, 400, 300);
  const [u, v, depth] = project(cam, target);
  assert.ok(near(u, cam.cx) && near(v, cam.cy) && near(depth, 4), `${u} ${v} ${depth}`);
  const above = project(cam, [1, 2.5, -3]);
  const right = project(cam, [1.5, 2, -3]);
  assert.ok(above[1] < cam.cy - 1 && near(above[0], cam.cx), "world +y must point up in the image");
  assert.ok(right[0] > cam.cx + 1 && near(right[1], cam.cy), "world +x must point right in the image");
  // the camera sits at target - distance * forward = (1, 2, 1)
  assert.ok(near(project(cam, [1, 2, 1 - 1e-3])[2], 1e-3, 1e-12));
});

test("orbiting any stored view keeps the target at the image centre and at the same distance", () => {
  const target = [-0.7, 0.4, 5];
  const h = header({ target, distance: 3, forward: [0.3, -0.2, 0.9], up: [0.1, 1, 0.2], cameraFramed: false });
  const basis = viewBasis(h.view.forward, h.view.up);
  const cols = [0, 1, 2].map((c) => [basis[c], basis[3 + c], basis[6 + c]]);
  const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  for (let i = 0; i < 3; i++) {
    for (let j = 0; j < 3; j++) assert.ok(near(dot(cols[i], cols[j]), i === j ? 1 : 0, 1e-12));
  }
  const f = h.view.forward, fl = Math.hypot(...f);
  cols[2].forEach((c, i) => assert.ok(near(c, f[i] / fl, 1e-12)));   // z axis = forward
  assert.ok(dot(cols[1], h.view.up) < 0);                            // image y (down) opposes up
  for (const [yaw, pitch] of [[0, 0], [0.8, -0.4], [-2, 1.2]]) {
    const orbit = { ...initialOrbit(h), yaw, pitch };
    const cam = { fx: 100, fy: 100, cx: 50, cy: 40, worldToCamera: orbitWorldToCamera(orbit) };
    const [u, v, depth] = project(cam, target);
    assert.ok(near(u, 50, 1e-9) && near(v, 40, 1e-9) && near(depth, 3, 1e-9), `${yaw} ${pitch}: ${u} ${v} ${depth}`);
  }
  // yaw turns about the initial image's vertical (`up` made orthogonal to forward): the camera's
  // height along it does not change
  const up = cols[1].map((c) => -c);
  const height = (yaw) => {
    const m = orbitWorldToCamera({ ...initialOrbit(h), yaw });
    const centre = [0, 1, 2].map((i) => -(m[i] * m[3] + m[4 + i] * m[7] + m[8 + i] * m[11]));
    return dot(centre, up);
  };
  assert.ok(near(height(0), height(1.3), 1e-9));
});


// The Python side computes the same pose (InitialView.world_to_camera): both must agree.
const skipPython = python() ? false : "no Python with torch";
test("agrees with the Python initial view of an edited scene", { skip: skipPython }, () => {
  const script = `
import base64, json, sys, torch
from sharp_core import edit
from sharp_core.gaussians import Gaussians
from sharp_core.preview_file import decode_preview, encode_preview
g = torch.Generator().manual_seed(5)
n = 3000
z = 1.0 + 8 * torch.rand(n, generator=g)
xy = (torch.rand(n, 2, generator=g) - 0.5) * z[:, None] * 0.8
scene = Gaussians(means=torch.cat([xy, z[:, None]], 1), scales=(z / 400)[:, None].expand(n, 3).clone(),
    quats=torch.randn(n, 4, generator=g), colors=torch.rand(n, 3, generator=g),
    opacities=torch.rand(n, generator=g), focal_px=[400.0], image_size=[(320, 240)])
scene = edit.transform(edit.recenter(scene), rotation=edit.OPENCV_TO_Y_UP, translation=[3.0, 1.0, -2.0])
data = encode_preview(scene)
view = decode_preview(data).view
json.dump({"file": base64.b64encode(data).decode(), "w2c": view.world_to_camera().reshape(-1).tolist(),
    "framed": view.camera_framed}, sys.stdout)
`;
  const out = execFileSync(python(), ["-c", script], {
    cwd: REPO, env: { ...process.env, PYTHONPATH: REPO }, maxBuffer: 16 << 20,
  });
  const ref = JSON.parse(out.toString());
  const bytes = Buffer.from(ref.file, "base64");
  const h = parseHeader(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  assert.equal(ref.framed, false);
  assert.deepEqual(h.view.forward, [0, 0, -1]);
  assert.deepEqual(h.view.up, [0, 1, 0]);
  const cam = initialCamera(h, 320, 240);
  cam.worldToCamera.forEach((x, i) => assert.ok(near(x, ref.w2c[i], 1e-5), `w2c[${i}]: ${x} vs ${ref.w2c[i]}`));
  const [u, v] = project(cam, h.view.target);
  assert.ok(near(u, 160, 1e-6) && near(v, 120, 1e-6));
});
