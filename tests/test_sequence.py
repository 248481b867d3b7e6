"""Disk-backed scene sequences (clips) and median-depth scale alignment."""

from __future__ import annotations

import gc

import pytest
import torch

from comfy_env import small_scene  # noqa: F401  (also puts the ComfyUI stand-ins on the path)

from sharp_core import Gaussians, SceneSequenceWriter, align_scale, iter_scenes, median_depth


def test_round_trip_one_scene_at_a_time(tmp_path):
    folder = tmp_path / "clip"
    writer = SceneSequenceWriter(folder)
    originals = [small_scene(seed=i) for i in range(5)]
    for scene in originals:
        writer.append(scene)
    assert len(writer.depths) == 5 and writer.depths[0].shape == (48, 64)
    seq = writer.finish()
    assert len(seq) == seq.batch_size == 5 and seq.num_gaussians == 400
    assert seq.focal_px == [60.0] * 5 and seq.image_size == [(64, 48)] * 5
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:06d}.safetensors" for i in range(5)]
    for original, loaded in zip(originals, seq.scenes()):
        assert isinstance(loaded, Gaussians) and loaded.batch_size == 1
        for name in ("means", "scales", "quats", "colors", "opacities", "depth"):
            assert torch.equal(getattr(loaded, name), getattr(original, name)), name
    assert torch.equal(seq[-1].means, originals[-1].means) and len(seq.scenes()) == 5
    assert torch.equal(seq.scenes()[1:3][1].means, originals[2].means)
    with pytest.raises(IndexError):
        seq[5]
    half = seq.to(dtype=torch.float16)
    assert half[0].means.dtype == torch.float16 and half.folder == seq.folder
    # the folder lives as long as any copy, and goes with the last one
    del seq, writer
    gc.collect()
    assert folder.exists()
    del half
    gc.collect()
    assert not folder.exists()


def test_writer_refuses_mixed_or_broken_scenes(tmp_path):
    writer = SceneSequenceWriter(tmp_path / "a")
    writer.append(small_scene())
    with pytest.raises(ValueError, match="has 300 splats"):
        writer.append(small_scene(n=300))
    bad = small_scene()
    bad.means[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        writer.append(bad)
    with pytest.raises(ValueError, match="batch of one"):
        writer.append(small_scene(b=2))
    assert len(list((tmp_path / "a").iterdir())) == 1  # nothing half-written
    writer.discard()
    assert not (tmp_path / "a").exists()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        SceneSequenceWriter(tmp_path / "b")
    with pytest.raises(ValueError, match="empty"):
        SceneSequenceWriter(tmp_path / "c").finish()


def test_a_missing_file_names_the_fix(tmp_path):
    writer = SceneSequenceWriter(tmp_path / "clip")
    writer.append(small_scene())
    seq = writer.finish()
    (tmp_path / "clip" / "000000.safetensors").unlink()
    with pytest.raises(RuntimeError, match="run SHARP Predict again"):
        seq[0]


def test_median_depth_and_alignment():
    scene = small_scene()
    assert median_depth(scene) == pytest.approx(float(scene.depth.flatten().median()))
    no_map = Gaussians(**{k: getattr(scene, k) for k in ("means", "scales", "quats", "colors", "opacities")},
                       focal_px=scene.focal_px, image_size=scene.image_size)
    assert median_depth(no_map) == pytest.approx(float(scene.means[0, :, 2].median()))
    aligned, factor = align_scale(scene, 2.0 * median_depth(scene))
    assert factor == pytest.approx(2.0)
    assert torch.allclose(aligned.means, scene.means * 2) and torch.allclose(aligned.scales, scene.scales * 2)
    assert torch.allclose(aligned.depth, scene.depth * 2) and torch.equal(aligned.colors, scene.colors)
    assert torch.allclose(aligned.quats, scene.quats, atol=1e-6)
    assert median_depth(aligned) == pytest.approx(2.0 * median_depth(scene), rel=1e-5)
    with pytest.raises(ValueError, match="positive"):
        align_scale(scene, 0.0)


def test_iter_scenes_walks_batches_and_sequences(tmp_path):
    batch = small_scene(b=3)
    assert [s.batch_size for s in iter_scenes(batch)] == [1, 1, 1]
    assert torch.equal(list(iter_scenes(batch))[2].means, batch.means[2:3])
