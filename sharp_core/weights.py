"""Where the released SHARP weights come from. They are downloaded on demand, never shipped: the
model is under Apple's research-only licence (see the README).

Offline is known at once: `HF_HUB_OFFLINE` is honoured, otherwise one connection to the hub is tried
with a short, hard time limit (a thread bounds even a hanging DNS look-up) before huggingface_hub,
whose own retries take tens of seconds, is called. A failed download leaves nothing behind: no
`.lock`, `.incomplete` or metadata file of huggingface_hub's in the target folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator

__all__ = ["HF_REPO", "CHECKPOINT_NAME", "PROBE_TIMEOUT_S", "default_checkpoint_dir", "download_checkpoint",
           "hub_unreachable_reason", "CheckpointUnavailable"]

HF_REPO = "apple/Sharp"
CHECKPOINT_NAME = "sharp_2572gikvuh.pt"
PROBE_TIMEOUT_S = 1.5  # one connection attempt to the hub; the whole verdict stays under 2 s
_TRUE = {"1", "on", "yes", "true"}


def default_checkpoint_dir() -> Path:
    """Where the command line keeps the checkpoint: $SHARP_CORE_CACHE, else ~/.cache/sharp_core."""
    return Path(os.environ.get("SHARP_CORE_CACHE") or Path.home() / ".cache" / "sharp_core")


class CheckpointUnavailable(RuntimeError):
    """The checkpoint is neither on disk nor downloadable (offline, blocked, missing package)."""


def _hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _connect(host: str, port: int, timeout: float, result: list) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            result.append(None)
    except OSError as exc:
        result.append(f"{type(exc).__name__}: {exc}")


def hub_unreachable_reason(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when the Hugging Face hub (or the HTTPS proxy in use) accepts a connection within
    `timeout` seconds, else why not. One attempt, no retry; never takes much longer than `timeout`."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return f"offline mode ({name}={os.environ[name]})"
    url = urllib.parse.urlsplit(_hub_endpoint())
    proxy = urllib.request.getproxies().get(url.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        url = urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    result: list = []
    probe = threading.Thread(target=_connect, args=(host, port, timeout, result), daemon=True)
    probe.start()
    probe.join(timeout)
    if not result:
        return f"no answer from {host} within {timeout:g} s"
    return None if result[0] is None else f"cannot reach {host} ({result[0]})"


@contextlib.contextmanager
def _no_leftovers(local_dir: Path | None) -> Iterator[None]:
    """huggingface_hub keeps a lock, an .incomplete partial file and a metadata file under
    `<local_dir>/.cache/huggingface/download/`; remove ours afterwards (the folder too when this
    download created it). Its log lines go to its own handler only, so a root handler (the CLI's,
    ComfyUI's) does not print each of them twice."""
    hub_logger = logging.getLogger("huggingface_hub")
    propagate = hub_logger.propagate
    if hub_logger.handlers:
        hub_logger.propagate = False
    cache = local_dir / ".cache" / "huggingface" if local_dir is not None else None
    existed = cache is not None and cache.exists()
    try:
        yield
    finally:
        hub_logger.propagate = propagate
        if cache is not None:
            for leftover in (cache / "download").glob(f"{CHECKPOINT_NAME}*"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
            if not existed:
                shutil.rmtree(cache, ignore_errors=True)
                with contextlib.suppress(OSError):
                    cache.parent.rmdir()  # .cache, when nothing else lives there


def download_checkpoint(local_dir: str | os.PathLike | None = None, probe_timeout: float = PROBE_TIMEOUT_S) -> Path:
    """Fetch `sharp_2572gikvuh.pt` from Hugging Face (progress bar on stderr) and return its path.

    With `local_dir` the file lands there (e.g. ComfyUI's models/sharp); otherwise in the Hugging
    Face cache. Raises CheckpointUnavailable with the manual fix when the download is impossible,
    within about `probe_timeout` seconds when offline (see `hub_unreachable_reason`).
    """
    local_dir = Path(local_dir) if local_dir else None
    target = local_dir / CHECKPOINT_NAME if local_dir else None
    if target is not None and target.is_file():
        return target
    where = f"put it at {target}" if target else "pass its path"
    manual = f"Download {CHECKPOINT_NAME} from https://huggingface.co/{HF_REPO} by hand and {where}."
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise CheckpointUnavailable(f"huggingface_hub is not installed (pip install huggingface_hub). {manual}") from exc
    reason = hub_unreachable_reason(probe_timeout)
    if reason is not None:
        raise CheckpointUnavailable(f"Cannot download {CHECKPOINT_NAME}: {reason}. {manual}")
    try:
        with _no_leftovers(local_dir):
            path = hf_hub_download(HF_REPO, CHECKPOINT_NAME, local_dir=str(local_dir) if local_dir else None,
                                   endpoint=_hub_endpoint())
    except Exception as exc:  # DNS, HTTP, disk errors all end the same way for the user
        raise CheckpointUnavailable(f"Could not download {CHECKPOINT_NAME} from {HF_REPO} "
                                    f"({type(exc).__name__}: {exc}). {manual}") from exc
    return Path(path)
