"""The real third-party splat tools, for tests that check our files against them.

- PlayCanvas `splat-transform` (npm `@playcanvas/splat-transform`, the SuperSplat command-line tool):
  reads .ply, .compressed.ply, .sog, meta.json, .spz, .splat, .ksplat; writes .ply,
  .compressed.ply, .sog, meta.json, .spz, .splat, .glb, .csv. `stats()` runs its `--stats json`
  action: per-column min / max / median / mean / stdDev in its "display space" (positions and
  rotations as stored in a PLY, scales linear (exp of the log), opacity in [0, 1] (sigmoid of the
  logit), f_dc as the 0..1 colour 0.5 + C0 * dc, i.e. sRGB-encoded). `scene_stats()` computes the
  same columns from one of our scenes, so the two compare directly.
- Khronos `gltf-validator` (npm): `validate_gltf()` validates .glb files in one Node process and
  returns its reports (`issues.numErrors`, `numWarnings`, `messages`).

Both are installed with pinned versions into `tests/.npm/` (git-ignored) by `.ci/run`
(`python3 tests/third_party_readers.py --install`) or, on first use, by the fixtures below when
npm is on PATH. Tests skip with the reason only where Node.js / npm is missing; with
`SHARP_REQUIRE_THIRD_PARTY=1` (set by `.ci/run`) a missing tool fails the test instead.

Every CLI start costs Node's start-up (about 0.5 s): `convert_many` runs independent conversions
side by side, `validate_gltf` takes many files at once. splat-transform always runs with `-g cpu`
(its SOG writer otherwise looks for a GPU) and `-q` (its JSON goes to stdout alone).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NPM_PREFIX = ROOT / "tests" / ".npm"
PACKAGES = {"@playcanvas/splat-transform": "3.10.2", "gltf-validator": "2.0.0-dev.3.10"}
REQUIRE_ENV = "SHARP_REQUIRE_THIRD_PARTY"
_TIMEOUT_S = 300
_install_lock = threading.Lock()

# splat-transform's column order in --stats (the PLY property names).
STAT_COLUMNS = (
    "x", "y", "z", "rot_0", "rot_1", "rot_2", "rot_3",
    "scale_0", "scale_1", "scale_2", "opacity", "f_dc_0", "f_dc_1", "f_dc_2",
)


class ThirdPartyMissing(RuntimeError):
    """A tool cannot be had on this machine (the message says why)."""


def _package_dir(name: str) -> Path:
    return NPM_PREFIX / "node_modules" / name


def _installed_version(name: str) -> str | None:
    try:
        return json.loads((_package_dir(name) / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def install(quiet: bool = True) -> None:
    """Install the pinned packages into tests/.npm unless they are there already."""
    with _install_lock:
        missing = [f"{n}@{v}" for n, v in PACKAGES.items() if _installed_version(n) != v]
        if not missing:
            return
        if shutil.which("node") is None:
            raise ThirdPartyMissing("Node.js is not installed (the third-party splat readers run on Node)")
        npm = shutil.which("npm")
        if npm is None:
            raise ThirdPartyMissing(f"npm is not installed, so {', '.join(missing)} cannot be installed")
        NPM_PREFIX.mkdir(parents=True, exist_ok=True)
        cmd = [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(NPM_PREFIX), *missing]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if result.returncode != 0 or any(_installed_version(n) != v for n, v in PACKAGES.items()):
            raise ThirdPartyMissing(f"`{' '.join(cmd)}` failed:\n{(result.stdout + result.stderr)[-2000:]}")
        if not quiet:
            print(f"installed {', '.join(missing)} into {NPM_PREFIX}")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise ThirdPartyMissing("Node.js is not installed (the third-party splat readers run on Node)")
    install()
    return node


# -- splat-transform ----------------------------------------------------------------------------


@dataclass
class ColumnStats:
    """Per-column statistics of one splat file or scene (display space, see the module docstring)."""

    count: int
    columns: dict[str, dict[str, float]]  # name -> {"min", "max", "median", "mean", "stdDev"}
    shBands: int = 0
    format: str = ""

    def __getitem__(self, name: str) -> dict[str, float]:
        return self.columns[name]


class SplatTransform:
    """The splat-transform CLI at its pinned version."""

    def __init__(self) -> None:
        self.node = _node()
        self.cli = _package_dir("@playcanvas/splat-transform") / "bin" / "cli.mjs"
        self.version = PACKAGES["@playcanvas/splat-transform"]

    def run(self, *args: str | os.PathLike, timeout: float = _TIMEOUT_S) -> str:
        """Run the CLI with `-q -w -g cpu` and `args`; its stdout, or AssertionError with its output."""
        cmd = [self.node, str(self.cli), "-q", "-w", "-g", "cpu", *map(str, args)]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(
                f"splat-transform {self.version} failed (exit {result.returncode}): "
                f"{' '.join(map(str, args))}\n{(result.stdout + result.stderr)[-3000:]}"
            )
        return result.stdout

    def convert(self, src: str | os.PathLike, dst: str | os.PathLike, *actions: str) -> Path:
        """splat-transform SRC [ACTIONS] DST: read `src`, write `dst` (format from its name)."""
        self.run(src, *actions, dst)
        if not Path(dst).exists():
            raise AssertionError(f"splat-transform reported success but wrote no {dst}")
        return Path(dst)

    def convert_many(self, pairs: list[tuple[os.PathLike, os.PathLike]], workers: int = 2) -> list[Path]:
        """Several independent conversions, `workers` Node processes at a time."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda p: self.convert(*p), pairs))

    def stats(self, path: str | os.PathLike) -> ColumnStats:
        """splat-transform's reading of `path`: splat count and per-column statistics."""
        out = self.run(path, "--stats", "json", "null")
        try:
            doc = json.loads(out[out.index("{"):])
        except ValueError:
            raise AssertionError(f"splat-transform --stats printed no JSON for {path}:\n{out[-2000:]}") from None
        return parse_stats(doc)

    def stats_many(self, paths: list[os.PathLike], workers: int = 2) -> list[ColumnStats]:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.stats, paths))


