"""Clips of scenes: a disk-backed scene sequence (one scene in memory at a time) and temporal steadiness.

Why disk-backed: one SHARP scene is ~66 MB (1.18 M splats x 14 float32) plus its depth map, so a 300-frame
clip is ~20 GB, more than most machines hold, while every node that takes scenes already walks them one at
a time through `.scenes()` (Render, Save, Preview, Mesh). Predicting once and streaming the scenes from disk
keeps one network pass per frame (a lazy sequence would re-run the network for every consumer) and at most
one scene per consumer in memory. `SceneSequence` answers the read-only part of `Gaussians` that consumers
use (batch_size / len, focal_px, image_size, num_gaussians, device, sh_degree, `[i]`, `scenes()`, `to`,
`check_finite`); `[i]` and iteration load one real `Gaussians` (a batch of one) each time.

Temporal steadiness: SHARP's metric scale can drift from frame to frame, which makes a camera move over a
clip "pump" (parallax is proportional to 1 / depth). `align_scale` scales a scene about the source camera
(centres, sizes and depth map by one factor; the source view's picture is unchanged) so its median depth
matches a reference, normally the first frame's.
"""

from __future__ import annotations

import math
import os
import shutil
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .atomic import atomic_target
from .edit import transform
from .gaussians import Gaussians

__all__ = ["IN_MEMORY_SCENES", "SceneSequence", "SceneSequenceWriter", "median_depth", "align_scale", "iter_scenes"]

# Batches up to this many scenes stay in memory as one `Gaussians`; longer ones (clips) go to disk.
IN_MEMORY_SCENES = 3
_FIELDS = ("means", "scales", "quats", "colors", "opacities", "depth", "sh_rest")


def median_depth(scene: Gaussians) -> float:
    """Median depth (metres) of the source view of a one-scene batch: its depth map's positive pixels
    when it has one (what the photo shows), else its splats' positive camera z."""
    values = scene.depth[0] if scene.depth is not None else scene.means[0, :, 2]
    values = values.detach().float().flatten()
    values = values[torch.isfinite(values) & (values > 0)]
    if values.numel() == 0:
        raise ValueError("The scene has no positive depth: nothing in front of the source camera.")
    return float(values.median())


def align_scale(scene: Gaussians, reference_depth_m: float) -> tuple[Gaussians, float]:
    """Scale a one-scene batch about the source camera so its median depth becomes `reference_depth_m`.

    Returns (scaled scene, factor). Centres, sizes and the depth map scale by the factor; orientations,
    colours and opacities are unchanged, so the source view renders the same picture.
    """
    if not math.isfinite(reference_depth_m) or reference_depth_m <= 0:
        raise ValueError(f"reference depth is {reference_depth_m} m; it must be a positive number.")
    factor = reference_depth_m / median_depth(scene)
    scaled = transform(scene, scale=factor)
    if scene.depth is not None:
        scaled.depth = scene.depth * factor
    return scaled, factor


def iter_scenes(gaussians) -> Iterator[Gaussians]:
    """One-scene batches of a `Gaussians` batch or a `SceneSequence`, one at a time."""
    for i in range(len(gaussians)):
        yield gaussians[i]


