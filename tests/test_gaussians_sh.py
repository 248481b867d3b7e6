"""The container's optional higher-order SH coefficients travel through indexing, selection and batching."""

import pytest
import torch

from sharp_core import Gaussians, stack_scenes


def scene(n=5, k=3, b=1):
    g = torch.Generator().manual_seed(n * 10 + k)
    return Gaussians(
        means=torch.randn(b, n, 3, generator=g), scales=torch.rand(b, n, 3, generator=g),
        quats=torch.nn.functional.normalize(torch.randn(b, n, 4, generator=g), dim=-1),
        colors=torch.rand(b, n, 3, generator=g), opacities=torch.rand(b, n, generator=g),
        focal_px=[500.0] * b, image_size=[(64, 48)] * b,
        sh_rest=None if k == 0 else torch.randn(b, n, k, 3, generator=g),
    )


def test_sh_rest_follows_select_index_and_stack():
    g = scene(k=8)
    assert g.sh_degree == 2
    kept = g.select(torch.tensor([4, 1]))
    assert torch.equal(kept.sh_rest, g.sh_rest[:, [4, 1]])
    both = stack_scenes([g, scene(k=8)])
    assert both.sh_rest.shape == (2, 5, 8, 3)
    assert torch.equal(both[1].sh_rest, scene(k=8).sh_rest)
    assert both.to(dtype=torch.float64).sh_rest.dtype == torch.float64


def test_sh_rest_shape_is_checked_and_degrees_must_match():
    with pytest.raises(ValueError, match="sh_rest has shape"):
        Gaussians(**{**scene(k=3).__dict__, "sh_rest": torch.zeros(1, 5, 5, 3)})
    with pytest.raises(ValueError, match="spherical-harmonic degrees"):
        stack_scenes([scene(k=3), scene(k=0)])
    assert scene(k=0).sh_degree == 0


def test_non_finite_sh_rest_is_named():
    g = scene(k=15)
    g.sh_rest[0, 2, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="sh_rest"):
        g.check_finite("save x")
