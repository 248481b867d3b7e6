"""Time the covariance step of SHARP's unprojection for one full prediction (1,179,648 splats).

Compares `transform_gaussian_frames` (closed form, on the tensors' device) with the reference
approach: build the float32 covariances, transform them, move them to the CPU and take a float64
SVD. Also reports how well each keeps the covariance and the thinnest axis, against a float64
eigendecomposition of the exact transformed covariance (on a subset, for time).

    python -m benchmarks.unproject [--n 1179648] [--repeat 3]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks import best_of
import sharp_core.linalg as linalg
from sharp_core.linalg import covariances_from_quats_scales, transform_gaussian_frames

# SHARP's NDC -> metric map for a 4:3 image at f = W: diag(W / 2f, H / 2f, 1).
_UNPROJECT = torch.diag(torch.tensor([0.5, 0.375, 1.0]))


def _sharp_like(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    quats = torch.randn(n, 4, generator=g)
    quats = quats / quats.norm(dim=-1, keepdim=True)
    log_s = torch.empty(n, 3).uniform_(-7.0, -2.0, generator=g)
    log_s[:, 2] = log_s[:, 0] - torch.empty(n).uniform_(0.0, 6.9, generator=g)
    return quats, log_s.exp()


def _reference_style(quats: torch.Tensor, scales: torch.Tensor, linear: torch.Tensor):
    cov = linear @ covariances_from_quats_scales(quats, scales) @ linear.T
    rot, sv2, _ = torch.linalg.svd(cov.cpu().double())
    rot[..., :, -1] *= torch.linalg.det(rot).sign().unsqueeze(-1)  # reflections -> rotations
    return linalg.quats_from_rotations(rot).float(), sv2.sqrt().float()


def _errors(quats, scales, exact) -> tuple[float, float]:
    rebuilt = covariances_from_quats_scales(quats.double(), scales.double())
    values = torch.linalg.eigvalsh(exact).flip(-1)
    cov_err = ((rebuilt - exact).abs().amax((-1, -2)) / values[:, 0]).max().item()
    thin = values[:, 2].clamp(min=0).sqrt()
    thin_err = ((scales[:, 2].double() - thin).abs() / thin).max().item()
    return cov_err, thin_err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_179_648)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    quats, scales = _sharp_like(args.n)
    print(f"{args.n:,} Gaussians, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")

    fast = best_of(lambda: transform_gaussian_frames(quats, scales, _UNPROJECT), args.repeat)
    general = torch.tensor([[0.5, 0.02, 0.0], [0.0, 0.375, 0.01], [0.0, 0.0, 1.0]])
    fast_general = best_of(lambda: transform_gaussian_frames(quats, scales, general), args.repeat)
    original = linalg._compute_dtype
    linalg._compute_dtype = lambda t: torch.float32  # what an accelerator runs
    fast32 = best_of(lambda: transform_gaussian_frames(quats, scales, _UNPROJECT), args.repeat)
    linalg._compute_dtype = original
    reference = best_of(lambda: _reference_style(quats, scales, _UNPROJECT), 1)

    print(f"transform_gaussian_frames, diagonal map, float64 (CPU default): {fast:.3f} s")
    print(f"transform_gaussian_frames, general map,  float64:               {fast_general:.3f} s")
    print(f"transform_gaussian_frames, diagonal map, float32 (GPU path):    {fast32:.3f} s")
    print(f"reference approach (float32 covariances, float64 SVD on CPU):  {reference:.3f} s")
    print(f"speed-up of the default path over the reference: {reference / fast:.1f}x")

    sub = slice(0, 200_000)
    exact = _UNPROJECT.double() @ covariances_from_quats_scales(
        quats[sub].double(), scales[sub].double()
    ) @ _UNPROJECT.double().T
    rows = {"ours float64": transform_gaussian_frames(quats[sub], scales[sub], _UNPROJECT)}
    linalg._compute_dtype = lambda t: torch.float32
    rows["ours float32"] = transform_gaussian_frames(quats[sub], scales[sub], _UNPROJECT)
    linalg._compute_dtype = original
    rows["reference"] = _reference_style(quats[sub], scales[sub], _UNPROJECT)
    print(f"accuracy on {len(exact):,} splats (max over splats; axis ratios up to ~1e3 x e^5):")
    for name, (q, s) in rows.items():
        cov_err, thin_err = _errors(q, s, exact)
        print(f"  {name:13s} covariance error / largest eigenvalue {cov_err:.2e}, "
              f"thinnest-axis relative error {thin_err:.2e}")


if __name__ == "__main__":
    main()
