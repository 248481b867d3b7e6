"""Runs the viewer's JavaScript unit tests (Node's built-in runner) as part of `python -m pytest`."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from helpers import ROOT


def test_node_unit_tests_pass():
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed; the JS unit tests need `node --test`")
    files = sorted(str(p) for p in (ROOT / "tests" / "js").glob("*.test.mjs"))
    assert files, "no JavaScript tests found in tests/js"
    result = subprocess.run([node, "--test", *files], cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    passed = re.search(r"^# pass (\d+)", output, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0, output[-2000:]
