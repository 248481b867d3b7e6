// Decoder for the SHARP compact preview file (written by sharp_core/preview_file.py).
// Pure module: imports nothing and has no side effects, so ComfyUI can import it as an
// extension module and Node's test runner can import it as it is.
//
// Layout, little-endian:
//   header, 128 bytes (version 2; version 1 files have only the first 64, and still load)
//     0  "SHPV"            magic
//     4  u32 version (2)   8  u32 splat count N
//     12 u32 flags (bit 0: camera-framed; bit 1: records most visible first, so a prefix is a
//        coarse scene: what progressive loading and the quality cap draw)
//     16 f32 focal length of the source image (pixels)
//     20 u32 image width   24 u32 image height (pixels)
//     28 f32 log_scale_min 32 f32 log_scale_max (natural log of metres)
//     36 3 x f32 bbox min  48 3 x f32 bbox max (metres)
//     60 f32 focus depth (metres; opacity-weighted median z in front of the source camera)
//     64 3 x f32 initial view: orbit target (metres)   76 f32 its distance from the camera
//     80 3 x f32 forward (unit: where the camera looks) 92 3 x f32 up (unit, orthogonal to forward)
//     104..127 reserved
//   A version 1 file reads as the source camera: target (0, 0, focus), distance focus,
//   forward +z, up -y.
//   N records of four u32 words:
//     w0 = x f16 | y f16 << 16          positions in metres, OpenCV camera frame
//     w1 = z f16 | scale0 << 16 | scale1 << 24
//     w2 = R | G << 8 | B << 16 | opacity << 24   (R,G,B sRGB-encoded; opacity linear)
//     w3 = scale2 | largest << 8 | a << 10 | b << 17 | c << 24
//          smallest-three quaternion: `largest` is the index (w,x,y,z order) of the dropped,
//          non-negative component; a,b,c are the others in order, 7 bits over +-1/sqrt(2).
//   scale byte q -> exp(log_scale_min + q / 255 * (log_scale_max - log_scale_min)).
// The GPU receives the records unchanged (one RGBA32UI texel per splat) and the vertex shader in
// sharp_viewer.js unpacks them the same way as decodeSplats below.

export const PREVIEW_MAGIC = "SHPV";
export const PREVIEW_VERSION = 2;
export const HEADER_BYTES = 128;
export const HEADER_BYTES_V1 = 64;
export const FLAG_CAMERA_FRAMED = 1;
export const FLAG_VISIBILITY_ORDERED = 2;
export const RECORD_BYTES = 16;
export const ROT_RANGE = Math.SQRT1_2;
export const ROT_LEVELS = 127;

// Largest file the viewer accepts: one RGBA32UI texel per splat in a 4096 x 4096 texture.
export const MAX_PREVIEW_SPLATS = 4096 * 4096;

/**
 * Read and check the header; throws an Error naming the problem on a bad file. With
 * `complete: false` the buffer may hold only the start of the file (at least the header).
 */
