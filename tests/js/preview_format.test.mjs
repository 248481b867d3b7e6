// Decoder of the compact preview file (web/sharp_preview_format.js), under `node --test tests/js/`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

import {
  HEADER_BYTES, HEADER_BYTES_V1, RECORD_BYTES, decodePositions, decodeSplats, halfToFloat, parseHeader,
  unpackQuaternion,
} from "../../web/sharp_preview_format.js";
import { python } from "./python_helper.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// A preview file built by hand: header fields and records with known bit patterns. Version 2
// carries the initial view (target, distance, forward, up) and the camera-framed flag.
const EDITED_VIEW = { target: [0.25, -1.5, -3], distance: 6.5, forward: [0, 0, -1], up: [0, 1, 0], framed: false };
function handMadeFile(records, { focal = 500, width = 640, height = 480, lo = -6, hi = 1, version = 2,
  view = EDITED_VIEW } = {}) {
  const headerBytes = version === 1 ? HEADER_BYTES_V1 : HEADER_BYTES;
  const buffer = new ArrayBuffer(headerBytes + records.length * RECORD_BYTES);
  const v = new DataView(buffer);
  [..."SHPV"].forEach((c, i) => v.setUint8(i, c.charCodeAt(0)));
  v.setUint32(4, version, true);
  v.setUint32(8, records.length, true);
  v.setFloat32(16, focal, true);
  v.setUint32(20, width, true);
  v.setUint32(24, height, true);
  v.setFloat32(28, lo, true);
  v.setFloat32(32, hi, true);
  v.setFloat32(60, 2.5, true);
  if (version >= 2) {
    v.setUint32(12, view.framed ? 1 : 0, true);
    [...view.target, view.distance, ...view.forward, ...view.up].forEach((x, k) => v.setFloat32(64 + 4 * k, x, true));
  }
  records.forEach((words, i) => words.forEach((w, k) => v.setUint32(headerBytes + 16 * i + 4 * k, w >>> 0, true)));
  return buffer;
}

test("half floats decode, including subnormals, infinities and negatives", () => {
  assert.equal(halfToFloat(0x3c00), 1);
  assert.equal(halfToFloat(0xc000), -2);
  assert.equal(halfToFloat(0x3800), 0.5);
  assert.equal(halfToFloat(0x7bff), 65504);
  assert.equal(halfToFloat(0x0001), 2 ** -24);
  assert.equal(halfToFloat(0x7c00), Infinity);
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
});

test("hand-made records decode field by field", () => {
  // x = 1.0, y = -2.0, z = 0.5; scale bytes 0, 255, 51; colour (255, 0, 128) opacity 204;
  // quaternion: largest index 0 (w), the other three codes 64 (just above zero)
  const w0 = 0x3c00 | (0xc000 << 16);
  const w1 = 0x3800 | (0 << 16) | (255 << 24);
  const w2 = 255 | (0 << 8) | (128 << 16) | (204 << 24);
  const w3 = 51 | (0 << 8) | (64 << 10) | (64 << 17) | (64 << 24);
  const buffer = handMadeFile([[w0, w1, w2, w3]]);
  const h = parseHeader(buffer);
  assert.deepEqual([h.count, h.focalPx, h.imageWidth, h.imageHeight, h.focusDepth], [1, 500, 640, 480, 2.5]);
  const s = decodeSplats(buffer);
  assert.deepEqual(Array.from(s.means), [1, -2, 0.5]);
  const step = 7 / 255;
  assert.ok(Math.abs(s.scales[0] - Math.exp(-6)) < 1e-7);
  assert.ok(Math.abs(s.scales[1] - Math.exp(1)) < 1e-5);
  assert.ok(Math.abs(s.scales[2] - Math.exp(-6 + 51 * step)) < 1e-6);
  assert.ok(Math.abs(s.colors[0] - 1) < 1e-6 && s.colors[1] === 0);
  assert.ok(Math.abs(s.colors[2] - ((128 / 255 + 0.055) / 1.055) ** 2.4) < 1e-6); // sRGB -> linear
  assert.ok(Math.abs(s.opacities[0] - 0.8) < 1e-6);
  // codes 64 -> (64/127*2-1)/sqrt2 = 0.00557 each: w almost 1
  const c = (64 / 127 * 2 - 1) * Math.SQRT1_2;
  const w = Math.sqrt(1 - 3 * c * c);
  assert.ok(Math.abs(s.quats[0] - w) < 1e-6 && Math.abs(s.quats[1] - c) < 1e-6);
  assert.deepEqual(Array.from(decodePositions(buffer)), [1, -2, 0.5]);
});

