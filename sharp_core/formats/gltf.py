"""glTF 2.0 binary (`.glb`) with `KHR_gaussian_splatting` (Khronos, review draft / release candidate).

One mesh with one POINTS primitive (mode 0) carrying the extension
{"kernel": "ellipse", "colorSpace": "srgb_rec709_display", "sortingMethod": "cameraDistance",
"projection": "perspective"} and these attributes, all float32 and N long:
- POSITION (VEC3, with min / max): centres in metres;
- KHR_gaussian_splatting:ROTATION (VEC4): unit quaternion in glTF order (x, y, z, w);
- KHR_gaussian_splatting:SCALE (VEC3): linear std-devs (the current spec: linear, never negative;
  an older draft said log, splat-transform >= 3.x writes linear too);
- KHR_gaussian_splatting:OPACITY (SCALAR): in [0, 1] (not a logit);
- KHR_gaussian_splatting:SH_DEGREE_0_COEF_0 (VEC3): the DC coefficient f_dc = (srgb(c) - 0.5) / C0
  (C0 = 0.28209479; our linear colours are sRGB-encoded first: colour space srgb_rec709_display);
- KHR_gaussian_splatting:SH_DEGREE_l_COEF_m (VEC3, RGB) for every band of a scene with SH;
- COLOR_0 (VEC4 unsigned byte, normalized): sRGB colour and opacity, the point-cloud fallback.

Frame: glTF's (y up, right-handed, a camera looks down -z). Ours is OpenCV's (y down, z forward),
so positions and orientations are turned half a turn about x (`edit.OPENCV_TO_Y_UP`,
(x, y, z) -> (x, -y, -z), as our mesh .glb): the source camera sits at the origin looking down -z,
the way a glTF viewer's default camera looks, and a mesh and a splat export of one photo overlap.
SH coefficients follow the turn (each band's functions are odd or even in each axis; the odd ones
change sign). Files written by splat-transform (asset.generator "splat-transform ...") instead turn
PLY data half a turn about z ((x, y, z) -> (-x, -y, z), PlayCanvas's convention); the reader
recognises them and undoes that turn, so their .glb of our PLY reads back in our frame.

Precision: float32 throughout, so the round trip is exact up to float32 rounding of the frame
change (sign flips are exact) and of the sRGB encoding of colours (~1e-6). The source camera's
focal length and image size ride along in `asset.extras.sharp`. Writes are atomic.

The Khronos glTF-Validator (2.0.0-dev.3.10) predates extension-prefixed attribute names and
reports each `KHR_gaussian_splatting:*` attribute as MESH_PRIMITIVE_INVALID_ATTRIBUTE
(KhronosGroup/glTF-Validator#252, pending glTF PR #2514); that is the only issue it finds in our files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..color import SH_C0, linear_to_srgb
from ..edit import OPENCV_TO_Y_UP, half_turn
from ..gaussians import Gaussians
from ..glb import GltfBuilder, accessor_array, read_glb, write_glb
from . import ply
from .base import SplatFormat, camera_entry, camera_from_entry, scene_from_arrays

__all__ = ["save_glb", "load_glb", "EXTENSION"]

EXTENSION = "KHR_gaussian_splatting"
_PREFIX = EXTENSION + ":"
_POINTS = 0
_COEFS_PER_DEGREE = (1, 3, 5, 7)
_SPLAT_TRANSFORM_FRAME = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))


# -- writing ------------------------------------------------------------------------------------


@torch.no_grad()
def save_glb(gaussians: Gaussians, path: str | os.PathLike) -> Path:
    """Write one scene as a binary glTF with KHR_gaussian_splatting (see the module docstring)."""
    path = Path(path)
    if gaussians.batch_size != 1:
        raise ValueError(f"save_glb writes one scene but got a batch of {gaussians.batch_size}.")
    g = half_turn(gaussians.to(device="cpu", dtype=torch.float32), OPENCV_TO_Y_UP)
    srgb = linear_to_srgb(g.colors[0]).numpy()
    opacity = g.opacities[0].numpy().astype(np.float32)
    quats = g.quats[0].numpy()

    builder = GltfBuilder()
    attributes = {
        "POSITION": builder.add_accessor(g.means[0].numpy().astype("<f4"), "VEC3", bounds=True),
        "COLOR_0": builder.add_accessor(
            np.clip(np.floor(np.concatenate([srgb, opacity[:, None]], axis=1) * 255 + 0.5), 0, 255).astype(np.uint8),
            "VEC4", normalized=True),
        _PREFIX + "ROTATION": builder.add_accessor(quats[:, [1, 2, 3, 0]].astype("<f4"), "VEC4"),
        _PREFIX + "SCALE": builder.add_accessor(g.scales[0].numpy().astype("<f4"), "VEC3"),
        _PREFIX + "OPACITY": builder.add_accessor(opacity.astype("<f4"), "SCALAR"),
        _PREFIX + "SH_DEGREE_0_COEF_0": builder.add_accessor(((srgb - 0.5) / SH_C0).astype("<f4"), "VEC3"),
    }
    if g.sh_rest is not None:
        rest = g.sh_rest[0].numpy()
        k = 0
        for degree in range(1, 4):
            if k >= rest.shape[1]:
                break
            for coef in range(_COEFS_PER_DEGREE[degree]):
                attributes[f"{_PREFIX}SH_DEGREE_{degree}_COEF_{coef}"] = builder.add_accessor(
                    np.ascontiguousarray(rest[:, k]).astype("<f4"), "VEC3")
                k += 1
    builder.json.update({
        "extensionsUsed": [EXTENSION],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "gaussians"}],
        "meshes": [{"primitives": [{
            "attributes": attributes, "mode": _POINTS,
            "extensions": {EXTENSION: {"kernel": "ellipse", "colorSpace": "srgb_rec709_display",
                                       "sortingMethod": "cameraDistance", "projection": "perspective"}},
        }]}],
    })
    builder.json["asset"]["extras"] = {"sharp": camera_entry(g)}
    return write_glb(builder, path)


# -- reading ------------------------------------------------------------------------------------


def _normalised(doc: dict, index: int, values: np.ndarray) -> np.ndarray:
    """float64 values of an accessor, integer types mapped to [0, 1] / [-1, 1] when `normalized`."""
    accessor = doc["accessors"][index]
    if values.dtype.kind == "f" or not accessor.get("normalized"):
        return values.astype(np.float64)
    top = float(np.iinfo(values.dtype).max)
    return np.maximum(values.astype(np.float64) / top, -1.0)


def load_glb(path: str | os.PathLike) -> Gaussians:
    """Read the KHR_gaussian_splatting primitives of a .glb as a one-scene `Gaussians`;
    ValueError names the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Splat file not found: {path}")
    try:
        doc, blob = read_glb(path)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the .glb file ({error}).") from None
    primitives = []
    for m, mesh in enumerate(doc.get("meshes") or []):
        for primitive in (mesh.get("primitives") or []) if isinstance(mesh, dict) else []:
            if isinstance(primitive, dict) and EXTENSION in (primitive.get("extensions") or {}):
                primitives.append((m, primitive))
    if not primitives:
        raise ValueError(f"{path}: no mesh primitive uses {EXTENSION}; this .glb holds no Gaussian splats.")
    _check_nodes(path, doc, {m for m, _ in primitives})
    parts = [_read_primitive(path, doc, blob, p) for _, p in primitives]
    fields = {key: np.concatenate([part[key] for part in parts]) for key in ("means", "quats", "scales", "srgb", "opacity")}
    rest_sizes = {None if part["sh_rest"] is None else part["sh_rest"].shape[1] for part in parts}
    sh_rest = np.concatenate([part["sh_rest"] for part in parts]) if len(rest_sizes) == 1 and None not in rest_sizes else None
    extras = (doc.get("asset") or {}).get("extras")
    focal, image_size = camera_from_entry(path, extras.get("sharp") if isinstance(extras, dict) else None,
                                          "asset.extras.sharp", ply.DEFAULT_FOCAL_PX, ply.DEFAULT_IMAGE_SIZE)
    g = scene_from_arrays(fields["means"], fields["scales"], fields["quats"][:, [3, 0, 1, 2]], fields["srgb"],
                          fields["opacity"], focal, image_size, sh_rest, linear=parts[0]["linear"])
    generator = str((doc.get("asset") or {}).get("generator", ""))
    frame = _SPLAT_TRANSFORM_FRAME if generator.startswith("splat-transform") else OPENCV_TO_Y_UP
    g = half_turn(g, frame)  # both turns are their own inverse
    g.check_finite(f"load {path.name}")
    return g


