// WebGL2 Gaussian-splat viewer for SHARP preview files. Imports nothing from ComfyUI, so the
// browser test page can load it on its own; the ComfyUI glue lives in sharp_preview.js.
//
// Image formation follows SHARP's renderer (gsplat "classic" mode, as sharp_core.render draws it):
//   - EWA: the 3D covariance R S S^T R^T is projected with the perspective Jacobian (its x/z, y/z
//     clamped to 30 % beyond the field of view); SHARP adds no 2D low-pass (eps2d = 0), and
//     neither does this viewer by default (`dilation` option, px^2);
//   - each splat is a quad over the ellipse where alpha can reach 1/255 (opacity-aware extent,
//     at most 3.33 sigma); per pixel centre alpha = min(0.999, opacity * exp(-d^T conic d / 2)),
//     skipped below 1/255;
//   - colours are stored as sRGB bytes, turned back to linear in the vertex shader, blended
//     far-to-near ("over", premultiplied) in LINEAR light into an RGBA16F target
//     (EXT_color_buffer_float), composited over the background in linear light and sRGB-encoded
//     in a final pass. Without EXT_color_buffer_float the target is SRGB8_ALPHA8: the GPU still
//     blends in linear light but keeps 8 bits per channel between splats (slight banding in
//     dark gradients).
//   - gsplat sorts per tile and stops a pixel once transmittance falls to 1e-4; this viewer
//     sorts globally by camera-space depth (16-bit buckets of inverse depth) and never stops
//     early. Both only matter where splats nearly coincide in depth.

import {
  PreviewAssembler, ROT_LEVELS, ROT_RANGE, decodePositions, parseHeader, srgbToLinear,
} from "./sharp_preview_format.js";
import { DepthSorter } from "./sharp_sort.js";
import {
  FIRST_PICTURE_SPLATS, QUALITY_LEVELS, cameraViewDict, drawLimit, flyDelta, isFlyKey, nextCommit, readCameraViews,
  sanitizeState, statsText, updateCameraViews,
} from "./sharp_viewer_controls.js";

const TEXTURE_WIDTH = 4096;
const NEAR_M = 0.01;
const DILATION_PX2 = 0.0; // SHARP renders with gsplat's eps2d = 0
const MAX_EXTENT_SIGMA = 3.33;
const ALPHA_MAX = 0.999;
const BACKGROUNDS = [[0, 0, 0], [1, 1, 1], [0.5, 0.5, 0.5]]; // sRGB, cycled by the toolbar button

const SPLAT_VS = `#version 300 es
precision highp float;
precision highp int;
precision highp usampler2D;

uniform usampler2D uSplats;   // the preview records, one RGBA32UI texel per splat
uniform usampler2D uOrder;    // sorted splat indices, far to near (R32UI)
uniform int uTexWidth;
uniform mat4 uView;          // world -> camera, OpenCV axes (x right, y down, z forward)
uniform vec4 uIntrinsics;    // fx, fy, cx, cy in pixels
uniform vec2 uViewport;      // width, height in pixels
uniform vec2 uLogScale;      // log_scale_min, (log_scale_max - log_scale_min) / 255
uniform float uDilation;     // px^2 added to the projected covariance
uniform float uMaxExtent;    // largest quad half-extent, sigmas
uniform float uNear;

// Two triangles per splat from gl_VertexID alone: no instancing (SwiftShader runs instances one
// by one, roughly 10x slower) and no vertex attributes.
const vec2 CORNERS[6] = vec2[6](vec2(-1.0, -1.0), vec2(1.0, -1.0), vec2(-1.0, 1.0),
                                vec2(-1.0, 1.0), vec2(1.0, -1.0), vec2(1.0, 1.0));

out vec3 vColor;             // linear RGB
out float vOpacity;
out vec2 vOffset;            // pixels from the splat centre (y down)
flat out vec3 vConic;        // inverse 2D covariance (xx, xy, yy)

float srgbToLinear(float c) {
  return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

vec4 unpackQuaternion(uint bits) {   // -> (w, x, y, z)
  uint largest = bits & 3u;
  vec3 c = (vec3(uvec3(bits >> 2u, bits >> 9u, bits >> 16u) & 127u) / ${ROT_LEVELS.toFixed(1)} * 2.0 - 1.0)
    * ${ROT_RANGE.toFixed(9)};
  float big = sqrt(max(0.0, 1.0 - dot(c, c)));
  vec4 q = largest == 0u ? vec4(big, c)
         : largest == 1u ? vec4(c.x, big, c.y, c.z)
         : largest == 2u ? vec4(c.x, c.y, big, c.z)
         : vec4(c, big);
  return normalize(q);
}

void cull() { gl_Position = vec4(0.0, 0.0, 2.0, 1.0); }

void main() {
  int slot = gl_VertexID / 6;
  vec2 corner = CORNERS[gl_VertexID - 6 * slot];
  int index = int(texelFetch(uOrder, ivec2(slot % uTexWidth, slot / uTexWidth), 0).r);
  uvec4 w = texelFetch(uSplats, ivec2(index % uTexWidth, index / uTexWidth), 0);
  vec3 mean = vec3(unpackHalf2x16(w.x), unpackHalf2x16(w.y).x);
  vec4 cam = uView * vec4(mean, 1.0);
  float opacity = float(w.z >> 24u) / 255.0;
  if (cam.z <= uNear || opacity < 1.0 / 255.0) { cull(); return; }

  vec3 scale = exp(uLogScale.x + vec3(float((w.y >> 16u) & 255u), float(w.y >> 24u), float(w.w & 255u)) * uLogScale.y);
  vec4 q = unpackQuaternion(w.w >> 8u);
  float qw = q.x, qx = q.y, qy = q.z, qz = q.w;
  mat3 rot = mat3(   // columns
    1.0 - 2.0 * (qy * qy + qz * qz), 2.0 * (qx * qy + qw * qz), 2.0 * (qx * qz - qw * qy),
    2.0 * (qx * qy - qw * qz), 1.0 - 2.0 * (qx * qx + qz * qz), 2.0 * (qy * qz + qw * qx),
    2.0 * (qx * qz + qw * qy), 2.0 * (qy * qz - qw * qx), 1.0 - 2.0 * (qx * qx + qy * qy));
  mat3 m = mat3(uView) * rot * mat3(scale.x, 0.0, 0.0, 0.0, scale.y, 0.0, 0.0, 0.0, scale.z);
  mat3 covCam = m * transpose(m);

  float fx = uIntrinsics.x, fy = uIntrinsics.y, cx = uIntrinsics.z, cy = uIntrinsics.w;
  float z = cam.z;
  vec2 limPos = (uViewport - vec2(cx, cy)) / vec2(fx, fy) + 0.15 * uViewport / vec2(fx, fy);
  vec2 limNeg = vec2(cx, cy) / vec2(fx, fy) + 0.15 * uViewport / vec2(fx, fy);
  vec2 t = clamp(cam.xy / z, -limNeg, limPos) * z;
  mat3 jac = mat3(fx / z, 0.0, 0.0,  0.0, fy / z, 0.0,  -fx * t.x / (z * z), -fy * t.y / (z * z), 0.0);
  mat3 cov2 = jac * covCam * transpose(jac);
  float a = cov2[0][0] + uDilation, b = cov2[0][1], cc = cov2[1][1] + uDilation;
  float det = a * cc - b * b;
  if (det <= 0.0) { cull(); return; }

  float mid = 0.5 * (a + cc);
  float radius = sqrt(max(0.25 * (a - cc) * (a - cc) + b * b, 0.0));
  float l1 = mid + radius, l2 = max(mid - radius, 0.0);
  vec2 axis1 = abs(b) > 1e-12 ? normalize(vec2(b, l1 - a)) : (a >= cc ? vec2(1.0, 0.0) : vec2(0.0, 1.0));
  vec2 axis2 = vec2(-axis1.y, axis1.x);
  // alpha >= 1/255 only inside Mahalanobis radius sqrt(2 ln(255 opacity))
  float extent = min(uMaxExtent, sqrt(2.0 * log(max(255.0 * opacity, 1.0)))) * 1.001 + 0.01;
  vec2 offset = corner.x * extent * sqrt(l1) * axis1 + corner.y * extent * sqrt(l2) * axis2;

  vec2 centre = vec2(fx * cam.x / z + cx, fy * cam.y / z + cy);
  vec2 pixel = centre + offset;
  gl_Position = vec4(pixel.x / uViewport.x * 2.0 - 1.0, 1.0 - pixel.y / uViewport.y * 2.0, 0.0, 1.0);
  vOffset = offset;
  vConic = vec3(cc, -b, a) / det;
  vOpacity = opacity;
  vColor = vec3(srgbToLinear(float(w.z & 255u) / 255.0),
                srgbToLinear(float((w.z >> 8u) & 255u) / 255.0),
                srgbToLinear(float((w.z >> 16u) & 255u) / 255.0));
}
`;

