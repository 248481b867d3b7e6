"""The Gaussian scene container that travels from prediction to rendering and export."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from .linalg import covariances_from_quats_scales

__all__ = ["Gaussians", "SH_REST_COUNTS"]

# Coefficients per colour channel beyond the DC term, by SH degree 0..3: (d + 1)^2 - 1.
SH_REST_COUNTS = (0, 3, 8, 15)


@dataclass
class Gaussians:
    """A batch of B Gaussian scenes with N splats each, in SHARP's metric camera frame.

    Coordinates follow OpenCV (x right, y down, z forward, metres); the source camera sits at the
    origin looking down +z. Splats keep the reference order (layer, row, column).

    Fields:
        means: (B, N, 3) centres in metres.
        scales: (B, N, 3) standard deviations along the principal axes (linear, not log).
        quats: (B, N, 4) unit rotations (w, x, y, z).
        colors: (B, N, 3) linear RGB in [0, 1].
        opacities: (B, N) in [0, 1].
        focal_px: one focal length in pixels per scene (of the source image).
        image_size: one (width, height) in pixels per scene (of the source image).
        depth: optional (B, H, W) metric depth map of the source view (first layer), for a depth
            output downstream; None when the scene did not come from `predict`.
        sh_rest: optional (B, N, K, 3) spherical-harmonic coefficients beyond degree 0 (K = 3, 8 or
            15 for degrees 1, 2, 3), in 3DGS files' convention: real SH of the display (sRGB) colour,
            bands in order, RGB last; the DC term is `colors`. SHARP predicts none (None); they come
            from trained 3DGS files and are carried to the formats that store them. Our renderers
            draw the DC colour only.
    """

    means: torch.Tensor
    scales: torch.Tensor
    quats: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor
    focal_px: list[float]
    image_size: list[tuple[int, int]]
    depth: torch.Tensor | None = field(default=None, repr=False)
    sh_rest: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.means.dim() == 2:  # accept a single scene given as (N, ...)
            self.means, self.scales, self.quats, self.colors = (
                t.unsqueeze(0) for t in (self.means, self.scales, self.quats, self.colors)
            )
            self.opacities = self.opacities.reshape(1, -1)
            if self.sh_rest is not None and self.sh_rest.dim() == 3:
                self.sh_rest = self.sh_rest.unsqueeze(0)
        b, n = self.means.shape[:2]
        expected = {
            "means": (b, n, 3), "scales": (b, n, 3), "quats": (b, n, 4),
            "colors": (b, n, 3), "opacities": (b, n),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Gaussians.{name} has shape {got}, expected {shape}.")
        if self.sh_rest is not None:
            got = tuple(self.sh_rest.shape)
            if len(got) != 4 or got[:2] != (b, n) or got[3] != 3 or got[2] not in SH_REST_COUNTS:
                raise ValueError(f"Gaussians.sh_rest has shape {got}, expected ({b}, {n}, K, 3) with K in "
                                 f"{SH_REST_COUNTS} (SH degrees 1-3), or None.")
            if got[2] == 0:
                self.sh_rest = None
        self.focal_px = [float(f) for f in _as_list(self.focal_px, b, "focal_px")]
        self.image_size = [
            (int(w), int(h)) for w, h in _as_list(self.image_size, b, "image_size", pair=True)
        ]

    # -- shape -------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[1]

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    def __len__(self) -> int:
        return self.batch_size

    @property
    def sh_degree(self) -> int:
        """Highest spherical-harmonic degree carried: 0 (colour only) to 3."""
        return 0 if self.sh_rest is None else SH_REST_COUNTS.index(self.sh_rest.shape[2])

    # -- conversions ---------------------------------------------------------------------------
    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Gaussians:
        """Move (and optionally cast floating fields) without touching the metadata."""
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def __getitem__(self, index: int) -> Gaussians:
        """Scene `index` as a batch of one."""
        if not -self.batch_size <= index < self.batch_size:
            raise IndexError(f"scene {index} out of range for a batch of {self.batch_size}")
        index = index % self.batch_size
        sl = slice(index, index + 1)
        return Gaussians(
            means=self.means[sl], scales=self.scales[sl], quats=self.quats[sl],
            colors=self.colors[sl], opacities=self.opacities[sl],
            focal_px=[self.focal_px[index]], image_size=[self.image_size[index]],
            depth=None if self.depth is None else self.depth[sl],
            sh_rest=None if self.sh_rest is None else self.sh_rest[sl],
        )

    def scenes(self) -> list[Gaussians]:
        return [self[i] for i in range(self.batch_size)]

    def select(self, index: torch.Tensor) -> Gaussians:
        """Keep the splats picked by `index` along N: a bool mask (N,) or integer indices (K,).

        The same selection applies to every scene of the batch; select per scene after `[i]`
        when scenes need different subsets.
        """
        if index.dtype == torch.bool:
            if index.shape != (self.num_gaussians,):
                raise ValueError(f"mask has shape {tuple(index.shape)}, expected ({self.num_gaussians},)")
            index = index.nonzero().squeeze(1)
        index = index.to(self.device)
        return replace(
            self,
            means=self.means[:, index], scales=self.scales[:, index], quats=self.quats[:, index],
            colors=self.colors[:, index], opacities=self.opacities[:, index],
            sh_rest=None if self.sh_rest is None else self.sh_rest[:, index],
        )

    def check_finite(self, action: str = "use") -> None:
        """ValueError naming the fields that hold NaN or infinity, before they are written or drawn.

        `action` completes the message ("Cannot save a.ply: ..."). Zero opacities and scales are finite
        and fine; the writers keep them finite in their files.
        """
        bad = [name for name in ("means", "scales", "quats", "colors", "opacities", "sh_rest")
               if getattr(self, name) is not None and not bool(torch.isfinite(getattr(self, name)).all())]
        if bad:
            raise ValueError(f"Cannot {action}: the scene's {', '.join(bad)} hold NaN or infinite values "
                             "(a failed prediction or a corrupt file upstream).")

    def covariances(self) -> torch.Tensor:
        """(B, N, 3, 3) world-space covariance matrices R diag(s^2) R^T."""
        return covariances_from_quats_scales(self.quats, self.scales)

    def _map(self, fn) -> Gaussians:
        return replace(
            self,
            means=fn(self.means), scales=fn(self.scales), quats=fn(self.quats),
            colors=fn(self.colors), opacities=fn(self.opacities),
            depth=None if self.depth is None else fn(self.depth),
            sh_rest=None if self.sh_rest is None else fn(self.sh_rest),
        )


def _as_list(value, batch: int, name: str, pair: bool = False) -> list:
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if pair and isinstance(value, tuple) and len(value) == 2 and not isinstance(value[0], (tuple, list)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        value = [value]
    value = list(value)
    if len(value) == 1 and batch > 1:
        value = value * batch
    if len(value) != batch:
        raise ValueError(f"Gaussians.{name} has {len(value)} entries for a batch of {batch}.")
    return value
