"""Command line: `python -m sharp_core predict ...`, `... convert ...` and `... export ...`."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from .checkpoint import DTYPES, convert_checkpoint, load_model
from .exif import load_image
from .prediction import DEFAULT_FOCAL_MM, predict
from .weights import CheckpointUnavailable, default_checkpoint_dir, download_checkpoint

LOG = logging.getLogger("sharp_core")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 where the GPU computes it natively, float32 elsewhere."""
    if name != "auto":
        return DTYPES[name]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def collect_images(inputs: list[str]) -> list[Path]:
    if not inputs:
        found = sorted(p for p in EXAMPLES_DIR.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise SystemExit(f"no image given and no bundled example photo in {EXAMPLES_DIR}")
        LOG.info("no image given: using the bundled example %s", found[0].name)
        return found[:1]
    images: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            images += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            images.append(item)
        else:
            raise SystemExit(f"not found: {item}")
    if not images:
        raise SystemExit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {', '.join(inputs)}")
    return images


def run_predict(args: argparse.Namespace) -> None:
    from .formats import save_ply

    images = collect_images(args.images)
    if args.checkpoint is None:
        try:
            args.checkpoint = download_checkpoint(default_checkpoint_dir())
        except CheckpointUnavailable as exc:
            raise SystemExit(f"{exc} (or run with --checkpoint PATH)") from None
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    start = time.perf_counter()
    model = load_model(args.checkpoint, device=device, dtype=dtype)
    LOG.info("loaded %s on %s (%s) in %.1f s", args.checkpoint, device, dtype, time.perf_counter() - start)
    args.output.mkdir(parents=True, exist_ok=True)
    for path in images:
        image, exif_mm = load_image(path)
        focal_mm = args.focal_mm or exif_mm or DEFAULT_FOCAL_MM
        start = time.perf_counter()
        scene = predict(model, image, focal_mm=focal_mm)
        out = args.output / f"{path.stem}.ply"
        save_ply(scene, out)
        LOG.info("%s: %d Gaussians, focal %.1f mm -> %s (%.1f s)", path.name, scene.num_gaussians,
                 focal_mm, out, time.perf_counter() - start)


def run_convert(args: argparse.Namespace) -> None:
    out = convert_checkpoint(args.src, args.dst, dtype=None if args.dtype == "keep" else args.dtype,
                             inference_only=args.inference_only, num_heads=args.num_heads)
    LOG.info("wrote %s (%.0f MB)", out, out.stat().st_size / 2**20)


def run_export(args: argparse.Namespace) -> None:
    """Convert a splat file between any two registered formats (format from the name or the bytes)."""
    from .edit import OPENCV_TO_Y_UP, half_turn
    from .formats import load_gaussians, save_gaussians

    start = time.perf_counter()
    scene = load_gaussians(args.src, format=args.from_format)
    count = scene.num_gaussians
    if args.y_up:
        scene = half_turn(scene, OPENCV_TO_Y_UP)
    out = save_gaussians(scene, args.dst, format=args.format, max_splats=args.max_splats, max_bytes=args.max_bytes)
    LOG.info("%s (%d splats) -> %s (%.1f MB) in %.1f s", args.src, count, out, out.stat().st_size / 2**20,
             time.perf_counter() - start)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sharp_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="photo(s) -> one SHARP PLY per image")
    p.add_argument("images", nargs="*", help="images or folders (default: the bundled example photo)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder for the PLY files")
    p.add_argument("--checkpoint", type=Path,
                   help="SHARP weights (.pt or .safetensors); default: downloaded once into ~/.cache/sharp_core")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--focal-mm", type=float, help="35 mm-equivalent focal length (default: EXIF, else 30)")
    p.set_defaults(run=run_predict)
    c = sub.add_parser("convert", help="re-save a checkpoint as .safetensors")
    c.add_argument("src", type=Path)
    c.add_argument("dst", type=Path)
    c.add_argument("--dtype", default="keep", choices=["keep", "fp32", "fp16", "bf16"])
    c.add_argument("--inference-only", action="store_true",
                   help="drop the depth-alignment UNet and ViT classifier heads (unused at inference)")
    c.add_argument("--num-heads", type=int, help="ViT head count when the source file does not record it")
    c.set_defaults(run=run_convert)
    e = sub.add_parser("export", help="convert a splat file to another format (.ply, .sog, .glb, ...)")
    e.add_argument("src", type=Path, help="splat file to read (format from its bytes or name)")
    e.add_argument("dst", type=Path, help="file to write (format from its name unless --format)")
    e.add_argument("--format", help="output format name (see sharp_core.FORMATS), default: from DST's name")
    e.add_argument("--from-format", help="input format name, default: recognised from SRC")
    e.add_argument("--max-splats", type=int, help="keep at most N splats, the most visible ones")
    e.add_argument("--max-bytes", type=int, help="decimate until the file is at most this many bytes")
    e.add_argument("--y-up", action="store_true", help="turn OpenCV's y-down frame to y-up (x, -y, -z)")
    e.set_defaults(run=run_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
