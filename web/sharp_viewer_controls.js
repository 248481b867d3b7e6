// The viewer's pure logic beyond rendering: camera views for the Render node, keyboard fly,
// quality levels, progressive-load pacing, saved state and the stats line. No DOM, no WebGL, no
// side effects on import (ComfyUI imports every web/*.js), so Node's test runner checks it as is.
//
// Frames: the viewer's camera is already OpenCV (x right, y down, z forward) in the frame of the
// splats the preview file stores, which is the frame of the Gaussians the node received (the file
// keeps positions as they are). So a view's world_to_camera is the viewer's matrix unchanged.

/** Quality levels the toolbar cycles: at most `cap` splats drawn, the first (most visible) ones. */
export const QUALITY_LEVELS = [
  { label: "full", cap: Infinity },
  { label: "600k", cap: 600_000 },
  { label: "300k", cap: 300_000 },
  { label: "100k", cap: 100_000 },
];

/** Splats to have before the first coarse picture of a streamed file (then every doubling). */
export const FIRST_PICTURE_SPLATS = 16_384;

/** Keyboard fly: metres per second as a fraction of the orbit distance; shift multiplies it. */
export const FLY_SPEED = 0.6;
export const FLY_FAST = 4;
const FLY_KEYS = {
  KeyW: [0, 0, 1], KeyS: [0, 0, -1], KeyD: [1, 0, 0], KeyA: [-1, 0, 0],
  KeyE: [0, -1, 0], KeyQ: [0, 1, 0], // camera y points down: E rises, Q sinks
};

/** Whether a KeyboardEvent.code moves the camera. */
export function isFlyKey(code) {
  return Object.prototype.hasOwnProperty.call(FLY_KEYS, code);
}

/**
 * How far the orbit's focus moves (world metres, 3 numbers) for the held keys over `seconds`.
 * worldToCamera: row-major 4x4 (rows 0-2 are the camera's x, y, z axes in world coordinates).
 * The camera and its orbit target move together, so orbiting after a fly turns about the new
 * point ahead.
 */
export function flyDelta(keys, worldToCamera, distance, seconds, fast = false) {
  const local = [0, 0, 0];
  for (const code of keys) {
    const d = FLY_KEYS[code];
    if (d) for (let i = 0; i < 3; i++) local[i] += d[i];
  }
  const len = Math.hypot(local[0], local[1], local[2]);
  if (!len) return [0, 0, 0];
  const step = FLY_SPEED * Math.max(distance, 1e-3) * seconds * (fast ? FLY_FAST : 1) / len;
  const m = worldToCamera;
  return [0, 1, 2].map((i) => step * (local[0] * m[i] + local[1] * m[4 + i] + local[2] * m[8 + i]));
}

/**
 * The view dict (sharp_core.camera_from_view) of the viewer's camera {fx, fy, cx, cy,
 * worldToCamera (16, row-major)} on a width x height canvas. The viewer draws square pixels about
 * the canvas centre, as camera_from_view assumes; fov_y_deg comes from fy.
 */
export function cameraViewDict(camera, width, height) {
  const m = camera.worldToCamera;
  if (!m || m.length !== 16) throw new Error("cameraViewDict needs worldToCamera: 16 numbers");
  const rows = [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((c) => m[4 * r + c] + 0));
  const fov = 2 * Math.atan(height / 2 / camera.fy) * 180 / Math.PI;
  return { world_to_camera: rows, fov_y_deg: fov, width: Math.round(width), height: Math.round(height) };
}

/** Views stored in the `camera_views` text ([] when empty or unreadable: the node reports it). */
export function readCameraViews(text) {
  if (typeof text !== "string" || !text.trim()) return [];
  try {
    const value = JSON.parse(text);
    if (Array.isArray(value)) return value;
    return value && typeof value === "object" ? [value] : [];
  } catch {
    return [];
  }
}

/**
 * New `camera_views` text after a toolbar action: "use" keeps only `view`, "add" appends it as a
 * key view, "clear" empties the list.
 */
export function updateCameraViews(text, action, view = null) {
  if (action === "clear") return "";
  if (!view) throw new Error(`camera view action "${action}" needs a view`);
  if (action === "use") return JSON.stringify([view]);
  if (action === "add") return JSON.stringify([...readCameraViews(text), view]);
  throw new Error(`unknown camera view action "${action}" (use, add or clear)`);
}

/** Splats to draw: all loaded ones, capped by the quality level. */
export function drawLimit(loaded, qualityIndex) {
  const level = QUALITY_LEVELS[qualityIndex] ?? QUALITY_LEVELS[0];
  return Math.min(loaded, level.cap);
}

/**
 * Splats a streamed file should have uploaded next (whole texture rows of `rowWidth`), or 0 to wait:
 * exactly the first FIRST_PICTURE_SPLATS (or the whole file) for the first picture, kept small so
 * that even a software GL draws it at once; then all whole rows that have arrived whenever that at
 * least doubles what is drawn; everything once the file is complete.
 */
export function nextCommit(loaded, committed, total, complete, rowWidth = 4096) {
  if (complete) return committed < total ? total : 0;
  const rows = Math.floor(Math.min(loaded, total) / rowWidth) * rowWidth;
  if (committed === 0) {
    const first = Math.min(FIRST_PICTURE_SPLATS, total);
    return loaded >= first ? first : 0;
  }
  return rows >= Math.min(2 * committed, total) && rows > committed ? rows : 0;
}

/** The stats line: splats drawn of the total, fps, payload size and, while streaming, progress. */
export function statsText({ drawn, total, fps, bytes, loaded = total }) {
  const n = (v) => Math.round(v).toLocaleString("en-US");
  const parts = [drawn < total ? `${n(drawn)} / ${n(total)} splats` : `${n(total)} splats`];
  if (fps) parts.push(`${fps.toFixed(fps < 10 ? 1 : 0)} fps`);
  if (bytes) parts.push(`${(bytes / 1e6).toFixed(1)} MB`);
  if (loaded < total) parts.push(`loading ${Math.floor(100 * loaded / total)} %`);
  return parts.join(" · ");
}

const isNumber = (v) => typeof v === "number" && Number.isFinite(v);
const numbers = (a, n) => Array.isArray(a) && a.length === n && a.every(isNumber);

/**
 * The viewer state kept in node.properties, checked: {background, quality, orbit} with orbit
 * {focus [3], distance > 0, yaw, pitch, basis [9]}; anything missing or malformed is dropped
 * (null orbit: open at the file's initial view).
 */
export function sanitizeState(state, backgrounds = 3) {
  const out = { background: 0, quality: 0, orbit: null };
  if (!state || typeof state !== "object") return out;
  if (Number.isInteger(state.background) && state.background >= 0 && state.background < backgrounds) {
    out.background = state.background;
  }
  if (Number.isInteger(state.quality) && state.quality >= 0 && state.quality < QUALITY_LEVELS.length) {
    out.quality = state.quality;
  }
  const o = state.orbit;
  if (o && numbers(o.focus, 3) && isNumber(o.distance) && o.distance > 0 && isNumber(o.yaw)
      && isNumber(o.pitch) && numbers(o.basis, 9)) {
    out.orbit = { focus: [...o.focus], distance: o.distance, yaw: o.yaw, pitch: o.pitch, basis: [...o.basis] };
  }
  return out;
}
