"""Bad and edge inputs, as a hostile new user would give them: every case gets one clear error (its type
and a message naming the problem) or the correct result, and leaves nothing on disk.

Surfaces: checkpoints, PLY files, images (modes, bit depths, sizes, NaN, ranges), parameters, paths and
interrupts. Hostile files are made here. Other splat formats have their bad-file cases beside their
round trips (tests/test_formats_*.py); the nodes' own messages are in tests/test_nodes_errors.py.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from plyfile import PlyData, PlyElement
from safetensors.torch import load_file, save_file

import sharp_core
from sharp_core import Gaussians, atomic
from sharp_core.checkpoint import read_state_dict

from helpers import TINY


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def clean(tmp_path):
    """A folder for one case; the case must leave exactly what it made itself (no temp files)."""
    yield tmp_path
    leftovers = [name for name in listing(tmp_path) if ".partial" in name or name.startswith(".")]
    assert leftovers == [], f"left behind: {leftovers}"


def scene(n: int = 64, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    quats = torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1)
    means = torch.randn(n, 3, generator=g)
    means[:, 2] = means[:, 2].abs() + 1.0
    return Gaussians(means=means, scales=torch.rand(n, 3, generator=g) * 0.05 + 0.001, quats=quats,
                     colors=torch.rand(n, 3, generator=g), opacities=torch.rand(n, generator=g),
                     focal_px=[100.0], image_size=[(64, 48)])


# -- checkpoints ---------------------------------------------------------------------------------
def tiny_copy(folder: Path, name: str = "tiny.safetensors") -> Path:
    """The tiny fixture (and its description, when it has one) copied into `folder`."""
    target = folder / name
    shutil.copy(TINY / "weights.safetensors", target)
    if (TINY / "config.json").exists():
        shutil.copy(TINY / "config.json", folder / "config.json")
    return target


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_bytes(os.urandom(4096)), "neither a safetensors file nor a PyTorch checkpoint"),
    (lambda p: p.write_bytes(b"\x00" * 64), "neither a safetensors file nor a PyTorch checkpoint"),
    (lambda p: save_file({"a": torch.zeros(2)}, str(p)), "safetensors file named .pt"),
    (lambda p: torch.save({"a": torch.zeros(2)}, p.with_suffix(".zip")) or p.write_bytes(
        p.with_suffix(".zip").read_bytes()[:200]) or p.with_suffix(".zip").unlink(), "truncated or corrupt"),
    (lambda p: torch.save(torch.nn.Linear(2, 2), p), "pickled Python objects"),
    (lambda p: torch.save({"a": 1, "b": "text"}, p), "does not hold a state dict of tensors"),
])
def test_bad_pt_checkpoints(clean, make, message):
    path = clean / "model.pt"
    make(path)
    before = listing(clean)
    with pytest.raises(ValueError, match=message) as err:
        sharp_core.load_model(path)
    assert str(path) in str(err.value) and "\x1b[" not in str(err.value)  # ours, without torch's ANSI colours
    assert listing(clean) == before


def test_pickle_named_safetensors(clean):
    path = clean / "model.safetensors"
    torch.save({"a": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"PyTorch \(torch.save\) checkpoint named .safetensors; rename it to .pt"):
        sharp_core.load_model(path)


def test_folder_instead_of_file_lists_what_is_inside(clean):
    (clean / "sharp").mkdir()
    tiny_copy(clean / "sharp")
    with pytest.raises(ValueError, match=r"is a folder, not a checkpoint file \(it holds tiny.safetensors\)"):
        sharp_core.load_model(clean / "sharp")


def test_missing_and_unsupported_checkpoints(clean):
    with pytest.raises(FileNotFoundError, match="not found"):
        sharp_core.load_model(clean / "nope.pt")
    onnx = clean / "model.onnx"
    save_file({"a": torch.zeros(2)}, str(onnx))
    with pytest.raises(ValueError, match="unsupported checkpoint type '.onnx'"):
        sharp_core.load_model(onnx)


def test_legacy_torch_save_loads_like_the_zip_format(clean):
    """A genuine pre-1.6 (non-zip) torch.save file cannot be memory-mapped: it loads without mmap."""
    sd = load_file(str(TINY / "weights.safetensors"))
    legacy = clean / "legacy.pt"
    torch.save(sd, legacy, _use_new_zipfile_serialization=False)
    assert legacy.read_bytes()[:2] == b"\x80\x02"
    if (TINY / "config.json").exists():
        shutil.copy(TINY / "config.json", clean / "config.json")
    loaded, _ = read_state_dict(legacy)
    assert loaded.keys() == sd.keys() and all(torch.equal(loaded[k], sd[k]) for k in sd)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(clean, value):
    sd = load_file(str(TINY / "weights.safetensors"))
    name = "prediction_head.geometry_prediction_head.weight"
    sd[name] = sd[name].clone()
    sd[name].view(-1)[3] = value
    path = tiny_copy(clean, "bad.safetensors")
    save_file(sd, str(path))
    with pytest.raises(ValueError, match=rf"NaN or infinite values \({name}\)"):
        sharp_core.load_model(path)


def test_missing_and_misshaped_tensors_are_named(clean):
    sd = load_file(str(TINY / "weights.safetensors"))
    gone = "prediction_head.texture_prediction_head.bias"
    del sd[gone]
    path = tiny_copy(clean, "missing.safetensors")
    save_file(sd, str(path))
    with pytest.raises(ValueError, match=rf"missing: {gone}"):
        sharp_core.load_model(path)
    sd = load_file(str(TINY / "weights.safetensors"))
    sd[gone] = torch.zeros(sd[gone].numel() + 1)
    save_file(sd, str(path))
    with pytest.raises(ValueError, match=rf"mis-shaped: {gone}"):
        sharp_core.load_model(path)


# -- PLY files -----------------------------------------------------------------------------------
def ply_with(clean: Path, header_lines: list[str], body: bytes = b"", name: str = "bad.ply") -> Path:
    path = clean / name
    path.write_bytes(("\n".join(["ply", *header_lines, "end_header"]) + "\n").encode() + body)
    return path


SPLAT_PROPS = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
               "rot_0", "rot_1", "rot_2", "rot_3"]


def vertex_header(count: int, props=SPLAT_PROPS) -> list[str]:
    return ["format binary_little_endian 1.0", f"element vertex {count}", *(f"property float {p}" for p in props)]


def good_row(**overrides) -> dict:
    row = dict(zip(SPLAT_PROPS, [0.0, 0.0, 2.0, 0.1, 0.1, 0.1, 0.0, -4.0, -4.0, -4.0, 1.0, 0.0, 0.0, 0.0]))
    row.update(overrides)
    return row


def ply_rows(clean: Path, rows: list[dict], name: str = "rows.ply", extra=()) -> Path:
    vertex = np.array([tuple(r[p] for p in SPLAT_PROPS) for r in rows], dtype=[(p, "<f4") for p in SPLAT_PROPS])
    path = clean / name
    PlyData([PlyElement.describe(vertex, "vertex"), *extra]).write(str(path))
    return path


@pytest.mark.parametrize("contents, message", [
    (b"", "not a PLY file"),
    (b"PK\x03\x04 zipped", "not a PLY file"),
    (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n", "no 'end_header'"),
    (b"ply\nformat binary_middle_endian 1.0\nend_header\n", "unsupported PLY format"),
    (b"ply\nelement vertex 1\nproperty float x\nend_header\n\0\0\0\0", "no 'format' line"),
    (b"ply\nformat ascii 1.0\nelement vertex one\nend_header\n", "cannot parse PLY header line"),
])
def test_broken_ply_headers(clean, contents, message):
    path = clean / "broken.ply"
    path.write_bytes(contents)
    with pytest.raises(ValueError, match=message) as err:
        sharp_core.load_ply(path)
    assert str(path) in str(err.value)


def test_header_claiming_a_trillion_splats_allocates_nothing(clean):
    path = ply_with(clean, vertex_header(10**12), body=b"\0" * 56 * 10)
    tracemalloc.start()
    with pytest.raises(ValueError, match="truncated PLY file"):
        sharp_core.load_ply(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 2**20, f"reading the header allocated {peak / 2**20:.1f} MiB"


def test_truncated_binary_body(clean):
    path = ply_with(clean, vertex_header(5), body=b"\0" * (56 * 5 - 7))
    with pytest.raises(ValueError, match=r"truncated PLY file.*declares 280 bytes"):
        sharp_core.load_ply(path)


@pytest.mark.parametrize("field, value, message", [
    ("x", float("nan"), r"\bx\b.*NaN"),
    ("f_dc_1", float("inf"), r"f_dc_1.*NaN or infinite"),
    ("scale_2", float("inf"), r"scale_2.*NaN or infinite"),
    ("scale_0", 200.0, "overflow"),
    ("rot_0", float("nan"), r"rot_0.*NaN"),
])
def test_non_finite_or_overflowing_values(clean, field, value, message):
    path = ply_rows(clean, [good_row(), good_row(**{field: value})])
    with pytest.raises(ValueError, match=message) as err:
        sharp_core.load_ply(path)
    assert str(path) in str(err.value)


def test_saturated_opacities_and_zero_scales_read_as_valid_splats(clean):
    path = ply_rows(clean, [good_row(opacity=float("inf")), good_row(opacity=-float("inf"), scale_1=-float("inf"))])
    g = sharp_core.load_ply(path)
    assert g.opacities[0].tolist() == [1.0, 0.0] and float(g.scales[0, 1, 1]) == 0.0
    assert bool(torch.isfinite(g.scales).all())


def test_duplicated_property(clean):
    path = ply_with(clean, vertex_header(1, SPLAT_PROPS + ["x"]), body=b"\0" * 60)
    with pytest.raises(ValueError, match="declares the property x twice"):
        sharp_core.load_ply(path)


@pytest.mark.parametrize("intrinsic", [[float("nan"), 0, 32, 0, 100, 24, 0, 0, 1], [-5.0, 0, 32, 0, 100, 24, 0, 0, 1]])
def test_invalid_camera_metadata(clean, intrinsic):
    extra = PlyElement.describe(np.array([(v,) for v in intrinsic], dtype=[("intrinsic", "<f4")]), "intrinsic")
    path = ply_rows(clean, [good_row()], extra=(extra,))
    with pytest.raises(ValueError, match="camera metadata is invalid") as err:
        sharp_core.load_ply(path)
    assert str(path) in str(err.value)


def test_point_cloud_and_mesh_are_not_splats(clean):
    cloud = ply_with(clean, ["format binary_little_endian 1.0", "element vertex 1", "property float x",
                             "property float y", "property float z"], body=b"\0" * 12, name="cloud.ply")
    with pytest.raises(ValueError, match="lacks the Gaussian splat properties f_dc_0"):
        sharp_core.load_ply(cloud)
    faces = ply_with(clean, ["format binary_little_endian 1.0", "element face 1",
                             "property list uchar int vertex_indices"],
                     body=bytes([3]) + struct.pack("<3i", 0, 1, 2), name="faces.ply")
    with pytest.raises(ValueError, match="no 'vertex' element"):
        sharp_core.load_ply(faces)


# -- images ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("image, exc, message", [
    (torch.full((1, 32, 32, 3), float("nan")), ValueError, "NaN or infinite pixel"),
    (torch.cat([torch.rand(1, 32, 32, 3), torch.full((1, 32, 32, 3), float("inf"))]), ValueError, "infinite pixel"),
    (torch.rand(1, 32, 32, 3) * 255.0, ValueError, "divide it by 255"),
    (torch.rand(1, 32, 32, 3) * 2.0 - 1.0, ValueError, r"\(x \+ 1\) / 2"),
    (torch.full((1, 32, 32, 3), 4000.0), ValueError, "tone-map or normalise"),
    ((torch.rand(1, 32, 32, 3) * 255).to(torch.uint8), ValueError, "divide 8-bit images by 255"),
    (torch.rand(1, 32, 32, 2), ValueError, "C = 1, 3 or 4"),
    (torch.rand(1, 8, 300, 3), ValueError, "300 x 8 pixels"),
    (torch.rand(0, 32, 32, 3), ValueError, "empty image batch"),
    (torch.rand(1, 1, 32, 32, 3), ValueError, "shape"),
    (np.zeros((32, 32, 3), np.float32), TypeError, "torch.Tensor"),
])
def test_bad_image_tensors(image, exc, message):
    with pytest.raises(exc, match=message):
        sharp_core.check_images(image)


def test_small_overshoot_is_clamped_and_extra_channels_dropped():
    rgba = torch.rand(2, 20, 20, 4) * 1.04 - 0.02  # resampling overshoot of an upstream node
    rgb = sharp_core.check_images(rgba)
    assert rgb.shape == (2, 20, 20, 3) and float(rgb.min()) >= 0.0 and float(rgb.max()) <= 1.0
    grey = sharp_core.check_images(torch.full((20, 20, 1), 0.25))
    assert grey.shape == (1, 20, 20, 3) and bool((grey == 0.25).all())


def png16(path: Path, values: np.ndarray) -> Path:
    """A 16-bit PNG written by hand (PIL writes 16-bit grey only): grey (H, W) or RGB (H, W, 3)."""
    h, w = values.shape[:2]
    colour_type = 2 if values.ndim == 3 else 0
    raw = b"".join(b"\0" + values[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("make", [
    lambda p: png16(p / "grey16.png", np.full((24, 32), 32768, np.uint16)),
    lambda p: png16(p / "rgb16.png", np.full((24, 32, 3), 32768, np.uint16)),
    lambda p: Image.fromarray(np.full((24, 32), 32768, np.uint16)).save(p / "grey16.tif") or p / "grey16.tif",
    lambda p: Image.fromarray(np.full((24, 32), 0.5, np.float32), mode="F").save(p / "f32.tif") or p / "f32.tif",
    lambda p: Image.new("CMYK", (32, 24), (0, 0, 0, 128)).save(p / "cmyk.jpg") or p / "cmyk.jpg",
    lambda p: Image.new("LA", (32, 24), (128, 255)).save(p / "la.png") or p / "la.png",
])
def test_wide_and_unusual_image_modes_load_at_the_right_level(clean, make):
    path = make(clean)
    image, _ = sharp_core.load_image(path)
    assert image.shape == (24, 32, 3) and image.dtype == torch.float32
    assert float(image.mean()) == pytest.approx(0.5, abs=0.01), f"{path.name}: mean {float(image.mean()):.3f}"


def test_float_tiff_beyond_one_is_refused(clean):
    path = clean / "hdr.tif"
    Image.fromarray(np.full((24, 32), 3.5, np.float32), mode="F").save(path)
    with pytest.raises(ValueError, match=r"hdr\.tif.*values in \[0, 1\]"):
        sharp_core.load_image(path)


@pytest.mark.parametrize("contents", [b"", b"this is not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_non_images_name_the_file(clean, contents):
    path = clean / "photo.png"
    path.write_bytes(contents)
    with pytest.raises(ValueError, match=r"photo\.png: cannot read the image"):
        sharp_core.load_image(path)


# -- parameters --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    return sharp_core.load_model(TINY / "weights.safetensors")


@pytest.mark.parametrize("focal, message", [
    ({"focal_mm": 1e300}, r"focal_mm is 1e\+300 mm, outside"),
    ({"focal_mm": 0.0}, "focal_mm is 0 mm; a focal length must be a positive number"),
    ({"focal_mm": -30.0}, "positive number"),
    ({"focal_px": float("nan")}, "focal_px is nan px"),
    ({"focal_px": 1e-9}, r"focal_px is 1e-09 px, outside .* px\)"),
    ({"focal_px": float("inf")}, "positive number"),
    ({"focal_px": 50.0, "focal_mm": 30.0}, "not both"),
    ({"focal_mm": [30.0, 40.0, 50.0]}, "3 values for 1 images"),
])
def test_bad_focal_lengths_quote_the_unit_given(tiny_model, focal, message):
    with pytest.raises(ValueError, match=message):
        sharp_core.predict(tiny_model, torch.rand(32, 32, 3), **focal)


@pytest.mark.parametrize("call, exc, message", [
    (lambda g: sharp_core.render(g, sharp_core.Camera.scene_camera(g, 8, 8), 0, 8), ValueError, "must be positive"),
    (lambda g: sharp_core.render(g, sharp_core.Camera.scene_camera(g, 8, 8), 8, 8, scene=3), IndexError, "out of range"),
    (lambda g: sharp_core.render(g, torch.eye(4), 8, 8), TypeError, "sharp_core.Camera"),
    (lambda g: sharp_core.render(g, sharp_core.Camera.scene_camera(g, 8, 8), 8, 8, background=(1, 2)), ValueError,
     "one sRGB value or three"),
    (lambda g: sharp_core.render(g, sharp_core.Camera.scene_camera(g, 8, 8), 8, 8, backend="vulkan"), ValueError,
     "backend must be"),
    (lambda g: sharp_core.decimate(g, 0), ValueError, "max_splats must be positive"),
    (lambda g: sharp_core.transform(g, rotation=torch.eye(3) * 2), ValueError, "proper 3x3 rotation"),
    (lambda g: sharp_core.transform(g, scale=-1.0), ValueError, "scale must be positive"),
    (lambda g: sharp_core.crop(g, depth_range=(5.0, 1.0)), ValueError, "Depth range is empty"),
    (lambda g: sharp_core.crop(g, depth_range=(100.0, None)), ValueError, "No splats are left"),
])
def test_bad_parameters(call, exc, message):
    with pytest.raises(exc, match=message):
        call(scene())


def test_mismatched_container_shapes():
    with pytest.raises(ValueError, match=r"Gaussians.scales has shape \(1, 5, 2\), expected \(1, 5, 3\)"):
        Gaussians(means=torch.zeros(5, 3), scales=torch.zeros(5, 2), quats=torch.zeros(5, 4),
                  colors=torch.zeros(5, 3), opacities=torch.zeros(5), focal_px=[1.0], image_size=[(4, 4)])


# -- writing: non-finite scenes, paths, interrupts ---------------------------------------------------------
@pytest.mark.parametrize("field", ["means", "scales", "quats", "colors", "opacities"])
def test_writers_refuse_non_finite_scenes(clean, field):
    g = scene()
    getattr(g, field).view(-1)[5] = float("nan")
    with pytest.raises(ValueError, match=rf"Cannot save out\.ply: the scene's {field} hold NaN"):
        sharp_core.save_gaussians(g, clean / "out.ply")
    assert listing(clean) == []


def test_a_batch_is_not_one_file(clean):
    two = sharp_core.stack_scenes([scene(), scene(seed=1)])
    with pytest.raises(ValueError, match="batch of 2"):
        sharp_core.save_gaussians(two, clean / "two.ply")
    assert listing(clean) == []


def test_unknown_format_and_extension(clean):
    with pytest.raises(ValueError, match="unknown splat file type"):
        sharp_core.save_gaussians(scene(), clean / "scene.xyz")
    with pytest.raises(ValueError, match="Unknown splat format 'bogus'"):
        sharp_core.save_gaussians(scene(), clean / "scene.ply", format="bogus")
    assert listing(clean) == []


def test_output_under_a_regular_file_names_the_target(clean):
    (clean / "file").write_text("x")
    with pytest.raises(OSError, match=r"Cannot write .*file/out\.ply: .*is a file, not a folder"):
        sharp_core.save_ply(scene(), clean / "file" / "out.ply")
    assert listing(clean) == ["file"]


def test_read_only_target_names_the_target_not_the_temp_file(clean, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(PermissionError, match=r"Cannot write .*out\.ply: Permission denied") as err:
        sharp_core.save_ply(scene(), clean / "out.ply")
    assert ".partial" not in str(err.value)
    assert listing(clean) == []


def test_over_long_file_name(clean):
    with pytest.raises(OSError, match="Cannot write"):
        sharp_core.save_ply(scene(), clean / ("x" * 300 + ".ply"))
    assert listing(clean) == []


class InterruptingFile:
    """Wraps a file and raises KeyboardInterrupt (Ctrl-C) at the first write of `after` bytes or more."""

    def __init__(self, f, after: int):
        self.f, self.after = f, after

    def write(self, data):
        if len(memoryview(data).cast("B")) >= self.after:
            raise KeyboardInterrupt
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.f.__exit__(*exc)


def test_ctrl_c_mid_write_keeps_the_old_file(clean, monkeypatch):
    path = sharp_core.save_ply(scene(), clean / "keep.ply")
    old = path.read_bytes()
    real_open = open
    monkeypatch.setattr(atomic, "open", lambda p, mode: InterruptingFile(real_open(p, mode), 1000), raising=False)
    with pytest.raises(KeyboardInterrupt):
        sharp_core.save_ply(scene(n=500, seed=2), path)
    assert path.read_bytes() == old
    assert listing(clean) == ["keep.ply"]


def test_ctrl_c_mid_preview_leaves_nothing(clean, monkeypatch):
    real_open = open
    monkeypatch.setattr(atomic, "open", lambda p, mode: InterruptingFile(real_open(p, mode), 256), raising=False)
    with pytest.raises(KeyboardInterrupt):
        sharp_core.write_preview(scene(n=500), clean / "p.shpv")
    assert listing(clean) == []


def test_loading_a_folder_or_nothing(clean):
    with pytest.raises(FileNotFoundError, match="not found"):
        sharp_core.load_gaussians(clean / "missing.ply")
    (clean / "folder.ply").mkdir()
    with pytest.raises(ValueError):
        sharp_core.load_gaussians(clean / "folder.ply")
    assert listing(clean) == ["folder.ply"]


def test_round_trip_of_edge_values_is_finite(clean):
    """Opacity exactly 0 and 1 and a zero scale write finite files that read back to the same splats."""
    g = scene(n=8)
    g.opacities[0, :2] = torch.tensor([0.0, 1.0])
    g.scales[0, 2] = 0.0
    back = sharp_core.load_ply(sharp_core.save_ply(g, clean / "edge.ply"))
    assert bool(torch.isfinite(back.scales).all()) and bool(torch.isfinite(back.opacities).all())
    assert back.opacities[0, :2].tolist() == pytest.approx([0.0, 1.0], abs=1e-6)
    assert math.isclose(float(back.scales[0, 2].max()), 0.0, abs_tol=1e-30)


@pytest.mark.parametrize("fmt, name", [("ply", "keep.ply"), ("spz", "keep.spz"), ("splat", "keep.splat")])
def test_ctrl_c_mid_write_keeps_the_old_file_in_every_format(clean, monkeypatch, fmt, name):
    path = sharp_core.save_gaussians(scene(), clean / name, format=fmt)
    old = path.read_bytes()
    real_open = open
    monkeypatch.setattr(atomic, "open", lambda p, mode: InterruptingFile(real_open(p, mode), 1000), raising=False)
    with pytest.raises(KeyboardInterrupt):
        sharp_core.save_gaussians(scene(n=500, seed=2), path, format=fmt)
    assert path.read_bytes() == old
    assert listing(clean) == [name]
    monkeypatch.undo()
    with pytest.raises(ValueError, match="NaN"):  # a refused scene leaves the old file too
        bad = scene()
        bad.means[0, 3, 1] = float("nan")
        sharp_core.save_gaussians(bad, path, format=fmt)
    assert path.read_bytes() == old and listing(clean) == [name]
