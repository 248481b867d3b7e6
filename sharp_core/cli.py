"""Command line: `python -m sharp_core predict ...`, `... convert ...` and `... export ...`."""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

from .batch import DEFAULT_FORMAT, IMAGE_SUFFIXES, REPORT_NAME, writable_formats
from .checkpoint import convert_checkpoint
from .progress_bar import ProgressBar
from .weights import CheckpointUnavailable

LOG = logging.getLogger("sharp_core")
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def _example_photo() -> list[str]:
    found = sorted(p for p in EXAMPLES_DIR.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise SystemExit(f"error: no image given and no bundled example photo in {EXAMPLES_DIR}")
    LOG.info("no image given: using the bundled example %s", found[0].name)
    return [str(found[0])]


def _check_focal_mm(value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"--focal-mm {value:g}: a focal length must be a positive number of millimetres "
                         "(35 mm-equivalent); leave it out to use the photo's EXIF, else 30 mm")


def run_predict(args: argparse.Namespace) -> int:
    """Check everything that can be checked cheaply (device, focal length, output folder, every
    image's header) before the model is loaded or anything is created; then run the batch."""
    from . import batch

    _check_focal_mm(args.focal_mm)
    if args.ray is None:
        batch.check_device(args.device)  # with --ray the workers' devices are the cluster's
    elif args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers {args.workers}: give at least 1")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size {args.batch_size}: give at least 1")
    images = batch.list_images(args.images or _example_photo())
    plan = batch.plan_batch(images, args.output, args.format, overwrite=args.overwrite)
    if plan.unreadable and not plan.todo and not plan.skipped:
        if len(plan.unreadable) == 1:
            raise ValueError(plan.unreadable[0].error)
        raise ValueError(f"none of the {len(plan.unreadable)} images can be predicted; "
                         f"first: {plan.unreadable[0].error}")
    settings = batch.BatchSettings(
        checkpoint=str(args.checkpoint.absolute()) if args.checkpoint else None,
        device=args.device, dtype=args.dtype, focal_mm=args.focal_mm, format=args.format)
    outcomes = None
    if plan.todo and args.ray is not None:
        from .ray_batch import import_ray, iter_on_ray

        import_ray()
        batch.resolve_checkpoint(settings.checkpoint)  # fails fast (missing file, offline) before Ray starts
        outcomes = iter_on_ray(plan.todo, settings, address=args.ray or None, workers=args.workers,
                               batch_size=args.batch_size)
    elif plan.todo:
        outcomes = batch.iter_in_process(plan.todo, settings)  # loads the model: a bad checkpoint stops here

    LOG.info("%d image(s): %d to predict, %d already present, %d unreadable -> %s (%s)", len(images),
             len(plan.todo), len(plan.skipped), len(plan.unreadable), plan.output_dir,
             "Ray" if args.ray is not None else "this process")
    bar = ProgressBar(len(plan.todo))
    for failure in plan.unreadable:
        bar.write(f"failed: {failure.error}")

    def show(outcome):
        if outcome.status != "done":
            bar.write(f"failed: {outcome.error}")

    summary = batch.run_batch(plan, outcomes, progress=bar, on_outcome=show)
    LOG.info("%s", summary.line())
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0


def run_convert(args: argparse.Namespace) -> None:
    out = convert_checkpoint(args.src, args.dst, dtype=None if args.dtype == "keep" else args.dtype,
                             inference_only=args.inference_only, num_heads=args.num_heads,
                             hook_blocks=args.hook_blocks, norm_groups=args.norm_groups,
                             alignment_norm_groups=args.alignment_norm_groups)
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


def _block_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected block indices like 5,11,17,23, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sharp_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="photo(s) -> one splat file per image (resumable; --ray for a cluster)")
    p.add_argument("images", nargs="*", help="images or folders, searched recursively (default: the bundled example)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help=f"output folder (sub-folders mirror the input folders; failures in {REPORT_NAME})")
    p.add_argument("--checkpoint", type=Path,
                   help="SHARP weights (.pt or .safetensors); default: downloaded once into ~/.cache/sharp_core")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--focal-mm", type=float, help="35 mm-equivalent focal length (default: EXIF, else 30)")
    p.add_argument("--format", default=DEFAULT_FORMAT, choices=writable_formats(),
                   help=f"splat file format of the outputs (default {DEFAULT_FORMAT})")
    p.add_argument("--overwrite", action="store_true",
                   help="predict every image again (default: skip images whose output is present)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run on Ray (pip install '.[ray]'): join ADDRESS, else $RAY_ADDRESS or a cluster started "
                        "here by `ray start`, else start a local one; put it after the inputs or write --ray=ADDRESS")
    p.add_argument("--workers", type=int,
                   help="with --ray: models loaded at once (default: one per GPU of the cluster, else 1)")
    p.add_argument("--batch-size", type=int, default=4, help="with --ray: images per call of a worker (default 4)")
    p.set_defaults(run=run_predict)
    c = sub.add_parser("convert", help="re-save a checkpoint as .safetensors")
    c.add_argument("src", type=Path)
    c.add_argument("dst", type=Path)
    c.add_argument("--dtype", default="keep", choices=["keep", "fp32", "fp16", "bf16"])
    c.add_argument("--inference-only", action="store_true",
                   help="drop the depth-alignment UNet and ViT classifier heads (unused at inference)")
    # What tensor shapes cannot tell; needed only for a non-released layout without its own description.
    c.add_argument("--num-heads", type=int, help="ViT head count, when the source does not describe it")
    c.add_argument("--hook-blocks", type=_block_list, metavar="I,J,K,L",
                   help="patch-encoder hook blocks (0-based), when the source does not describe them")
    c.add_argument("--norm-groups", type=int, help="GroupNorm groups of the Gaussian decoder heads")
    c.add_argument("--alignment-norm-groups", type=int, help="GroupNorm groups of the depth-alignment UNet")
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


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (so redirections made after set-up apply)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging() -> None:
    """One handler on our logger, added once, not propagated: each line appears once, whatever
    handlers the root logger (or a library such as Ray) has, and however often `main` runs."""
    if not any(isinstance(h, _StderrHandler) for h in LOG.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; every expected failure is one line on stderr and a non-zero exit code
    (predict: 1; Ctrl-C: 130)."""
    from .ray_batch import RayUnavailable

    setup_logging()
    args = build_parser().parse_args(argv)
    if getattr(args, "ray", None) and Path(args.ray).exists() and "://" not in args.ray:
        args.images.append(args.ray)  # `--ray photos/`: argparse took the folder for an address
        args.ray = ""
    try:
        return args.run(args) or 0
    except (ValueError, OSError, CheckpointUnavailable, RayUnavailable) as exc:
        hint = " (or run with --checkpoint PATH)" if isinstance(exc, CheckpointUnavailable) else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 1  # every expected failure: one line on stderr, exit code 1 (issue 14)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
