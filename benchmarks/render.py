"""Rendering speed and memory on a scene shaped like SHARP's output (`python -m benchmarks.render`).

The scene: two layers of 768 x 768 splats laid over a 1024 x 768 photo (1,179,648 in all),
metric depths 1-50 m, splat sizes about one grid cell, SHARP-like opacities. It is drawn with
the torch backend at 1024 x 768 and 512 x 384 from the source camera, and along a 60-frame
`rotate_forward` path. Peak memory is the process's VmHWM (resident high-water mark), which
also sees PyTorch's allocations.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from sharp_core.camera import Camera
from sharp_core.gaussians import Gaussians
from sharp_core.rendering import DEFAULT_MEMORY_BUDGET_MB, render
from sharp_core.trajectory import camera_path

GRID = 768
SOURCE_SIZE = (1024, 768)


def sharp_like_scene(seed: int = 0, grid: int = GRID) -> Gaussians:
    """(1, 2 x grid^2) Gaussians: a smooth depth field 1-50 m and a second layer behind it."""
    gen = torch.Generator().manual_seed(seed)
    width, height = SOURCE_SIZE
    focal = 0.9 * width
    v, u = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    x_px = (u.flatten().float() + 0.5) * width / grid
    y_px = (v.flatten().float() + 0.5) * height / grid
    xn, yn = x_px / width, y_px / height
    field = 0.5 + 0.25 * torch.sin(6.0 * xn + 1.0) * torch.cos(4.0 * yn) + 0.25 * (1.0 - yn)
    field = field.clamp(0.0, 1.0)
    depth_front = torch.exp(math.log(50.0) * field)  # 1 .. 50 m
    depth_back = depth_front * (1.1 + 0.3 * torch.rand(grid * grid, generator=gen))
    depth = torch.cat([depth_front, depth_back]).clamp(1.0, 50.0)
    xs, ys = torch.cat([x_px, x_px]), torch.cat([y_px, y_px])
    cx, cy = (width - 1) / 2, (height - 1) / 2
    means = torch.stack([(xs - cx) / focal * depth, (ys - cy) / focal * depth, depth], -1)
    n = means.shape[0]
    cell = depth * (width / grid) / focal  # metres per grid cell at that depth
    scales = cell[:, None] * (0.35 + 0.5 * torch.rand(n, 3, generator=gen))
    scales[:, 2] *= 0.3
    quats = torch.randn(n, 4, generator=gen)
    quats = quats / quats.norm(dim=-1, keepdim=True)
    base = torch.stack([xn, yn, 1.0 - xn * yn], -1).repeat(2, 1)
    colors = (base * 0.8 + 0.2 * torch.rand(n, 3, generator=gen)).clamp(0, 1) ** 2.2
    opacities = torch.cat([
        0.6 + 0.4 * torch.rand(grid * grid, generator=gen),
        0.05 + 0.95 * torch.rand(grid * grid, generator=gen),
    ])
    return Gaussians(means=means, scales=scales, quats=quats, colors=colors, opacities=opacities,
                     focal_px=[focal], image_size=[SOURCE_SIZE])


def _proc_status_gb(field: str) -> float:
    """A memory line of /proc/self/status (VmHWM: peak resident, VmRSS: current) in GiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def peak_rss_gb() -> float:
    return _proc_status_gb("VmHWM")


def current_rss_gb() -> float:
    return _proc_status_gb("VmRSS")


def time_frame(scene, camera, width, height, repeats, **options):
    """Best wall time of `repeats` renders, with the result (and stage split) of that run."""
    best, best_result = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = render(scene, camera, width, height, backend="torch", **options)
        seconds = time.perf_counter() - t0
        if seconds < best:
            best, best_result = seconds, result
    return best, best_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compositor", default="auto", choices=["auto", "native", "eager"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--budget-mb", type=float, default=DEFAULT_MEMORY_BUDGET_MB)
    parser.add_argument("--skip-path", action="store_true")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, compositor={args.compositor}, "
          f"budget {args.budget_mb:.0f} MB")
    scene = sharp_like_scene()
    print(f"scene: {scene.num_gaussians:,} Gaussians; RSS after building it {current_rss_gb():.2f} GiB")
    options = dict(compositor=args.compositor, memory_budget_mb=args.budget_mb)

    # warm-up: builds the native kernel once per machine and touches every code path
    render(scene, Camera.scene_camera(scene, 256, 192), 256, 192, backend="torch", **options)
    for width, height in [(1024, 768), (512, 384)]:
        cam = Camera.scene_camera(scene, width, height)
        seconds, result = time_frame(scene, cam, width, height, args.repeats, **options)
        split = ", ".join(f"{k} {v:.3f} s" for k, v in result.timings.items())
        print(f"{width} x {height}: {seconds:.3f} s/frame (best of {args.repeats}; {split}; "
              f"compositor {result.compositor}); coverage {result.alpha.mean():.3f}; "
              f"peak RSS so far {peak_rss_gb():.2f} GiB")

    if not args.skip_path:
        width, height = 512, 384
        cams = camera_path(scene, "rotate_forward", args.frames, width, height)
        t0 = time.perf_counter()
        result = render(scene, cams, width, height, backend="torch", **options)
        total = time.perf_counter() - t0
        split = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings.items())
        print(f"{args.frames}-frame rotate_forward path at {width} x {height}: {total:.2f} s "
              f"({total / args.frames:.3f} s/frame; {split})")
    print(f"peak RSS (VmHWM): {peak_rss_gb():.2f} GiB")


if __name__ == "__main__":
    main()
