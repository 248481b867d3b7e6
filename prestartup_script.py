"""Runs before ComfyUI imports any node pack: puts the example workflows' photos and clip into input/.

A file already in input/ under the same name is left alone, so a user's own file is never replaced.
"""

from __future__ import annotations

import logging
import os
import shutil

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples")
PHOTO_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".mp4")  # photos and the example clip


def copy_example_inputs(examples_dir: str, input_dir: str) -> list[str]:
    """Copy the example photos (and clip) missing from `input_dir`; returns the names copied."""
    copied = []
    os.makedirs(input_dir, exist_ok=True)
    for name in sorted(os.listdir(examples_dir)):
        source, target = os.path.join(examples_dir, name), os.path.join(input_dir, name)
        if not name.lower().endswith(PHOTO_EXTENSIONS) or os.path.exists(target):
            continue
        partial = f"{target}.partial"
        shutil.copyfile(source, partial)
        os.replace(partial, target)  # a whole file or none under the real name
        copied.append(name)
    return copied


def _main() -> None:
    try:
        import folder_paths  # ComfyUI's; absent when this file is imported elsewhere
    except ImportError:
        return
    try:
        copied = copy_example_inputs(EXAMPLES_DIR, folder_paths.get_input_directory())
    except OSError as exc:
        logging.warning("SHARP: could not copy the example photos into input/: %s", exc)
        return
    if copied:
        logging.info("SHARP: copied example photos into input/: %s", ", ".join(copied))


_main()
