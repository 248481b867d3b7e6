// The viewer's pure control logic (web/sharp_viewer_controls.js), the streaming assembler and the
// sorter's prefix sort, under `node --test tests/js/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

import {
  FIRST_PICTURE_SPLATS, QUALITY_LEVELS, cameraViewDict, drawLimit, flyDelta, isFlyKey, nextCommit, readCameraViews,
  sanitizeState, statsText, updateCameraViews,
} from "../../web/sharp_viewer_controls.js";
import { PreviewAssembler, parseHeader } from "../../web/sharp_preview_format.js";
import { DepthSorter, sortByDepth } from "../../web/sharp_sort.js";
import { orbitWorldToCamera, viewBasis } from "../../web/sharp_viewer.js";
import { python } from "./python_helper.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const near = (a, b, tol = 1e-9) => Math.abs(a - b) <= tol;

test("cameraViewDict: the viewer's matrix unchanged, fov from fy, sharp_core.camera_from_view agrees", (t) => {
  const worldToCamera = orbitWorldToCamera({ focus: [0.2, -0.1, 3], distance: 2.5, yaw: 0.3, pitch: -0.2,
    basis: viewBasis([0, 0, 1], [0, -1, 0]) });
  const view = cameraViewDict({ fx: 300, fy: 300, cx: 200, cy: 150, worldToCamera }, 400, 300);
  assert.deepEqual(view.world_to_camera.flat(), worldToCamera.map((x) => x + 0));
  assert.ok(near(view.fov_y_deg, 2 * Math.atan(150 / 300) * 180 / Math.PI));
  assert.deepEqual([view.width, view.height], [400, 300]);
  assert.throws(() => cameraViewDict({ fy: 1, worldToCamera: [1, 2] }, 1, 1), /16 numbers/);
  const py = python();
  if (!py) return t.skip("no Python with torch");
  // the engine reads the same pinhole back: focal 300 px, principal point at the canvas centre
  const out = execFileSync(py, ["-c", `
import json, sys
from sharp_core import camera_from_view, parse_camera_views
views = parse_camera_views(sys.stdin.read())
cam = camera_from_view(views[0])
print(json.dumps({"k": cam.intrinsics.tolist(), "m": cam.world_to_camera.reshape(-1).tolist()}))
`], { cwd: REPO, input: updateCameraViews("", "use", view) }).toString();
  const { k, m } = JSON.parse(out);
  assert.ok(near(k[0][0], 300, 1e-3) && near(k[1][1], 300, 1e-3) && near(k[0][2], 200, 1e-6) && near(k[1][2], 150, 1e-6));
  m.forEach((x, i) => assert.ok(near(x, worldToCamera[i], 1e-6), `entry ${i}`));
});

test("camera views text: use keeps one, add appends, clear empties; unreadable text counts as none", () => {
  const a = { world_to_camera: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], fov_y_deg: 50, width: 4, height: 3 };
  const b = { ...a, fov_y_deg: 30 };
  let text = updateCameraViews("", "add", a);
  assert.deepEqual(readCameraViews(text), [a]);
  text = updateCameraViews(text, "add", b);
  assert.deepEqual(readCameraViews(text), [a, b]);
  assert.deepEqual(readCameraViews(updateCameraViews(text, "use", b)), [b]);
  assert.equal(updateCameraViews(text, "clear"), "");
  assert.deepEqual(readCameraViews("not json"), []);
  assert.deepEqual(readCameraViews(JSON.stringify(a)), [a]);  // one view object typed by hand
  assert.deepEqual(readCameraViews(updateCameraViews("[{", "add", a)), [a]);  // a broken value is replaced
  assert.throws(() => updateCameraViews("", "add"), /needs a view/);
  assert.throws(() => updateCameraViews("", "bogus", a), /unknown/);
});

test("keyboard fly moves along the camera's own axes, scaled by distance and time; shift is faster", () => {
  // a camera turned 90 degrees about y: its forward is world +x (worldToCamera rows = camera axes)
  const m = orbitWorldToCamera({ focus: [0, 0, 0], distance: 2, yaw: Math.PI / 2, pitch: 0 });
  const forward = [m[8], m[9], m[10]];
  const w = flyDelta(new Set(["KeyW"]), m, 2, 0.5);
  const step = 0.6 * 2 * 0.5;
  w.forEach((x, i) => assert.ok(near(x, step * forward[i], 1e-12)));
  const fast = flyDelta(new Set(["KeyW"]), m, 2, 0.5, true);
  assert.ok(near(Math.hypot(...fast), 4 * step, 1e-12));
  // E rises: against the camera's y axis, which points down
  const e = flyDelta(new Set(["KeyE"]), m, 2, 0.5);
  assert.ok(near(e[0] * m[4] + e[1] * m[5] + e[2] * m[6], -step, 1e-12));
  // diagonal keys keep the speed; opposite keys cancel; other keys do nothing
  assert.ok(near(Math.hypot(...flyDelta(new Set(["KeyW", "KeyD"]), m, 2, 0.5)), step, 1e-12));
  assert.deepEqual(flyDelta(new Set(["KeyA", "KeyD"]), m, 2, 0.5), [0, 0, 0]);
  assert.ok(isFlyKey("KeyQ") && !isFlyKey("KeyX") && !isFlyKey("toString"));
});

