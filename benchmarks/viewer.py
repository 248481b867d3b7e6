"""Viewer figures in headless Chromium (SwiftShader: software WebGL2, so relative costs, not a GPU's
speed): frame time at the quality levels (100 k, 300 k, 600 k splats and the full 1,179,648), cost per
100 k splats, and time to the first picture of a progressive (streamed) load against the baseline of
loading the whole file first.

    python -m benchmarks.viewer [--size 512] [--frames 3] [--rate-mb-s 50]

The scene is benchmarks.preview's SHARP-shaped synthetic one, written with every splat (18.9 MB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from benchmarks.preview import sharp_like_scene  # noqa: E402
from sharp_core.preview_file import encode_preview  # noqa: E402

PAGE = """
const { SplatViewer } = await import("/web/sharp_viewer.js");
const { QUALITY_LEVELS } = await import("/web/sharp_viewer_controls.js");
const make = () => {
  const box = document.createElement("div");
  box.style.cssText = "width: %(size)dpx; height: %(size)dpx";
  document.body.appendChild(box);
  return new SplatViewer(box, {pixelRatio: 1, interactive: false});
};
// baseline: the whole file first, then one load
let viewer = make();
if (!viewer.supported) { await report({error: "no WebGL2"}); return; }
let t = performance.now();
const buf = await (await fetch("/__page/scene.shpv")).arrayBuffer();
const downloadedMs = performance.now() - t;
await viewer.load(buf);
viewer._finishGPU();
const baselineMs = performance.now() - t;
viewer.dispose();
// progressive: the same file streamed
viewer = make();
t = performance.now();
const response = await fetch("/__page/scene.shpv");
const responseMs = performance.now() - t;
await viewer.loadStream(response);
const stream = viewer.timing;
// frame time per quality level
const gl = viewer.gl, pixel = new Uint8Array(4);
const levels = [];
for (let q = QUALITY_LEVELS.length - 1; q >= 0; q--) {
  viewer.setQuality(q);
  await viewer.sortNow();
  viewer._finishGPU();
  t = performance.now();
  for (let i = 0; i < %(frames)d; i++) {
    viewer.draw({countFrame: false});
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, pixel);
  }
  levels.push({label: QUALITY_LEVELS[q].label, splats: viewer.sortedLimit, visible: viewer.visible,
               frameMs: (performance.now() - t) / %(frames)d, sortMs: viewer.lastSortMs});
}
await report({count: viewer.header.count, downloadedMs, baselineMs, responseMs, stream, levels,
              format: viewer.renderTargetFormat});
viewer.dispose();
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="canvas side, pixels")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--rate-mb-s", type=float, default=50.0,
                        help="network speed the file is sent at (0: as fast as the local server goes)")
    args = parser.parse_args()

    from chromium_harness import find_chromium, module_page, run_page

    if find_chromium() is None:
        print("skipped: Chromium not installed (apt-get install -y chromium)")
        return
    data = encode_preview(sharp_like_scene(), max_splats=0)
    trickle = None
    if args.rate_mb_s > 0:
        chunk = 1 << 20
        trickle = (chunk, chunk / (args.rate_mb_s * 1e6))
    page = module_page(PAGE % {"size": args.size, "frames": args.frames})
    r = run_page(page, {"scene.shpv": data}, timeout_s=1800, trickle=trickle)
    n = r["count"]
    rate = f"{args.rate_mb_s:g} MB/s" if trickle else "local, unthrottled"
    print(f"scene: {n:,} splats, {len(data) / 1e6:.1f} MB, {args.size}x{args.size} canvas, {r['format']}, "
          f"SwiftShader; file sent {rate}")
    base = next(level for level in r["levels"] if level["splats"] == n)
    for level in r["levels"]:
        per100k = level["frameMs"] / (level["splats"] / 1e5)
        print(f"  quality {level['label']:>4}: {level['splats']:>9,} splats drawn ({level['visible']:,} in front), "
              f"frame {level['frameMs']:8.1f} ms = {1000 / level['frameMs']:6.2f} fps, {per100k:6.1f} ms per 100k "
              f"splats, {level['frameMs'] / base['frameMs']:.2f}x the full scene's frame time; sort "
              f"{level['sortMs']:.0f} ms")
    s = r["stream"]
    print(f"  progressive: first picture {s['firstPictureMs']:.0f} ms after the response arrived "
          f"({s['firstSplats']:,} splats; records decoded and uploaded at {s['firstDataMs']:.0f} ms, the rest is "
          f"sorting and drawing them), complete {s['completeMs']:.0f} ms")
    print(f"  baseline (whole file, then load): first picture {r['baselineMs']:.0f} ms after the request "
          f"(download {r['downloadedMs']:.0f} ms); progressive first picture "
          f"{(r['responseMs'] + s['firstPictureMs']) / r['baselineMs']:.2f}x of it, counted from the request")


if __name__ == "__main__":
    main()
