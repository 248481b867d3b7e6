// Depth sort (web/sharp_sort.js): order, culling, the worker script, the main-thread fallback.
import { test } from "node:test";
import assert from "node:assert/strict";

import { DepthSorter, sortByDepth, sortWorkerSource } from "../../web/sharp_sort.js";

function randomPositions(n, seed = 1) {
  let s = seed;
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
  const p = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    p[3 * i] = rand() * 4 - 2;
    p[3 * i + 1] = rand() * 4 - 2;
    p[3 * i + 2] = rand() * 20 - 5; // some behind the camera
  }
  return p;
}

function depthOf(p, i, view) {
  return view[0] * p[3 * i] + view[1] * p[3 * i + 1] + view[2] * p[3 * i + 2] + view[3];
}

function checkOrder(positions, n, view, order, visible) {
  const near = view[4];
  const expected = [];
  for (let i = 0; i < n; i++) if (depthOf(positions, i, view) > near) expected.push(i);
  assert.equal(visible, expected.length, "every splat in front of the near plane, once");
  assert.deepEqual([...order.subarray(0, visible)].sort((a, b) => a - b), expected);
  // far to near; ties allowed only within one of the 65 536 inverse-depth buckets
  const inv = expected.map((i) => 1 / depthOf(positions, i, view));
  const bucket = (Math.max(...inv) - Math.min(...inv)) / 65535;
  for (let k = 1; k < visible; k++) {
    const a = 1 / depthOf(positions, order[k - 1], view), b = 1 / depthOf(positions, order[k], view);
    assert.ok(a <= b + bucket * 1.01, `position ${k}: ${a} then ${b}`);
  }
}

test("counting sort orders far to near and drops splats behind the near plane", () => {
  const n = 20000;
  const positions = randomPositions(n);
  const scratch = {};
  const out = new Uint32Array(n);
  const straight = [0, 0, 1, 0, 0.01];
  checkOrder(positions, n, straight, out, sortByDepth(positions, n, straight, out, scratch));
  // a turned, moved camera, reusing the same scratch
  const a = 0.7;
  const turned = [Math.sin(a), 0.1, Math.cos(a), 1.5, 0.01];
  checkOrder(positions, n, turned, out, sortByDepth(positions, n, turned, out, scratch));
});

test("nearby depths are ordered exactly (inverse-depth buckets are fine up close)", () => {
  const n = 1000;
  const positions = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) positions[3 * i + 2] = 1 + ((i * 7919) % n) * 1e-3; // 1 mm apart
  positions[3 * (n - 1) + 2] = 500; // one far outlier stretches the range
  const out = new Uint32Array(n);
  const visible = sortByDepth(positions, n, [0, 0, 1, 0, 0.01], out, {});
  assert.equal(visible, n);
  assert.equal(out[0], n - 1);
  for (let k = 2; k < n; k++) assert.ok(positions[3 * out[k - 1] + 2] > positions[3 * out[k] + 2]);
});

test("nothing visible gives an empty order", () => {
  const positions = new Float32Array([0, 0, -1, 0, 0, -2]);
  assert.equal(sortByDepth(positions, 2, [0, 0, 1, 0, 0.01], new Uint32Array(2), {}), 0);
});

test("worker script is self-contained and answers with a transferable order", () => {
  const posted = [];
  const fakeSelf = { postMessage: (msg, transfer) => posted.push({ msg, transfer }) };
  // Runs the source exactly as a worker would, with only `self` and `performance` in scope.
  new Function("self", "performance", sortWorkerSource())(fakeSelf, performance);
  const n = 5000;
  const positions = randomPositions(n, 9);
  fakeSelf.onmessage({ data: { positions, count: n } });
  const view = [0, 0, 1, 0, 0.01];
  fakeSelf.onmessage({ data: { id: 3, view } });
  assert.equal(posted.length, 1);
  const { msg, transfer } = posted[0];
  assert.equal(msg.id, 3);
  assert.deepEqual(transfer, [msg.order.buffer]);
  checkOrder(positions, n, view, msg.order, msg.visible);
  // a recycled buffer is reused, not reallocated
  const spare = new Uint32Array(n);
  fakeSelf.onmessage({ data: { id: 4, view, out: spare } });
  assert.equal(posted[1].msg.order, spare);
});

test("DepthSorter falls back to the main thread where there is no Worker", async () => {
  const n = 3000;
  const positions = randomPositions(n, 4);
  const copy = positions.slice();
  const sorter = new DepthSorter(positions, n, { useWorker: false });
  const view = [0, 0, 1, 0, 0.01];
  const first = await sorter.sort(view);
  checkOrder(copy, n, view, first.order, first.visible);
  sorter.recycle(first.order);
  const second = await sorter.sort([1, 0, 0, 3, 0.01]);
  assert.equal(second.order, first.order, "recycled buffer reused");
  checkOrder(copy, n, [1, 0, 0, 3, 0.01], second.order, second.visible);
  sorter.dispose();
});

test("DepthSorter sorts a first small prefix on this thread even with a worker (here: true)", async () => {
  const n = 3000;
  const positions = randomPositions(n, 5);
  const sorter = new DepthSorter(positions, n, { useWorker: false });
  const posted = [];
  sorter.worker = { postMessage: (msg) => posted.push(msg), terminate() {} }; // a worker still starting
  const view = [0, 0, 1, 0, 0.01];
  const first = await sorter.sort(view, 1000, { here: true });
  assert.equal(posted.length, 0, "nothing was sent to the worker");
  checkOrder(positions.slice(0, 3000), 1000, view, first.order, first.visible);
  const later = sorter.sort(view, n); // without `here` the worker sorts
  assert.equal(posted.length, 1);
  assert.equal(posted[0].limit, n);
  sorter._settle({ id: posted[0].id, order: first.order, visible: 0, ms: 0 });
  await later;
  sorter.worker = null;
  sorter.dispose();
});

test("renderer modules import without side effects (ComfyUI imports every web/*.js)", async () => {
  const viewer = await import("../../web/sharp_viewer.js");
  assert.equal(typeof viewer.SplatViewer, "function");
  const { orbitWorldToCamera } = viewer;
  // yaw = pitch = 0 at distance d from focus (0, 0, d): the source camera, identity
  const m = orbitWorldToCamera({ focus: [0, 0, 2], distance: 2, yaw: 0, pitch: 0 });
  assert.deepEqual(m.map((x) => Math.round(x * 1e9) / 1e9 + 0), [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  // orbiting keeps the focus point on the optical axis at the same distance
  const o = orbitWorldToCamera({ focus: [0.3, -0.2, 2], distance: 1.5, yaw: 0.6, pitch: -0.3 });
  const f = [0.3, -0.2, 2];
  const cam = [0, 1, 2].map((r) => o[4 * r] * f[0] + o[4 * r + 1] * f[1] + o[4 * r + 2] * f[2] + o[4 * r + 3]);
  assert.ok(Math.abs(cam[0]) < 1e-9 && Math.abs(cam[1]) < 1e-9 && Math.abs(cam[2] - 1.5) < 1e-9);
});