def parse_stats(doc: dict) -> ColumnStats:
    """ColumnStats from splat-transform's `--stats json` document (its first level of detail)."""
    lod = doc["stats"][0]
    data = lod["data"]
    columns = {
        name: {key: float(data[key][i]) for key in ("min", "max", "median", "mean", "stdDev")}
        for i, name in enumerate(lod["columns"])
    }
    return ColumnStats(int(lod["numGaussians"]), columns, int(doc.get("shBands", 0)), str(doc.get("format", "")))


def scene_stats(scene) -> ColumnStats:
    """The statistics splat-transform would print for `scene` (a one-scene `Gaussians`) written as
    a PLY: means and quaternions (w, x, y, z) as they are, linear scales, opacity, and the sRGB colour
    for f_dc (our colours are linear). Median: the lower middle value (splat-transform's is a
    1/1024-of-the-range histogram estimate)."""
    import torch

    from sharp_core.color import linear_to_srgb

    g = scene.to(device="cpu", dtype=torch.float64)
    table = torch.cat(
        [g.means[0], g.quats[0], g.scales[0], g.opacities[0, :, None], linear_to_srgb(g.colors[0])], dim=-1
    )
    columns = {}
    for i, name in enumerate(STAT_COLUMNS):
        v = table[:, i]
        columns[name] = {
            "min": float(v.min()), "max": float(v.max()), "median": float(v.median()),
            "mean": float(v.mean()), "stdDev": float(v.std(unbiased=False)),
        }
    return ColumnStats(g.num_gaussians, columns)


def assert_stats_match(theirs: ColumnStats, ours: ColumnStats, tolerance: dict[str, float],
                       what: str = "", skip: tuple[str, ...] = ()) -> None:
    """Same count, and for every column min / max / mean / stdDev within `tolerance[group]`
    (an absolute bound; groups: "position", "rotation", "scale", "opacity", "color"; a column's
    own name overrides its group) and the median within that plus 1/128 of the column's range
    (splat-transform's median is a histogram estimate). Columns in `skip` are not compared."""
    assert theirs.count == ours.count, f"{what}: splat-transform counts {theirs.count} splats, we wrote {ours.count}"
    problems = []
    for name in STAT_COLUMNS:
        if name in skip:
            continue
        tol = tolerance.get(name, tolerance[_group(name)])
        a, b = theirs[name], ours[name]
        for key in ("min", "max", "mean", "stdDev", "median"):
            allowed = tol + (abs(b["max"] - b["min"]) / 128 if key == "median" else 0.0)
            if not math.isclose(a[key], b[key], rel_tol=0.0, abs_tol=allowed + 1e-6):
                problems.append(f"{name}.{key}: splat-transform {a[key]:.6g}, ours {b[key]:.6g} (allowed +-{allowed:.3g})")
    assert not problems, f"{what}: per-column statistics differ:\n  " + "\n  ".join(problems)


