"""Peak memory of a clip through SHARP: streamed to disk (what SHARP Predict does for more than 3 images)
against all scenes kept in memory (what it did before), frame by frame.

    python -m benchmarks.clip_memory [--frames 4] [--size 1536x1024] [--render-size 96x64]

Each mode runs in a fresh process with the tiny fixture network, which still makes 1,179,648 Gaussians per
frame at SHARP's 1536 px internal resolution; the pipeline is the nodes' own: predict each frame ->
SceneSequenceWriter (stream) or a list + stack_scenes (in memory) -> render scene i at camera i of a
rotate_forward path, scale aligned to the first frame. After every frame the process's peak RSS (VmHWM)
is printed: streamed it stays flat after the first frame (one scene alive at a time, the network's
activations dominate), in memory it climbs by about a scene (~70 MB) per frame.
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


def memory_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB, from /proc/self/status (VmRSS, VmHWM)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))


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
            print(json.dumps({"stage": "predict", "frame": i + 1, "rss_hwm": memory_mb()}), flush=True)
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
            print(json.dumps({"stage": "render", "frame": i + 1, "rss_hwm": memory_mb()}), flush=True)
        rendered = time.perf_counter()
        del scenes
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"frames": frames, "mode": mode, "peak_mb": peak_mb, "predict_s": predicted - start,
            "render_s": rendered - predicted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4, help="clip length")
    parser.add_argument("--size", default="1536x1024", help="clip frame size W x H")
    parser.add_argument("--render-size", default="96x64", help="rendered frame size W x H")
    parser.add_argument("--child", metavar="MODE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    render_size = tuple(int(v) for v in args.render_size.lower().split("x"))
    if args.child:
        print(json.dumps(child(args.frames, args.child, size, render_size)))
        return
    print(f"{args.frames} frames of {args.size}, tiny fixture network (1,179,648 Gaussians per frame)")
    peaks = {}
    for mode in ("stream", "memory"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.clip_memory", "--child", mode, "--frames",
                              str(args.frames), "--size", args.size, "--render-size", args.render_size],
                             check=True, capture_output=True, text=True).stdout
        rows = [json.loads(line) for line in out.strip().splitlines()]
        after_predict = [r["rss_hwm"][1] for r in rows if r.get("stage") == "predict"]
        final = rows[-1]
        peaks[mode] = final["peak_mb"]
        print(f"{mode:6s}: peak RSS after predicting frame 1..{args.frames}: "
              + ", ".join(f"{v:.0f}" for v in after_predict) + f" MB; after rendering: {final['peak_mb']:.0f} MB "
              f"(predict {final['predict_s']:.0f} s, render {final['render_s']:.0f} s)")
        if len(after_predict) > 2:  # from frame 2: the first two forwards also settle the allocator
            slope = (after_predict[-1] - after_predict[1]) / (len(after_predict) - 2)
            print(f"{'':8s}{slope:+.1f} MB per extra frame from frame 2 on")
    print(f"peak in memory / streamed: {peaks['memory'] / peaks['stream']:.2f}x "
          f"({peaks['memory'] - peaks['stream']:+.0f} MB at {args.frames} frames)")


if __name__ == "__main__":
    main()