const SPLAT_FS = `#version 300 es
precision highp float;
in vec3 vColor;
in float vOpacity;
in vec2 vOffset;
flat in vec3 vConic;
out vec4 outColor;
void main() {
  vec2 d = vOffset;
  float power = -0.5 * (vConic.x * d.x * d.x + vConic.z * d.y * d.y) - vConic.y * d.x * d.y;
  if (power > 0.0) discard;
  float alpha = min(${ALPHA_MAX.toFixed(3)}, vOpacity * exp(power));
  if (alpha < 1.0 / 255.0) discard;
  outColor = vec4(vColor * alpha, alpha);   // premultiplied, linear
}
`;

const COMPOSITE_VS = `#version 300 es
out vec2 vUv;
void main() {
  vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
  vUv = p;
  gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
`;

const COMPOSITE_FS = `#version 300 es
precision highp float;
uniform sampler2D uAccum;      // premultiplied linear colour + coverage
uniform vec3 uBackground;      // linear
in vec2 vUv;
out vec4 outColor;
vec3 linearToSrgb(vec3 c) {
  c = clamp(c, 0.0, 1.0);
  return mix(c * 12.92, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(vec3(0.0031308), c));
}
void main() {
  vec4 acc = texture(uAccum, vUv);
  outColor = vec4(linearToSrgb(acc.rgb + (1.0 - acc.a) * uBackground), 1.0);
}
`;

// -- small 3x3 helpers (row-major arrays) for the orbit camera ----------------------------------
function rotX(a) {
  const c = Math.cos(a), s = Math.sin(a);
  return [1, 0, 0, 0, c, -s, 0, s, c];
}
function rotY(a) {
  const c = Math.cos(a), s = Math.sin(a);
  return [c, 0, s, 0, 1, 0, -s, 0, c];
}
function mul3(a, b) {
  const o = new Array(9);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) {
    o[3 * r + c] = a[3 * r] * b[c] + a[3 * r + 1] * b[3 + c] + a[3 * r + 2] * b[6 + c];
  }
  return o;
}

const IDENTITY3 = [1, 0, 0, 0, 1, 0, 0, 0, 1];

/**
 * Camera -> world rotation (row-major 3x3; its columns are the camera's x right, y down, z forward
 * in world axes) of a camera looking along `forward` with `up` up in the image. Both are
 * re-orthonormalised; forward +z with up -y gives the identity (SHARP's source camera).
 */
export function viewBasis(forward, up) {
  const norm = (a) => { const l = Math.hypot(a[0], a[1], a[2]) || 1; return a.map((c) => c / l); };
  const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
  const z = norm(forward);
  let down = [-up[0], -up[1], -up[2]];
  const along = down[0] * z[0] + down[1] * z[1] + down[2] * z[2];
  down = down.map((c, i) => c - along * z[i]);
  if (Math.hypot(down[0], down[1], down[2]) < 1e-6) {  // up parallel to forward: any perpendicular
    down = Math.abs(z[1]) < 0.9 ? cross(z, [1, 0, 0]) : cross(z, [0, 0, 1]);
  }
  const y = norm(down);
  const x = cross(y, z);
  return [x[0], y[0], z[0], x[1], y[1], z[1], x[2], y[2], z[2]];
}

/**
 * Orbit camera in OpenCV axes: the camera looks at `focus` from `distance`. `basis` (row-major
 * camera -> world rotation, default identity) is the un-turned camera; yaw turns it about its own
 * vertical (the initial view's up axis), then pitch about the camera's x axis. With the identity
 * basis, yaw = pitch = 0, focus = (0, 0, d) and distance = d this is SHARP's source camera.
 * Returns the 4x4 world->camera matrix, row-major (16 numbers).
 */
