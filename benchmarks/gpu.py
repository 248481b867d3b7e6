"""The GPU path, measured: `python -m benchmarks.gpu [--quick] [--device cuda|cpu] [--repeats N]`.

Full-size SHARP on random weights (built on the device, nothing downloaded), a 1536 x 1024 photo:
- predict in fp32 / bf16 / fp16: total and per stage (encoder, depth decoder, feature decoder,
  prediction head, unprojection), peak VRAM of each, and the progress callback's overhead (a no-op
  callback against none; the per-stage split itself synchronises, so it is measured separately);
- the unprojection alone for 1,179,648 Gaussians, PLY save, photo to saved PLY;
- rendering a SHARP-like 1.18 M splat scene (benchmarks.render.sharp_like_scene) at 1024 x 768 and
  1536 x 1024: gsplat and our torch tile rasterizer on the same device (ms/frame), and the pixel
  difference between the two on the same scene and camera.

Goals on an H100/H200-class GPU (issue 11): photo to saved PLY <= 1.5 s in bf16, render <= 5 ms/frame
at 1024 x 768, peak VRAM <= 5 GB in bf16. Without CUDA it runs on CPU; `--quick` (the default there)
uses a reduced-width network (same 1536 px working size and Gaussian count), fp32 only, a decimated
scene and small frames, and prints every part it skipped and why.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

PHOTO = (1536, 1024)  # W x H
RENDER_SIZES = ((1024, 768), (1536, 1024))
QUICK_RENDER_SIZES = ((256, 192),)
QUICK_SPLATS = 100_000


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int) -> tuple[float, object]:
    """(median seconds over `repeats` runs, last result); on CUDA after one warm-up run (kernel
    selection, allocator), which a CPU run does not need."""
    result = fn() if device.type == "cuda" else None
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def random_model(device: torch.device, dtype: torch.dtype, quick: bool):
    """SHARP with random weights straight on `device` (released widths, or reduced ones for --quick)."""
    from sharp_core.network import SharpConfig, SharpModel, ViTConfig

    cfg = SharpConfig()
    if quick:
        vit = ViTConfig(embed_dim=64, depth=4, num_heads=2, mlp_hidden=128, num_classes=0)
        cfg = replace(cfg, patch_vit=vit, image_vit=vit, hook_blocks=(0, 1, 2, 3), encoder_dims=(32, 32, 64, 64, 64),
                      monodepth_decoder_dims=(32,) * 5, gaussian_decoder_dims=(32,) * 5)
    with torch.device("meta"):
        model = SharpModel(cfg, with_training_parts=False)
    model = model.to_empty(device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):  # ViT layer scale
                p.fill_(0.1)
            elif p.dim() == 1:  # norms' weights 1, biases 0
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.normal_(0.0, 1.0 / math.sqrt(p[0].numel()), generator=gen)
        for p in model.prediction_head.parameters():
            p.mul_(0.1)
    model.drop_training_parts()
    return model.to(dtype).eval().requires_grad_(False)


def peak_memory(device: torch.device) -> str:
    if device.type != "cuda":
        return "peak VRAM n/a (CPU)"
    return f"peak VRAM {torch.cuda.max_memory_allocated(device) / 2**30:6.2f} GB"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def stage_split(model, image: torch.Tensor, device: torch.device) -> dict[str, float]:
    """Seconds per stage, from the progress callback with a device sync at each stage boundary."""
    import sharp_core

    marks = []
    sync(device)
    start = time.perf_counter()

    def mark(stage, done, total):
        sync(device)
        marks.append((stage, time.perf_counter()))

    sharp_core.predict(model, image, focal_mm=30.0, progress=mark)
    split: dict[str, float] = {}
    last = start
    for stage, t in marks:
        key = "encoder" if stage in ("patch encoder windows", "image encoder") else stage
        split[key] = split.get(key, 0.0) + t - last
        last = t
    return split


def bench_predict(device: torch.device, dtypes: list[str], quick: bool, repeats: int) -> dict[str, tuple]:
    import sharp_core
    from sharp_core.checkpoint import resolve_dtype

    image = torch.rand(PHOTO[1], PHOTO[0], 3, generator=torch.Generator().manual_seed(1)).to(device)
    results: dict[str, object] = {}
    for name in dtypes:
        dtype = resolve_dtype(name)
        reset_peak(device)
        model = random_model(device, dtype, quick)
        try:
            seconds, scene = timed(lambda: sharp_core.predict(model, image, focal_mm=30.0), device, repeats)
        except RuntimeError as exc:  # e.g. fp16 overflow on random weights
            print(f"  predict {name}: failed ({str(exc).splitlines()[0]})")
            del model
            continue
        peak = peak_memory(device)
        overhead = "callback overhead: skipped in a quick run"
        if not quick:
            with_cb, _ = timed(lambda: sharp_core.predict(model, image, focal_mm=30.0, progress=lambda *a: None),
                               device, repeats)
            overhead = (f"with a no-op progress callback {with_cb * 1000:8.1f} ms "
                        f"({(with_cb / seconds - 1) * 100:+.2f} %)")
        split = stage_split(model, image, device)
        print(f"  predict {name}: {seconds * 1000:8.1f} ms  {peak}  {overhead}")
        print("    stages (synchronised at each boundary): "
              + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in split.items()))
        results[name] = (scene, seconds)
        del model  # one network on the device at a time
    return results


def bench_unprojection(device: torch.device, repeats: int) -> None:
    from sharp_core import linalg

    n = 2 * 768 * 768
    gen = torch.Generator().manual_seed(0)
    quats = torch.randn(1, n, 4, generator=gen).to(device)
    scales = (torch.rand(1, n, 3, generator=gen) * 0.05 + 1e-4).to(device)
    diag = torch.diag(torch.tensor([0.6, 0.45, 1.0], device=device))
    seconds, _ = timed(lambda: linalg.transform_gaussian_frames(quats, scales, diag), device, repeats)
    print(f"  unprojection of {n:,} Gaussians on {device.type}: {seconds * 1000:.1f} ms")


def bench_save(scene, device: torch.device, repeats: int, model=None, image=None) -> None:
    import sharp_core

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scene.ply"
        seconds, _ = timed(lambda: sharp_core.save_ply(scene, path), device, max(1, repeats // 2))
        size = path.stat().st_size / 2**20
        print(f"  PLY save ({scene.num_gaussians:,} splats, {size:.0f} MB, device -> file): {seconds * 1000:.1f} ms")
        if model is not None:
            total, _ = timed(lambda: sharp_core.save_ply(sharp_core.predict(model, image, focal_mm=30.0), path),
                             device, max(1, repeats // 2))
            print(f"  photo -> saved PLY ({model.dtype}): {total * 1000:.1f} ms (goal on H100/H200 bf16: <= 1500 ms)")


def bench_render(device: torch.device, quick: bool, repeats: int) -> None:
    import sharp_core
    from benchmarks.render import sharp_like_scene
    from sharp_core.rendering.gsplat_backend import gsplat_import_error

    scene = sharp_like_scene()
    if quick:
        scene = sharp_core.decimate(scene, QUICK_SPLATS)
    scene = scene.to(device)
    backends = ["torch"]
    if device.type != "cuda":
        print("  gsplat: skipped (needs CUDA)")
    elif gsplat_import_error():
        print(f"  gsplat: skipped ({gsplat_import_error()})")
    else:
        backends.insert(0, "gsplat")
    for width, height in (QUICK_RENDER_SIZES if quick else RENDER_SIZES):
        camera = sharp_core.Camera.scene_camera(scene, width, height)
        images = {}
        for backend in backends:
            reset_peak(device)
            seconds, result = timed(lambda: sharp_core.render(scene, camera, width, height, backend=backend),
                                    device, repeats)
            images[backend] = result.color.float()
            print(f"  render {backend:6s} {width} x {height} ({scene.num_gaussians:,} splats): "
                  f"{seconds * 1000:8.2f} ms/frame  {peak_memory(device)}")
        if len(images) == 2:
            diff = (images["gsplat"] - images["torch"]).abs()
            mse = float((diff**2).mean())
            psnr = 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")
            print(f"    gsplat vs ours, same scene and camera: mean |diff| {float(diff.mean()):.5f}, "
                  f"max {float(diff.max()):.4f}, PSNR {psnr:.1f} dB, pixels off by > 1/255: "
                  f"{float((diff.amax(-1) > 1 / 255).float().mean()) * 100:.2f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cuda, cuda:1, cpu")
    parser.add_argument("--quick", action="store_true", help="reduced run (the default without CUDA)")
    parser.add_argument("--full", action="store_true", help="full-size run even on CPU (minutes per forward)")
    parser.add_argument("--dtypes", default=None, help="comma list of fp32, bf16, fp16 (default: all on CUDA)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    quick = args.quick or (device.type != "cuda" and not args.full)
    repeats = args.repeats or (1 if quick or device.type != "cuda" else 5)
    dtypes = (args.dtypes or ("fp32" if device.type != "cuda" else "fp32,bf16,fp16")).split(",")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {name}; {'quick' if quick else 'full'} run, median of {repeats}")
    skipped = []
    if device.type != "cuda":
        skipped.append("CUDA: no GPU here, so no gsplat, no VRAM figures, CPU timings only")
    if quick:
        skipped.append("full-size network: a reduced-width one (same 1536 px working size, same Gaussian count)")
        skipped.append(f"full-size frames: {QUICK_RENDER_SIZES[0][0]} x {QUICK_RENDER_SIZES[0][1]} "
                       f"on a {QUICK_SPLATS:,}-splat scene")
    if set(dtypes) != {"fp32", "bf16", "fp16"}:
        skipped.append(f"dtypes other than {', '.join(dtypes)} (pass --dtypes)")
    for line in skipped:
        print(f"skipped: {line}")

    print(f"predict, {PHOTO[0]} x {PHOTO[1]} photo:")
    results = bench_predict(device, dtypes, quick, repeats)
    print("unprojection, PLY:")
    bench_unprojection(device, repeats)
    if results:
        from sharp_core import resolve_dtype

        best = "bf16" if "bf16" in results else next(iter(results))
        scene, _ = results.pop(best)
        results.clear()
        model = random_model(device, resolve_dtype(best), quick)
        image = torch.rand(PHOTO[1], PHOTO[0], 3).to(device)
        bench_save(scene, device, repeats, model=model, image=image)
        del model, scene
    print("render:")
    bench_render(device, quick, repeats)


if __name__ == "__main__":
    main()