test("quality caps the splats drawn; progressive commits: a small first picture, then doublings", () => {
  assert.equal(drawLimit(1_179_648, 0), 1_179_648);
  assert.deepEqual(QUALITY_LEVELS.slice(1).map((_, i) => drawLimit(1_179_648, i + 1)), [600_000, 300_000, 100_000]);
  assert.equal(drawLimit(50_000, 3), 50_000);
  const total = 1_179_648;
  assert.equal(nextCommit(FIRST_PICTURE_SPLATS - 1, 0, total, false), 0);
  assert.equal(nextCommit(70_000, 0, total, false), FIRST_PICTURE_SPLATS);  // exactly the first batch
  assert.equal(nextCommit(30_000, FIRST_PICTURE_SPLATS, total, false), 0);  // not yet doubled
  assert.equal(nextCommit(70_000, FIRST_PICTURE_SPLATS, total, false), 17 * 4096);  // whole rows only
  assert.equal(nextCommit(1_100_000, 1_048_576, total, false), 0);  // less than double: wait for more
  assert.equal(nextCommit(total, 1_048_576, total, false), total);  // all in (whole rows)
  assert.equal(nextCommit(total, 1_048_576, total, true), total);
  assert.equal(nextCommit(total, total, total, true), 0);
  assert.equal(nextCommit(500, 0, 500, false), 500);  // a small file at once
});

test("the stats line: drawn of total, fps, payload size, loading progress", () => {
  assert.equal(statsText({ drawn: 1_179_648, total: 1_179_648, fps: 42.4, bytes: 18_874_496 }),
    "1,179,648 splats · 42 fps · 18.9 MB");
  assert.equal(statsText({ drawn: 100_000, total: 1_179_648, fps: 3.26, bytes: 18_874_496, loaded: 589_824 }),
    "100,000 / 1,179,648 splats · 3.3 fps · 18.9 MB · loading 50 %");
});

test("saved state: good fields restored, malformed ones dropped", () => {
  const orbit = { focus: [1, 2, 3], distance: 2, yaw: 0.1, pitch: -0.2, basis: [1, 0, 0, 0, 1, 0, 0, 0, 1] };
  assert.deepEqual(sanitizeState({ background: 2, quality: 1, orbit }), { background: 2, quality: 1, orbit });
  assert.deepEqual(sanitizeState(null), { background: 0, quality: 0, orbit: null });
  const bad = sanitizeState({ background: 7, quality: -1, orbit: { ...orbit, distance: -1 } });
  assert.deepEqual(bad, { background: 0, quality: 0, orbit: null });
  assert.equal(sanitizeState({ orbit: { ...orbit, focus: [1, NaN, 3] } }).orbit, null);
  assert.equal(sanitizeState({ orbit: { ...orbit, basis: [1, 0, 0] } }).orbit, null);
});

function previewBytes(count, version = 2) {
  const headerBytes = version === 1 ? 64 : 128;
  const buf = new ArrayBuffer(headerBytes + 16 * count);
  const v = new DataView(buf);
  "SHPV".split("").forEach((c, i) => v.setUint8(i, c.charCodeAt(0)));
  v.setUint32(4, version, true);
  v.setUint32(8, count, true);
  v.setUint32(12, 2, true);
  const words = new Uint32Array(buf, headerBytes);
  for (let i = 0; i < count; i++) words[4 * i] = 0x3c00 * 0x10001;  // x = y = 1.0
  return new Uint8Array(buf);
}

test("PreviewAssembler: chunks of any size rebuild the file; too many or too few bytes are errors", () => {
  const bytes = previewBytes(1000);
  for (const size of [1, 7, 100, 4096, bytes.length]) {
    const asm = new PreviewAssembler();
    const seen = [];
    for (let i = 0; i < bytes.length; i += size) {
      asm.push(bytes.subarray(i, i + size));
      seen.push(asm.loadedSplats);
    }
    assert.ok(asm.complete, `chunks of ${size}`);
    assert.deepEqual(new Uint8Array(asm.finish()), bytes);
    assert.equal(asm.header.count, 1000);
    assert.ok(asm.header.visibilityOrdered);
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b), "loadedSplats only grows");
  }
  const partial = new PreviewAssembler();
  partial.push(bytes.subarray(0, 128 + 16 * 10 + 5));
  assert.equal(partial.loadedSplats, 10);
  assert.throws(() => partial.finish(), /bytes; 1000 splats need/);
  const over = new PreviewAssembler();
  over.push(bytes);
  assert.throws(() => over.push(new Uint8Array(1)), /more than/);
  assert.throws(() => new PreviewAssembler().finish(), /too short/);
  const v1 = new PreviewAssembler();
  v1.push(previewBytes(3, 1));
  assert.ok(v1.complete && v1.header.headerBytes === 64);
  // a header announcing more splats than a texture holds is refused before any allocation
  const huge = previewBytes(0);
  new DataView(huge.buffer).setUint32(8, 2 ** 31, true);
  assert.throws(() => new PreviewAssembler().push(huge), /at most/);
  assert.throws(() => parseHeader(huge.buffer), /at most/);
});

test("the sorter orders a prefix and takes positions as they arrive", async () => {
  const n = 5000;
  const positions = new Float32Array(n * 3);
  const sorter = new DepthSorter(positions, n, { useWorker: false, filled: 0 });
  for (let i = 0; i < n; i++) positions[3 * i + 2] = 1 + (i * 7919 % n) / n;  // depths 1..2
  sorter.extend(0, n);
  const view = [0, 0, 1, 0, 0.01];
  const { order, visible } = await sorter.sort(view, 1234);
  assert.equal(visible, 1234);
  const picked = Array.from(order.subarray(0, visible));
  assert.ok(picked.every((i) => i < 1234), "only the first 1234 splats");
  for (let k = 1; k < visible; k++) {
    assert.ok(positions[3 * picked[k - 1] + 2] >= positions[3 * picked[k] + 2] - 1e-4, "far to near");
  }
  const all = await sorter.sort(view);
  assert.equal(all.visible, n);
  sorter.dispose();
  assert.equal(sortByDepth(positions, 0, view, new Uint32Array(1), {}), 0);
});
