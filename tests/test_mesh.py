"""Depth map -> triangle mesh: pinhole round trip, winding, edge cutting, decimation, colours, errors."""

from __future__ import annotations

import pytest
import torch

from sharp_core import (
    Gaussians, TriangleMesh, depth_to_mesh, project_points, scene_mesh, unproject_pixels,
)
from sharp_core.color import srgb_to_linear


def smooth_depth(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A tilted, gently curved surface 2-3 m away: no jump anywhere near 5 %."""
    i, j = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return 2.0 + 0.2 * i / h + 0.1 * torch.sin(j / w * 3.0 + seed)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return torch.linalg.cross(b - a, c - a)


def edges_of(faces: torch.Tensor) -> torch.Tensor:
    pairs = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return pairs.sort(dim=1).values


def test_vertices_reproject_onto_their_pixel_centres():
    h, w, focal = 37, 53, 47.3  # odd, non-square, focal not a round number
    depth = torch.rand(h, w, generator=torch.Generator().manual_seed(1)) * 9.0 + 0.5
    mesh = depth_to_mesh(depth, focal, edge_threshold=0.0)
    assert mesh.num_vertices == h * w and mesh.num_faces == 2 * (h - 1) * (w - 1)
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    centres = torch.stack((j + 0.5, i + 0.5), -1).reshape(-1, 2).float()
    eps = torch.finfo(torch.float32).eps
    # forward: the pixel centre of each vertex projects back onto it, to float precision
    projected = project_points(mesh.vertices, focal, (w, h))
    assert (projected - centres).abs().max() <= 8 * eps * max(w, h)
    torch.testing.assert_close(mesh.uvs * torch.tensor([w, h]), centres, rtol=0, atol=4 * eps * max(w, h))
    # and the vertices are the principal-point-at-centre unprojection, computed independently in float64
    z = depth.double().reshape(-1)
    expected = torch.stack(((centres[:, 0].double() - w / 2) * z / focal, (centres[:, 1].double() - h / 2) * z / focal, z), -1)
    torch.testing.assert_close(mesh.vertices.double(), expected, rtol=4 * eps, atol=4 * eps)
    # unproject(project(p)) is the identity
    back = unproject_pixels(mesh.vertices[:, 2], projected[:, 0], projected[:, 1], focal, (w, h))
    torch.testing.assert_close(back, mesh.vertices, rtol=8 * eps, atol=8 * eps * 10)


def test_principal_point_is_the_image_centre_as_in_sharps_unprojection():
    # SHARP unprojects NDC means with x = x_ndc * z * W / (2 f), its NDC grid at pixel centres
    # (x_ndc = 2 (j + 0.5) / W - 1): the optical axis meets the image at (W / 2, H / 2).
    w, h, focal = 40, 30, 35.0
    point = torch.tensor([[0.0, 0.0, 3.0]])
    torch.testing.assert_close(project_points(point, focal, (w, h)), torch.tensor([[w / 2, h / 2]]))
    j, z = 7, 2.5
    x_ndc = 2 * (j + 0.5) / w - 1
    vertex = unproject_pixels(torch.tensor(z), torch.tensor(j + 0.5), torch.tensor(h / 2), focal, (w, h))
    assert float(vertex[0]) == pytest.approx(x_ndc * z * w / (2 * focal), rel=1e-6)


def test_faces_are_counter_clockwise_seen_from_the_camera():
    mesh = depth_to_mesh(smooth_depth(12, 17), 20.0)
    normals = face_normals(mesh.vertices, mesh.faces)
    centroids = mesh.vertices[mesh.faces].mean(dim=1)
    assert ((normals * centroids).sum(-1) < 0).all(), "front faces must face the source camera at the origin"


def test_edge_cutting_removes_exactly_the_faces_across_the_jump():
    h, w, split = 20, 30, 13
    depth = smooth_depth(h, w) * 0.05 + 1.0  # a near plane on the left, barely tilted
    far = torch.zeros(h, w, dtype=torch.bool)
    far[:, split:] = True
    depth = torch.where(far, depth + 1.5, depth)  # a jump of ~ x2.4 at column `split`
    kept_all = depth_to_mesh(depth, 25.0, edge_threshold=0.0)
    cut = depth_to_mesh(depth, 25.0, edge_threshold=0.05)
    side = far.reshape(-1)
    crossing = side[kept_all.faces].any(1) & ~side[kept_all.faces].all(1)
    assert int(crossing.sum()) == 2 * (h - 1)  # one quad column, two triangles per quad
    assert cut.num_faces == kept_all.num_faces - 2 * (h - 1)
    # the survivors are exactly the faces that do not cross, in the same order
    assert cut.num_vertices == kept_all.num_vertices  # every vertex still belongs to a face on its side
    torch.testing.assert_close(cut.vertices[cut.faces], kept_all.vertices[kept_all.faces[~crossing]])
    # the threshold is a depth ratio: above the jump nothing is cut
    assert depth_to_mesh(depth, 25.0, edge_threshold=3.0).num_faces == kept_all.num_faces


def test_invalid_pixels_drop_their_faces_and_their_vertex():
    h, w = 9, 11
    depth = smooth_depth(h, w)
    depth[4, 5] = 0.0  # no surface here
    mesh = depth_to_mesh(depth, 15.0)
    assert mesh.num_vertices == h * w - 1
    assert mesh.num_faces == 2 * (h - 1) * (w - 1) - 6  # an interior vertex touches six triangles
    assert int(mesh.faces.max()) == mesh.num_vertices - 1 and int(mesh.faces.min()) == 0
    valid = torch.ones(h, w, dtype=torch.bool)
    valid[0, :] = False  # a masked row (e.g. uncovered by splats)
    masked = depth_to_mesh(smooth_depth(h, w), 15.0, valid=valid)
    rows = project_points(masked.vertices, 15.0, (w, h))[:, 1] - 0.5
    assert masked.num_vertices == (h - 1) * w and float(rows.min()) == pytest.approx(1.0)
    depth[2, 2] = float("nan")
    assert depth_to_mesh(depth, 15.0).num_vertices == h * w - 2


def test_decimation_keeps_a_valid_grid_mesh_through_the_last_pixel():
    h, w, step = 20, 31, 3
    depth = smooth_depth(h, w)
    mesh = depth_to_mesh(depth, 30.0, decimation=step)
    rows = list(range(0, h, step)) + [h - 1]  # 0, 3, ..., 18 and the last row 19
    cols = list(range(0, w, step))  # 0, 3, ..., 30: the last column is on the grid already
    assert mesh.num_vertices == len(rows) * len(cols) == 8 * 11
    assert mesh.num_faces == 2 * (len(rows) - 1) * (len(cols) - 1)
    # vertices sit on original pixel centres at those pixels' depths
    pixels = project_points(mesh.vertices, 30.0, (w, h)) - 0.5
    assert torch.allclose(pixels, pixels.round(), atol=1e-4)
    i, j = pixels[:, 1].round().long(), pixels[:, 0].round().long()
    assert set(i.tolist()) == set(rows) and set(j.tolist()) == set(cols)
    torch.testing.assert_close(mesh.vertices[:, 2], depth[i, j])
    # a valid surface: no degenerate face, every edge in one or two faces, a disk (V - E + F = 1)
    f = mesh.faces
    assert (f[:, 0] != f[:, 1]).all() and (f[:, 1] != f[:, 2]).all() and (f[:, 0] != f[:, 2]).all()
    edges, counts = torch.unique(edges_of(f), dim=0, return_counts=True)
    assert counts.max() == 2
    assert mesh.num_vertices - edges.shape[0] + mesh.num_faces == 1
    assert (face_normals(mesh.vertices, f) * mesh.vertices[f].mean(1)).sum(-1).lt(0).all()


def test_colours_are_linear_from_the_srgb_photo_and_the_texture_is_the_photo():
    h, w = 10, 14
    photo = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(2))
    mesh = depth_to_mesh(smooth_depth(h, w), 20.0, image=photo)
    torch.testing.assert_close(mesh.colors, srgb_to_linear(photo).reshape(-1, 3))
    torch.testing.assert_close(mesh.texture, photo)
    # decimated: a vertex colour is the mean (in linear light) of the 3 x 3 block around its pixel
    mesh3 = depth_to_mesh(smooth_depth(h, w), 20.0, image=photo, decimation=3)
    pixels = (project_points(mesh3.vertices, 20.0, (w, h)) - 0.5).round().long()
    k = int(((pixels[:, 0] == 3) & (pixels[:, 1] == 6)).nonzero())
    torch.testing.assert_close(mesh3.colors[k], srgb_to_linear(photo)[5:8, 2:5].reshape(-1, 3).mean(0))
    # no photo: mid grey, no texture
    plain = depth_to_mesh(smooth_depth(h, w), 20.0)
    assert plain.texture is None and torch.allclose(plain.colors, srgb_to_linear(torch.tensor(0.5)))


def test_a_photo_of_another_size_but_the_same_aspect_is_resized_for_the_colours():
    h, w = 12, 16
    photo = torch.rand(2 * h, 2 * w, 3, generator=torch.Generator().manual_seed(4))
    mesh = depth_to_mesh(smooth_depth(h, w), 20.0, image=photo)
    assert mesh.texture.shape == (2 * h, 2 * w, 3)  # the texture keeps the photo's resolution
    block = srgb_to_linear(photo)[0:2, 0:2].reshape(-1, 3).mean(0)  # the 2x2 pixels under vertex (0, 0)
    torch.testing.assert_close(mesh.colors[0], block, atol=0.02, rtol=0)
    with pytest.raises(ValueError, match="aspect ratio"):
        depth_to_mesh(smooth_depth(h, w), 20.0, image=torch.rand(h, 2 * w, 3))


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=torch.rand(5)), "one map"),
    (dict(depth=torch.zeros(4, 4, dtype=torch.int32)), "floats"),
    (dict(focal_px=-1.0), "focal_px"),
    (dict(focal_px=float("nan")), "focal_px"),
    (dict(edge_threshold=-0.1), "edge_threshold"),
    (dict(decimation=0), "decimation"),
    (dict(decimation=1.5), "decimation"),
    (dict(valid=torch.ones(3, 3, dtype=torch.bool)), "valid"),
    (dict(image=torch.rand(8, 8)), r"\(H, W, 3\)"),
])
def test_bad_input_is_named(kwargs, message):
    args = dict(depth=smooth_depth(8, 8), focal_px=10.0)
    args.update(kwargs)
    depth, focal = args.pop("depth"), args.pop("focal_px")
    with pytest.raises((ValueError, TypeError), match=message):
        depth_to_mesh(depth, focal, **args)


def wall_of_splats(z: float = 2.0, color=(0.8, 0.1, 0.1), depth: bool = True) -> Gaussians:
    """Dense, opaque, flat splats filling the source view of a 32 x 24 photo at distance z."""
    w, h, focal = 32, 24, 30.0
    v, u = torch.meshgrid(torch.arange(-2, h + 2) + 0.5, torch.arange(-2, w + 2) + 0.5, indexing="ij")
    means = unproject_pixels(torch.full_like(u, z), u, v, focal, (w, h)).reshape(-1, 3)
    n = means.shape[0]
    size = z / focal  # one pixel
    return Gaussians(
        means=means, scales=torch.tensor([size, size, size * 0.01]).expand(n, 3).clone(),
        quats=torch.tensor([1.0, 0, 0, 0]).expand(n, 4).clone(), colors=torch.tensor(color).expand(n, 3).clone(),
        opacities=torch.ones(n), focal_px=[focal], image_size=[(w, h)],
        depth=torch.full((1, h, w), z * 1.5) if depth else None,  # deliberately different from the splats
    )


def test_scene_mesh_takes_the_depth_map_or_the_rendered_splats():
    scene = wall_of_splats()
    from_map = scene_mesh(scene, edge_threshold=0.0)
    assert torch.allclose(from_map.vertices[:, 2], torch.tensor(3.0))
    rendered = scene_mesh(scene, depth_source="render splats", edge_threshold=0.0)
    assert rendered.num_vertices == 32 * 24
    assert torch.allclose(rendered.vertices[:, 2], torch.tensor(2.0), atol=2e-3)
    # without a photo the colours come from the render, which lines up with the mesh pixel for pixel
    assert torch.allclose(rendered.colors, torch.tensor([0.8, 0.1, 0.1]), atol=0.04)  # linear, alpha ~0.97
    assert rendered.texture.shape == (24, 32, 3)
    photo = torch.zeros(1, 24, 32, 3)
    photo[..., 2] = 1.0
    blue = scene_mesh(scene, photo)
    assert torch.allclose(blue.colors, torch.tensor([0.0, 0.0, 1.0]))
    no_map = wall_of_splats(depth=False)
    auto = scene_mesh(no_map)  # a scene loaded from a file: auto renders
    assert torch.allclose(auto.vertices[:, 2], torch.tensor(2.0), atol=2e-3)
    with pytest.raises(ValueError, match="no depth map"):
        scene_mesh(no_map, depth_source="depth map")
    with pytest.raises(ValueError, match="depth_source"):
        scene_mesh(scene, depth_source="lidar")
    with pytest.raises(ValueError, match="one image per scene"):
        scene_mesh(scene, torch.rand(2, 24, 32, 3))


def test_uncovered_pixels_leave_no_vertices():
    scene = wall_of_splats(depth=False)
    left = scene.means[0, :, 0] < 0
    half = scene.select(left)
    mesh = scene_mesh(half, edge_threshold=0.0)
    assert 0 < mesh.num_vertices < 32 * 24 * 0.6
    assert float(mesh.vertices[:, 0].max()) < 0.05  # nothing on the right half


def test_mesh_is_a_dataclass_that_moves():
    mesh = depth_to_mesh(smooth_depth(4, 5), 5.0, image=torch.rand(4, 5, 3))
    assert isinstance(mesh, TriangleMesh) and mesh.image_size == (5, 4) and mesh.focal_px == 5.0
    moved = mesh.to("cpu")
    assert moved.faces.dtype == torch.int64 and moved.vertices.dtype == torch.float32