export function parseHeader(buffer, { complete = true } = {}) {
  if (!(buffer instanceof ArrayBuffer)) throw new TypeError("parseHeader needs an ArrayBuffer");
  if (buffer.byteLength < HEADER_BYTES_V1) {
    throw new Error(`preview file too short (${buffer.byteLength} bytes; the header alone is ${HEADER_BYTES})`);
  }
  const v = new DataView(buffer);
  const magic = String.fromCharCode(v.getUint8(0), v.getUint8(1), v.getUint8(2), v.getUint8(3));
  if (magic !== PREVIEW_MAGIC) throw new Error(`not a SHARP preview file (magic "${magic}")`);
  const version = v.getUint32(4, true);
  if (version !== 1 && version !== PREVIEW_VERSION) throw new Error(`preview file version ${version} is not supported`);
  const headerBytes = version === 1 ? HEADER_BYTES_V1 : HEADER_BYTES;
  const count = v.getUint32(8, true);
  if (count > MAX_PREVIEW_SPLATS) {
    throw new Error(`preview file claims ${count} splats; the viewer shows at most ${MAX_PREVIEW_SPLATS} `
      + "(lower max_splats on the node)");
  }
  const expected = headerBytes + count * RECORD_BYTES;
  if (complete ? buffer.byteLength !== expected : buffer.byteLength < headerBytes || buffer.byteLength > expected) {
    throw new Error(`preview file has ${buffer.byteLength} bytes; ${count} splats need ${expected}`);
  }
  const f32 = (o) => v.getFloat32(o, true);
  const vec3 = (o) => [f32(o), f32(o + 4), f32(o + 8)];
  const flags = v.getUint32(12, true);
  const focusDepth = f32(60);
  const view = version === 1
    ? { target: [0, 0, focusDepth], distance: focusDepth, forward: [0, 0, 1], up: [0, -1, 0], cameraFramed: true }
    : { target: vec3(64), distance: f32(76), forward: vec3(80), up: vec3(92),
        cameraFramed: (flags & FLAG_CAMERA_FRAMED) !== 0 };
  return {
    version,
    headerBytes,
    byteLength: expected,
    count,
    flags,
    visibilityOrdered: (flags & FLAG_VISIBILITY_ORDERED) !== 0,
    focalPx: f32(16),
    imageWidth: v.getUint32(20, true),
    imageHeight: v.getUint32(24, true),
    logScaleMin: f32(28),
    logScaleMax: f32(32),
    bboxMin: vec3(36),
    bboxMax: vec3(48),
    focusDepth,
    view,
  };
}

/** The records as a Uint32Array view (4 words per splat), no copy. */
export function recordWords(buffer, header = parseHeader(buffer)) {
  return new Uint32Array(buffer, header.headerBytes, header.count * 4);
}

// IEEE 754 binary16 -> number, via a 64 k lookup table built on first use.
let halfTable = null;
function buildHalfTable() {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return t;
}
export function halfToFloat(h) {
  halfTable ??= buildHalfTable();
  return halfTable[h & 0xffff];
}

/**
 * Positions only, (N*3) Float32Array of metres: what the depth sort needs. `from`/`to` decode
 * splats [from, to) into `out` (default: all, into a new array) for a file still arriving.
 */
export function decodePositions(buffer, header = parseHeader(buffer), from = 0, to = header.count,
  out = new Float32Array(header.count * 3)) {
  halfTable ??= buildHalfTable();
  const words = new Uint32Array(buffer, header.headerBytes, header.count * 4);
  for (let i = from, w = 4 * from, o = 3 * from; i < to; i++, w += 4, o += 3) {
    const w0 = words[w];
    out[o] = halfTable[w0 & 0xffff];
    out[o + 1] = halfTable[w0 >>> 16];
    out[o + 2] = halfTable[words[w + 1] & 0xffff];
  }
  return out;
}