def _check_nodes(path: Path, doc: dict, meshes: set[int]) -> None:
    """Splat meshes must sit on nodes without transforms (we read the mesh data as it is)."""
    identity = {"matrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "translation": [0, 0, 0],
                "rotation": [0, 0, 0, 1], "scale": [1, 1, 1]}
    for node in doc.get("nodes") or []:
        if isinstance(node, dict) and node.get("mesh") in meshes:
            if any(key in node and node[key] != value for key, value in identity.items()):
                raise ValueError(f"{path}: the splat mesh sits on a node with a transform; only untransformed "
                                 "splat nodes are supported (apply the transform in the tool that wrote it).")


def _read_primitive(path: Path, doc: dict, blob: bytes, primitive: dict) -> dict:
    attributes = primitive.get("attributes") or {}
    if primitive.get("mode", 4) != _POINTS:
        raise ValueError(f"{path}: a {EXTENSION} primitive must have mode 0 (POINTS), got {primitive.get('mode', 4)}.")
    missing = [a for a in ("POSITION", _PREFIX + "ROTATION", _PREFIX + "SCALE", _PREFIX + "OPACITY") if a not in attributes]
    if missing:
        raise ValueError(f"{path}: the {EXTENSION} primitive lacks the attributes {', '.join(missing)}.")

    def attribute(name: str, width: int) -> np.ndarray:
        index = attributes[name]
        if not isinstance(index, int):
            raise ValueError(f"{path}: attribute {name} does not name an accessor.")
        values = _normalised(doc, index, accessor_array(doc, blob, index, where=str(path)))
        if (values.shape[1] if values.ndim == 2 else 1) != width:
            raise ValueError(f"{path}: attribute {name} must have {width} components per splat.")
        return values

    means = attribute("POSITION", 3)
    n = len(means)
    out = {
        "means": means,
        "quats": attribute(_PREFIX + "ROTATION", 4),
        "scales": attribute(_PREFIX + "SCALE", 3),
        "opacity": attribute(_PREFIX + "OPACITY", 1),
    }
    settings = primitive["extensions"][EXTENSION] if isinstance(primitive["extensions"][EXTENSION], dict) else {}
    out["linear"] = settings.get("colorSpace") == "lin_rec709_display"
    if _PREFIX + "SH_DEGREE_0_COEF_0" in attributes:
        out["srgb"] = attribute(_PREFIX + "SH_DEGREE_0_COEF_0", 3) * SH_C0 + 0.5
    elif "COLOR_0" in attributes:
        out["srgb"] = attribute("COLOR_0", 4)[:, :3] if doc["accessors"][attributes["COLOR_0"]]["type"] == "VEC4" \
            else attribute("COLOR_0", 3)
    else:
        raise ValueError(f"{path}: the {EXTENSION} primitive has neither SH_DEGREE_0_COEF_0 nor COLOR_0 colours.")
    rest = []
    for degree in range(1, 4):
        names = [f"{_PREFIX}SH_DEGREE_{degree}_COEF_{c}" for c in range(_COEFS_PER_DEGREE[degree])]
        present = [name in attributes for name in names]
        if not any(present):
            break
        if not all(present):
            raise ValueError(f"{path}: SH degree {degree} is only partly present (the spec requires whole degrees).")
        rest += [attribute(name, 3) for name in names]
    out["sh_rest"] = np.stack(rest, axis=1) if rest else None
    for key, values in out.items():
        if isinstance(values, np.ndarray) and len(values) != n:
            raise ValueError(f"{path}: {EXTENSION} attributes disagree on the splat count ({len(values)} vs {n}).")
    out["opacity"] = out["opacity"].reshape(n)
    if n and (out["scales"].min() < 0 or out["opacity"].min() < 0 or out["opacity"].max() > 1):
        raise ValueError(f"{path}: scales must be non-negative and opacities in [0, 1] ({EXTENSION} stores them "
                         "activated; this file looks like it holds log scales or logits).")
    return out


def _sniff(head: bytes, path: Path) -> bool:
    return head.startswith(b"glTF") and EXTENSION.encode() in head


FORMATS = (
    SplatFormat(
        name="glb", label="glTF binary (KHR_gaussian_splatting)", extensions=(".glb",),
        write=save_glb, read=load_glb, sniff=_sniff,
    ),
)
