"""Many photos: images/s in this process vs on a local Ray cluster with 1 and 2 workers (the tiny
fixture network, which still runs at 1536 px and writes 1,179,648 Gaussians per photo), and a
projection per GPU.

    python -m benchmarks.batch [--images 4] [--size 64x48] [--gpu-seconds 0.91]

Each run is timed whole (model loads and Ray's actor start-up included), as a user would see it.
The projection per GPU: one actor per GPU runs the network (`--gpu-seconds` per image; default
0.91 s, the SHARP paper's figure for an A100 — replace it with the GPU benchmark's own) and then
writes the file, which is measured here (PLY, 66 MB per photo). The network and the write are
sequential inside an actor, so images/s per GPU = 1 / (gpu time + write time).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

TINY = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "sharp-tiny" / "weights.safetensors"
SHARP_PAPER_A100_SECONDS = 0.91


def make_photos(folder: Path, count: int, width: int, height: int) -> None:
    generator = torch.Generator().manual_seed(0)
    for i in range(count):
        pixels = (torch.rand(height, width, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"photo_{i:03d}.png")


def timed_run(photos: Path, out: Path, settings, engine: str, workers: int | None = None) -> tuple[float, int]:
    from sharp_core import batch

    plan = batch.plan_batch(batch.list_images([photos]), out, settings.format)
    start = time.perf_counter()
    if engine == "ray":
        from sharp_core.ray_batch import iter_on_ray
        outcomes = iter_on_ray(plan.todo, settings, workers=workers, batch_size=1)
    else:
        outcomes = batch.iter_in_process(plan.todo, settings)
    summary = batch.run_batch(plan, outcomes)
    return time.perf_counter() - start, summary.done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", default="64x48", help="photo size W x H")
    parser.add_argument("--gpu-seconds", type=float, default=SHARP_PAPER_A100_SECONDS,
                        help="network time per image on one GPU (default: SHARP paper, A100)")
    parser.add_argument("--no-ray", action="store_true", help="measure the in-process path only")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    import sharp_core
    from sharp_core.batch import BatchSettings

    settings = BatchSettings(checkpoint=str(TINY), device="cpu", dtype="fp32", focal_mm=30.0)
    cpus = os.cpu_count() or 1
    print(f"{args.images} photos of {width} x {height}, tiny network on CPU ({cpus} cores, torch "
          f"{torch.get_num_threads()} threads in process)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photos = tmp / "photos"
        photos.mkdir()
        make_photos(photos, args.images, width, height)

        seconds, done = timed_run(photos, tmp / "in_process", settings, "local")
        rows.append(("in process", seconds, done))
        write_start = time.perf_counter()
        scene = sharp_core.load_ply(tmp / "in_process" / "photo_000.ply")
        load_s = time.perf_counter() - write_start
        write_start = time.perf_counter()
        sharp_core.save_gaussians(scene, tmp / "rewrite.ply")
        write_s = time.perf_counter() - write_start

        if not args.no_ray:
            import ray
            from sharp_core.ray_batch import RUNTIME_ENV

            ray.init(num_cpus=cpus, include_dashboard=False, runtime_env=RUNTIME_ENV, logging_level="ERROR")
            try:
                for workers in (1, 2):
                    seconds, done = timed_run(photos, tmp / f"ray_{workers}", settings, "ray", workers)
                    rows.append((f"Ray local, {workers} worker{'s' * (workers > 1)}", seconds, done))
            finally:
                ray.shutdown()

    base = rows[0][2] / rows[0][1]
    print(f"\n{'path':<22}{'images':>7}{'seconds':>9}{'images/s':>10}{'vs in process':>15}")
    for name, seconds, done in rows:
        rate = done / seconds
        print(f"{name:<22}{done:>7}{seconds:>9.1f}{rate:>10.3f}{rate / base:>14.2f}x")
    per_image = args.gpu_seconds + write_s
    print(f"\nPLY write of one scene (1,179,648 Gaussians): {write_s:.2f} s here (read back: {load_s:.2f} s)")
    print(f"projection per GPU: {args.gpu_seconds:.2f} s network + {write_s:.2f} s write = {per_image:.2f} s/image "
          f"-> {1 / per_image:.2f} images/s per GPU, {3600 / per_image:.0f} images/hour")
    for gpus in (1, 8, 32):
        print(f"  10,000 photos on {gpus:>2} GPU(s): {10000 * per_image / gpus / 3600:6.2f} h "
              f"(one actor per GPU, outputs on a shared filesystem)")


if __name__ == "__main__":
    main()