export function orbitWorldToCamera({ focus, distance, yaw, pitch, basis = IDENTITY3 }) {
  const m = mul3(basis, mul3(rotY(yaw), rotX(pitch))); // camera -> world, columns = camera axes
  const fwd = [m[2], m[5], m[8]];
  const centre = [0, 1, 2].map((i) => focus[i] - distance * fwd[i]);
  const out = new Array(16).fill(0);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) out[4 * r + c] = m[3 * c + r]; // transpose
    out[4 * r + 3] = -(m[r] * centre[0] + m[3 + r] * centre[1] + m[6 + r] * centre[2]);
  }
  out[15] = 1;
  return out;
}

/**
 * The orbit the viewer opens at (and goes back to on reset): the header's stored initial view.
 * A pivot nearer than 5 cm to the source camera (1 mm for other views) moves out along the view
 * axis, the camera staying where it is, so orbiting and zooming keep a usable radius.
 */
export function initialOrbit(header) {
  if (!header) return { focus: [0, 0, 1], distance: 1, yaw: 0, pitch: 0, basis: IDENTITY3 };
  const { target, distance, forward, up, cameraFramed } = header.view;
  const basis = viewBasis(forward, up);
  const d = Math.max(distance, cameraFramed ? 0.05 : 1e-3);
  const focus = [0, 1, 2].map((i) => target[i] + (d - distance) * basis[3 * i + 2]);
  return { focus, distance: d, yaw: 0, pitch: 0, basis };
}

/**
 * Pinhole intrinsics for a canvas of width x height pixels: the source image's field of view,
 * fitted inside the canvas and centred. {fx, fy, cx, cy} in canvas pixels.
 */
export function viewIntrinsics(header, width, height) {
  const hd = header ?? { focalPx: Math.max(width, height), imageWidth: width, imageHeight: height };
  const fit = Math.min(width / hd.imageWidth, height / hd.imageHeight);
  const f = hd.focalPx * fit;
  return { fx: f, fy: f, cx: width / 2, cy: height / 2 };
}

/** The camera `resetView` shows on a width x height canvas: {fx, fy, cx, cy, worldToCamera}. */
export function initialCamera(header, width, height) {
  return { ...viewIntrinsics(header, width, height), worldToCamera: orbitWorldToCamera(initialOrbit(header)) };
}

/**
 * The viewer: builds a canvas, a stats label and a toolbar inside `container`.
 * When WebGL2 is missing it shows a message there instead and every method does nothing.
 *
 * Controls: drag = orbit, right/middle/shift-drag = pan, wheel/pinch = zoom, WASD + Q/E = fly
 * (shift: faster; click the view first), double-click = reset. Toolbar: reset, background,
 * quality (caps the splats drawn to the most visible ones), fullscreen and, with
 * `options.cameraViews`, "use view" / "+ key" / "clear" for the node's camera views.
 *
 * options: pixelRatio (default devicePixelRatio), background index into BACKGROUNDS,
 * dilation (px^2 added to projected covariances, default 0 like SHARP),
 * interactive (default true), onStats(text), useWorker (default true),
 * cameraViews ({get() -> JSON text, set(text)}: where "use view" stores views),
 * onStateChange(state) (background, quality and view changed; see getState),
 * onPicture({splats, total, ms}) (loadStream drew a picture: the first, coarse one and the last;
 * the canvas can be read back during the call).
 */
export class SplatViewer {
  constructor(container, options = {}) {
    this.options = options;
    this.pixelRatio = options.pixelRatio ?? (globalThis.devicePixelRatio || 1);
    this.backgroundIndex = options.background ?? 0;
    this.dilation = options.dilation ?? DILATION_PX2;
    this.header = null;
    this.buffer = null;
    this.sorter = null;
    this.visible = 0;
    this.committed = 0;        // splats uploaded (a prefix of the file while it streams in)
    this.sortedLimit = 0;      // the prefix the current order covers
    this.positions = null;
    this.qualityIndex = 0;
    this.savedOrbit = null;    // a view to open at instead of the file's (restored state)
    this.timing = null;        // {firstPictureMs, firstSplats, completeMs} of the last load
    this.flyKeys = new Set();
    this.streamToken = null;
    this.explicitCamera = null;
    this.orbit = initialOrbit(null);
    this.sortedView = null;
    this.sortInFlight = false;
    this.frameTimes = [];
    this.lastSortMs = 0;
    this.disposed = false;
    this.raf = 0;
    this._listeners = [];

    this.root = document.createElement("div");
    this.root.className = "sharp-viewer";
    Object.assign(this.root.style, {
      position: "relative", width: "100%", height: "100%", overflow: "hidden",
      background: "#000", touchAction: "none", userSelect: "none",
    });
    this.root.tabIndex = 0; // focusable, for the fly keys
    this.root.style.outline = "none";
    container.appendChild(this.root);
    this.canvas = document.createElement("canvas");
    Object.assign(this.canvas.style, { width: "100%", height: "100%", display: "block" });
    this.root.appendChild(this.canvas);
    this.label = this._overlay({ left: "6px", bottom: "4px" });
    this.message = this._overlay({ left: "8px", top: "8px", right: "8px" });

    this.gl = null;
    try {
      this.gl = this.canvas.getContext("webgl2", {
        alpha: false, antialias: false, depth: false, stencil: false, premultipliedAlpha: false,
        preserveDrawingBuffer: false, powerPreference: "high-performance",
      });
    } catch {
      this.gl = null;
    }
    this.supported = !!this.gl;
    if (!this.supported) {
      this.canvas.style.display = "none";
      this.showMessage("3D preview unavailable: this browser has no WebGL2 (enable hardware acceleration).");
      return;
    }
    try {
      this._initGL();
    } catch (err) {
      this.supported = false;
      this.canvas.style.display = "none";
      this.showMessage(`3D preview unavailable: ${err.message}`);
      return;
    }
    this._listen(this.canvas, "webglcontextlost", (e) => { e.preventDefault(); this._contextLost(); });
    this._listen(this.canvas, "webglcontextrestored", () => this._contextRestored());
    if (options.interactive !== false) {
      this._buildToolbar();
      this._bindControls();
    }
    if (typeof ResizeObserver !== "undefined") {
      this.resizeObserver = new ResizeObserver(() => this.resize());
      this.resizeObserver.observe(this.root);
    }
    this.resize();
    this._warmUp();
  }

  // -- public API --------------------------------------------------------------------------------

