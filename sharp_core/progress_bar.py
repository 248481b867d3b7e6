"""One text progress bar for a run of many images: count, images/s, ETA.

On a terminal it redraws one line in place (at most 10 times a second); into a file or pipe it
writes a plain line at most every `log_every` seconds and at the end, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class ProgressBar:
    def __init__(self, total: int, label: str = "images", stream: TextIO | None = None, enabled: bool = True,
                 log_every: float = 10.0, width: int = 24):
        self.total, self.label, self.width, self.log_every = total, label, width, log_every
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and total > 0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.count = 0
        self.start = time.perf_counter()
        self._last_draw = float("-inf")
        self._closed = False

    def text(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.count / elapsed
        eta = _clock((self.total - self.count) / rate) if rate > 0 else "?"
        filled = self.width * self.count // max(self.total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        return f"[{bar}] {self.count}/{self.total} {self.label}  {rate:.3g} {self.label}/s  ETA {eta}"

    def update(self, n: int = 1) -> None:
        self.count += n
        if not self.enabled:
            return
        now = time.perf_counter()
        pause = 0.1 if self.tty else self.log_every
        if self.count >= self.total or now - self._last_draw >= pause:
            self._draw()
            self._last_draw = now

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.text() + "\033[K")
        else:
            self.stream.write(self.text() + "\n")
        self.stream.flush()

    def write(self, message: str) -> None:
        """Print a line above the bar (on a terminal the bar is redrawn below it)."""
        if self.enabled and self.tty:
            self.stream.write("\r\033[K" + message + "\n")
            self._draw()
        else:
            self.stream.write(message + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._closed or not self.enabled:
            return
        self._closed = True
        if self.tty:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
        elif 0 < self.count < self.total:
            self._draw()
