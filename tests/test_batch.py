"""`predict` on many photos in this process: planning, resume after Ctrl-C, the failure report, the
progress bar, and the command line's one-line errors (issue 14: nothing loaded or created first)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path, PurePath

import pytest
import torch
from PIL import Image

from sharp_core import batch
from sharp_core.atomic import atomic_target
from sharp_core.batch import BatchJob, REPORT_NAME, list_images, plan_batch
from sharp_core.cli import main
from sharp_core.progress_bar import ProgressBar

from helpers import ROOT, TINY

CHECKPOINT = TINY / "weights.safetensors"


def photo(path: Path, size=(40, 30), colour=(200, 30, 30), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


# -- planning (no model) --------------------------------------------------------------------------

def test_outputs_mirror_folders_and_keep_suffixes_only_where_stems_clash(tmp_path):
    photos = tmp_path / "photos"
    for name in ("a.jpg", "a.png", "b.png", "sub/c.webp", ".hidden.png"):
        photo(photos / name)
    (photos / "notes.txt").write_text("not a photo")
    single = photo(tmp_path / "single.png")
    plan = plan_batch(list_images([photos, single, photos / "b.png"]), tmp_path / "out")
    names = sorted(str(Path(j.output).relative_to(tmp_path / "out")) for j in plan.todo)
    assert names == ["a.jpg.ply", "a.png.ply", "b.ply", "single.ply", "sub/c.ply"]
    compressed = plan_batch(list_images([single]), tmp_path / "out", format="compressed-ply")
    assert compressed.todo[0].output.endswith("single.compressed.ply")
    assert not (tmp_path / "out").exists()  # planning creates nothing


def test_two_inputs_that_would_share_an_output_are_refused_before_anything(tmp_path):
    one, two = photo(tmp_path / "x" / "a.png"), photo(tmp_path / "y" / "a.png")
    with pytest.raises(ValueError, match=r"would both be written to a\.ply"):
        plan_batch(list_images([one, two]), tmp_path / "out")
    with pytest.raises(ValueError, match="unknown output format 'obj'"):
        plan_batch(list_images([one]), tmp_path / "out", format="obj")
    with pytest.raises(ValueError, match="not found"):
        list_images([tmp_path / "missing"])
    assert not (tmp_path / "out").exists()


def test_present_outputs_are_skipped_and_bad_headers_set_aside(tmp_path):
    photos = tmp_path / "photos"
    photo(photos / "done.png"), photo(photos / "todo.png"), photo(photos / "tiny.png", size=(8, 40))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "done.ply").write_bytes(b"present means complete: writers rename a finished temporary file")
    plan = plan_batch(list_images([photos]), out)
    assert [Path(j.image).name for j in plan.skipped] == ["done.png"]
    assert [Path(j.image).name for j in plan.todo] == ["todo.png"]
    errors = {Path(f.image).name: f.error for f in plan.unreadable}
    assert "cannot read the image" in errors["broken.jpg"]
    assert "8 x 40 pixels" in errors["tiny.png"] and "at least 16 x 16" in errors["tiny.png"]
    again = plan_batch(list_images([photos]), out, overwrite=True)
    assert sorted(Path(j.image).name for j in again.todo) == ["done.png", "todo.png"]


def test_output_folder_under_a_file_or_read_only_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        batch.check_output_dir(blocker / "out")
    with pytest.raises(ValueError, match="is a file; give a folder"):
        batch.check_output_dir(blocker)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="permission denied"):
            batch.check_output_dir(locked / "out")


def test_stale_temporaries_of_planned_outputs_are_removed_and_others_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mine, other = out / ".a.ply.k3j2x.partial", out / ".zzz.ply.k3j2x.partial"
    mine.write_bytes(b"half"), other.write_bytes(b"someone else's")
    assert batch.remove_partials([BatchJob(str(tmp_path / "a.png"), str(out / "a.ply"))]) == 1
    assert not mine.exists() and other.exists()


def test_progress_bar_counts_rate_and_eta_on_a_log_stream():
    stream = io.StringIO()
    bar = ProgressBar(4, stream=stream, log_every=3600)
    bar.update()  # first update always shows
    bar.update(), bar.update()  # within log_every: silent
    bar.write("failed: x.png")
    bar.update()  # the last one always shows
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[######..................] 1/4 images") and "images/s  ETA 0:" in lines[0]
    assert lines[1] == "failed: x.png"
    assert lines[2].startswith("[########################] 4/4 images") and lines[2].endswith("ETA 0:00:00")
    assert len(lines) == 3


# -- the command line's errors (subprocess: what a user sees) -------------------------------------

def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "sharp_core", "predict", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["not-an-image", "output-under-a-file", "cuda-without-cuda", "focal-zero",
                                  "focal-nan", "missing-checkpoint"])
def test_expected_failures_are_one_line_exit_1_and_create_nothing(tmp_path, case):
    good = photo(tmp_path / "in" / "good.png")
    text = tmp_path / "in" / "notes.jpg"
    text.write_text("this is a text file named like a photo")
    (tmp_path / "file").write_text("a regular file")
    out = tmp_path / "out"
    args, expected = {
        "not-an-image": ([str(text), "-o", str(out)], "notes.jpg: cannot read the image"),
        "output-under-a-file": ([str(good), "-o", str(tmp_path / "file" / "out")], "file is a file, not a folder"),
        "cuda-without-cuda": ([str(good), "-o", str(out), "--device", "cuda"], "--device cuda: "),
        "focal-zero": ([str(good), "-o", str(out), "--focal-mm", "0"], "--focal-mm 0: a focal length must be"),
        "focal-nan": ([str(good), "-o", str(out), "--focal-mm", "nan"], "--focal-mm nan: a focal length must be"),
        "missing-checkpoint": ([str(good), "-o", str(out), "--checkpoint", str(tmp_path / "nope.pt")],
                               "checkpoint not found"),
    }[case]
    if case == "cuda-without-cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    before = tree(tmp_path)
    if case != "missing-checkpoint":
        args += ["--checkpoint", str(CHECKPOINT)]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and expected in result.stderr
    assert tree(tmp_path) == before  # no output folder, no report, no temporary


def test_a_run_with_nothing_to_do_loads_nothing_and_logs_each_line_once(tmp_path):
    good = photo(tmp_path / "in" / "good.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "good.ply").write_bytes(b"already there")
    # A checkpoint that cannot load: the run must not need it when every output is present.
    result = run_cli(str(good), "-o", str(out), "--checkpoint", str(tmp_path / "in" / "good.png"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("done 0, skipped 1 (already present), failed 0 in ")
    assert len(lines) == len(set(lines)) == 2, lines
    assert (out / "good.ply").read_bytes() == b"already there"


# -- a real run: Ctrl-C while writing, then resume --------------------------------------------------

@pytest.fixture(scope="module")
def interrupted_then_resumed(tmp_path_factory):
    """Two photos and a corrupt one; the first run is interrupted (KeyboardInterrupt) half-way through
    writing the second scene; the second run finishes. Shared with test_batch_ray.py's parity check."""
    root = tmp_path_factory.mktemp("resume")
    photos = root / "photos"
    photo(photos / "a.png", colour=(200, 30, 30)), photo(photos / "b.png", size=(36, 48), colour=(30, 60, 200))
    (photos / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    out = root / "out"
    args = ["predict", str(photos), "-o", str(out), "--checkpoint", str(CHECKPOINT), "--device", "cpu",
            "--dtype", "fp32", "--focal-mm", "28"]
    real_save, calls, seen = batch.save_gaussians, [], {}

    def save_then_interrupt(scene, path, format=None):
        calls.append(Path(path).name)
        if len(calls) == 1:
            return real_save(scene, path, format=format)
        with atomic_target(path) as tmp:  # a writer half-way through its file when Ctrl-C arrives
            tmp.write_bytes(b"ply\nformat binary_little_endian 1.0\n")
            seen["mid_write"] = tree(out)
            raise KeyboardInterrupt

    batch.save_gaussians = save_then_interrupt
    try:
        first_code = main(args)
    finally:
        batch.save_gaussians = real_save
    after_first = {p.name: p.stat() for p in out.iterdir()}
    report_first = (out / REPORT_NAME).read_text()
    second_code = main(args)
    return dict(out=out, photos=photos, calls=calls, first_code=first_code, after_first=after_first,
                seen_mid_write=seen.get("mid_write", set()), report_first=report_first, second_code=second_code)


def test_ctrl_c_mid_write_leaves_no_partial_file_and_resume_writes_only_the_missing(interrupted_then_resumed):
    r = interrupted_then_resumed
    out = r["out"]
    assert r["calls"] == ["a.ply", "b.ply"]
    assert any(name.endswith(".partial") for name in r["seen_mid_write"])  # the writer really was mid-file
    assert r["first_code"] == 130
    assert sorted(r["after_first"]) == ["a.ply", REPORT_NAME]  # no b.ply, no temporary
    assert "c.png" in r["report_first"]
    assert r["second_code"] == 1  # c.png still fails
    assert sorted(p.name for p in out.iterdir()) == ["a.ply", "b.ply", REPORT_NAME]
    a_now = (out / "a.ply").stat()
    assert (a_now.st_ino, a_now.st_mtime_ns) == (r["after_first"]["a.ply"].st_ino, r["after_first"]["a.ply"].st_mtime_ns)
    rows = [json.loads(line) for line in (out / REPORT_NAME).read_text().splitlines()]
    assert [Path(row["image"]).name for row in rows] == ["c.png"]
    assert "cannot read the image" in rows[0]["error"] and rows[0]["output"] == str(out / "c.ply")
    import sharp_core
    scene = sharp_core.load_ply(out / "b.ply")
    assert scene.image_size == [(36, 48)] and scene.num_gaussians == 2 * 768 * 768
    assert scene.focal_px[0] == pytest.approx(sharp_core.focal_px_from_mm(28.0, 36, 48), rel=1e-6)
