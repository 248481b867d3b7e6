"""Save Gaussians (PLY) and Load Gaussians (PLY): files in ComfyUI's output and input folders."""

from __future__ import annotations

import hashlib
import logging
import os

import comfy.model_management as mm
import folder_paths

from ..sharp_core import load_ply, save_ply
from .common import CATEGORY, GAUSSIANS, path_inside, save_target
from .preview import DEFAULT_MAX_SPLATS, max_splats_input, preview_ui

log = logging.getLogger(__name__)


def allowed_folders() -> list[str]:
    return [folder_paths.get_input_directory(), folder_paths.get_output_directory(), folder_paths.get_temp_directory()]


def input_ply_files() -> list[str]:
    """PLY files anywhere under input/ (relative paths, '/' separators), for the combo."""
    root = folder_paths.get_input_directory()
    found = []
    for folder, _dirs, files in os.walk(root):
        found += [os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/") for f in files
                  if f.lower().endswith(".ply")]
    return sorted(found)


def resolve_ply(ply: str, path: str) -> str:
    """The file to load: `path` when given (absolute, or relative to input/ with an optional
    ' [output]' / ' [temp]' suffix), else the `ply` choice; it must stay inside input/output/temp."""
    chosen = path.strip() if path and path.strip() else ply
    if not chosen:
        raise ValueError("No PLY chosen: upload one to ComfyUI's input folder or type a path.")
    full = chosen if os.path.isabs(chosen) else folder_paths.get_annotated_filepath(chosen)
    if not path_inside(full, allowed_folders()):
        raise ValueError(
            f"'{chosen}' is outside ComfyUI's input, output and temp folders; only files inside them can be "
            "loaded. Copy the PLY into the input folder."
        )
    if not os.path.isfile(full):
        raise FileNotFoundError(f"PLY file not found: {full}")
    return full


class SharpSaveGaussians:
    DESCRIPTION = (
        "Writes each scene as a PLY in SHARP's layout (3DGS viewers, ComfyUI's 3D File to Gaussian Splat "
        "and other packs' PLY viewers read it) into ComfyUI's output folder, and shows the first scene "
        "in the node's 3D preview."
    )
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("ply_path",)
    OUTPUT_TOOLTIPS = ("Full path of the saved file (one per line when several scenes were saved).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS, {"tooltip": "Scene(s) to save; each becomes its own file."}),
                "filename_prefix": ("STRING", {
                    "default": "sharp/scene",
                    "tooltip": "Relative to the output folder; may contain subfolders and %date:yyyy-MM-dd% style "
                               "formats. Files are named <prefix>_00001_.ply, counting up.",
                }),
            },
            "optional": {
                "preview_max_splats": max_splats_input(),
            },
        }

    def save(self, gaussians, filename_prefix: str = "sharp/scene", preview_max_splats: int = DEFAULT_MAX_SPLATS):
        if preview_max_splats < 0:
            raise ValueError(f"preview_max_splats is {preview_max_splats}; use 0 (preview every splat) or a positive count.")
        target = save_target(filename_prefix, *gaussians.image_size[0])
        gaussians.check_finite("save these scenes")  # every scene, before the first file is written
        paths, entries = [], []
        for scene in gaussians.scenes():
            mm.throw_exception_if_processing_interrupted()
            filename, full = target.next_file(".ply")
            save_ply(scene, full)  # temp name + rename: never a half-written file
            paths.append(full)
            entries.append({"filename": filename, "subfolder": target.subfolder, "type": "output"})
        text = "\n".join(paths)
        ui = {"ply": entries, "text": [text]}
        try:
            ui.update(preview_ui(gaussians, preview_max_splats))
        except (ValueError, OSError) as exc:  # the PLY files are written; a missing preview must not undo that
            log.warning("Save Gaussians (PLY): saved %s but could not write the 3D preview: %s", text, exc)
        return {"ui": ui, "result": (text,)}


class SharpLoadGaussians:
    DESCRIPTION = "Loads a 3D Gaussian splat PLY (SHARP's or any 3DGS PLY) from ComfyUI's input, output or temp folder."
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
                    "tooltip": "A .ply file in ComfyUI's input folder (subfolders included). The 'upload PLY' "
                               "button, or dropping a .ply on the node, copies one there and selects it.",
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
            gaussians = load_ply(full)
        except Exception as exc:
            raise ValueError(f"Cannot read {full} as a Gaussian splat PLY: {exc}") from exc
        if gaussians.num_gaussians == 0:
            raise ValueError(f"{full} holds no splats (0 vertices): pick a PLY with Gaussians in it.")
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
    "SharpSaveGaussians": "Save Gaussians (PLY)",
    "SharpLoadGaussians": "Load Gaussians (PLY)",
}