  /** Show a scene from preview-file bytes; resolves after the first sorted frame is drawn. */
  async load(arrayBuffer) {
    if (!this.supported || this.disposed) return;
    const start = performance.now();
    this.streamToken = null;
    const header = parseHeader(arrayBuffer);
    this._begin(header, arrayBuffer);
    this._commit(header.count);
    await this.sortNow();
    const ms = performance.now() - start;
    this.timing = { firstPictureMs: ms, firstSplats: header.count, completeMs: ms };
  }

  /**
   * Show a scene while it downloads: `source` is a fetch Response (or its ReadableStream body).
   * Files are stored most visible first, so the first FIRST_PICTURE_SPLATS records already make a
   * coarse picture; more is drawn at each doubling, all of it once the file is complete.
   * Resolves after the complete scene is drawn; `timing` then holds firstPictureMs (from this
   * call, the response having arrived, to the first picture on the GPU), firstDataMs (to its
   * records being decoded and uploaded, before sorting and drawing), firstSplats and completeMs.
   */
  async loadStream(source) {
    if (!this.supported || this.disposed) return;
    const start = performance.now();
    const token = {};
    this.streamToken = token;
    const reader = (source.body ?? source).getReader();
    const assembler = new PreviewAssembler();
    const timing = { firstDataMs: null, firstPictureMs: null, firstSplats: 0, completeMs: null };
    const stale = () => this.disposed || this.streamToken !== token;
    const picture = async () => {
      // the first, small picture sorts here: the worker may still be starting
      await this.sortNow({ here: timing.firstPictureMs === null && this._drawLimit() <= FIRST_PICTURE_SPLATS });
      if (stale()) return;
      this._finishGPU();
      const ms = performance.now() - start;
      if (timing.firstPictureMs === null) {
        timing.firstPictureMs = ms;
        timing.firstSplats = this.sortedLimit;
      }
      this.options.onPicture?.({ splats: this.sortedLimit, total: this.header.count, ms });
    };
    for (;;) {
      const { done, value } = await reader.read();
      if (stale()) {
        reader.cancel().catch(() => {});
        return;
      }
      if (done) break;
      assembler.push(value);
      if (!assembler.header) continue;
      if (this.header !== assembler.header) this._begin(assembler.header, assembler.buffer);
      const n = nextCommit(assembler.loadedSplats, this.committed, assembler.header.count, false);
      if (!n) continue;
      this._commit(n);
      if (timing.firstPictureMs === null) {
        timing.firstDataMs = performance.now() - start; // records decoded and on the GPU, not yet drawn
        await picture();
      } else {
        this.requestDraw();
      }
      if (stale()) return;
    }
    assembler.finish();
    if (this.header !== assembler.header) this._begin(assembler.header, assembler.buffer);
    this._commit(assembler.header.count);
    await picture();
    if (stale()) return;
    timing.completeMs = performance.now() - start;
    this.timing = timing;
    this.streamToken = null;
  }

  /** The current camera as a view dict for SHARP Render (see sharp_core.camera_from_view). */
  cameraView() {
    return cameraViewDict(this.currentView(), this.canvas.width, this.canvas.height);
  }

  /**
   * "use" (keep only the current view), "add" (append it as a key view) or "clear", applied to
   * `options.cameraViews`; returns the new number of stored views.
   */
  storeView(action) {
    const store = this.options.cameraViews;
    if (!store) return 0;
    const text = updateCameraViews(store.get() ?? "", action, action === "clear" ? null : this.cameraView());
    store.set(text);
    this._showViewCount();
    return readCameraViews(text).length;
  }

  /** Splats drawn at most: all, or the quality level's cap (the first, most visible ones). */
  setQuality(index) {
    this.qualityIndex = Math.max(0, Math.min(QUALITY_LEVELS.length - 1, index | 0));
    if (this.qualityButton) this.qualityButton.textContent = `Q ${QUALITY_LEVELS[this.qualityIndex].label}`;
    this.requestDraw();
  }

  /** {background, quality, orbit}: what the node keeps so a reloaded workflow looks the same. */
  getState() {
    const o = this.savedOrbit;
    return {
      background: this.backgroundIndex, quality: this.qualityIndex,
      orbit: o ? { focus: [...o.focus], distance: o.distance, yaw: o.yaw, pitch: o.pitch, basis: [...o.basis] } : null,
    };
  }

  /** Restore getState()'s result (checked; bad fields are ignored). */
  applyState(state) {
    const s = sanitizeState(state, BACKGROUNDS.length);
    this.backgroundIndex = s.background;
    this.setQuality(s.quality);
    this.savedOrbit = s.orbit;
    if (s.orbit && this.header) {
      this.explicitCamera = null;
      this.orbit = { ...s.orbit, focus: [...s.orbit.focus], basis: [...s.orbit.basis] };
    }
    this.requestDraw();
  }

  toggleFullscreen() {
    const doc = globalThis.document;
    if (doc?.fullscreenElement === this.root) doc.exitFullscreen?.();
    else this.root.requestFullscreen?.()?.catch?.(() => {});
  }

  /** Fixed camera: {fx, fy, cx, cy} in pixels of the canvas and worldToCamera (16, row-major, OpenCV). */
  setCamera(camera) {
    this.explicitCamera = camera;
    this.requestDraw();
  }

  /**
   * Back to the view stored in the file: the source camera for SHARP's predictions, otherwise a
   * camera framing the scene's robust extent from its centre (see sharp_core/preview_file.py).
   */
  resetView() {
    this.explicitCamera = null;
    this.orbit = initialOrbit(this.header);
    this.savedOrbit = null;
    this._stateChanged();
    this.requestDraw();
  }

  toggleBackground() {
    this.backgroundIndex = (this.backgroundIndex + 1) % BACKGROUNDS.length;
    this._stateChanged();
    this.requestDraw();
  }

  /** Canvas size follows the element (CSS pixels x pixelRatio). */
  resize() {
    if (!this.supported || this.disposed) return;
    const w = Math.max(1, Math.round(this.root.clientWidth * this.pixelRatio));
    const h = Math.max(1, Math.round(this.root.clientHeight * this.pixelRatio));
    if (w === this.canvas.width && h === this.canvas.height && this.accum) return;
    this.canvas.width = w;
    this.canvas.height = h;
    this._allocAccum();
    this.requestDraw();
  }

