"""The SHARP_CAMERA value: a JSON list of camera views, as the viewer stores them and Render takes them.

One view (see `camera.camera_from_view`) is {"world_to_camera": 4 x 4 row-major, OpenCV axes (x right,
y down, z forward), metres, in the frame of the scene's Gaussians; "fov_y_deg": vertical field of view;
"width", "height": pixels}. A list of one view is one shot; several are key views of a camera path.
The viewer writes the list as JSON text into the Preview node's `camera_views` widget; users may also
type or paste it by hand, as a list or as a single view object.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import torch

from .camera import Camera, camera_from_view, view_from_camera
from .gaussians import Gaussians
from .preview_file import initial_view

__all__ = ["MAX_CAMERA_VIEWS", "parse_camera_views", "opening_view"]

# A camera path is designed by a handful of key views; this bound keeps a pasted value from making
# the Render node interpolate without limit.
MAX_CAMERA_VIEWS = 256
_MAX_JSON_CHARS = 1 << 20


def parse_camera_views(value: str | Mapping | Sequence | None) -> list[dict]:
    """Validated views from JSON text, one view dict or a list of them; [] for None / empty text.

    Each view is checked by `camera_from_view` (16 finite numbers forming a rigid transform, a field
    of view in (0, 180) degrees, a positive size) and returned normalised: world_to_camera as 4 nested
    lists of 4 floats, fov_y_deg float, width and height int. Raises ValueError naming the view and
    the problem.
    """
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if len(text) > _MAX_JSON_CHARS:
            raise ValueError(f"camera_views holds {len(text):,} characters; at most {_MAX_JSON_CHARS:,} "
                             f"({MAX_CAMERA_VIEWS} views) are read. Clear it and store the views again.")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"camera_views is not valid JSON ({exc.msg} at character {exc.pos}); press "
                             "'clear' in the viewer and store the view again, or paste a list of views.") from None
    views = [value] if isinstance(value, Mapping) else value
    if not isinstance(views, Sequence) or isinstance(views, (str, bytes)):
        raise ValueError(f"camera_views must be a list of views (or one view object), got {type(views).__name__}.")
    if len(views) > MAX_CAMERA_VIEWS:
        raise ValueError(f"camera_views holds {len(views)} views; at most {MAX_CAMERA_VIEWS} are allowed.")
    out = []
    for i, view in enumerate(views):
        try:
            camera_from_view(view)
        except ValueError as exc:
            raise ValueError(f"camera view {i + 1} of {len(views)}: {exc}") from None
        out.append({
            "world_to_camera": _matrix_rows(view["world_to_camera"]),
            "fov_y_deg": float(view["fov_y_deg"]), "width": int(view["width"]), "height": int(view["height"]),
        })
    return out


def _matrix_rows(matrix) -> list[list[float]]:
    """4 rows of 4 numbers from nested lists or 16 flat numbers (already checked by camera_from_view)."""
    flat = [float(x) + 0.0 for row in matrix for x in (row if isinstance(row, Sequence) else [row])]
    return [flat[4 * r: 4 * r + 4] for r in range(4)]


def opening_view(gaussians: Gaussians, scene: int = 0) -> dict:
    """The view the preview opens at for `scene`, as a view dict sized like the source photo.

    That is the header's initial view (`preview_file.initial_view`: the source camera for SHARP's
    predictions) with the photo's vertical field of view; what the Preview node outputs while the
    user has stored no view.
    """
    g = gaussians[scene]
    width, height = (int(v) for v in g.image_size[0])
    focal = float(g.focal_px[0])
    start = initial_view(g)
    intrinsics = torch.tensor([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])
    camera = Camera(intrinsics=intrinsics, world_to_camera=torch.from_numpy(start.world_to_camera()))
    view = view_from_camera(camera, width, height)
    view["world_to_camera"] = _matrix_rows(start.world_to_camera().tolist())  # float64, not via float32
    if not math.isfinite(view["fov_y_deg"]):
        raise ValueError("The scene's focal length gives no field of view; check focal_px.")
    return view