test("version 2 headers carry the initial view; version 1 files read as the source camera", () => {
  const w0 = 0x3c00 | (0xc000 << 16), w1 = 0x3800;   // x 1, y -2, z 0.5
  const h = parseHeader(handMadeFile([[w0, w1, 0, 0]]));
  assert.equal(h.version, 2);
  assert.equal(h.headerBytes, 128);
  assert.deepEqual(h.view, { target: [0.25, -1.5, -3], distance: 6.5, forward: [0, 0, -1], up: [0, 1, 0],
    cameraFramed: false });
  const framed = parseHeader(handMadeFile([[w0, w1, 0, 0]], {
    view: { target: [0, 0, 2.5], distance: 2.5, forward: [0, 0, 1], up: [0, -1, 0], framed: true } }));
  assert.equal(framed.flags, 1);
  assert.equal(framed.view.cameraFramed, true);

  const old = handMadeFile([[w0, w1, 0, 0]], { version: 1 });
  assert.equal(old.byteLength, 64 + 16);
  const h1 = parseHeader(old);
  assert.equal(h1.headerBytes, 64);
  assert.deepEqual(h1.view, { target: [0, 0, 2.5], distance: 2.5, forward: [0, 0, 1], up: [0, -1, 0],
    cameraFramed: true });
  assert.deepEqual(Array.from(decodePositions(old)), [1, -2, 0.5]);  // records right after 64 bytes
  // a version 2 file cut to a version 1 size is refused, not misread
  assert.throws(() => parseHeader(handMadeFile([[w0, w1, 0, 0]]).slice(0, 80)), /splats need 144/);
});

test("smallest-three: the dropped component goes back to its slot", () => {
  for (let largest = 0; largest < 4; largest++) {
    const bits = largest | (100 << 2) | (30 << 9) | (64 << 16);
    const q = unpackQuaternion(bits);
    assert.ok(Math.abs(Math.hypot(...q) - 1) < 1e-6);
    const others = [0, 1, 2, 3].filter((k) => k !== largest).map((k) => q[k]);
    const expected = [100, 30, 64].map((c) => (c / 127 * 2 - 1) * Math.SQRT1_2);
    others.forEach((v, k) => assert.ok(Math.abs(v - expected[k]) < 1e-6, `largest ${largest}: ${q}`));
    assert.ok(Math.abs(q[largest] - Math.sqrt(1 - expected.reduce((s, c) => s + c * c, 0))) < 1e-6);
  }
});

test("bad files are refused with a reason", () => {
  const good = handMadeFile([[0, 0, 0, 0]]);
  const badMagic = good.slice(0);
  new DataView(badMagic).setUint8(0, 88);
  assert.throws(() => parseHeader(badMagic), /not a SHARP preview file/);
  assert.throws(() => parseHeader(good.slice(0, good.byteLength - 4)), /splats need/);
  assert.throws(() => parseHeader(good.slice(0, 20)), /too short/);
  const badVersion = good.slice(0);
  new DataView(badVersion).setUint32(4, 9, true);
  assert.throws(() => parseHeader(badVersion), /version 9/);
});


// The Python writer and decoder are the reference: both decoders must agree on a random scene
// (partly behind the source camera, so the header's initial view is a computed one).
test("agrees with the Python writer and decoder", { skip: python() ? false : "no Python with torch" }, () => {
  const script = `
import base64, json, sys, torch
from sharp_core.gaussians import Gaussians
from sharp_core.preview_file import encode_preview, decode_preview
g = torch.Generator().manual_seed(7)
n = 500
z = -3.0 + 10 * torch.rand(n, generator=g)  # a third behind the source camera: framed about its centre
scene = Gaussians(means=torch.stack([torch.randn(n, generator=g), torch.randn(n, generator=g), z], 1),
    scales=torch.exp(torch.randn(n, 3, generator=g) - 4), quats=torch.randn(n, 4, generator=g),
    colors=torch.rand(n, 3, generator=g), opacities=torch.rand(n, generator=g), focal_px=[812.5], image_size=[(300, 200)])
data = encode_preview(scene)
d = decode_preview(data)
view = d.view
json.dump({"file": base64.b64encode(data).decode(), "means": d.means.tolist(), "scales": d.scales.tolist(),
    "quats": d.quats.tolist(), "colors": d.colors.tolist(), "opacities": d.opacities.tolist(),
    "focus": d.focus_depth, "bbox_min": d.bbox_min.tolist(), "view": {"target": list(view.target),
    "distance": view.distance, "forward": list(view.forward), "up": list(view.up), "cameraFramed": view.camera_framed}},
    sys.stdout)
`;
  const out = execFileSync(python(), ["-c", script], {
    cwd: REPO, env: { ...process.env, PYTHONPATH: REPO }, maxBuffer: 64 << 20,
  });
  const ref = JSON.parse(out.toString());
  const bytes = Buffer.from(ref.file, "base64");
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const s = decodeSplats(buffer);
  assert.equal(s.header.count, 500);
  assert.equal(s.header.focalPx, 812.5);
  assert.deepEqual([s.header.imageWidth, s.header.imageHeight], [300, 200]);
  assert.ok(Math.abs(s.header.focusDepth - ref.focus) < 1e-6);
  const close = (a, b, tol, name) => {
    const flat = b.flat();
    assert.equal(a.length, flat.length, name);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - flat[i]) <= tol, `${name}[${i}]: ${a[i]} vs ${flat[i]}`);
  };
  const { target, distance, forward, up, cameraFramed } = s.header.view;
  assert.equal(cameraFramed, false);
  assert.equal(ref.view.cameraFramed, false);
  close([...target, distance, ...forward, ...up],
    [ref.view.target, ref.view.distance, ref.view.forward, ref.view.up].flat(), 1e-6, "view");
  close(s.means, ref.means, 0, "means");
  close(s.scales, ref.scales, 1e-5 * 1, "scales");
  close(s.quats, ref.quats, 1e-6, "quats");
  close(s.colors, ref.colors, 1e-6, "colors");
  close(s.opacities, ref.opacities, 1e-7, "opacities");
});
