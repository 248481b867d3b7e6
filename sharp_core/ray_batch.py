"""The batch engine on a Ray cluster (optional extra: `pip install ".[ray]"`, i.e. `ray[data]`).

Ray Data carries the planned jobs (image path, output path) to a pool of actors; each actor loads
one model (one per GPU, or one per CPU worker on a cluster without GPUs) and runs the same
`batch.predict_to_file` as the in-process engine, so the files are identical. Only small outcome
rows travel back to the driver, which keeps the progress bar and the report.

The code path is the same for a local cluster and a remote one; what a multi-node cluster needs:
the images, the output folder and `--checkpoint` on a filesystem every node mounts at the same
path (workers read and write them directly; writes are atomic renames within the output folder),
and this package's dependencies installed on every node (the package itself travels with the job
through Ray's `py_modules`). Without `--checkpoint` each node fetches the released weights into
its own cache.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .batch import BatchJob, BatchOutcome, BatchSettings, check_device, open_model, predict_to_file

__all__ = ["RUNTIME_ENV", "RayUnavailable", "iter_on_ray", "import_ray"]

PACKAGE_DIR = Path(__file__).resolve().parent
# Ships this package to every worker of the job (Ray accepts local folders only at ray.init). A
# session opened by the caller (tests, notebooks) should pass the same, unless the package is installed.
RUNTIME_ENV = {"py_modules": [str(PACKAGE_DIR)]}


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached or cannot run the job."""


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayUnavailable('--ray needs Ray Data: pip install ".[ray]" (or pip install "ray[data]")') from None
    return ray


class _PredictActor:
    """One loaded model per actor; `__call__` predicts a batch of jobs and writes their files."""

    def __init__(self, settings: dict, threads: int, use_gpu: bool):
        self.settings = BatchSettings(**settings)
        if not use_gpu:
            torch.set_num_threads(max(1, threads))
        # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU, which is then "cuda" (index 0).
        device = torch.device("cuda") if use_gpu else check_device("cpu" if self.settings.device == "auto"
                                                                   else self.settings.device)
        self.model = open_model(self.settings, device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes = [predict_to_file(self.model, BatchJob(str(i), str(o)), self.settings)
                    for i, o in zip(batch["image"], batch["output"])]
        return {
            "image": np.array([r.image for r in outcomes], dtype=object),
            "output": np.array([r.output for r in outcomes], dtype=object),
            "status": np.array([r.status for r in outcomes], dtype=object),
            "error": np.array([r.error or "" for r in outcomes], dtype=object),
            "seconds": np.array([r.seconds for r in outcomes], dtype=np.float64),
        }


def _connect(ray, address: str | None) -> bool:
    """Join `address`; without one, Ray's own rule: $RAY_ADDRESS, else a cluster `ray start` began on
    this machine, else a new local cluster. True when this call connected."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or None, include_dashboard=False, logging_level=logging.ERROR,
                 runtime_env=RUNTIME_ENV)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "a local cluster"
        raise RayUnavailable(f"cannot start or join Ray at {where}: {exc}".splitlines()[0]) from None
    return True


def _pool_shape(ray, settings: BatchSettings, workers: int | None) -> tuple[int, bool, int]:
    """(actors, whether each takes a GPU, CPU threads per actor) from the cluster's resources."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    wants_gpu = settings.device == "auto" or settings.device.startswith("cuda")
    if settings.device.startswith("cuda") and gpus == 0:
        raise RayUnavailable(f"--device {settings.device}: the Ray cluster has no GPU; use --device cpu or auto")
    if settings.device not in ("auto", "cpu") and not settings.device.startswith("cuda"):
        raise RayUnavailable(f"--device {settings.device} is not available with --ray; use auto, cpu or cuda")
    if wants_gpu and gpus > 0:
        return (workers or gpus), True, 1
    node_cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    node_cpus = [c for c in node_cpus if c > 0] or [1]
    actors = workers or 1
    threads = max(1, min(min(node_cpus), sum(node_cpus) // actors))
    return actors, False, threads


def iter_on_ray(jobs: list[BatchJob], settings: BatchSettings, address: str | None = None,
                workers: int | None = None, batch_size: int = 4) -> Iterator[BatchOutcome]:
    """Yield one outcome per job as the actor pool finishes it (in completion order).

    Uses the Ray session already open in this process if there is one (and leaves it open);
    otherwise joins `address` / $RAY_ADDRESS or starts a local cluster, and disconnects at the
    end or on Ctrl-C (which also ends this job's actors).
    """
    ray = import_ray()
    connected = _connect(ray, address)
    try:
        actors, use_gpu, threads = _pool_shape(ray, settings, workers)
        actors = min(actors, len(jobs))  # no idle models
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # our own bar covers the whole run
        context.enable_operator_progress_bars = False
        context.enable_auto_log_stats = False
        context.log_internal_stack_trace = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes on our own settings
        items = [asdict(job) for job in jobs]
        blocks = max(1, min(len(items), actors * 8, math.ceil(len(items) / max(1, batch_size))))
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        results = dataset.map_batches(
            _PredictActor,
            fn_constructor_kwargs={"settings": asdict(settings), "threads": threads, "use_gpu": use_gpu},
            batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
            num_gpus=1 if use_gpu else 0, num_cpus=threads,
        )
        try:
            for row in results.iter_rows():
                yield BatchOutcome(str(row["image"]), str(row["output"]), str(row["status"]),
                                   str(row["error"]) or None, float(row["seconds"]))
        except ray.exceptions.RayError as exc:
            raise RayUnavailable(f"the Ray job failed: {_root_cause(exc)}") from None
    finally:
        if connected:
            ray.shutdown()


def _root_cause(exc: BaseException) -> str:
    """The first line of the error that started a chain of Ray wrappers (e.g. a model that did not load)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"
