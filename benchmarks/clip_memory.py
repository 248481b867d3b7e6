"""Peak memory of a clip through SHARP: streamed to disk (what SHARP Predict does for more than 3 images)
against all scenes kept in memory (what it did before), for several clip lengths.

    python -m benchmarks.clip_memory [--frames 2,5] [--size 1536x1024] [--render-size 96x64]

Each clip length runs in a fresh process (peak RSS, ru_maxrss, only ever grows) with the tiny fixture
network, which still makes 1,179,648 Gaussians per frame at SHARP's 1536 px internal resolution. The
pipeline is the nodes' own: predict each frame -> SceneSequenceWriter (stream) or a list + stack_scenes
(in memory) -> render scene i at camera i of a rotate_forward path, scale aligned to the first frame.
Streaming should be flat in frame count (one scene alive at a time); in memory grows by a scene a frame.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

TINY = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "sharp-tiny" / "weights.safetensors"


def child(frames: int, mode: str, size: tuple[int, int], render_size: tuple[int, int]) -> dict:
    import sharp_core

    torch.set_grad_enabled(False)
    width, height = size
    model = sharp_core.load_model(TINY)
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(height // 8, width // 8, 3, generator=gen)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = sharp_core.SceneSequenceWriter(Path(tmp) / "clip") if mode == "stream" else []
        for i in range(frames):  # a slowly brightening photo, upsampled to the clip size
            image = torch.nn.functional.interpolate(
                (base * (0.8 + 0.02 * i)).permute(2, 0, 1)[None], size=(height, width), mode="bilinear")[0]
            store.append(sharp_core.predict(model, image.permute(1, 2, 0).clamp(0, 1), focal_mm=30.0))
        scenes = store.finish() if mode == "stream" else sharp_core.stack_scenes(store)
        del store
        predicted = time.perf_counter()
        rw, rh = render_size
        reference, cameras = None, None
        for i, scene in enumerate(sharp_core.iter_scenes(scenes)):
            if reference is None:
                reference = sharp_core.median_depth(scene)
                cameras = sharp_core.camera_path(scene, "rotate_forward", frames, rw, rh)
            else:
                scene, _ = sharp_core.align_scale(scene, reference)
            sharp_core.render(scene, cameras[i], rw, rh, backend="torch")
            del scene
        rendered = time.perf_counter()
        del scenes
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"frames": frames, "mode": mode, "peak_mb": peak_mb, "predict_s": predicted - start,
            "render_s": rendered - predicted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="2,5", help="clip lengths, comma-separated")
    parser.add_argument("--size", default="1536x1024", help="clip frame size W x H")
    parser.add_argument("--render-size", default="96x64", help="rendered frame size W x H")
    parser.add_argument("--child", nargs=2, metavar=("FRAMES", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    render_size = tuple(int(v) for v in args.render_size.lower().split("x"))
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1], size, render_size)))
        return
    results = {}
    for frames in (int(f) for f in args.frames.split(",")):
        for mode in ("stream", "memory"):
            out = subprocess.run([sys.executable, "-m", "benchmarks.clip_memory", "--child", str(frames), mode,
                                  "--size", args.size, "--render-size", args.render_size],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            results[frames, mode] = r
            print(f"{frames:4d} frames, {mode:6s}: peak RSS {r['peak_mb']:8.1f} MB, predict {r['predict_s']:6.1f} s, "
                  f"render {r['render_s']:6.1f} s")
    lengths = sorted({f for f, _ in results})
    if len(lengths) >= 2:
        lo, hi = lengths[0], lengths[-1]
        for mode in ("stream", "memory"):
            slope = (results[hi, mode]["peak_mb"] - results[lo, mode]["peak_mb"]) / (hi - lo)
            print(f"{mode:6s}: {slope:+7.1f} MB per extra frame ({lo} -> {hi} frames)")
        ratio = results[hi, "memory"]["peak_mb"] / results[hi, "stream"]["peak_mb"]
        print(f"peak at {hi} frames, in memory / streamed: {ratio:.2f}x")


if __name__ == "__main__":
    main()