  /** Sort for the current view, then draw; resolves once that frame is drawn. `here`: sort on this
   *  thread (see DepthSorter.sort). */
  async sortNow({ here = false } = {}) {
    const sorter = this.sorter;
    if (!sorter) return;
    const view = this.currentView();
    const limit = this._drawLimit();
    let result;
    try {
      result = await sorter.sort(this._depthRow(view.worldToCamera), limit, { here });
    } catch (err) {
      if (sorter !== this.sorter || this.disposed) return; // replaced by a newer load, or closed
      throw err;
    }
    if (sorter !== this.sorter || this.disposed) return;
    this._acceptSort(result, view, limit);
    this.draw();
  }

  /** Current camera: {fx, fy, cx, cy, worldToCamera}. */
  currentView() {
    if (this.explicitCamera) return this.explicitCamera;
    return { ...viewIntrinsics(this.header, this.canvas.width, this.canvas.height),
      worldToCamera: orbitWorldToCamera(this.orbit) };
  }

  /** Draw one frame with the latest sort (does not wait for a new one). */
  draw({ countFrame = true } = {}) {
    if (!this.supported || this.disposed || !this.gl || this.gl.isContextLost()) return;
    const gl = this.gl;
    const view = this.currentView();
    const start = performance.now();
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.accum.fbo);
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (this.header && this.visible > 0) {
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
      gl.useProgram(this.splatProgram.program);
      const u = this.splatProgram.uniforms;
      gl.activeTexture(gl.TEXTURE0);
      gl.bindTexture(gl.TEXTURE_2D, this.splatTexture);
      gl.uniform1i(u.uSplats, 0);
      gl.activeTexture(gl.TEXTURE1);
      gl.bindTexture(gl.TEXTURE_2D, this.orderTexture);
      gl.uniform1i(u.uOrder, 1);
      gl.uniform1i(u.uTexWidth, TEXTURE_WIDTH);
      gl.uniformMatrix4fv(u.uView, false, columnMajor(view.worldToCamera));
      gl.uniform4f(u.uIntrinsics, view.fx, view.fy, view.cx, view.cy);
      gl.uniform2f(u.uViewport, this.canvas.width, this.canvas.height);
      gl.uniform2f(u.uLogScale, this.header.logScaleMin, (this.header.logScaleMax - this.header.logScaleMin) / 255);
      gl.uniform1f(u.uDilation, this.dilation);
      gl.uniform1f(u.uMaxExtent, MAX_EXTENT_SIGMA);
      gl.uniform1f(u.uNear, NEAR_M);
      gl.bindVertexArray(this.emptyVao);
      gl.drawArrays(gl.TRIANGLES, 0, 6 * this.visible);
      gl.bindVertexArray(null);
      gl.disable(gl.BLEND);
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.viewport(0, 0, this.canvas.width, this.canvas.height);
    gl.useProgram(this.compositeProgram.program);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.accum.texture);
    gl.uniform1i(this.compositeProgram.uniforms.uAccum, 0);
    gl.uniform3fv(this.compositeProgram.uniforms.uBackground, BACKGROUNDS[this.backgroundIndex].map(srgbToLinear));
    gl.bindVertexArray(this.emptyVao);
    gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.bindVertexArray(null);
    if (this.frameFence) gl.deleteSync(this.frameFence);
    this.frameFence = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
    gl.flush();
    if (!countFrame) return;
    this._countFrame(start);
    this._maybeResort(view);
  }

  /** Ask for a draw on the next animation frame (coalesced). */
  requestDraw() {
    if (!this.supported || this.disposed || this.raf) return;
    const raf = globalThis.requestAnimationFrame ?? ((fn) => setTimeout(fn, 16));
    this.raf = raf(() => {
      this.raf = 0;
      if (this._gpuBusy()) this.requestDraw();
      else this.draw();
    });
  }

  // Whether the GPU is still on the last frame: new frames wait for it rather than queue up
  // behind it (a slow GPU would otherwise lag further behind the pointer with every frame).
  _gpuBusy() {
    const gl = this.gl, fence = this.frameFence;
    if (!fence || !gl || gl.isContextLost()) return false;
    if (gl.getSyncParameter(fence, gl.SYNC_STATUS) !== gl.SIGNALED) return true;
    gl.deleteSync(fence);
    this.frameFence = null;
    return false;
  }

  /** The canvas as RGBA bytes, rows top to bottom; call right after draw(). */
  readPixels() {
    const gl = this.gl, w = this.canvas.width, h = this.canvas.height;
    const raw = new Uint8Array(w * h * 4);
    gl.readPixels(0, 0, w, h, gl.RGBA, gl.UNSIGNED_BYTE, raw);
    const out = new Uint8Array(raw.length);
    for (let y = 0; y < h; y++) out.set(raw.subarray((h - 1 - y) * w * 4, (h - y) * w * 4), y * w * 4);
    return out;
  }

  get renderTargetFormat() {
    return this.accum?.format ?? null;
  }

  showMessage(text) {
    this.message.textContent = text;
    this.message.style.display = text ? "block" : "none";
  }

  /** Free the GL context, the worker and the DOM; safe to call twice. */
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    if (this.raf) (globalThis.cancelAnimationFrame ?? clearTimeout)(this.raf);
    if (this.flyRaf) (globalThis.cancelAnimationFrame ?? clearTimeout)(this.flyRaf);
    this.raf = 0;
    this.flyRaf = 0;
    this.flyKeys.clear();
    clearTimeout(this.stateTimer);
    this.streamToken = null;
    this.sorter?.dispose();
    this.sorter = null;
    this.resizeObserver?.disconnect();
    for (const [target, type, fn, opts] of this._listeners) target.removeEventListener(type, fn, opts);
    this._listeners = [];
    const gl = this.gl;
    if (gl && !gl.isContextLost()) {
      if (this.frameFence) gl.deleteSync(this.frameFence);
      this.frameFence = null;
      this._deleteGL();
      gl.getExtension("WEBGL_lose_context")?.loseContext();
    }
    this.gl = null;
    this.buffer = null;
    this.root.remove();
  }

  // -- GL resources ------------------------------------------------------------------------------

  _initGL() {
    const gl = this.gl;
    this.floatTarget = !!gl.getExtension("EXT_color_buffer_float");
    this.splatProgram = compileProgram(gl, SPLAT_VS, SPLAT_FS,
      ["uSplats", "uOrder", "uTexWidth", "uView", "uIntrinsics", "uViewport", "uLogScale", "uDilation", "uMaxExtent", "uNear"]);
    this.compositeProgram = compileProgram(gl, COMPOSITE_VS, COMPOSITE_FS, ["uAccum", "uBackground"]);
    this.emptyVao = gl.createVertexArray();
    this.splatTexture = null;
    this.orderTexture = null;
    this.accum = null;
  }

  // A new scene: textures sized for the whole file, nothing uploaded yet (see _commit).
  _begin(header, buffer) {
    this.sorter?.dispose();
    this.sorter = null;
    this.header = header;
    this.buffer = buffer;
    this.positions = new Float32Array(header.count * 3);
    // the worker starts while the first records arrive; commits send it their positions
    this.sorter = new DepthSorter(this.positions, header.count, { useWorker: this.options.useWorker !== false, filled: 0 });
    this.committed = 0;
    this.visible = 0;
    this.sortedLimit = 0;
    this.sortedView = null;
    this.sortInFlight = false;
    this._allocSplatTextures();
    this.explicitCamera = null;
    this.orbit = this.savedOrbit
      ? { ...this.savedOrbit, focus: [...this.savedOrbit.focus], basis: [...this.savedOrbit.basis] }
      : initialOrbit(header);
    this.showMessage("");
  }

  // Make splats [committed, n) drawable: decode their positions for the sort, upload their records.
  _commit(n) {
    const from = this.committed;
    n = Math.min(n, this.header.count);
    if (n <= from) return;
    decodePositions(this.buffer, this.header, from, n, this.positions);
    this._uploadRows(from, n);
    this.sorter.extend(from, n);
    this.committed = n;
  }

  _allocSplatTextures() {
    const gl = this.gl;
    const rows = Math.max(1, Math.ceil(this.header.count / TEXTURE_WIDTH));
    for (const t of [this.splatTexture, this.orderTexture]) if (t) gl.deleteTexture(t);
    const texture = (format) => {
      const t = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, t);
      gl.texStorage2D(gl.TEXTURE_2D, 1, format, TEXTURE_WIDTH, rows);
      for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
      return t;
    };
    this.splatTexture = texture(gl.RGBA32UI);
    this.orderTexture = texture(gl.R32UI);
  }

  // Upload records [from, to) (from at a row start) into the splat texture, one texel each.
  _uploadRows(from, to) {
    const gl = this.gl;
    const words = new Uint32Array(this.buffer, this.header.headerBytes, this.header.count * 4);
    const row0 = Math.floor(from / TEXTURE_WIDTH), fullTo = Math.floor(to / TEXTURE_WIDTH);
    gl.bindTexture(gl.TEXTURE_2D, this.splatTexture);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 4);
    if (fullTo > row0) {
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, row0, TEXTURE_WIDTH, fullTo - row0, gl.RGBA_INTEGER, gl.UNSIGNED_INT,
        words.subarray(row0 * TEXTURE_WIDTH * 4, fullTo * TEXTURE_WIDTH * 4));
    }
    const rest = to - fullTo * TEXTURE_WIDTH;
    if (rest > 0 && fullTo >= row0) {
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, fullTo, rest, 1, gl.RGBA_INTEGER, gl.UNSIGNED_INT,
        words.subarray(fullTo * TEXTURE_WIDTH * 4, to * 4));
    }
  }

  // Draw one splat off screen now, so that software GL (SwiftShader) compiles the shaders before a
  // file arrives rather than in the middle of the first picture.
  _warmUp() {
    const gl = this.gl;
    const header = { count: 1, headerBytes: 0, logScaleMin: -5, logScaleMax: -4 };
    // one opaque splat 1 m ahead of an identity camera: x = y = 0, z = 1.0 (half 0x3c00)
    const record = new Uint32Array([0, 0x3c00, 0xff808080, 0]);
    const saved = [this.header, this.buffer, this.visible];
    this.header = header;
    this.buffer = record.buffer;
    this._allocSplatTextures();
    this._uploadRows(0, 1);
    gl.bindTexture(gl.TEXTURE_2D, this.orderTexture);
    gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, 1, 1, gl.RED_INTEGER, gl.UNSIGNED_INT, new Uint32Array([0]));
    this.visible = 1;
    const camera = this.explicitCamera;
    this.explicitCamera = { fx: 100, fy: 100, cx: 50, cy: 50, worldToCamera: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1] };
    try {
      this.draw({ countFrame: false });
    } finally {
      this.explicitCamera = camera;
      [this.header, this.buffer, this.visible] = saved;
      for (const t of [this.splatTexture, this.orderTexture]) gl.deleteTexture(t);
      this.splatTexture = null;
      this.orderTexture = null;
    }
  }

  _drawLimit() {
    return drawLimit(this.committed, this.qualityIndex);
  }

  // Wait until the GPU has drawn the last frame (a one-pixel read), for the load timings.
  _finishGPU() {
    const gl = this.gl;
    if (gl && !gl.isContextLost()) gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
  }

  _allocAccum() {
    const gl = this.gl, w = this.canvas.width, h = this.canvas.height;
    if (this.accum) {
      gl.deleteFramebuffer(this.accum.fbo);
      gl.deleteTexture(this.accum.texture);
    }
    const attempt = (internal, type, format) => {
      const texture = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, texture);
      gl.texImage2D(gl.TEXTURE_2D, 0, internal, w, h, 0, gl.RGBA, type, null);
      for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
      const fbo = gl.createFramebuffer();
      gl.bindFramebuffer(gl.FRAMEBUFFER, fbo);
      gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, texture, 0);
      const ok = gl.checkFramebufferStatus(gl.FRAMEBUFFER) === gl.FRAMEBUFFER_COMPLETE;
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      if (ok) return { texture, fbo, format };
      gl.deleteFramebuffer(fbo);
      gl.deleteTexture(texture);
      return null;
    };
    this.accum = (this.floatTarget && attempt(gl.RGBA16F, gl.HALF_FLOAT, "RGBA16F"))
      || attempt(gl.SRGB8_ALPHA8, gl.UNSIGNED_BYTE, "SRGB8_ALPHA8");
  }

  _deleteGL() {
    const gl = this.gl;
    for (const p of [this.splatProgram, this.compositeProgram]) if (p) gl.deleteProgram(p.program);
    if (this.emptyVao) gl.deleteVertexArray(this.emptyVao);
    for (const t of [this.splatTexture, this.orderTexture]) if (t) gl.deleteTexture(t);
    if (this.accum) {
      gl.deleteFramebuffer(this.accum.fbo);
      gl.deleteTexture(this.accum.texture);
    }
    this.accum = null;
    this.splatTexture = null;
    this.orderTexture = null;
  }

  _contextLost() {
    this.frameFence = null;
    this.accum = null;
    this.splatTexture = null;
    this.orderTexture = null;
    this.showMessage("3D preview paused: the browser reclaimed the WebGL context.");
  }

  _contextRestored() {
    if (this.disposed) return;
    this._initGL();
    this._allocAccum();
    if (this.buffer) {
      this._allocSplatTextures();
      this._uploadRows(0, this.committed);
      this.sortedView = null;
      this.visible = 0;
      this.sortNow();
    }
    this.showMessage("");
  }

  // -- sorting -----------------------------------------------------------------------------------

  _depthRow(m) {
    return [m[8], m[9], m[10], m[11], NEAR_M];
  }

  _acceptSort({ order, visible, ms }, view, limit) {
    if (this.disposed || !this.gl) return;
    const gl = this.gl;
    const fullRows = Math.floor(visible / TEXTURE_WIDTH), rest = visible - fullRows * TEXTURE_WIDTH;
    gl.bindTexture(gl.TEXTURE_2D, this.orderTexture);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 4);
    if (fullRows) {
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, TEXTURE_WIDTH, fullRows, gl.RED_INTEGER, gl.UNSIGNED_INT,
        order.subarray(0, fullRows * TEXTURE_WIDTH));
    }
    if (rest) {
      gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, fullRows, rest, 1, gl.RED_INTEGER, gl.UNSIGNED_INT,
        order.subarray(fullRows * TEXTURE_WIDTH, visible));
    }
    this.visible = visible;
    this.sortedLimit = limit;
    this.sortedView = this._depthRow(view.worldToCamera);
    this.lastSortMs = ms;
    this.sorter?.recycle(order);
  }

  // Re-sort when more splats are to be drawn (streaming, quality), or when the depth axis turned
  // by more than ~0.3 degrees or the camera moved along it.
  _maybeResort(view) {
    if (!this.sorter || this.sortInFlight) return;
    const row = this._depthRow(view.worldToCamera);
    const old = this.sortedView;
    const scale = Math.max(this.orbit?.distance ?? 1, 1e-3);
    const limit = this._drawLimit();
    if (old && limit === this.sortedLimit) {
      const turn = Math.hypot(row[0] - old[0], row[1] - old[1], row[2] - old[2]);
      if (turn < 0.005 && Math.abs(row[3] - old[3]) < 0.005 * scale) return;
    }
    const sorter = this.sorter;
    this.sortInFlight = true;
    sorter.sort(row, limit).then((result) => {
      if (sorter !== this.sorter) return;
      this.sortInFlight = false;
      this._acceptSort(result, view, limit);
      this.requestDraw();
    }, () => {
      if (sorter === this.sorter) this.sortInFlight = false;
    });
  }

  // -- overlay, stats, controls --------------------------------------------------------------------

  _overlay(position) {
    const el = document.createElement("div");
    Object.assign(el.style, {
      position: "absolute", font: "11px sans-serif", color: "#ddd", pointerEvents: "none",
      textShadow: "0 0 2px #000, 0 0 2px #000", ...position,
    });
    this.root.appendChild(el);
    return el;
  }

  _countFrame(start) {
    const now = performance.now();
    this.frameTimes.push(now);
    while (this.frameTimes.length && now - this.frameTimes[0] > 1000) this.frameTimes.shift();
    const fps = this.frameTimes.length > 1
      ? (this.frameTimes.length - 1) * 1000 / (now - this.frameTimes[0]) : 0;
    this.fps = fps;
    const total = this.header?.count ?? 0;
    const text = statsText({ drawn: this.sortedLimit, total, fps, bytes: this.header?.byteLength ?? 0,
      loaded: this.committed });
    this.label.textContent = text;
    this.label.title = `draw ${(now - start).toFixed(1)} ms (CPU side) · sort ${this.lastSortMs.toFixed(0)} ms`;
    this.options.onStats?.(text);
  }

  _buildToolbar() {
    const bar = document.createElement("div");
    Object.assign(bar.style, { position: "absolute", right: "4px", bottom: "4px", display: "flex", gap: "4px" });
    const button = (text, title, fn) => {
      const b = document.createElement("button");
      b.textContent = text;
      b.title = title;
      Object.assign(b.style, {
        font: "12px sans-serif", padding: "1px 6px", background: "rgba(40,40,40,0.8)", color: "#eee",
        border: "1px solid #666", borderRadius: "3px", cursor: "pointer",
      });
      this._listen(b, "click", (e) => { e.stopPropagation(); fn(); });
      bar.appendChild(b);
      return b;
    };
    if (this.options.cameraViews) {
      button("use view", "Store this view on the node: SHARP Render's `camera` input renders exactly this shot",
        () => this.storeView("use"));
      button("+ key", "Add this view as a key view of a camera path (SHARP Render interpolates them)",
        () => this.storeView("add"));
      this.clearButton = button("clear", "Forget the stored views", () => this.storeView("clear"));
    }
    button("⟲", "Reset view (or double-click)", () => this.resetView());
    button("◐", "Background: black / white / grey", () => this.toggleBackground());
    this.qualityButton = button("Q full", "Quality: splats drawn at most, the most visible first (faster on "
      + "small GPUs)", () => {
      this.setQuality((this.qualityIndex + 1) % QUALITY_LEVELS.length);
      this._stateChanged();
    });
    button("⛶", "Fullscreen", () => this.toggleFullscreen());
    this.root.appendChild(bar);
    this.setQuality(this.qualityIndex);
    this._showViewCount();
  }

  _showViewCount() {
    if (!this.clearButton) return;
    const n = readCameraViews(this.options.cameraViews.get() ?? "").length;
    this.clearButton.textContent = n ? `clear (${n})` : "clear";
  }

  // Remember the view (and background, quality) a moment after the user stops changing it.
  _stateChanged() {
    if (this.disposed) return;
    clearTimeout(this.stateTimer);
    this.stateTimer = setTimeout(() => {
      if (!this.disposed) this.options.onStateChange?.(this.getState());
    }, 300);
  }

  _cameraMoved() {
    if (!this.orbit) return;
    this.savedOrbit = { ...this.orbit, focus: [...this.orbit.focus], basis: [...this.orbit.basis] };
    this._stateChanged();
  }

  // Keyboard fly: move while keys are held, one step per animation frame.
  _flyTick(now) {
    this.flyRaf = 0;
    if (this.disposed || !this.flyKeys.size || !this.orbit) return;
    const seconds = Math.min(0.1, Math.max(0, (now - (this.flyLast ?? now)) / 1000));
    this.flyLast = now;
    const view = this.currentView();
    const delta = flyDelta(this.flyKeys, view.worldToCamera, this.orbit.distance, seconds, this.flyFast);
    for (let i = 0; i < 3; i++) this.orbit.focus[i] += delta[i];
    this._cameraMoved();
    if (!this._gpuBusy()) this.draw();
    this.flyRaf = (globalThis.requestAnimationFrame ?? ((fn) => setTimeout(() => fn(performance.now()), 16)))(
      (t) => this._flyTick(t));
  }

  _listen(target, type, fn, opts) {
    target.addEventListener(type, fn, opts);
    this._listeners.push([target, type, fn, opts]);
  }

  _takeOverCamera() {
    if (this.explicitCamera) this.explicitCamera = null;
  }

  _bindControls() {
    const pointers = new Map();
    let pinch = null;
    const el = this.canvas;
    const stop = (e) => e.stopPropagation();
    // Keep the graph canvas from panning/zooming while the user handles the scene.
    for (const type of ["pointerdown", "pointermove", "pointerup", "wheel", "dblclick", "mousedown"]) {
      this._listen(this.root, type, stop);
    }
    this._listen(el, "contextmenu", (e) => e.preventDefault());
    this._listen(el, "pointerdown", (e) => {
      this.root.focus?.({ preventScroll: true });
      el.setPointerCapture?.(e.pointerId);
      pointers.set(e.pointerId, { x: e.clientX, y: e.clientY, button: e.button, shift: e.shiftKey });
      pinch = null;
      this._takeOverCamera();
      e.preventDefault();
    });
    const release = (e) => {
      if (pointers.delete(e.pointerId)) this._cameraMoved();
      pinch = null;
    };
    this._listen(el, "pointerup", release);
    this._listen(el, "pointercancel", release);
    this._listen(el, "pointermove", (e) => {
      const p = pointers.get(e.pointerId);
      if (!p || !this.orbit) return;
      const dx = (e.clientX - p.x) * this.pixelRatio, dy = (e.clientY - p.y) * this.pixelRatio;
      p.x = e.clientX;
      p.y = e.clientY;
      if (pointers.size >= 2) {
        const [a, b] = [...pointers.values()];
        const span = Math.hypot(a.x - b.x, a.y - b.y);
        const mid = [(a.x + b.x) / 2, (a.y + b.y) / 2];
        if (pinch) {
          this._zoom(pinch.span / Math.max(span, 1));
          this._pan((mid[0] - pinch.mid[0]) * this.pixelRatio / 2, (mid[1] - pinch.mid[1]) * this.pixelRatio / 2);
        }
        pinch = { span, mid };
      } else if (p.button === 1 || p.button === 2 || p.shift) {
        this._pan(dx, dy);
      } else {
        // the scene follows the pointer: dragging right swings the camera to the left
        this.orbit.yaw += dx * 0.005;
        this.orbit.pitch = Math.max(-1.5, Math.min(1.5, this.orbit.pitch - dy * 0.005));
      }
      this.requestDraw();
    });
    this._listen(el, "wheel", (e) => {
      e.preventDefault();
      if (!this.orbit) return;
      this._takeOverCamera();
      this._zoom(Math.exp(Math.sign(e.deltaY) * Math.min(Math.abs(e.deltaY), 200) * 0.0015));
      this._cameraMoved();
      this.requestDraw();
    }, { passive: false });
    this._listen(el, "dblclick", () => this.resetView());
    // Fly keys stay here (ComfyUI's shortcuts, e.g. W and Q for its sidebars, listen on the
    // window); others, such as Ctrl+S, go on to it.
    this._listen(this.root, "keydown", (e) => {
      this.flyFast = e.shiftKey;
      if (!isFlyKey(e.code) || e.ctrlKey || e.metaKey || e.altKey) return;
      e.stopPropagation();
      e.preventDefault();
      this._takeOverCamera();
      this.flyKeys.add(e.code);
      if (!this.flyRaf) {
        this.flyLast = performance.now();
        this.flyRaf = (globalThis.requestAnimationFrame ?? ((fn) => setTimeout(() => fn(performance.now()), 16)))(
          (t) => this._flyTick(t));
      }
    });
    this._listen(this.root, "keyup", (e) => {
      if (isFlyKey(e.code)) e.stopPropagation();
      this.flyFast = e.shiftKey;
      this.flyKeys.delete(e.code);
    });
    this._listen(this.root, "blur", () => this.flyKeys.clear());
  }

  _zoom(factor) {
    const min = initialOrbit(this.header).distance * 0.02;
    this.orbit.distance = Math.max(min, this.orbit.distance * factor);
  }

  // Move the orbit target so the scene follows the pointer at the target's depth.
  _pan(dx, dy) {
    const view = this.currentView();
    const k = this.orbit.distance / view.fx;
    const m = view.worldToCamera; // rows: camera axes in world coordinates
    for (let i = 0; i < 3; i++) this.orbit.focus[i] -= k * (dx * m[i] + dy * m[4 + i]);
  }
}