class SceneSequenceWriter:
    """Appends scenes (batches of one, same splat count) to a folder, one file per scene, each written
    atomically; `finish()` returns the `SceneSequence` that reads them. The folder is removed when that
    sequence (or this writer, if never finished: a failed or cancelled clip) is garbage-collected, or by
    `discard()`. `depths` keeps each scene's depth map (H, W) on `depth_device` for a depth output."""

    def __init__(self, folder: str | os.PathLike, depth_device: torch.device | str = "cpu"):
        self.folder = Path(folder)
        self.depth_device = torch.device(depth_device)
        self.depths: list[torch.Tensor] = []
        if self.folder.exists() and any(self.folder.iterdir()):
            raise ValueError(f"Scene sequence folder {self.folder} is not empty; give a new folder.")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.folder), True)
        self.focal_px: list[float] = []
        self.image_size: list[tuple[int, int]] = []
        self.num_gaussians: int | None = None
        self.sh_degree = 0
        self.device = torch.device("cpu")

    def append(self, scene: Gaussians) -> None:
        if not isinstance(scene, Gaussians) or scene.batch_size != 1:
            raise ValueError("SceneSequenceWriter.append takes one scene (a Gaussians batch of one).")
        if self.num_gaussians is None:
            self.num_gaussians, self.sh_degree, self.device = scene.num_gaussians, scene.sh_degree, scene.device
        elif scene.num_gaussians != self.num_gaussians or scene.sh_degree != self.sh_degree:
            raise ValueError(f"Scene {len(self.focal_px) + 1} has {scene.num_gaussians} splats (SH degree "
                             f"{scene.sh_degree}); the sequence holds {self.num_gaussians} (degree {self.sh_degree}).")
        scene.check_finite(f"store scene {len(self.focal_px) + 1} of the sequence")
        tensors = {name: getattr(scene, name)[0].detach().to("cpu").contiguous()
                   for name in _FIELDS if getattr(scene, name) is not None}
        with atomic_target(self.folder / f"{len(self.focal_px):06d}.safetensors") as tmp:
            save_file(tensors, str(tmp))
        self.focal_px.append(scene.focal_px[0])
        self.image_size.append(scene.image_size[0])
        if scene.depth is not None:
            self.depths.append(scene.depth[0].to(self.depth_device))

    def discard(self) -> None:
        """Remove the folder and everything written so far (a failed or cancelled clip)."""
        self._cleanup()

    def finish(self) -> SceneSequence:
        if not self.focal_px:
            raise ValueError("The scene sequence is empty: append at least one scene.")
        sequence = SceneSequence(self.folder, self.focal_px, self.image_size, self.num_gaussians, self.sh_degree,
                                 self.device)
        self._cleanup.detach()
        sequence._cleanup = weakref.finalize(sequence, shutil.rmtree, str(self.folder), True)
        return sequence


class SceneSequence:
    """B scenes stored one file each in `folder`; reading one gives a `Gaussians` batch of one on `device`.

    Copies made by `to()` share the folder (and keep it alive). Scenes were checked finite when written.
    """

    def __init__(self, folder: Path, focal_px: Sequence[float], image_size: Sequence[tuple[int, int]],
                 num_gaussians: int, sh_degree: int, device: torch.device | str,
                 dtype: torch.dtype | None = None, _owner: SceneSequence | None = None):
        self.folder = Path(folder)
        self.focal_px = [float(f) for f in focal_px]
        self.image_size = [(int(w), int(h)) for w, h in image_size]
        self.num_gaussians = int(num_gaussians)
        self.sh_degree = int(sh_degree)
        self.device = torch.device(device)
        self._dtype = dtype
        self._owner = _owner  # keeps the folder's owner (and its clean-up) alive

    @property
    def batch_size(self) -> int:
        return len(self.focal_px)

    def __len__(self) -> int:
        return self.batch_size

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype or torch.float32

    @property
    def depth(self) -> None:
        """Depth maps travel inside each scene (`[i].depth`), never as one (B, H, W) tensor."""
        return None

    def __getitem__(self, index: int) -> Gaussians:
        if not -self.batch_size <= index < self.batch_size:
            raise IndexError(f"scene {index} out of range for a sequence of {self.batch_size}")
        index %= self.batch_size
        path = self.folder / f"{index:06d}.safetensors"
        try:
            tensors = load_file(str(path))
        except (OSError, RuntimeError) as exc:
            raise RuntimeError(f"Scene {index + 1} of the sequence cannot be read from {path} ({exc}); the "
                               "temporary files were removed (ComfyUI clears its temp folder at start): run "
                               "SHARP Predict again.") from None
        scene = Gaussians(**{k: tensors[k].unsqueeze(0) if k in tensors else None for k in _FIELDS},
                          focal_px=[self.focal_px[index]], image_size=[self.image_size[index]])
        return scene.to(self.device, self._dtype) if self._dtype else scene.to(self.device)

    def scenes(self) -> _LazyScenes:
        """A sequence view whose items load on access, so `for scene in x.scenes()` holds one at a time."""
        return _LazyScenes(self)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> SceneSequence:
        return SceneSequence(self.folder, self.focal_px, self.image_size, self.num_gaussians, self.sh_degree,
                             device if device is not None else self.device, dtype or self._dtype,
                             _owner=self._owner or self)

    def check_finite(self, action: str = "use") -> None:
        """Nothing to do: `SceneSequenceWriter.append` refused non-finite scenes before storing them."""

    def __repr__(self) -> str:
        return f"SceneSequence({self.batch_size} scenes x {self.num_gaussians} splats, {self.folder})"


class _LazyScenes(Sequence):
    def __init__(self, sequence: SceneSequence):
        self._sequence = sequence

    def __len__(self) -> int:
        return len(self._sequence)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self._sequence[i] for i in range(len(self))[index]]
        return self._sequence[index]

    def __iter__(self) -> Iterator[Gaussians]:
        return iter_scenes(self._sequence)
