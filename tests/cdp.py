"""A small Chrome DevTools Protocol client for headless Chromium, standard library only.

Chromium is started with `--remote-debugging-pipe`: it reads protocol messages (JSON, each ended by
a NUL byte) on file descriptor 3 and writes answers and events on descriptor 4, so no websocket
library and no network port are needed. One page target is attached in flat session mode; the
page's console messages, uncaught exceptions and log entries are collected in `Page.console` for
the tests to judge.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field

from chromium_harness import CHROMIUM_FLAGS, find_chromium


class CdpError(RuntimeError):
    """A protocol command failed, timed out, or the browser went away."""


@dataclass
class ConsoleEntry:
    level: str  # "log", "info", "warning", "error", "exception"
    text: str
    url: str = ""  # the script the message came from (first stack frame), when known
    stack: list[str] = field(default_factory=list)  # "url:line" of each frame


class Browser:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1000):
        chromium = find_chromium()
        if chromium is None:
            raise FileNotFoundError("Chromium not found; install it with `apt-get install -y chromium`.")
        self._profile = tempfile.TemporaryDirectory(prefix="sharp-cdp-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's ends above 9, so that placing them at 3 and 4 cannot close one another
        child_ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]
        os.close(to_browser_r)
        os.close(from_browser_w)
        to_browser_r, from_browser_w = child_ends
        flags = [f for f in CHROMIUM_FLAGS if not f.startswith(("--remote-debugging", "--window-size"))]
        # fd 3 / fd 4 are the protocol pipes Chromium expects with --remote-debugging-pipe
        command = (f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} '
                   f'{to_browser_r}<&- {from_browser_w}>&-')
        self._proc = subprocess.Popen(
            ["bash", "-c", command, chromium, *flags, "--remote-debugging-pipe",
             f"--window-size={width},{height}", f"--user-data-dir={self._profile.name}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, dict]] = {}
        self._listeners: list = []
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.width, self.height = width, height

    def _read_loop(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        slot = self._waiting.pop(message["id"], None)
                    if slot is not None:
                        slot[1].update(message)
                        slot[0].set()
                else:
                    for listener in list(self._listeners):
                        listener(message)
        with self._lock:  # the browser is gone: wake everyone still waiting
            for event, answer in self._waiting.values():
                answer["error"] = {"message": "the browser closed the protocol pipe"}
                event.set()
            self._waiting.clear()

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout_s: float = 60.0) -> dict:
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            event, answer = threading.Event(), {}
            self._waiting[ident] = (event, answer)
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        if not event.wait(timeout_s):
            raise CdpError(f"{method} got no answer within {timeout_s:.0f} s")
        if "error" in answer:
            raise CdpError(f"{method} failed: {answer['error'].get('message')}")
        return answer.get("result", {})

    def new_page(self) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        return Page(self, session)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout_s=10)
        except CdpError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self._profile.cleanup()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """A page target: navigate, evaluate JavaScript, screenshots, mouse input, console capture."""

    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session
        self.console: list[ConsoleEntry] = []
        self._loaded = threading.Event()
        browser._listeners.append(self._on_event)
        for domain in ("Runtime", "Page", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", {
            "width": browser.width, "height": browser.height, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method: str, params: dict | None = None, timeout_s: float = 60.0) -> dict:
        return self.browser.send(method, params, self.session, timeout_s)

    def _on_event(self, message: dict) -> None:
        if message.get("sessionId") != self.session:
            return
        method, params = message.get("method"), message.get("params", {})
        if method == "Page.loadEventFired":
            self._loaded.set()
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            frames = params.get("stackTrace", {}).get("callFrames", [])
            stack = [f"{f.get('url')}:{f.get('lineNumber', 0) + 1}" for f in frames]
            level = {"warn": "warning"}.get(params.get("type"), params.get("type", "log"))
            self.console.append(ConsoleEntry(level, text, frames[0].get("url", "") if frames else "", stack))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text", "")
            frames = details.get("stackTrace", {}).get("callFrames", [])
            stack = [f"{f.get('url')}:{f.get('lineNumber', 0) + 1}" for f in frames]
            self.console.append(ConsoleEntry("exception", text, details.get("url", "") or
                                             (frames[0].get("url", "") if frames else ""), stack))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append(ConsoleEntry(entry.get("level", "log"), entry.get("text", ""), entry.get("url", "")))

    def goto(self, url: str, timeout_s: float = 120.0) -> None:
        self._loaded.clear()
        self.send("Page.navigate", {"url": url})
        if not self._loaded.wait(timeout_s):
            raise CdpError(f"{url} did not finish loading within {timeout_s:.0f} s")

    def evaluate(self, expression: str, timeout_s: float = 120.0):
        """Value of a JavaScript expression (awaited when it is a promise), JSON-serialised."""
        answer = self.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
            "timeout": int(timeout_s * 1000)}, timeout_s=timeout_s + 5)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"JavaScript failed: {text}")
        return answer.get("result", {}).get("value")

    def screenshot(self) -> bytes:
        """PNG of the viewport, as a user would see it."""
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def drag(self, x0: float, y0: float, x1: float, y1: float, steps: int = 8, button: str = "left") -> None:
        """A real mouse drag (press, moves, release) through the browser's input pipeline."""
        buttons = {"left": 1, "right": 2, "middle": 4}[button]
        self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x0, "y": y0})
        self.send("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x0, "y": y0, "button": button,
                                               "buttons": buttons, "clickCount": 1})
        for i in range(1, steps + 1):
            x, y = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
            self.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": button,
                                                   "buttons": buttons})
        self.send("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x1, "y": y1, "button": button,
                                               "buttons": 0, "clickCount": 1})
