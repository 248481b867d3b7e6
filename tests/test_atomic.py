"""Atomic writes: complete file or none, with ordinary permissions."""

import os

import pytest

import sharp_core.atomic as atomic
from sharp_core.atomic import atomic_targets, atomic_write


def test_success_replaces_with_plain_open_permissions(tmp_path):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"
    assert os.stat(target).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin", "plain.bin"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_set_replaces_in_the_order_given_so_the_index_file_appears_last(tmp_path, monkeypatch):
    names = ["texture.png", "material.mtl", "scene.obj"]
    (tmp_path / "scene.obj").write_text("old")
    replaced, real_replace = [], os.replace

    def watching_replace(src, dst):
        replaced.append((os.path.basename(dst), sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", watching_replace)
    with atomic_targets([tmp_path / n for n in names]) as temps:
        assert [t.parent for t in temps] == [tmp_path] * 3
        for temp, name in zip(temps, names):
            temp.write_text(name)
    assert [name for name, _ in replaced] == names
    assert replaced[-1][1] == ["material.mtl", "scene.obj", "texture.png"]  # the others were in place first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert all((tmp_path / n).read_text() == n for n in names)


def test_a_set_that_fails_touches_no_target_and_leaves_no_temporary(tmp_path):
    (tmp_path / "scene.obj").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_targets([tmp_path / "texture.png", tmp_path / "scene.obj"]) as temps:
            temps[0].write_text("new texture")
            temps[1].write_text("half")
            raise RuntimeError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["scene.obj"]
    assert (tmp_path / "scene.obj").read_text() == "old"
