"""Progress inside a prediction: `predict(..., progress=callback)` calls `callback(stage, done, total)`
after each step (the encoder's patch windows, the image encoder, the decoders, the prediction head,
the unprojection), with `done` and `total` counting steps over the whole call (all its images).

The callback runs on the host between steps, without any device synchronisation, so on a GPU it
costs nothing measurable (it runs as work is queued, slightly ahead of the device). An exception it
raises (a Cancel) stops the prediction at that step and propagates to the caller.
"""

from __future__ import annotations

import sys
from typing import Callable

__all__ = ["ProgressCallback", "StepCounter", "TqdmProgress"]

ProgressCallback = Callable[[str, int, int], None]


class StepCounter:
    """Counts finished steps towards `total` and reports each to `callback` (which may be None)."""

    def __init__(self, callback: ProgressCallback | None, total: int) -> None:
        self.callback = callback
        self.total = total
        self.done = 0

    def __call__(self, stage: str) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(stage, self.done, self.total)


class TqdmProgress:
    """A tqdm bar (on stderr) for `predict(..., progress=...)`, spanning several calls if wanted.

        with TqdmProgress(images=len(paths)) as bar:
            for i, path in enumerate(paths):
                predict(model, load(path), progress=bar.image(i))

    Passed itself as the callback it follows one call. The bar appears on the first step (when the
    step count is known) and shows the current stage.
    """

    def __init__(self, images: int = 1, desc: str = "SHARP", **tqdm_kwargs) -> None:
        self.images = images
        self.desc = desc
        self.kwargs = {"file": sys.stderr, "unit": "step", "dynamic_ncols": True, **tqdm_kwargs}
        self.bar = None

    def image(self, index: int) -> ProgressCallback:
        """The callback for the `index`-th of `images` predict calls (0-based)."""

        def report(stage: str, done: int, total: int) -> None:
            if self.bar is None:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.images * total, desc=self.desc, **self.kwargs)
            self.bar.set_postfix_str(stage, refresh=False)
            self.bar.update(index * total + done - self.bar.n)

        return report

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.image(0)(stage, done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "TqdmProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
