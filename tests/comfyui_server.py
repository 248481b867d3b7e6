"""A real ComfyUI server with this pack installed, for the end-to-end browser tests.

Nothing here is ComfyUI's code: the tests point at a ComfyUI checkout through environment variables
(none is on the package registries, so CI has none and those tests skip):

- `SHARP_COMFYUI_DIR`     a ComfyUI checkout (the folder holding main.py);
- `SHARP_COMFYUI_PYTHON`  the Python that runs it (default: this one);
- `SHARP_FRONTEND_ROOTS`  front ends to serve, separated by os.pathsep: each a
  `comfyui_frontend_package/static` folder of `pip install --target DIR comfyui-frontend-package==X`
  (default: the front end ComfyUI's Python has installed).

Each server gets its own temporary base directory (`--base-directory`): custom_nodes/<pack> is a
symbolic link to this repository, models/sharp holds the reduced-width SHARP fixture, and the server
listens on a free port of 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "sharp-splats"
FIXTURE = REPO.parent / "shared" / "fixtures" / "sharp-tiny"
TINY_CHECKPOINT = "sharp_tiny.safetensors"


def comfyui_dir() -> Path | None:
    value = os.environ.get("SHARP_COMFYUI_DIR")
    return Path(value) if value and (Path(value) / "main.py").is_file() else None


def comfyui_python() -> str:
    return os.environ.get("SHARP_COMFYUI_PYTHON") or sys.executable


def frontend_roots() -> list[Path | None]:
    """The front ends to test: folders from SHARP_FRONTEND_ROOTS, or [None] (ComfyUI's own)."""
    value = os.environ.get("SHARP_FRONTEND_ROOTS", "")
    roots = [Path(p) for p in value.split(os.pathsep) if p]
    return roots or [None]


def frontend_version(root: Path | None) -> str:
    """Version of a front-end folder, from the pip package's metadata beside it."""
    if root is None:
        return "bundled"
    for meta in root.parent.parent.glob("comfyui_frontend_package-*.dist-info"):
        return meta.name.removesuffix(".dist-info").split("-")[1]
    return root.parent.parent.name


def skip_reason() -> str | None:
    """Why the real-ComfyUI tests cannot run here, or None when they can."""
    if comfyui_dir() is None:
        return ("no ComfyUI checkout: set SHARP_COMFYUI_DIR (and SHARP_COMFYUI_PYTHON, SHARP_FRONTEND_ROOTS) "
                "to run the real-server browser tests")
    if not (FIXTURE / "weights.safetensors").is_file():
        return f"the reduced SHARP fixture is missing ({FIXTURE})"
    for root in frontend_roots():
        if root is not None and not (root / "index.html").is_file():
            return f"SHARP_FRONTEND_ROOTS names {root}, which holds no index.html"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_base_directory(settings: dict | None = None) -> Path:
    """A fresh ComfyUI base directory with this pack and the tiny SHARP checkpoint installed."""
    base = Path(tempfile.mkdtemp(prefix="sharp-comfyui-"))
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / PACK_NAME).symlink_to(REPO, target_is_directory=True)
    models = base / "models" / "sharp"
    models.mkdir(parents=True)
    shutil.copyfile(FIXTURE / "weights.safetensors", models / TINY_CHECKPOINT)
    # a non-released checkpoint needs its architecture beside it: either name works
    shutil.copyfile(FIXTURE / "config.json", models / "config.json")
    shutil.copyfile(FIXTURE / "config.json", models / TINY_CHECKPOINT.replace(".safetensors", ".config.json"))
    for name in ("input", "output", "temp"):
        (base / name).mkdir()
    user = base / "user" / "default"
    user.mkdir(parents=True)
    (user / "comfy.settings.json").write_text(json.dumps(settings or {}))
    return base


class ComfyServer:
    """`python main.py --cpu` on 127.0.0.1:<free port> with a temporary base directory."""

    def __init__(self, frontend_root: Path | None = None, settings: dict | None = None):
        self.frontend_root = frontend_root
        self.base = make_base_directory(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.base / "server.log"
        command = [comfyui_python(), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                   "--base-directory", str(self.base), "--disable-auto-launch", "--disable-api-nodes",
                   "--database-url", "sqlite:///:memory:"]
        if frontend_root is not None:
            command += ["--front-end-root", str(frontend_root)]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(command, cwd=comfyui_dir(), stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait_ready(self, timeout_s: float = 240.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get_json("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(1)
        raise RuntimeError(f"ComfyUI did not answer within {timeout_s:.0f} s:\n{self.log()[-4000:]}")

    def get_json(self, route: str):
        with urllib.request.urlopen(self.url + route, timeout=30) as response:
            return json.loads(response.read())

    def post_json(self, route: str, body: dict):
        request = urllib.request.Request(self.url + route, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            return json.loads(raw) if raw else None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "ComfyServer":
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