function columnMajor(rowMajor) {
  const out = new Float32Array(16);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) out[4 * c + r] = rowMajor[4 * r + c];
  return out;
}

function compileProgram(gl, vsSource, fsSource, uniformNames) {
  const compile = (type, source) => {
    const shader = gl.createShader(type);
    gl.shaderSource(shader, source);
    gl.compileShader(shader);
    if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS) && !gl.isContextLost()) {
      const log = gl.getShaderInfoLog(shader);
      gl.deleteShader(shader);
      throw new Error(`SHARP viewer shader failed to compile: ${log}`);
    }
    return shader;
  };
  const vs = compile(gl.VERTEX_SHADER, vsSource);
  const fs = compile(gl.FRAGMENT_SHADER, fsSource);
  const program = gl.createProgram();
  gl.attachShader(program, vs);
  gl.attachShader(program, fs);
  gl.linkProgram(program);
  gl.deleteShader(vs);
  gl.deleteShader(fs);
  if (!gl.getProgramParameter(program, gl.LINK_STATUS) && !gl.isContextLost()) {
    throw new Error(`SHARP viewer program failed to link: ${gl.getProgramInfoLog(program)}`);
  }
  const uniforms = {};
  for (const name of uniformNames) uniforms[name] = gl.getUniformLocation(program, name);
  return { program, uniforms };
}
