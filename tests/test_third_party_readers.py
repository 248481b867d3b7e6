"""The third-party reader harness itself: splat-transform reads our SHARP PLY with the statistics we
compute for the scene, a wrong statistic is caught, and gltf-validator tells a valid .glb from a
broken one."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from sharp_core import save_ply
from sharp_core.gaussians import Gaussians
from sharp_core.glb import GltfBuilder, write_glb
from third_party_readers import (
    assert_stats_match, gltf_messages, gltf_validator, match_splats, scene_stats, splat_transform,  # noqa: F401
)

FLOAT32 = {"position": 1e-5, "rotation": 1e-5, "scale": 1e-5, "opacity": 1e-5, "color": 1e-5}


def _scene(n: int = 500, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
    return Gaussians(
        means=torch.randn(n, 3, generator=g), scales=torch.rand(n, 3, generator=g) * 0.05 + 1e-3,
        quats=q / q.norm(dim=-1, keepdim=True), colors=torch.rand(n, 3, generator=g),
        opacities=torch.rand(n, generator=g), focal_px=[500.0], image_size=[(64, 48)],
    )


def test_splat_transform_reads_our_ply_with_our_statistics(tmp_path, splat_transform):
    scene = _scene()
    path = save_ply(scene, tmp_path / "a.ply")
    theirs = splat_transform.stats(path)
    assert theirs.format == "ply"
    assert_stats_match(theirs, scene_stats(scene), FLOAT32, "our PLY")
    # the comparison can fail: one column off by more than its tolerance
    shifted = dataclasses.replace(scene, opacities=scene.opacities * 0.9)
    with pytest.raises(AssertionError, match="opacity"):
        assert_stats_match(theirs, scene_stats(shifted), FLOAT32, "shifted")


def test_splat_transform_converts_and_splats_match(tmp_path, splat_transform):
    from plyfile import PlyData

    scene = _scene()
    src = save_ply(scene, tmp_path / "a.ply")
    out = splat_transform.convert(src, tmp_path / "b.ply", "-m")  # Morton order: reordered
    vertex = PlyData.read(str(out))["vertex"].data
    means = np.stack([vertex[c] for c in "xyz"], axis=-1)
    idx = match_splats(scene.means[0], means, max_distance=1e-6)
    assert not torch.equal(idx, torch.arange(len(idx))), "Morton ordering should have moved splats"
    np.testing.assert_allclose(vertex["opacity"][idx.numpy()], torch.logit(scene.opacities[0]).numpy(), atol=1e-4)


def _points_glb(tmp_path, name, positions, bounds=True):
    b = GltfBuilder()
    pa = b.add_accessor(positions, "VEC3", bounds=bounds)
    b.json.update(
        meshes=[{"primitives": [{"attributes": {"POSITION": pa}, "mode": 0}]}],
        nodes=[{"mesh": 0}], scenes=[{"nodes": [0]}], scene=0,
    )
    return write_glb(b, tmp_path / name)


def test_gltf_validator_tells_good_from_bad(tmp_path, gltf_validator):
    pts = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    good = _points_glb(tmp_path, "good.glb", pts)
    no_bounds = _points_glb(tmp_path, "no_bounds.glb", pts, bounds=False)  # POSITION needs min/max
    junk = tmp_path / "junk.glb"
    junk.write_bytes(b"glTF" + b"\x02\0\0\0" + b"\xff" * 8)
    reports = gltf_validator([good, no_bounds, junk])
    assert gltf_messages(reports[0], 0) == [], json.dumps(reports[0])
    assert any(m.startswith("MESH_PRIMITIVE_POSITION_ACCESSOR_WITHOUT_BOUNDS") for m in gltf_messages(reports[1], 0)), reports[1]
    assert gltf_messages(reports[2], 0), reports[2]
