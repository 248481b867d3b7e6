"""Engine benchmark: full-size checkpoint load, full 1536 px forward in float32 and bfloat16 side by
side with the peak RSS of each, and the unprojection of 1.18 M Gaussians.

    python -m benchmarks.engine [--skip-forward] [--skip-load] [--dtypes fp32,bf16]

Each measurement that needs its own peak RSS runs in a fresh subprocess (one per dtype, so each peak
is honest). A random full-size checkpoint (2.8 GB, the released tensor names and shapes, so it needs
no description) is written to a temporary folder first. Goals (issue 11) on a 2-core machine: fp32
<= 0.8x and bf16 <= 0.4x the reference implementation's time on the same input (130-190 s measured
there), peak RSS <= 5 GB fp32 / <= 3.5 GB bf16.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

MANIFEST = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "sharp_state_dict_manifest.json"


def peak_rss_gb() -> float:
    """Peak resident set size of this process (VmHWM), in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def write_random_checkpoint(folder: Path, with_pt: bool = True) -> Path:
    from safetensors.torch import save_file

    from sharp_core.network import SharpModel

    with torch.device("meta"):
        shapes = {k: v.shape for k, v in SharpModel().state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(s, generator=gen) * 0.02 for k, s in shapes.items()}
    for k in sd:
        if k.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
            sd[k].fill_(1.0)
    path = folder / "sharp_random_full.safetensors"
    save_file(sd, str(path))
    if with_pt:
        torch.save(sd, folder / "sharp_random_full.pt")
    return path


def measure_forward(checkpoint: str, dtype: str) -> dict:
    """Runs inside a subprocess: load, then one predict on a 1536 x 1152 photo-sized input."""
    import sharp_core

    torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    model = sharp_core.load_model(checkpoint, dtype=dtype)
    load_s = time.perf_counter() - start
    image = torch.rand(1152, 1536, 3, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    scene = sharp_core.predict(model, image, focal_mm=30.0)
    return {"dtype": dtype, "load_s": load_s, "predict_s": time.perf_counter() - start,
            "peak_rss_gb": peak_rss_gb(), "gaussians": scene.num_gaussians,
            "finite": bool(torch.isfinite(scene.means).all())}


def measure_load(checkpoint: str) -> dict:
    import sharp_core

    start = time.perf_counter()
    with torch.device("meta"):
        sharp_core.SharpModel()
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    model = sharp_core.load_model(checkpoint)
    load_s = time.perf_counter() - start
    # Memory-mapped tensors are read on first use: touch every weight once (from the page cache,
    # since the file was just written) to include that cost.
    start = time.perf_counter()
    checksum = sum(float(p.sum()) for p in model.parameters())
    return {"file": Path(checkpoint).name, "build_meta_s": build_s, "load_s": load_s,
            "first_read_s": time.perf_counter() - start, "finite": checksum == checksum,
            "peak_rss_gb": peak_rss_gb()}


def measure_unprojection() -> dict:
    from sharp_core import linalg

    n = 2 * 768 * 768
    gen = torch.Generator().manual_seed(0)
    quats = torch.randn(1, n, 4, generator=gen)
    scales = torch.rand(1, n, 3, generator=gen) * 0.05 + 1e-4
    diag = torch.tensor([0.6, 0.45, 1.0])
    diag = torch.diag(diag)
    linalg.transform_gaussian_frames(quats[:, :1000], scales[:, :1000], diag)  # warm-up
    start = time.perf_counter()
    linalg.transform_gaussian_frames(quats, scales, diag)
    return {"gaussians": n, "unproject_s": time.perf_counter() - start}


def _in_subprocess(fn: str, *args: str) -> dict:
    code = f"import json, benchmarks.engine as b; print(json.dumps(b.{fn}(*{list(args)!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-forward", action="store_true")
    parser.add_argument("--skip-load", action="store_true", help="skip the checkpoint load timings (.safetensors, .pt)")
    parser.add_argument("--dtypes", default="fp32,bf16")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU threads, load average {os.getloadavg()[0]:.1f} "
          "(other processes share these cores: figures are upper bounds)")
    print("unprojection:", _in_subprocess("measure_unprojection"))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ckpt = write_random_checkpoint(Path(tmp), with_pt=not args.skip_load)
        print(f"wrote random full-size checkpoint in {time.perf_counter() - start:.1f} s")
        if not args.skip_load:
            for name in (ckpt.name, "sharp_random_full.pt"):
                print("load:", _in_subprocess("measure_load", str(Path(tmp) / name)))
        if not args.skip_forward:
            rows = []
            for dtype in args.dtypes.split(","):
                rows.append(_in_subprocess("measure_forward", str(ckpt), dtype))
                print("forward:", rows[-1])
            print_side_by_side(rows)


def print_side_by_side(rows: list[dict]) -> None:
    """The full forward of each dtype in one table, with the time ratio to the first dtype."""
    base = rows[0]["predict_s"]
    print("\nfull forward, 1536 x 1152 photo (1536 px inside), one process per dtype:")
    print(f"{'dtype':6s} {'predict s':>10s} {'x ' + rows[0]['dtype']:>8s} {'peak RSS GB':>12s} {'load s':>7s}  finite")
    for r in rows:
        print(f"{r['dtype']:6s} {r['predict_s']:10.1f} {r['predict_s'] / base:8.2f} {r['peak_rss_gb']:12.2f} "
              f"{r['load_s']:7.1f}  {r['finite']}")


if __name__ == "__main__":
    main()
