"""Save Gaussians and Load Gaussians: splat files (every format of `sharp_core.FORMATS`) in ComfyUI's
output and input folders."""

from __future__ import annotations

import hashlib
import logging
import os

import comfy.model_management as mm
import folder_paths

from ..sharp_core import FORMATS, decimate, load_gaussians, save_gaussians
from .common import CATEGORY, GAUSSIANS, path_inside, save_target
from .preview import DEFAULT_MAX_SPLATS, max_splats_input, preview_ui

log = logging.getLogger(__name__)


def allowed_folders() -> list[str]:
    return [folder_paths.get_input_directory(), folder_paths.get_output_directory(), folder_paths.get_temp_directory()]


DEFAULT_FORMAT = "sharp-ply"


def save_formats() -> dict[str, object]:
    """Writable formats by the label the node shows, SHARP PLY first."""
    writable = [f for f in FORMATS.values() if f.write is not None]
    writable.sort(key=lambda f: f.name != DEFAULT_FORMAT)
    return {f.label: f for f in writable}


def splat_extensions() -> tuple[str, ...]:
    """File endings of every readable splat format (".ply", ".spz", ...)."""
    return tuple(sorted({e for f in FORMATS.values() if f.read is not None for e in f.extensions}))


def input_ply_files() -> list[str]:
    """Splat files anywhere under input/ (relative paths, '/' separators), for the combo."""
    root = folder_paths.get_input_directory()
    endings = splat_extensions()
    found = []
    for folder, _dirs, files in os.walk(root):
        found += [os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/") for f in files
                  if f.lower().endswith(endings)]
    return sorted(found)


def resolve_ply(ply: str, path: str) -> str:
    """The file to load: `path` when given (absolute, or relative to input/ with an optional
    ' [output]' / ' [temp]' suffix), else the `ply` choice; it must stay inside input/output/temp."""
    chosen = path.strip() if path and path.strip() else ply
    if not chosen:
        raise ValueError("No splat file chosen: upload one to ComfyUI's input folder or type a path.")
    full = chosen if os.path.isabs(chosen) else folder_paths.get_annotated_filepath(chosen)
    if not path_inside(full, allowed_folders()):
        raise ValueError(
            f"'{chosen}' is outside ComfyUI's input, output and temp folders; only files inside them can be "
            "loaded. Copy the file into the input folder."
        )
    if not os.path.isfile(full):
        raise FileNotFoundError(f"Splat file not found: {full}")
    return full


