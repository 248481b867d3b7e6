"""Getting the released checkpoint: offline is known at once (one probe, no retries), says where to put
the file, and leaves nothing in the cache; the command line prints one line and exits 1."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from sharp_core import weights

from helpers import ROOT


@pytest.fixture
def no_download(monkeypatch):
    """huggingface_hub's download, made to fail the test if it is reached."""
    import huggingface_hub

    def never(*args, **kwargs):
        raise AssertionError("hf_hub_download was called although the hub is unreachable")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", never)


def test_offline_mode_needs_no_probe(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("probed although offline"))
    with pytest.raises(weights.CheckpointUnavailable) as err:
        weights.download_checkpoint(tmp_path / "models")
    message = str(err.value)
    assert "HF_HUB_OFFLINE=1" in message and str(tmp_path / "models" / weights.CHECKPOINT_NAME) in message
    assert "huggingface.co/apple/Sharp" in message
    assert not (tmp_path / "models").exists()


def test_one_probe_and_no_retry_when_unreachable(tmp_path, monkeypatch, no_download):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls = []

    def refuse(address, timeout=None, **kwargs):
        calls.append((address, timeout))
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(weights.CheckpointUnavailable, match="cannot reach .*connection refused"):
        weights.download_checkpoint(tmp_path)
    assert len(calls) == 1 and calls[0][1] == weights.PROBE_TIMEOUT_S
    assert list(tmp_path.iterdir()) == []


def test_a_hanging_probe_is_cut_off_at_its_timeout(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    def hang(*args, **kwargs):  # a DNS look-up that hangs
        time.sleep(10)
        raise socket.gaierror("too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    reason = weights.hub_unreachable_reason(timeout=0.3)
    assert time.perf_counter() - start < 5.0  # the thread is abandoned after 0.3 s; generous for loaded CI
    assert reason is not None and "no answer" in reason


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        self.send_response(404)
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args):
        pass


@pytest.fixture
def local_hub(monkeypatch):
    """A local HTTP server answering 404 to everything, as HF_ENDPOINT."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield
    server.shutdown()
    server.server_close()


def test_a_failed_download_leaves_no_lock_or_partial_file(tmp_path, local_hub):
    """The real huggingface_hub against a hub that has no such file: it creates its lock and metadata
    folder under the target folder; all of it is gone afterwards."""
    target = tmp_path / "models"
    target.mkdir()
    (target / "other.safetensors").write_bytes(b"x")
    with pytest.raises(weights.CheckpointUnavailable, match="Could not download"):
        weights.download_checkpoint(target)
    left = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
    assert left == ["other.safetensors"]


def test_a_failed_download_keeps_a_cache_folder_that_was_there(tmp_path, local_hub):
    download = tmp_path / ".cache" / "huggingface" / "download"
    download.mkdir(parents=True)
    (download / "someone_else.bin.metadata").write_text("kept")
    with pytest.raises(weights.CheckpointUnavailable):
        weights.download_checkpoint(tmp_path)
    assert sorted(p.name for p in download.iterdir()) == ["someone_else.bin.metadata"]


def _run_cli(args: list[str], env: dict[str, str], cwd) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    return done, time.perf_counter() - start


@pytest.mark.parametrize("offline", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:9"}],
                         ids=["HF_HUB_OFFLINE", "unreachable-endpoint"])
def test_cli_predict_offline_prints_one_line_and_exits_1_at_once(tmp_path, offline):
    """`python -m sharp_core predict -o out/` without a checkpoint and without network."""
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k not in ("HF_HUB_OFFLINE",)}
    env.update(offline, SHARP_CORE_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    # Baseline measured in the same run: starting Python and importing the command line module.
    _, baseline = _run_cli(["-c", "import sharp_core.cli"], env, tmp_path)
    done, wall = _run_cli(["-m", "sharp_core", "predict", "-o", str(tmp_path / "out")], env, tmp_path)
    assert done.returncode == 1, done.stderr
    assert wall - baseline < 8.0, f"{wall:.1f} s against {baseline:.1f} s to start (retries?)"
    err = done.stderr
    assert err.count(weights.CHECKPOINT_NAME + " from https://huggingface.co") == 1, err
    assert "Traceback" not in err and "Retry" not in err
    assert str(tmp_path / "cache") in err  # where to put the file
    cache = tmp_path / "cache"
    assert not cache.exists() or [p.name for p in cache.rglob("*")] == [], "something was left in the cache"
