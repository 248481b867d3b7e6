"""Closed-form covariance decomposition against float64 LAPACK, on SHARP-like and degenerate sets."""

from __future__ import annotations

import math

import pytest
import torch

import sharp_core.linalg as linalg
from sharp_core.linalg import (
    covariances_from_quats_scales,
    decompose_covariances,
    quats_from_rotations,
    rotations_from_quats,
    transform_gaussian_frames,
)


def _sharp_like(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random anisotropic Gaussians: scales 1 mm..0.4 m, axis ratios up to 1e3, random rotations,
    a tenth exactly axis-aligned and some with repeated scales."""
    g = torch.Generator().manual_seed(seed)
    quats = torch.randn(n, 4, generator=g)
    quats[: n // 10] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    log_s = torch.empty(n, 3).uniform_(-7.0, -1.0, generator=g)
    log_s[:, 2] = log_s[:, 0] - torch.empty(n).uniform_(0.0, math.log(1e3), generator=g)
    log_s[n // 5 : 2 * n // 5, 1] = log_s[n // 5 : 2 * n // 5, 0]  # repeated largest pair
    log_s[2 * n // 5 : 3 * n // 5, 1] = log_s[2 * n // 5 : 3 * n // 5, 2]  # repeated smallest pair
    return quats / quats.norm(dim=-1, keepdim=True), log_s.exp()


def _degenerate() -> torch.Tensor:
    v = torch.tensor([1.0, -2.0, 3.0])
    rot = rotations_from_quats(torch.tensor([0.3, -0.5, 0.2, 0.8]))
    return torch.stack([
        torch.zeros(3, 3),
        torch.eye(3),
        2.5e-9 * torch.eye(3),
        torch.diag(torch.tensor([1.0, 1.0, 2.0])),
        torch.diag(torch.tensor([3.0, 1.0, 1.0])),
        torch.diag(torch.tensor([1.0, 2.0, 3.0])),
        torch.diag(torch.tensor([0.0, 0.0, 4.0])),  # rank 1, axis-aligned
        torch.outer(v, v),  # rank 1, oblique
        rot @ torch.diag(torch.tensor([2.0, 2.0, 0.0])) @ rot.T,  # rank 2, repeated
        rot @ torch.diag(torch.tensor([1e-6, 1.0, 1.0])) @ rot.T,
        torch.diag(torch.tensor([1e-30, 0.0, 0.0])),  # tiny: must not underflow to NaN
        torch.diag(torch.tensor([1e30, 1e30, 1e29])),  # huge: must not overflow
    ])


def _relative_reconstruction_error(quats, scales, reference: torch.Tensor) -> torch.Tensor:
    rebuilt = covariances_from_quats_scales(quats.double(), scales.double())
    largest = torch.linalg.eigvalsh(reference.double())[..., -1].clamp(min=1e-300)
    return (rebuilt - reference.double()).abs().amax((-1, -2)) / largest


def _assert_valid_frames(quats: torch.Tensor, scales: torch.Tensor) -> None:
    assert torch.isfinite(quats).all() and torch.isfinite(scales).all()
    assert (quats[..., 0] >= 0).all()
    torch.testing.assert_close(quats.norm(dim=-1), torch.ones(quats.shape[:-1]), atol=1e-6, rtol=0)
    rot = rotations_from_quats(quats.double())
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(rot.shape[:-2], dtype=torch.float64))
    assert (scales >= 0).all()
    assert (scales[..., :-1] >= scales[..., 1:]).all(), "scales must be descending"


@pytest.mark.parametrize("compute", [torch.float64, torch.float32])
def test_decompose_matches_eigh_on_sharp_like(monkeypatch, compute):
    # float32 mirrors what a GPU runs; float64 is the CPU default.
    monkeypatch.setattr(linalg, "_compute_dtype", lambda t: compute)
    quats, scales = _sharp_like(20000)
    cov = covariances_from_quats_scales(quats.double(), scales.double())
    q, s = decompose_covariances(cov.float())
    _assert_valid_frames(q, s)
    assert _relative_reconstruction_error(q, s, cov).max() < 2e-6
    expected = torch.linalg.eigvalsh(cov).flip(-1).clamp(min=0).sqrt()
    # Largest axis: relative accuracy; the others: relative to the largest (float32 input).
    torch.testing.assert_close(s[:, 0].double(), expected[:, 0], rtol=1e-6, atol=0)
    assert ((s.double() - expected).abs() / expected[:, :1]).max() < 2e-3


def test_decompose_degenerate_inputs():
    cov = _degenerate()
    q, s = decompose_covariances(cov)
    _assert_valid_frames(q, s)
    assert _relative_reconstruction_error(q, s, cov)[1:].max() < 2e-6
    assert torch.equal(s[0], torch.zeros(3))
    svd = torch.linalg.svdvals(cov.double()).sqrt()
    torch.testing.assert_close(s[:, 0].double(), svd[:, 0], rtol=1e-6, atol=0)
    # Axis-aligned diagonal input gives a signed permutation frame whose axes match the entries.
    q_diag, s_diag = decompose_covariances(torch.diag(torch.tensor([1.0, 4.0, 9.0])))
    torch.testing.assert_close(s_diag, torch.tensor([3.0, 2.0, 1.0]))
    rot = rotations_from_quats(q_diag)
    torch.testing.assert_close(rot.abs(), torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]]), atol=1e-6, rtol=0)


def test_decompose_keeps_leading_shape_and_empty():
    cov = _degenerate()[3:9].reshape(2, 3, 3, 3)
    q, s = decompose_covariances(cov)
    assert q.shape == (2, 3, 4) and s.shape == (2, 3, 3)
    q0, s0 = decompose_covariances(torch.zeros(0, 3, 3))
    assert q0.shape == (0, 4) and s0.shape == (0, 3)
    with pytest.raises(ValueError, match="3, 3"):
        decompose_covariances(torch.zeros(4, 3))


def test_quats_from_rotations_round_trip():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(5000, 4, generator=g)
    # Each Shepperd branch: near-identity, and 180-degree turns about x, y, z (w ~ 0).
    q[:4] = torch.tensor([[1.0, 1e-4, 0, 0], [1e-7, 1, 0, 0], [0, 0, 1, 1e-7], [0, 1e-7, 0, 1]])
    q = q / q.norm(dim=-1, keepdim=True)
    back = quats_from_rotations(rotations_from_quats(q))
    canonical = q * torch.where(q[:, :1] < 0, -1.0, 1.0)
    assert (back[:, 0] >= 0).all()
    # q and -q are the same rotation; at w ~ 0 either sign may come back.
    err = torch.minimum((back - canonical).abs().amax(-1), (back + canonical).abs().amax(-1))
    assert err.max() < 1e-6
    torch.testing.assert_close(rotations_from_quats(back), rotations_from_quats(q), atol=1e-6, rtol=0)


@pytest.mark.parametrize("compute", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["diagonal", "general", "batched"])
def test_transform_gaussian_frames_matches_reference_covariance(monkeypatch, compute, kind):
    monkeypatch.setattr(linalg, "_compute_dtype", lambda t: compute)
    monkeypatch.setattr(linalg, "_CHUNK", 3000)  # exercise several chunks, with a ragged tail
    quats, scales = _sharp_like(10000, seed=1)
    if kind == "diagonal":
        linear = torch.diag(torch.tensor([0.65, 0.49, 1.0]))  # like SHARP's unprojection
    elif kind == "general":
        linear = torch.tensor([[0.7, 0.1, -0.2], [0.05, 0.5, 0.3], [0.0, -0.1, 1.1]])
    else:  # two scenes, each with its own diagonal map
        quats, scales = quats.reshape(2, 5000, 4), scales.reshape(2, 5000, 3)
        linear = torch.diag_embed(torch.tensor([[0.65, 0.49, 1.0], [1.2, 0.9, 2.0]])).unsqueeze(1)
    q, s = transform_gaussian_frames(quats, scales, linear)
    assert q.shape == quats.shape and s.shape == scales.shape
    _assert_valid_frames(q, s)
    a = linear.double()
    expected = a @ covariances_from_quats_scales(quats.double(), scales.double()) @ a.transpose(-1, -2)
    assert _relative_reconstruction_error(q, s, expected).max() < 2e-6
    reference_scales = torch.linalg.eigvalsh(expected).flip(-1).clamp(min=0).sqrt()
    rel = (s.double() - reference_scales).abs() / reference_scales
    assert rel[..., 0].max() < 1e-6
    if compute == torch.float64:  # thin axes stay accurate, unlike an SVD of a float32 product
        assert rel.max() < 1e-5


def test_transform_identity_keeps_covariance_and_sorts_scales():
    quats, scales = _sharp_like(2000, seed=2)
    q, s = transform_gaussian_frames(quats, scales, torch.eye(3))
    # Axis ratios here reach ~4e5 (variance ratio ~1e11): float64 eigenvalues keep ~1e-5 of the
    # thinnest scale.
    torch.testing.assert_close(s, scales.sort(dim=-1, descending=True).values, rtol=1e-5, atol=0)
    cov = covariances_from_quats_scales(quats.double(), scales.double())
    assert _relative_reconstruction_error(q, s, cov).max() < 1e-6
    empty_q, empty_s = transform_gaussian_frames(quats[:0], scales[:0], torch.eye(3))
    assert empty_q.shape == (0, 4) and empty_s.shape == (0, 3)