class SharpSaveGaussians:
    DESCRIPTION = (
        "Writes each scene as a splat file into ComfyUI's output folder: SHARP's PLY (every 3DGS viewer reads "
        "it) or a compact format for web viewers and headsets (SPZ, .splat, compressed PLY, SOG, GLB), "
        "optionally decimated to the most visible splats; shows the first scene in the node's 3D preview."
    )
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("ply_path",)  # the name from when every file was a PLY: saved workflows keep it
    OUTPUT_TOOLTIPS = ("Full path of the saved file (one per line when several scenes were saved).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS, {"tooltip": "Scene(s) to save; each becomes its own file."}),
                "filename_prefix": ("STRING", {
                    "default": "sharp/scene",
                    "tooltip": "Relative to the output folder; may contain subfolders and %date:yyyy-MM-dd% style "
                               "formats. Files are named <prefix>_00001_.<ext>, counting up.",
                }),
            },
            "optional": {
                "format": (list(save_formats()), {
                    "default": next(iter(save_formats())),
                    "tooltip": "SHARP PLY keeps everything (camera, full precision). The others are smaller for web "
                               "viewers and headsets: SPZ (Niantic, ~10x smaller), .splat (antimatter15 viewers), "
                               "compressed PLY and SOG (PlayCanvas / SuperSplat), GLB (glTF KHR_gaussian_splatting).",
                }),
                "max_splats": ("INT", {
                    "default": 0, "min": 0, "max": 16_777_216, "step": 1000,
                    "tooltip": "Keep at most this many splats in the file, the most visible from the source camera; "
                               "0 = all. ~300k suits a Quest or a web page.",
                }),
                "preview_max_splats": max_splats_input(),
            },
        }

    def save(self, gaussians, filename_prefix: str = "sharp/scene", format: str | None = None, max_splats: int = 0,
             preview_max_splats: int = DEFAULT_MAX_SPLATS):
        formats = save_formats()
        chosen = formats.get(format or next(iter(formats)))
        if chosen is None:
            raise ValueError(f"Unknown format '{format}': choose one of {', '.join(formats)}.")
        if max_splats < 0:
            raise ValueError(f"max_splats is {max_splats}; use 0 (keep every splat) or a positive count.")
        if preview_max_splats < 0:
            raise ValueError(f"preview_max_splats is {preview_max_splats}; use 0 (preview every splat) or a positive count.")
        target = save_target(filename_prefix, *gaussians.image_size[0])
        gaussians.check_finite("save these scenes")  # every scene, before the first file is written
        paths, entries = [], []
        for scene in gaussians.scenes():
            mm.throw_exception_if_processing_interrupted()
            if max_splats:
                scene = decimate(scene, max_splats)
            filename, full = target.next_file(chosen.extensions[0])
            save_gaussians(scene, full, format=chosen.name)  # atomic: never a half-written file
            paths.append(full)
            entries.append({"filename": filename, "subfolder": target.subfolder, "type": "output"})
        text = "\n".join(paths)
        ui = {"ply": entries, "text": [text]}  # "ply": the key from the PLY-only days, kept for saved UIs
        try:
            ui.update(preview_ui(gaussians, preview_max_splats))
        except (ValueError, OSError) as exc:  # the PLY files are written; a missing preview must not undo that
            log.warning("Save Gaussians (PLY): saved %s but could not write the 3D preview: %s", text, exc)
        return {"ui": ui, "result": (text,)}


class SharpLoadGaussians:
    DESCRIPTION = ("Loads a 3D Gaussian splat file from ComfyUI's input, output or temp folder: SHARP's or any 3DGS "
                   "PLY, SPZ, .splat, .ksplat, compressed PLY, SOG or GLB (the format is recognised from the bytes).")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (GAUSSIANS,)
    RETURN_NAMES = ("gaussians",)
    OUTPUT_TOOLTIPS = ("The scene, on ComfyUI's compute device.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "ply": (input_ply_files(), {
                    "tooltip": "A splat file in ComfyUI's input folder (subfolders included). The upload button, or "
                               "dropping a file on the node, copies one there and selects it.",
                }),
            },
            "optional": {
                "path": ("STRING", {
                    "default": "",
                    "tooltip": "Instead of the list: a path inside the input, output or temp folder, e.g. "
                               "'sharp/scene_00001_.ply [output]' or an absolute path there. Empty = use the list.",
                }),
            },
        }

    def load(self, ply: str = "", path: str = ""):
        full = resolve_ply(ply, path)
        try:
            gaussians = load_gaussians(full)
        except (ValueError, OSError) as exc:
            detail = str(exc).removeprefix(f"{full}: ")  # the reader names the file: once is enough
            raise ValueError(f"Cannot read {os.path.basename(full)} as a Gaussian splat file: {detail}") from exc
        if gaussians.num_gaussians == 0:
            raise ValueError(f"{full} holds no splats: pick a file with Gaussians in it.")
        return (gaussians.to(mm.get_torch_device()),)

    @classmethod
    def IS_CHANGED(cls, ply="", path="", **kwargs):
        try:
            full = resolve_ply(ply, path)
        except (ValueError, FileNotFoundError) as exc:
            return str(exc)  # VALIDATE_INPUTS reports it
        stat = os.stat(full)
        return hashlib.sha256(f"{full}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, ply="", path=""):
        try:
            resolve_ply(ply, path)
        except (ValueError, FileNotFoundError) as exc:
            return str(exc)
        return True


NODE_CLASS_MAPPINGS = {"SharpSaveGaussians": SharpSaveGaussians, "SharpLoadGaussians": SharpLoadGaussians}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SharpSaveGaussians": "Save Gaussians (PLY)",  # every format now; the title users know stays
    "SharpLoadGaussians": "Load Gaussians",
}
