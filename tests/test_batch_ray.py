"""`predict --ray` on a local Ray cluster (2 CPUs, 2 workers, a small object store; started once for
the module): good and bad photos, resume, and the same bytes as the in-process path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sharp_core.batch import REPORT_NAME
from sharp_core.cli import main

from helpers import TINY
from test_batch import photo

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install '.[ray]' (CI installs it)")

CHECKPOINT = TINY / "weights.safetensors"
COMMON = ["--checkpoint", str(CHECKPOINT), "--device", "cpu", "--dtype", "fp32", "--focal-mm", "28"]


@pytest.fixture(scope="module")
def cluster():
    from sharp_core.ray_batch import RUNTIME_ENV

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=80 * 2**20, include_dashboard=False, runtime_env=RUNTIME_ENV,
             logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_run(cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    photos = root / "photos"
    photo(photos / "a.png", colour=(200, 30, 30))
    photo(photos / "nested" / "b.png", size=(36, 48), colour=(30, 60, 200))
    (photos / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x17" * 64)
    photo(photos / "small.png", size=(12, 12))
    photo(photos / "hdr.tif", mode="F", colour=7.5)  # a float image beyond [0, 1]: refused when decoded
    out = root / "out"
    code = main(["predict", str(photos), "-o", str(out), "--ray", "--workers", "2", "--batch-size", "1", *COMMON])
    return dict(photos=photos, out=out, code=code)


def test_good_and_bad_photos_on_two_workers(ray_run):
    out = ray_run["out"]
    assert ray_run["code"] == 1  # three photos failed; the run went on
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["a.ply", "nested", "nested/b.ply", REPORT_NAME]
    rows = {Path(r["image"]).name: r for r in map(json.loads, (out / REPORT_NAME).read_text().splitlines())}
    assert sorted(rows) == ["corrupt.jpg", "hdr.tif", "small.png"]
    assert "cannot read the image" in rows["corrupt.jpg"]["error"]
    assert "12 x 12 pixels" in rows["small.png"]["error"]
    assert "32-bit float image must hold values in [0, 1]" in rows["hdr.tif"]["error"]  # found by a worker
    import sharp_core
    scene = sharp_core.load_ply(out / "nested" / "b.ply")
    assert scene.image_size == [(36, 48)] and scene.num_gaussians == 2 * 768 * 768


def test_resume_on_ray_writes_only_the_missing_output(ray_run, capsys):
    out = ray_run["out"]
    (out / "nested" / "b.ply").unlink()  # as if the run had been stopped before b
    kept = (out / "a.ply").stat()
    capsys.readouterr()
    code = main(["predict", str(ray_run["photos"]), "-o", str(out), "--ray", "--workers", "2", *COMMON])
    err = capsys.readouterr().err
    assert code == 1
    assert "done 1, skipped 1 (already present), failed 3" in err
    assert err.count("done 1, skipped 1") == 1  # the summary, once
    assert (out / "nested" / "b.ply").is_file()
    now = (out / "a.ply").stat()
    assert (now.st_ino, now.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    assert not [p for p in out.rglob(".*.partial")]


def test_ray_and_in_process_write_the_same_bytes(ray_run, tmp_path):
    """Same model, same file writer: identical files. Both with one torch thread per model, as on
    this 2-CPU cluster with 2 workers: float sums are ordered by the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = main(["predict", str(ray_run["photos"] / "a.png"), "-o", str(tmp_path), *COMMON])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    assert (tmp_path / "a.ply").read_bytes() == (ray_run["out"] / "a.ply").read_bytes()
