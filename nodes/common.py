"""Names and small helpers shared by the node modules."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CATEGORY = "SHARP"
GAUSSIANS = "SHARP_GAUSSIANS"  # kept distinct from ComfyUI core's own GAUSSIAN type
MODEL = "SHARP_MODEL"
CAMERA = "SHARP_CAMERA"  # list of view dicts (sharp_core.parse_camera_views); one view = one shot


def float_input(default: float, low: float, high: float, step: float, tooltip: str) -> tuple[str, dict]:
    """A FLOAT widget spec for INPUT_TYPES."""
    return ("FLOAT", {"default": default, "min": low, "max": high, "step": step, "tooltip": tooltip})


def depth_to_image(depth: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(B, H, W) metric depth (metres, <= 0 = empty) -> (B, H, W, 3) IMAGE in [0, 1], near = bright.

    Inverse depth, min-max normalised over the whole batch so a frame sequence does not flicker;
    `size` = (height, width) resizes bilinearly first. Empty pixels become black.
    """
    depth = depth.float()
    if size is not None and tuple(depth.shape[-2:]) != tuple(size):
        depth = F.interpolate(depth.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    valid = depth > 0
    inverse = torch.where(valid, 1.0 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    if bool(valid.any()):
        low, high = inverse[valid].min(), inverse[valid].max()
        inverse = torch.where(valid, (inverse - low) / (high - low).clamp_min(1e-12), inverse)
        if float(high - low) <= 1e-12:  # a flat plane: show it mid-grey instead of black
            inverse = torch.where(valid, torch.full_like(inverse, 0.5), inverse)
    return inverse.clamp(0, 1).unsqueeze(-1).expand(*inverse.shape, 3).contiguous()


def path_inside(path: str, folders: list[str]) -> bool:
    """True when `path` (after resolving links and ..) lies inside one of `folders`."""
    real = os.path.realpath(path)
    for folder in folders:
        root = os.path.realpath(folder)
        try:
            if os.path.commonpath((real, root)) == root:
                return True
        except ValueError:  # different drives on Windows
            continue
    return False


MAX_NAME_BYTES = 200  # file-name length left for "<name>_00001_.<ext>" under the usual 255-byte limit


@dataclass
class SaveTarget:
    """Where a saving node writes: `folder` (absolute), file stem `name`, first free `counter` and
    the `subfolder` relative to ComfyUI's output folder (for `ui` entries)."""

    folder: str
    name: str
    counter: int
    subfolder: str

    def next_file(self, extension: str) -> tuple[str, str]:
        """(file name, full path) of the next counter, e.g. ("scene_00001_.ply", ...); counts up."""
        filename = f"{self.name}_{self.counter:05}_{extension}"
        self.counter += 1
        return filename, os.path.join(self.folder, filename)


def save_target(filename_prefix: str, width: int = 0, height: int = 0) -> SaveTarget:
    """ComfyUI's counter naming for `filename_prefix` inside the output folder, with the mistakes
    ComfyUI lets through refused: an empty or hidden name, control characters, over-long names,
    and (ComfyUI's own check) anything that leaves the output folder."""
    import folder_paths  # ComfyUI's module

    prefix = (filename_prefix or "").strip()
    name = os.path.basename(os.path.normpath(prefix)) if prefix else ""
    if not name or name in (".", "..") or name.startswith("."):
        raise ValueError(f"filename_prefix '{filename_prefix}' gives no file name (an empty or hidden name); "
                         "use something like 'sharp/scene'.")
    if any(ord(c) < 32 for c in prefix):
        raise ValueError("filename_prefix contains control characters (a NUL or newline?); use plain text.")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"filename_prefix's file name is {len(name.encode('utf-8'))} bytes long; keep it under "
                         f"{MAX_NAME_BYTES}.")
    try:
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            prefix, folder_paths.get_output_directory(), width, height)
    except Exception as exc:  # ComfyUI raises a bare Exception for prefixes that leave the folder
        raise ValueError(
            f"Cannot save with filename_prefix '{filename_prefix}': it must stay inside ComfyUI's output "
            "folder (no '..', no absolute path), e.g. 'sharp/scene'."
        ) from exc
    return SaveTarget(folder=folder, name=name, counter=counter, subfolder=subfolder)
