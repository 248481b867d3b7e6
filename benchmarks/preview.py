"""Preview figures: file size and write time for a SHARP-sized scene, and, in headless Chromium
(SwiftShader, software WebGL2), decode time, worker sort time per frame and fps at 512 x 512.

    python -m benchmarks.preview [--splats 1179648 300000] [--frames 5]

The scene is synthetic but shaped like SHARP's output: two layers of 768 x 768 splats
unprojected from a smooth depth map, each about two source pixels wide.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sharp_core.gaussians import Gaussians  # noqa: E402
from sharp_core.preview_file import DEFAULT_MAX_SPLATS, encode_preview, write_preview  # noqa: E402

SIZE = 512


def sharp_like_scene(side: int = 768, layers: int = 2, seed: int = 0) -> Gaussians:
    """layers x side x side splats on a smooth depth map, SHARP's order (layer, row, column)."""
    g = torch.Generator().manual_seed(seed)
    width, height, focal = 1536, 1152, 1300.0
    v, u = torch.meshgrid(torch.linspace(0, height, side), torch.linspace(0, width, side), indexing="ij")
    depth = 2.0 + 1.5 * torch.sin(u / 300.0) * torch.cos(v / 250.0) + 3.0 * (v / height)
    means, scales = [], []
    for layer in range(layers):
        z = depth + 0.3 * layer + 0.01 * torch.randn(side, side, generator=g)
        xyz = torch.stack([(u - width / 2) * z / focal, (v - height / 2) * z / focal, z], -1)
        means.append(xyz.reshape(-1, 3))
        pixel = (z * 2.0 * width / side / focal).reshape(-1, 1)
        scales.append(pixel * torch.exp(0.3 * torch.randn(side * side, 3, generator=g)))
    n = layers * side * side
    colors = torch.rand(n, 3, generator=g) * 0.2 + torch.stack(
        [0.5 + 0.4 * torch.sin(u / 90), 0.4 + 0.3 * torch.cos(v / 70), 0.3 + 0.2 * torch.sin((u + v) / 150)], -1
    ).reshape(-1, 3).repeat(layers, 1)
    return Gaussians(
        means=torch.cat(means), scales=torch.cat(scales),
        quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1),
        colors=colors.clamp(0, 1), opacities=torch.rand(n, generator=g) * 0.7 + 0.3,
        focal_px=[focal], image_size=[(width, height)],
    )


BROWSER_PAGE = """
const fmt = await import("/web/sharp_preview_format.js");
const { SplatViewer } = await import("/web/sharp_viewer.js");
const buf = await (await fetch("/__page/scene.shpv")).arrayBuffer();
let t = performance.now();
const header = fmt.parseHeader(buf);
fmt.decodePositions(buf, header);
const decodeMs = performance.now() - t;
const box = document.createElement("div");
box.style.cssText = "width: %(size)dpx; height: %(size)dpx";
document.body.appendChild(box);
const viewer = new SplatViewer(box, {pixelRatio: 1, interactive: false});
if (!viewer.supported) { await report({error: "no WebGL2"}); return; }
t = performance.now();
await viewer.load(buf);
const loadMs = performance.now() - t;
const sorts = [];
for (let i = 0; i < 6; i++) {
  viewer.orbit.yaw = 0.05 * (i + 1);
  await viewer.sortNow();
  sorts.push(viewer.lastSortMs);
}
const gl = viewer.gl, pixel = new Uint8Array(4);
viewer.draw(); gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, pixel);  // warm up
t = performance.now();
for (let i = 0; i < %(frames)d; i++) {
  viewer.draw();
  gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, pixel);  // wait for the frame
}
const frameMs = (performance.now() - t) / %(frames)d;
await report({count: header.count, decodeMs, loadMs, sorts, frameMs, format: viewer.renderTargetFormat,
              visible: viewer.visible});
viewer.dispose();
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splats", type=int, nargs="+", default=[1_179_648, 300_000])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    scene = sharp_like_scene()
    n = scene.num_gaussians
    print(f"scene: {n:,} splats (SHARP-shaped synthetic); SHARP's PLY would be {n * 56 / 1e6:.1f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        for label, cap in (("all splats", None), (f"max_splats={DEFAULT_MAX_SPLATS:,}", DEFAULT_MAX_SPLATS)):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                path = write_preview(scene, Path(tmp) / "scene.shpv", max_splats=cap)
                times.append(time.perf_counter() - start)
            print(f"write ({label}): {path.stat().st_size / 1e6:.2f} MB, best of 3 {min(times) * 1000:.0f} ms")

    if args.no_browser:
        return
    from chromium_harness import find_chromium, module_page, run_page

    if find_chromium() is None:
        print("browser figures skipped: Chromium not installed (apt-get install -y chromium)")
        return
    for count in args.splats:
        keep = None if count >= n else count
        data = encode_preview(scene, max_splats=keep)
        page = module_page(BROWSER_PAGE % {"size": SIZE, "frames": args.frames})
        result = run_page(page, {"scene.shpv": data}, timeout_s=600)
        sorts = sorted(result["sorts"])
        print(json.dumps({k: v for k, v in result.items() if k != "sorts"}))
        print(
            f"browser, {result['count']:,} splats ({len(data) / 1e6:.1f} MB), {SIZE}x{SIZE}, "
            f"{result['format']}: decode positions {result['decodeMs']:.0f} ms, load (texture upload + first "
            f"sort, GPU work queued) {result['loadMs']:.0f} ms, worker sort median {sorts[len(sorts) // 2]:.0f} ms, "
            f"frame {result['frameMs']:.0f} ms = {1000 / result['frameMs']:.2f} fps (SwiftShader)"
        )


if __name__ == "__main__":
    main()
