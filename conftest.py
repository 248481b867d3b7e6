"""pytest set-up for the repository root.

The root `__init__.py` is ComfyUI's entry point (it imports ComfyUI's modules), so pytest must not
collect the repository root as a Python package: collect it as a plain directory instead.
"""

from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent


def pytest_collect_directory(path: Path, parent: pytest.Collector):
    if path.resolve() == _ROOT:
        return pytest.Dir.from_parent(parent, path=path)
    return None
