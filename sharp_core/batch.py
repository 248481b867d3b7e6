"""Many photos -> one splat file each: planning, the per-image step, resumable runs, a failure report.

A run has three parts, the same in this process and on a Ray cluster (`ray_batch.py`):
1. `plan_batch` (cheap, before any model is loaded): list the images, name one output per image,
   skip those whose output is already present, open every remaining image's header and set aside
   the ones that cannot be read or are too small.
2. An engine yields one `BatchOutcome` per job: `iter_in_process` here, `ray_batch.iter_on_ray` on
   a cluster. Both call `predict_to_file`, so their files are identical byte for byte.
3. `run_batch` consumes the outcomes behind one progress bar, writes the JSON-lines report of the
   images that failed and returns the counts.

"Complete" means "present": every writer goes through `atomic.py` (temporary name, then rename),
so a file under its final name is whole. Temporaries left by a killed worker (`.NAME.*.partial`)
are removed at the start and end of every run, so one run at a time per output folder.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath

import torch
from PIL import Image, UnidentifiedImageError

from .atomic import atomic_write
from .checkpoint import DTYPES, _check_checkpoint_file, load_model
from .exif import load_image
from .formats import FORMATS, save_gaussians
from .network import SharpModel
from .prediction import DEFAULT_FOCAL_MM, MIN_IMAGE_SIDE, predict
from .progress_bar import ProgressBar
from .weights import default_checkpoint_dir, download_checkpoint

__all__ = [
    "IMAGE_SUFFIXES", "REPORT_NAME", "BatchJob", "BatchOutcome", "BatchPlan", "BatchSettings", "BatchSummary",
    "check_device", "iter_in_process", "list_images", "open_model", "pick_dtype", "plan_batch",
    "predict_to_file", "run_batch", "writable_formats",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
REPORT_NAME = "report.jsonl"  # in the output folder: one JSON object per image that failed this run
DEFAULT_FORMAT = "sharp-ply"


@dataclass(frozen=True)
class BatchJob:
    """One image and the file its scene goes to (absolute paths as strings: they travel to Ray workers)."""

    image: str
    output: str


@dataclass(frozen=True)
class BatchOutcome:
    image: str
    output: str
    status: str  # "done" or "failed"
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class BatchSettings:
    """What every worker needs to build its model and write its files.

    checkpoint None means the released weights in the default cache (each worker fetches them
    where missing, e.g. on another node). device: "auto", "cpu", "cuda", "cuda:1", "mps".
    dtype: "auto" (bf16 on GPUs computing it natively, else fp32), "fp32", "fp16", "bf16".
    focal_mm: 35 mm-equivalent for every image; None: each photo's EXIF, else 30 mm.
    """

    checkpoint: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    focal_mm: float | None = None
    format: str = DEFAULT_FORMAT


@dataclass
class BatchPlan:
    todo: list[BatchJob]
    skipped: list[BatchJob]
    unreadable: list[BatchOutcome]  # refused from their header, before any model was loaded
    output_dir: Path


@dataclass
class BatchSummary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    report: Path | None = None
    failures: list[BatchOutcome] = field(default_factory=list)

    def line(self) -> str:
        text = f"done {self.done}, skipped {self.skipped} (already present), failed {self.failed}"
        if self.report is not None:
            text += f" (see {self.report})"
        if self.interrupted:
            text = "interrupted: " + text + "; run the same command again to finish"
        return f"{text} in {self.seconds:.1f} s"


def writable_formats() -> list[str]:
    return [name for name, fmt in FORMATS.items() if fmt.write is not None]


def output_suffix(format: str) -> str:
    if format not in FORMATS or FORMATS[format].write is None:
        raise ValueError(f"unknown output format {format!r}; choose one of {', '.join(writable_formats())}")
    return FORMATS[format].extensions[0]


# -- planning -------------------------------------------------------------------------------------

def list_images(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, PurePath]]:
    """(image, name relative to the output folder without suffix) for every image in `inputs`.

    Folders are searched recursively and keep their sub-folders in the output; a file given by
    name lands at the top. The same image reached twice is listed once. Raises ValueError naming
    a missing input, or when no image is found.
    """
    found: dict[Path, PurePath] = {}
    inputs = [Path(p) for p in inputs]
    for item in inputs:
        if item.is_dir():
            for path in sorted(item.rglob("*")):
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.name.startswith("."):
                    found.setdefault(path.resolve(), path.relative_to(item))
        elif item.is_file():
            found.setdefault(item.resolve(), PurePath(item.name))
        else:
            raise ValueError(f"not found: {item}")
    if not found:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, inputs))}")
    return list(found.items())


def _output_names(images: list[tuple[Path, PurePath]], suffix: str) -> list[PurePath]:
    """`photo.jpg` -> `photo.ply`; when two images share a stem (a.jpg, a.png) both keep their
    suffix (a.jpg.ply, a.png.ply) so neither overwrites the other, whatever order they come in."""
    by_stem: dict[PurePath, list[int]] = defaultdict(list)
    for i, (_, rel) in enumerate(images):
        by_stem[rel.with_suffix("")].append(i)
    names: list[PurePath] = [PurePath()] * len(images)
    for stem, members in by_stem.items():
        clash = len({images[i][1] for i in members}) > 1  # a.jpg and a.png; not two folders' a.png
        for i in members:
            rel = images[i][1]
            names[i] = rel.with_name(rel.name + suffix) if clash else PurePath(f"{stem}{suffix}")
    seen: dict[PurePath, Path] = {}
    for (image, _), name in zip(images, names):
        if name in seen:
            raise ValueError(f"{seen[name]} and {image} would both be written to {name}; "
                             "rename one or predict them in separate runs")
        seen[name] = image
    return names


def check_image_header(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be predicted, judged from its header only (no pixel is decoded), or None."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"{path}: cannot read the image ({exc})"
    if min(width, height) < MIN_IMAGE_SIDE:
        return (f"{path}: the image is {width} x {height} pixels; SHARP needs at least "
                f"{MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE}")
    return None


def check_output_dir(output_dir: str | os.PathLike) -> Path:
    """The absolute output folder, or ValueError when it cannot be created or written (checked
    before anything is loaded, created or opened)."""
    out = Path(output_dir).absolute()
    if out.exists() and not out.is_dir():
        raise ValueError(f"the output folder {out} is a file; give a folder with -o")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot create the output folder {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write into {existing} (permission denied); choose another output folder")
    return out


def plan_batch(images: list[tuple[Path, PurePath]], output_dir: str | os.PathLike, format: str = DEFAULT_FORMAT,
               overwrite: bool = False) -> BatchPlan:
    """Name every output, skip those present (unless `overwrite`), check every other image's header."""
    out = check_output_dir(output_dir)
    names = _output_names(images, output_suffix(format))
    plan = BatchPlan(todo=[], skipped=[], unreadable=[], output_dir=out)
    for (image, _), name in zip(images, names):
        job = BatchJob(image=str(image), output=str(out / name))
        if not overwrite and Path(job.output).is_file():
            plan.skipped.append(job)
        elif (problem := check_image_header(image)) is not None:
            plan.unreadable.append(BatchOutcome(job.image, job.output, "failed", problem))
        else:
            plan.todo.append(job)
    return plan


