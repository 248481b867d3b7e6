"""Where the released SHARP weights come from. They are downloaded on demand, never shipped: the
model is under Apple's research-only licence (see the README)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HF_REPO", "CHECKPOINT_NAME", "default_checkpoint_dir", "download_checkpoint", "CheckpointUnavailable"]

HF_REPO = "apple/Sharp"
CHECKPOINT_NAME = "sharp_2572gikvuh.pt"


def default_checkpoint_dir() -> Path:
    """Where the command line keeps the checkpoint: $SHARP_CORE_CACHE, else ~/.cache/sharp_core."""
    return Path(os.environ.get("SHARP_CORE_CACHE") or Path.home() / ".cache" / "sharp_core")


class CheckpointUnavailable(RuntimeError):
    """The checkpoint is neither on disk nor downloadable (offline, blocked, missing package)."""


def download_checkpoint(local_dir: str | os.PathLike | None = None) -> Path:
    """Fetch `sharp_2572gikvuh.pt` from Hugging Face (progress bar on stderr) and return its path.

    With `local_dir` the file lands there (e.g. ComfyUI's models/sharp); otherwise in the Hugging
    Face cache. Raises CheckpointUnavailable with the manual fix when the download is impossible.
    """
    target = Path(local_dir) / CHECKPOINT_NAME if local_dir else None
    if target is not None and target.is_file():
        return target
    where = f"put it at {target}" if target else "pass its path"
    manual = f"Download {CHECKPOINT_NAME} from https://huggingface.co/{HF_REPO} by hand and {where}."
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise CheckpointUnavailable(f"huggingface_hub is not installed (pip install huggingface_hub). {manual}") from exc
    try:
        path = hf_hub_download(HF_REPO, CHECKPOINT_NAME, local_dir=str(local_dir) if local_dir else None)
    except Exception as exc:  # offline, DNS, HTTP errors all end the same way for the user
        raise CheckpointUnavailable(f"Could not download {CHECKPOINT_NAME} from {HF_REPO} "
                                    f"({type(exc).__name__}: {exc}). {manual}") from exc
    return Path(path)
