"""Stand-in for ComfyUI's `folder_paths` (tests only): same names and signatures, own code.

Folder layout under a base directory: models/<kind>, input, output, temp, user.
`_use_base_directory(path)` re-points everything, as ComfyUI's `--base-directory` does at start.
"""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Collection
from typing import List, Literal

supported_pt_extensions: set[str] = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}

folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}
base_path = ""
models_dir = ""
output_directory = ""
temp_directory = ""
input_directory = ""
user_directory = ""
filename_list_cache: dict[str, tuple[list[str], dict[str, float], float]] = {}


def _use_base_directory(path: str) -> None:
    """Reset every folder to live under `path` (creates input/, output/, temp/)."""
    global base_path, models_dir, output_directory, temp_directory, input_directory, user_directory
    base_path = os.path.abspath(path)
    models_dir = os.path.join(base_path, "models")
    output_directory = os.path.join(base_path, "output")
    temp_directory = os.path.join(base_path, "temp")
    input_directory = os.path.join(base_path, "input")
    user_directory = os.path.join(base_path, "user")
    folder_names_and_paths.clear()
    filename_list_cache.clear()
    for kind in ("checkpoints", "vae", "loras"):
        folder_names_and_paths[kind] = ([os.path.join(models_dir, kind)], set(supported_pt_extensions))
    folder_names_and_paths["custom_nodes"] = ([os.path.join(base_path, "custom_nodes")], set())
    for folder in (input_directory, output_directory, temp_directory):
        os.makedirs(folder, exist_ok=True)


def map_legacy(folder_name: str) -> str:
    return {"unet": "diffusion_models", "clip": "text_encoders"}.get(folder_name, folder_name)


def set_output_directory(output_dir: str) -> None:
    global output_directory
    output_directory = output_dir


def set_temp_directory(temp_dir: str) -> None:
    global temp_directory
    temp_directory = temp_dir


def set_input_directory(input_dir: str) -> None:
    global input_directory
    input_directory = input_dir


def get_output_directory() -> str:
    return output_directory


def get_temp_directory() -> str:
    return temp_directory


def get_input_directory() -> str:
    return input_directory


def get_user_directory() -> str:
    return user_directory


def get_directory_by_type(type_name: str) -> str | None:
    return {"output": output_directory, "temp": temp_directory, "input": input_directory}.get(type_name)


def filter_files_content_types(
    files: list[str], content_types: List[Literal["image", "video", "audio", "model"]]
) -> list[str]:
    kept = []
    for name in files:
        mime, _ = mimetypes.guess_type(name, strict=False)
        if mime and mime.split("/")[0] in content_types:
            kept.append(name)
    return kept


_ANNOTATIONS = {"[output]": get_output_directory, "[input]": get_input_directory, "[temp]": get_temp_directory}


def annotated_filepath(name: str) -> tuple[str, str | None]:
    for suffix, folder in _ANNOTATIONS.items():
        if name.endswith(suffix):
            return name[: -len(suffix) - 1], folder()  # the suffix follows one space
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    name, base_dir = annotated_filepath(name)
    if base_dir is None:
        base_dir = default_dir if default_dir is not None else get_input_directory()
    return os.path.join(base_dir, name)


def exists_annotated_filepath(name) -> bool:
    return os.path.exists(get_annotated_filepath(name))


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())
        return
    paths = folder_names_and_paths[folder_name][0]
    if full_folder_path in paths:
        if is_default and paths[0] != full_folder_path:
            paths.remove(full_folder_path)
            paths.insert(0, full_folder_path)
    elif is_default:
        paths.insert(0, full_folder_path)
    else:
        paths.append(full_folder_path)


def get_folder_paths(folder_name: str) -> list[str]:
    return list(folder_names_and_paths[map_legacy(folder_name)][0])


def filter_files_extensions(files: Collection[str], extensions: Collection[str]) -> list[str]:
    return sorted(f for f in files if not extensions or os.path.splitext(f)[-1].lower() in extensions)


def get_full_path(folder_name: str, filename: str) -> str | None:
    folder_name = map_legacy(folder_name)
    if folder_name not in folder_names_and_paths:
        return None
    filename = os.path.relpath(os.path.join("/", filename), "/")  # no escaping the folder with ..
    for folder in folder_names_and_paths[folder_name][0]:
        candidate = os.path.join(folder, filename)
        if os.path.isfile(candidate):
            return candidate
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


def get_filename_list(folder_name: str) -> list[str]:
    folders, extensions = folder_names_and_paths[map_legacy(folder_name)]
    found: set[str] = set()
    for folder in folders:
        for root, dirs, files in os.walk(folder, followlinks=True):
            dirs[:] = [d for d in dirs if d != ".git"]
            found.update(os.path.relpath(os.path.join(root, f), folder) for f in files)
    return filter_files_extensions(found, extensions)


def get_save_image_path(
    filename_prefix: str, output_dir: str, image_width=0, image_height=0
) -> tuple[str, str, int, str, str]:
    if "%" in filename_prefix:
        now = time.localtime()
        for key, value in {
            "%width%": str(image_width), "%height%": str(image_height), "%year%": str(now.tm_year),
            "%month%": f"{now.tm_mon:02d}", "%day%": f"{now.tm_mday:02d}", "%hour%": f"{now.tm_hour:02d}",
            "%minute%": f"{now.tm_min:02d}", "%second%": f"{now.tm_sec:02d}",
        }.items():
            filename_prefix = filename_prefix.replace(key, value)
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
        raise Exception(
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {os.path.abspath(full_output_folder)}\n         output_dir: {output_dir}"
        )
    os.makedirs(full_output_folder, exist_ok=True)
    counter = 1
    for name in os.listdir(full_output_folder):
        # ComfyUI's pattern: <filename>_<digits>_...; the next counter follows the largest seen
        if name[: len(filename) + 1].lower() == (filename + "_").lower():
            digits = name[len(filename) + 1:].split("_")[0]
            if digits.isdigit():
                counter = max(counter, int(digits) + 1)
    return full_output_folder, filename, counter, subfolder, filename_prefix
