"""Run a page in headless Chromium (SwiftShader WebGL2) and collect the JSON it posts back.

No Python dependencies beyond the standard library: a local http.server on 127.0.0.1 serves the
repository (so pages import `/web/...` modules as ComfyUI would serve them) plus in-memory
`/__page/...` files, and the page POSTs its result to `/__result`. Used by the browser test and
by `benchmarks/preview.py`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-background-networking", "--disable-component-update", "--no-first-run",
    "--disable-gpu-sandbox", "--disable-dev-shm-usage", "--force-device-scale-factor=1",
    "--window-size=800,800", "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding", "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None (Debian: `apt-get install -y chromium`)."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class PageError(RuntimeError):
    """The page reported an error, or never reported at all."""


def run_page(html: str, files: dict[str, bytes] | None = None, timeout_s: float = 120.0,
             extra_flags: list[str] | None = None, trickle: tuple[int, float] | None = None) -> dict:
    """Load `html` in headless Chromium; return the JSON object the page POSTs to `/__result`.

    files: extra in-memory files served at `/__page/<name>`. The page itself is `/__page/index.html`.
    trickle: (chunk bytes, seconds between chunks) to send those files slowly, as a network would,
    so a page can watch one arrive (the headers, with Content-Length, go out at once).
    """
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("Chromium not found; install it with `apt-get install -y chromium`.")
    served = {"index.html": html.encode(), **(files or {})}
    result: dict = {}
    done = threading.Event()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(REPO), **kwargs)

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def end_headers(self) -> None:
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

        def guess_type(self, path):
            return "text/javascript" if str(path).endswith((".js", ".mjs")) else super().guess_type(path)

        def do_GET(self) -> None:
            if self.path.startswith("/__page/"):
                name = self.path[len("/__page/"):].split("?")[0]
                body = served.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                kind = "text/html" if name.endswith(".html") else "application/octet-stream"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if trickle is None or name.endswith(".html"):
                    self.wfile.write(body)
                    return
                chunk, pause = trickle
                for start in range(0, len(body), chunk):
                    if start:
                        time.sleep(pause)
                    try:
                        self.wfile.write(body[start:start + chunk])
                    except (BrokenPipeError, ConnectionResetError):
                        return
                return
            super().do_GET()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            self.send_response(204)
            self.end_headers()
            if self.path == "/__result":
                result.update(json.loads(body))
                done.set()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/__page/index.html"
    with tempfile.TemporaryDirectory(prefix="sharp-chromium-") as profile:
        proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, *(extra_flags or []), f"--user-data-dir={profile}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            finished = done.wait(timeout_s)
        finally:
            proc.terminate()
            try:
                _, stderr = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, stderr = proc.communicate()
            server.shutdown()
            server.server_close()
    if not finished:
        tail = stderr.decode(errors="replace")[-2000:]
        raise PageError(f"The page posted no result within {timeout_s:.0f} s. Chromium said:\n{tail}")
    if result.get("error"):
        raise PageError(f"The page failed: {result['error']}")
    return result


PAGE_PRELUDE = """<!doctype html><meta charset="utf-8">
<body style="margin:0;background:#222">
<script type="module">
async function report(value) {
  await fetch("/__result", {method: "POST", body: JSON.stringify(value)});
}
window.addEventListener("error", (e) => report({error: String(e.message)}));
window.addEventListener("unhandledrejection", (e) => report({error: String(e.reason && (e.reason.stack || e.reason))}));
try {
  await (async () => {
%s
  })();
} catch (err) {
  await report({error: String(err && (err.stack || err))});
}
</script>
"""


def module_page(body_js: str) -> str:
    """An HTML page running `body_js` (async; call `await report({...})` once) as a module."""
    return PAGE_PRELUDE % body_js
