// Back-to-front depth sort of splats, and the Web Worker that runs it off the main thread.
// Pure module: no side effects on import (ComfyUI imports every .js under web/ as an extension).
// The worker is built from this file's own function sources into a Blob URL, so there is no
// separate worker file for ComfyUI to import by mistake.

/**
 * Order splats far -> near for "over" blending with a 16-bit counting sort on inverse depth
 * (inverse depth spends the 65 536 buckets where perspective makes order visible: close by).
 *
 * positions: Float32Array (N*3) metres. view: [r0, r1, r2, t, near] where depth = r.p + t is the
 * camera-space z (the third row of world_to_camera) and splats with depth <= near are dropped.
 * out: Uint32Array (>= N) receives the indices. scratch: object reused between calls.
 * Returns the number of splats written to `out`.
 */
export function sortByDepth(positions, count, view, out, scratch) {
  if (!scratch.inv || scratch.inv.length < count) {
    scratch.inv = new Float32Array(count);
    scratch.keys = new Uint16Array(count);
  }
  scratch.counts ??= new Uint32Array(65536);
  const inv = scratch.inv, keys = scratch.keys, counts = scratch.counts;
  const r0 = view[0], r1 = view[1], r2 = view[2], t = view[3], near = view[4];
  let lo = Infinity, hi = -Infinity;
  for (let i = 0, p = 0; i < count; i++, p += 3) {
    const z = r0 * positions[p] + r1 * positions[p + 1] + r2 * positions[p + 2] + t;
    if (z > near) {
      const w = 1 / z;
      inv[i] = w;
      if (w < lo) lo = w;
      if (w > hi) hi = w;
    } else {
      inv[i] = -1;
    }
  }
  if (!(hi >= lo)) return 0;
  const scale = hi > lo ? 65535 / (hi - lo) : 0;
  counts.fill(0);
  let visible = 0;
  for (let i = 0; i < count; i++) {
    if (inv[i] < 0) continue;
    const k = Math.min(65535, ((inv[i] - lo) * scale) | 0);
    keys[i] = k;
    counts[k]++;
    visible++;
  }
  for (let k = 0, start = 0; k < 65536; k++) {
    const c = counts[k];
    counts[k] = start;
    start += c;
  }
  for (let i = 0; i < count; i++) {
    if (inv[i] >= 0) out[counts[keys[i]]++] = i;
  }
  return visible;
}

// Runs inside the worker. Messages in: {positions, count} once (positions: the first splats, maybe
// fewer than count, the rest arriving later),
// {append (Float32Array), offset (splat index)} as a streamed file arrives, then {id, view, limit, out?}.
// Messages out: {id, order (Uint32Array, transferred), visible, ms}.
function sortWorkerMain() {
  let positions = null, count = 0;
  const scratch = {};
  self.onmessage = (event) => {
    const msg = event.data;
    if (msg.positions) {
      count = msg.count;
      positions = msg.positions.length === 3 * count ? msg.positions : new Float32Array(3 * count);
      if (positions !== msg.positions) positions.set(msg.positions);
      return;
    }
    if (msg.append) {
      if (positions) positions.set(msg.append, 3 * msg.offset);
      return;
    }
    if (!positions) return;
    const limit = Math.min(count, msg.limit ?? count);
    const order = msg.out && msg.out.length >= count ? msg.out : new Uint32Array(count);
    const start = performance.now();
    // eslint-disable-next-line no-undef
    const visible = sortByDepth(positions, limit, msg.view, order, scratch);
    const ms = performance.now() - start;
    self.postMessage({ id: msg.id, order, visible, ms }, [order.buffer]);
  };
}

/** Source text of the sort worker (the functions above, serialised). */
export function sortWorkerSource() {
  return `${sortByDepth.toString()}\n(${sortWorkerMain.toString()})();\n`;
}

/**
 * Sorter used by the viewer: a Blob-URL Web Worker when the page allows one, else the same sort
 * on the main thread. `positions` (count*3) may be filled progressively: pass `filled` (the splats
 * written so far) and call `extend(from, to)` after writing splats [from, to) so the worker gets
 * them too. `sort(view, limit)` orders the first
 * `limit` splats (default all) and resolves to {order, visible, ms}; give `order` back with
 * `recycle(order)` once uploaded so the next sort reuses its memory.
 */
export class DepthSorter {
  constructor(positions, count, { useWorker = true, filled = count } = {}) {
    this.count = count;
    this.positions = positions; // kept (the worker gets a copy) so a failed worker can be replaced
    this.scratch = {};
    this.spare = null;
    this.pending = new Map();
    this.nextId = 1;
    this.worker = null;
    if (useWorker && typeof Worker !== "undefined" && typeof Blob !== "undefined") {
      try {
        const url = URL.createObjectURL(new Blob([sortWorkerSource()], { type: "text/javascript" }));
        this.worker = new Worker(url);
        URL.revokeObjectURL(url);
        this.worker.onmessage = (e) => this._settle(e.data);
        // e.g. a Content-Security-Policy without blob: workers: sort on this thread instead
        this.worker.onerror = (e) => {
          e.preventDefault?.();
          this._fallBackToMainThread();
        };
        // only the splats already there: a streamed file sends the rest with extend()
        this.worker.postMessage({ positions: filled >= count ? positions : positions.slice(0, 3 * filled), count });
      } catch {
        this.worker = null;
      }
    }
  }

  get usesWorker() {
    return this.worker !== null;
  }

  /** Send splats [from, to) of `positions` (written since construction) to the worker. */
  extend(from, to) {
    if (!this.worker || to <= from) return;
    this.worker.postMessage({ append: this.positions.slice(3 * from, 3 * to), offset: from });
  }

  /**
   * Order splats [0, limit) back to front for `view`. `here`: sort on this thread even when a worker
   * exists, for a small first sort that should not wait for the worker to start (a streamed file's
   * first picture: 16 k splats sort in about a millisecond).
   */
  sort(view, limit = this.count, { here = false } = {}) {
    const id = this.nextId++;
    const out = this.spare;
    this.spare = null;
    limit = Math.max(0, Math.min(this.count, limit));
    if (!this.worker || here) return Promise.resolve(this._sortHere(view, out, limit));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, view, limit });
      const msg = { id, view: Array.from(view), limit, out };
      this.worker.postMessage(msg, out ? [out.buffer] : []);
    });
  }

  _sortHere(view, out, limit = this.count) {
    if (!this.positions) throw new Error("sorter disposed");
    const order = out && out.length >= this.count ? out : new Uint32Array(this.count);
    const start = performance.now();
    const visible = sortByDepth(this.positions, limit, view, order, this.scratch);
    return { order, visible, ms: performance.now() - start };
  }

  _fallBackToMainThread() {
    this.worker?.terminate();
    this.worker = null;
    for (const [id, entry] of this.pending) {
      this.pending.delete(id);
      try {
        entry.resolve(this._sortHere(entry.view, null, entry.limit));
      } catch (err) {
        entry.reject(err);
      }
    }
  }

  recycle(order) {
    if (order && order.length >= this.count) this.spare = order;
  }

  _settle(data) {
    const entry = this.pending.get(data.id);
    if (!entry) return;
    this.pending.delete(data.id);
    entry.resolve({ order: data.order, visible: data.visible, ms: data.ms });
  }

  dispose() {
    this.worker?.terminate();
    this.worker = null;
    for (const { reject } of this.pending.values()) reject(new Error("sorter disposed"));
    this.pending.clear();
    this.positions = null;
  }
}
