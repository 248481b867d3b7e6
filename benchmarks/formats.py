"""File size and write / read time of every registered splat format for one SHARP-sized scene
(1,179,648 splats, `benchmarks.render.sharp_like_scene`), next to two baselines measured in the same
run: raw `ndarray.tofile` / `np.fromfile` of the same arrays (14 float32 a splat: the floor for an
uncompressed file) and PlayCanvas splat-transform converting the same SHARP PLY to that format
(time and size; it is the SuperSplat tool, so its files are what users compare with).

    python -m benchmarks.formats [--n-grid 768] [--repeat 1] [--no-splat-transform]

Times are wall clock and CPU (user + system, all threads / the child process): on a shared machine
the CPU seconds are the steadier figure. splat-transform's time includes Node's start and reading
the PLY (it cannot convert from memory); ours starts from the scene in memory. Goals: each of our
files no larger than splat-transform's for the same format (+-5 %), each writer faster.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.render import GRID, sharp_like_scene
from sharp_core import FORMATS, load_gaussians, save_gaussians, save_ply

ROOT = Path(__file__).resolve().parents[1]
# what splat-transform 3.x writes, by file ending
SPLAT_TRANSFORM_WRITES = (".compressed.ply", ".ply", ".sog", ".spz", ".splat", ".glb")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn, repeat: int) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run) of `fn` over `repeat` runs."""
    best = (float("inf"), 0.0)
    for _ in range(repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best = min(best, (wall, cpu))
    return best


def splat_transform_cli() -> list[str] | None:
    """The command prefix of the pinned splat-transform (tests/third_party_readers.py installs it)."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from third_party_readers import SplatTransform, ThirdPartyMissing
    except ImportError:
        return None
    try:
        tool = SplatTransform()
    except ThirdPartyMissing as error:
        print(f"splat-transform unavailable: {error}")
        return None
    return [tool.node, str(tool.cli), "-q", "-w", "-g", "cpu"]


def run_splat_transform(cli: list[str], src: Path, dst: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, bytes) of splat-transform converting src -> dst."""
    cpu, wall = _children_cpu(), time.perf_counter()
    result = subprocess.run([*cli, str(src), str(dst)], capture_output=True, text=True, timeout=1800)
    wall, cpu = time.perf_counter() - wall, _children_cpu() - cpu
    if result.returncode != 0:
        raise RuntimeError(f"splat-transform failed on {dst.name}: {(result.stdout + result.stderr)[-500:]}")
    return wall, cpu, dst.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-grid", type=int, default=GRID, help="grid side: 2 * n^2 splats (768: SHARP's 1,179,648)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-splat-transform", action="store_true")
    args = parser.parse_args()
    scene = sharp_like_scene(grid=args.n_grid)
    n = scene.num_gaussians
    cli = None if args.no_splat_transform else splat_transform_cli()
    arrays = [t[0].numpy() for t in (scene.means, scene.scales, scene.quats, scene.colors)] + [scene.opacities[0, :, None].numpy()]
    raw = np.ascontiguousarray(np.concatenate(arrays, axis=1), dtype=np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        raw_path = folder / "raw.bin"
        raw_write = timed(lambda: raw.tofile(raw_path), args.repeat)
        raw_read = timed(lambda: np.fromfile(raw_path, dtype=np.float32), args.repeat)
        source = save_ply(scene, folder / "source.ply")
        print(f"{n:,} splats; raw tofile {raw_path.stat().st_size / 2**20:.1f} MiB: write {raw_write[0]:.2f} s, "
              f"read {raw_read[0]:.2f} s (wall)")
        for fmt in FORMATS.values():
            if fmt.write is None:
                continue
            ext = fmt.extensions[0]
            path = folder / f"ours_{fmt.name}{ext}"
            write = timed(lambda: save_gaussians(scene, path, format=fmt.name), args.repeat)
            size = path.stat().st_size
            read = timed(lambda: load_gaussians(path, format=fmt.name), args.repeat) if fmt.read else (float("nan"),) * 2
            theirs = None
            if cli is not None and ext in SPLAT_TRANSFORM_WRITES:
                theirs = run_splat_transform(cli, source, folder / f"theirs_{fmt.name}{ext}")
            rows.append((fmt.name, ext, size, write, read, theirs))
            print(f"  done {fmt.name}", file=sys.stderr, flush=True)

    mib = lambda b: b / 2**20  # noqa: E731
    print(f"\n{'format':<15}{'size MiB':>9}{'vs raw':>8}{'write s':>9}{'(cpu)':>7}{'vs raw':>8}{'read s':>8}{'vs raw':>8}"
          f"{'| s-t MiB':>10}{'size/s-t':>9}{'s-t s':>8}{'(cpu)':>7}{'ours/s-t':>9}")
    raw_size = raw.nbytes
    for name, ext, size, write, read, theirs in rows:
        line = (f"{name:<15}{mib(size):>9.2f}{size / raw_size:>8.2f}{write[0]:>9.2f}{write[1]:>7.1f}"
                f"{write[0] / raw_write[0]:>8.1f}{read[0]:>8.2f}{read[0] / raw_read[0]:>8.1f}")
        if theirs:
            t_wall, t_cpu, t_size = theirs
            line += f"{'| ' + format(mib(t_size), '.2f'):>10}{size / t_size:>9.3f}{t_wall:>8.1f}{t_cpu:>7.1f}{write[0] / t_wall:>9.2f}"
        else:
            line += "|  (splat-transform does not write it)" if cli else ""
        print(line)
    print("\nratios: size/s-t = our bytes / splat-transform's; ours/s-t = our write wall time / its conversion's;"
          f" vs raw = against tofile / fromfile of {raw_size / 2**20:.1f} MiB. CPU count: {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
