// Splat-file upload (web/sharp_ply_upload_core.js): the request ComfyUI's /upload/image expects, the
// answer turned into a combo value, the combo update, and the errors a user sees.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

import {
  SPLAT_ACCEPT, SPLAT_EXTENSIONS, UPLOAD_ROUTE, comboValueFor, firstSplatFile, isSplatFile, plyUploadForm,
  selectChoice, uploadPly,
} from "../../web/sharp_ply_upload_core.js";
import { python } from "./python_helper.mjs";

function comboWidget(values = ["a.ply", "z.ply"], value = "a.ply") {
  const calls = [];
  return { name: "ply", value, options: { values: [...values] }, callback: (v) => calls.push(v), calls };
}

function plyFile(name = "scene.ply", text = "ply\nformat binary_little_endian 1.0\n") {
  return new File([text], name, { type: "application/octet-stream" });
}

/** A stand-in for api.fetchApi that records the request and answers like ComfyUI's server. */
function fakeServer(answer, status = 200) {
  const requests = [];
  const fetchApi = async (route, init) => {
    requests.push({ route, init });
    return new Response(JSON.stringify(answer), { status, headers: { "Content-Type": "application/json" } });
  };
  return { fetchApi, requests };
}

test("every single-file splat format counts, any case; other files don't", () => {
  for (const name of ["x.PLY", "a.compressed.ply", "b.spz", "c.SPLAT", "d.sog", "e.glb", "f.ksplat"]) {
    assert.equal(isSplatFile({ name }), true, name);
  }
  for (const name of ["x.ply.png", "meta.json", "photo.jpg", "scene.spz.gz", "ply"]) {
    assert.equal(isSplatFile({ name }), false, name);
  }
  assert.equal(isSplatFile({}), false);
  assert.equal(isSplatFile(null), false);
  const files = [{ name: "a.png" }, { name: "b.spz" }, { name: "c.ply" }];
  assert.equal(firstSplatFile(files).name, "b.spz");
  assert.equal(firstSplatFile([{ name: "a.png" }]), null);
  assert.equal(firstSplatFile(undefined), null);
  assert.equal(SPLAT_ACCEPT, SPLAT_EXTENSIONS.join(","));
});

test("the upload takes exactly the single files Load Gaussians reads", { skip: python() ? false : "no Python with torch" }, () => {
  // sharp_core's readable endings, less the loose SOG's meta.json (its WebP images can't come along)
  const script = "import json; from sharp_core import FORMATS; " +
    "print(json.dumps(sorted({e for f in FORMATS.values() if f.read for e in f.extensions})))";
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const readable = JSON.parse(execFileSync(python(), ["-c", script], { cwd: root, encoding: "utf8" }));
  const single = readable.filter((e) => e !== "meta.json" && !(e.endsWith(".ply") && e !== ".ply"));
  assert.deepEqual([...SPLAT_EXTENSIONS].sort(), single.sort());
  for (const ending of readable.filter((e) => e !== "meta.json")) assert.equal(isSplatFile({ name: `s${ending}` }), true, ending);
});

test("the form sends the file as 'image' into input/ without overwriting", async () => {
  const file = plyFile("my scene.ply", "ply\n12345");
  const form = plyUploadForm(file);
  assert.equal(form.get("type"), "input");
  assert.equal(form.get("subfolder"), "");
  assert.equal(form.has("overwrite"), false); // the server then keeps the user's older file
  const sent = form.get("image");
  assert.equal(sent.name, "my scene.ply");
  assert.equal(await sent.text(), "ply\n12345");
});

test("the server's answer becomes the combo value, with a subfolder when there is one", () => {
  assert.equal(comboValueFor({ name: "scene (1).ply", subfolder: "", type: "input" }), "scene (1).ply");
  assert.equal(comboValueFor({ name: "s.ply", subfolder: "splats\\mine/", type: "input" }), "splats/mine/s.ply");
  assert.throws(() => comboValueFor({ subfolder: "" }), /names no file/);
  assert.throws(() => comboValueFor(null), /names no file/);
});

test("selecting adds a new choice once, sorted, and fires the widget callback", () => {
  const widget = comboWidget();
  selectChoice(widget, "m.ply");
  assert.deepEqual(widget.options.values, ["a.ply", "m.ply", "z.ply"]);
  assert.equal(widget.value, "m.ply");
  selectChoice(widget, "m.ply");
  assert.deepEqual(widget.options.values, ["a.ply", "m.ply", "z.ply"]);
  assert.deepEqual(widget.calls, ["m.ply", "m.ply"]);
  const lazy = { value: "", options: { values: () => ["x.ply"] } }; // a computed list is left alone
  selectChoice(lazy, "y.ply");
  assert.equal(lazy.value, "y.ply");
});

test("uploadPly posts to /upload/image and selects the name the server chose", async () => {
  const widget = comboWidget([], "");
  const server = fakeServer({ name: "scene (2).ply", subfolder: "", type: "input" });
  const value = await uploadPly(plyFile("scene.ply"), { fetchApi: server.fetchApi, widget });
  assert.equal(value, "scene (2).ply");
  assert.equal(widget.value, "scene (2).ply");
  assert.deepEqual(widget.options.values, ["scene (2).ply"]);
  assert.equal(server.requests.length, 1);
  const { route, init } = server.requests[0];
  assert.equal(route, UPLOAD_ROUTE);
  assert.equal(init.method, "POST");
  assert.equal(init.body.get("image").name, "scene.ply");
  assert.equal(init.body.get("type"), "input");
});

test("uploadPly takes an SPZ as it takes a PLY", async () => {
  const widget = comboWidget([], "");
  const server = fakeServer({ name: "scene.spz", subfolder: "", type: "input" });
  assert.equal(await uploadPly(plyFile("scene.spz", "\x1f\x8b"), { fetchApi: server.fetchApi, widget }), "scene.spz");
  assert.equal(server.requests[0].init.body.get("image").name, "scene.spz");
});

test("uploadPly refuses other files before sending anything", async () => {
  const widget = comboWidget();
  const server = fakeServer({ name: "x" });
  await assert.rejects(uploadPly(plyFile("photo.png"), { fetchApi: server.fetchApi, widget }),
    /'photo\.png' is not a splat file Load Gaussians reads: choose one ending in \.ply, \.spz/);
  assert.equal(server.requests.length, 0);
  assert.equal(widget.value, "a.ply");
});

test("a refused upload leaves the combo as it was and says why", async () => {
  const widget = comboWidget();
  const tooBig = fakeServer({}, 413);
  await assert.rejects(uploadPly(plyFile(), { fetchApi: tooBig.fetchApi, widget }), /HTTP 413.*--max-upload-size/);
  const bad = fakeServer({}, 400);
  await assert.rejects(uploadPly(plyFile(), { fetchApi: bad.fetchApi, widget }), /failed \(HTTP 400\)\.$/);
  assert.equal(widget.value, "a.ply");
  assert.deepEqual(widget.options.values, ["a.ply", "z.ply"]);
  assert.deepEqual(widget.calls, []);
});