# -- the per-image step, shared by every engine ---------------------------------------------------

def check_device(name: str) -> torch.device:
    """A torch device that exists here ("auto" picks CUDA, then MPS, then CPU); ValueError otherwise."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name}: not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"--device {name}: {why}; use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: Apple MPS is not available here; use --device cpu (or auto)")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: unsupported device type; use auto, cpu, cuda, cuda:N or mps")
    return device


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 where the GPU computes it natively, float32 elsewhere."""
    if name != "auto":
        return DTYPES[name]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def resolve_checkpoint(checkpoint: str | os.PathLike | None) -> Path:
    """The checkpoint file: the given one, else the released weights in the default cache (downloaded
    once; CheckpointUnavailable with the manual fix when offline)."""
    if checkpoint is None:
        return download_checkpoint(default_checkpoint_dir())
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    _check_checkpoint_file(path)  # its first bytes: a wrong file is named before any worker starts
    return path


def open_model(settings: BatchSettings, device: torch.device | None = None) -> SharpModel:
    device = check_device(settings.device) if device is None else device
    return load_model(resolve_checkpoint(settings.checkpoint), device=device, dtype=pick_dtype(settings.dtype, device))


def predict_to_file(model: SharpModel, job: BatchJob, settings: BatchSettings) -> BatchOutcome:
    """Read, predict and save one image; any error of this image becomes a failed outcome (a bad
    photo never stops a run). Ctrl-C passes through; the atomic writer leaves no partial file."""
    start = time.perf_counter()
    try:
        image, exif_mm = load_image(job.image)
        focal_mm = settings.focal_mm if settings.focal_mm is not None else exif_mm or DEFAULT_FOCAL_MM
        scene = predict(model, image, focal_mm=focal_mm)
        save_gaussians(scene, job.output, format=settings.format)
    except Exception as exc:  # noqa: BLE001 - recorded in the report, the run goes on
        message = str(exc) if job.image in str(exc) else f"{job.image}: {exc}"
        if not isinstance(exc, ValueError):  # ours name the problem; others need their kind
            message = f"{type(exc).__name__}: {message}"
        return BatchOutcome(job.image, job.output, "failed", message, time.perf_counter() - start)
    return BatchOutcome(job.image, job.output, "done", None, time.perf_counter() - start)