def _group(name: str) -> str:
    if name in ("x", "y", "z"):
        return "position"
    return {"rot": "rotation", "sca": "scale", "opa": "opacity", "f_d": "color"}[name[:3]]


def match_splats(reference, other, max_distance: float) -> "torch.Tensor":
    """Indices `idx` with other[idx[i]] the splat nearest reference[i] (means (N, 3), any order), for
    files a tool reordered (e.g. Morton order). Asserts every match lies within `max_distance` and
    that the matching is one-to-one. Brute force in blocks: for test-sized scenes."""
    import torch

    a = torch.as_tensor(reference, dtype=torch.float64)
    b = torch.as_tensor(other, dtype=torch.float64)
    assert a.shape == b.shape, f"splat counts differ: {tuple(a.shape)} vs {tuple(b.shape)}"
    idx = torch.empty(len(a), dtype=torch.long)
    dist = torch.empty(len(a), dtype=torch.float64)
    for start in range(0, len(a), 2048):
        d = torch.cdist(a[start:start + 2048], b)
        dist[start:start + 2048], idx[start:start + 2048] = d.min(dim=1)
    worst = float(dist.max()) if len(a) else 0.0
    assert worst <= max_distance, f"a splat has no counterpart within {max_distance} (nearest: {worst:.3g})"
    assert len(torch.unique(idx)) == len(idx), "the nearest-splat matching is not one-to-one"
    return idx


# -- gltf-validator -----------------------------------------------------------------------------

_VALIDATE_JS = r"""
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
const require = createRequire(process.argv[1] + "/");
const validator = require("gltf-validator");
const reports = [];
for (const file of process.argv.slice(2)) {
  try {
    reports.push(await validator.validateBytes(new Uint8Array(readFileSync(file)), { uri: file, maxIssues: 200 }));
  } catch (error) {
    reports.push({ uri: file, fatal: String(error) });
  }
}
process.stdout.write(JSON.stringify({ version: validator.version(), reports }));
"""


def validate_gltf(paths: list[os.PathLike]) -> list[dict]:
    """Khronos glTF-Validator reports for `paths` (one Node process), in order. Each report has
    `issues` {"numErrors", "numWarnings", "numInfos", "messages": [{"code", "message", "severity",
    "pointer"}]} (severity 0 error, 1 warning), `validatorVersion`, or `fatal` when it could not
    parse the file at all."""
    node = _node()
    modules = _package_dir("gltf-validator").parent
    cmd = [node, "--input-type=module", "-e", _VALIDATE_JS, str(modules), *map(str, paths)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S)
    if result.returncode != 0:
        raise AssertionError(f"gltf-validator failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)["reports"]


def gltf_messages(report: dict, severity: int) -> list[str]:
    """'CODE at POINTER: message' for each issue of `severity` (0 error, 1 warning, 2 info)."""
    if "fatal" in report:
        return [f"FATAL: {report['fatal']}"] if severity == 0 else []
    return [
        f"{m.get('code')} at {m.get('pointer', '?')}: {m.get('message')}"
        for m in report["issues"]["messages"] if m.get("severity") == severity
    ]


# -- pytest fixtures ----------------------------------------------------------------------------


def _skip_or_fail(error: ThirdPartyMissing):
    import pytest

    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{error} ({REQUIRE_ENV}=1 requires the third-party readers)", pytrace=False)
    pytest.skip(str(error))


def _fixture(factory, name: str):
    import pytest

    def fixture():
        try:
            return factory()
        except ThirdPartyMissing as error:
            _skip_or_fail(error)

    fixture.__doc__ = factory.__doc__
    return pytest.fixture(fixture, scope="session", name=name)


def _splat_transform() -> SplatTransform:
    """The splat-transform CLI (skips where Node.js / npm is missing)."""
    return SplatTransform()


def _gltf_validator():
    """`validate_gltf` once the validator is installed (skips where Node.js / npm is missing)."""
    _node()
    return validate_gltf


try:  # the fixtures exist only under pytest; `python3 tests/third_party_readers.py --install` needs none
    splat_transform = _fixture(_splat_transform, "splat_transform")
    gltf_validator = _fixture(_gltf_validator, "gltf_validator")
except ImportError:  # pragma: no cover
    pass


if __name__ == "__main__":
    if sys.argv[1:] != ["--install"]:
        sys.exit("usage: python3 tests/third_party_readers.py --install")
    try:
        install(quiet=False)
    except ThirdPartyMissing as error:
        sys.exit(f"error: {error}")
    print("third-party readers: " + ", ".join(f"{n}@{_installed_version(n)}" for n in PACKAGES))