export function srgbToLinear(c) {
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

/**
 * Every field, as the shader sees it: means (N*3, metres), scales (N*3, linear std-devs),
 * quats (N*4, unit w,x,y,z), colors (N*3, LINEAR RGB), opacities (N). For tests and tools.
 */
export function decodeSplats(buffer) {
  const header = parseHeader(buffer);
  const n = header.count;
  const words = recordWords(buffer, header);
  const means = decodePositions(buffer, header);
  const scales = new Float32Array(n * 3);
  const quats = new Float32Array(n * 4);
  const colors = new Float32Array(n * 3);
  const opacities = new Float32Array(n);
  const srgbLut = new Float32Array(256).map((_, i) => srgbToLinear(i / 255));
  const lo = header.logScaleMin;
  const step = (header.logScaleMax - lo) / 255;
  const q = [0, 0, 0, 0];
  for (let i = 0; i < n; i++) {
    const w1 = words[4 * i + 1], w2 = words[4 * i + 2], w3 = words[4 * i + 3];
    scales[3 * i] = Math.exp(lo + ((w1 >>> 16) & 0xff) * step);
    scales[3 * i + 1] = Math.exp(lo + (w1 >>> 24) * step);
    scales[3 * i + 2] = Math.exp(lo + (w3 & 0xff) * step);
    colors[3 * i] = srgbLut[w2 & 0xff];
    colors[3 * i + 1] = srgbLut[(w2 >>> 8) & 0xff];
    colors[3 * i + 2] = srgbLut[(w2 >>> 16) & 0xff];
    opacities[i] = (w2 >>> 24) / 255;
    unpackQuaternion(w3 >>> 8, q);
    quats.set(q, 4 * i);
  }
  return { header, means, scales, quats, colors, opacities };
}

/** 24-bit smallest-three code -> unit quaternion (w,x,y,z) written into `out`. */
export function unpackQuaternion(bits, out = [0, 0, 0, 0]) {
  const largest = bits & 3;
  let sum = 0;
  for (let k = 0, j = 0; k < 4; k++) {
    if (k === largest) continue;
    const c = (((bits >>> (2 + 7 * j)) & 0x7f) / ROT_LEVELS * 2 - 1) * ROT_RANGE;
    out[k] = c;
    sum += c * c;
    j++;
  }
  out[largest] = Math.sqrt(Math.max(0, 1 - sum));
  const norm = Math.hypot(out[0], out[1], out[2], out[3]);
  for (let k = 0; k < 4; k++) out[k] /= norm;
  return out;
}

/**
 * Reassembles a preview file from the chunks a streaming fetch delivers. `push(bytes)` copies a
 * Uint8Array chunk in; once the header has arrived, `header` is set and `buffer` is an ArrayBuffer
 * of the whole file's size, of which the first `loadedSplats` records are complete. `finish()`
 * checks that exactly the announced bytes arrived. Errors name the problem (bad header, too many
 * or too few bytes); nothing is allocated beyond what the header announces, which is capped.
 */
export class PreviewAssembler {
  constructor() {
    this.header = null;
    this.buffer = null;
    this.bytes = null;
    this.received = 0;
    this.pending = new Uint8Array(0); // bytes before the header is complete
  }

  get loadedSplats() {
    if (!this.header) return 0;
    return Math.min(this.header.count,
      Math.floor(Math.max(0, this.received - this.header.headerBytes) / RECORD_BYTES));
  }

  get complete() {
    return !!this.header && this.received === this.header.byteLength;
  }

  push(chunk) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError("PreviewAssembler.push needs a Uint8Array");
    if (!this.header) {
      const joined = new Uint8Array(this.pending.length + chunk.length);
      joined.set(this.pending);
      joined.set(chunk, this.pending.length);
      this.pending = joined;
      if (joined.length < 8) return;
      const version = new DataView(joined.buffer).getUint32(4, true);
      const need = version === 1 ? HEADER_BYTES_V1 : HEADER_BYTES;
      if (joined.length < need) return;
      const header = parseHeader(joined.buffer.slice(0, Math.min(joined.length, need)), { complete: false });
      if (joined.length > header.byteLength) this._overflow(joined.length, header);
      this.header = header;
      this.buffer = new ArrayBuffer(header.byteLength);
      this.bytes = new Uint8Array(this.buffer);
      this.bytes.set(joined);
      this.received = joined.length;
      this.pending = null;
      return;
    }
    if (this.received + chunk.length > this.header.byteLength) this._overflow(this.received + chunk.length, this.header);
    this.bytes.set(chunk, this.received);
    this.received += chunk.length;
  }

  finish() {
    if (!this.header) throw new Error(`preview file too short (${this.pending?.length ?? 0} bytes; the header alone is ${HEADER_BYTES})`);
    if (!this.complete) {
      throw new Error(`preview file has ${this.received} bytes; ${this.header.count} splats need ${this.header.byteLength}`);
    }
    return this.buffer;
  }

  _overflow(bytes, header) {
    throw new Error(`preview file has more than ${header.byteLength} bytes (${bytes} so far); `
      + `its header announces ${header.count} splats`);
  }
}