def iter_in_process(jobs: list[BatchJob], settings: BatchSettings) -> Iterator[BatchOutcome]:
    """The embedded engine: one model in this process, images one after the other. The model is
    loaded by this call (a bad checkpoint fails here, before any image is read)."""
    model = open_model(settings)
    return (predict_to_file(model, job, settings) for job in jobs)


# -- running --------------------------------------------------------------------------------------

def remove_partials(jobs: Iterable[BatchJob]) -> int:
    """Delete the temporaries (`.NAME.*.partial`, see atomic.py) of these outputs left by a killed writer."""
    wanted: dict[Path, set[str]] = defaultdict(set)
    for job in jobs:
        out = Path(job.output)
        wanted[out.parent].add(out.name)
    removed = 0
    for folder, names in wanted.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.name.startswith(".") and entry.name.endswith(".partial"):
                target = entry.name[1:].rsplit(".", 2)[0]  # ".NAME.<random>.partial" -> NAME
                if target in names:
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
    return removed


def _write_report(output_dir: Path, failures: list[BatchOutcome]) -> Path | None:
    """This run's failures as JSON lines in the output folder; a stale report is removed when none failed."""
    report = output_dir / REPORT_NAME
    if not failures:
        report.unlink(missing_ok=True)
        return None
    with atomic_write(report) as f:
        for outcome in failures:
            row = {k: v for k, v in asdict(outcome).items() if k in ("image", "output", "error")}
            f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    return report


def run_batch(plan: BatchPlan, outcomes: Iterator[BatchOutcome] | None, progress: ProgressBar | None = None,
              on_outcome: Callable[[BatchOutcome], None] | None = None) -> BatchSummary:
    """Consume an engine's `outcomes` for `plan.todo` (from `iter_in_process(plan.todo, ...)` or
    `ray_batch.iter_on_ray(plan.todo, ...)`; None when there is nothing to do) behind one progress
    bar; returns the counts.

    Nothing is created when nothing is to be done. A KeyboardInterrupt stops the engine, removes
    any temporary file and returns a summary marked interrupted (outputs written so far stay: the
    next run skips them).
    """
    start = time.perf_counter()
    summary = BatchSummary(skipped=len(plan.skipped), failures=list(plan.unreadable))
    everything = plan.todo + plan.skipped
    remove_partials(everything)
    outcomes = outcomes if outcomes is not None else iter(())
    progress = progress or ProgressBar(len(plan.todo), enabled=False)
    try:
        for outcome in outcomes:
            if outcome.status == "done":
                summary.done += 1
            else:
                summary.failures.append(outcome)
            progress.update(1)
            if on_outcome is not None:
                on_outcome(outcome)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()  # stops a generator engine now: its model, its Ray cluster connection
        progress.close()
        remove_partials(everything)
    summary.failed = len(summary.failures)
    if summary.failed or (plan.output_dir / REPORT_NAME).exists():
        summary.report = _write_report(plan.output_dir, summary.failures)
    summary.seconds = time.perf_counter() - start
    return summary
