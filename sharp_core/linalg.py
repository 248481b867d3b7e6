"""Quaternion and covariance helpers, batched over any leading dimensions."""

from __future__ import annotations

import math

import torch

__all__ = [
    "rotations_from_quats",
    "covariances_from_quats_scales",
    "quats_from_rotations",
    "decompose_covariances",
    "transform_gaussian_frames",
    "sh_basis",
    "sh_rotation_matrices",
    "rotate_sh_rest",
]


def rotations_from_quats(quats: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions (w, x, y, z), normalised here -> (..., 3, 3) rotation matrices."""
    q = quats / quats.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def covariances_from_quats_scales(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternions and (..., 3) standard deviations -> (..., 3, 3) R diag(s^2) R^T."""
    m = rotations_from_quats(quats) * scales.unsqueeze(-2)
    return m @ m.transpose(-1, -2)


# -- rotation matrices -> quaternions -----------------------------------------------------------


def quats_from_rotations(rotations: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions (w, x, y, z) with w >= 0.

    Shepperd's method: of the four ways to recover a quaternion from a rotation matrix, use the
    one whose pivot (4 w^2, 4 x^2, 4 y^2 or 4 z^2) is largest, so no branch divides by a small
    number. All four candidates are built and the right one is picked per matrix, which keeps
    the whole thing vectorised and on the input's device.
    """
    r = rotations.flatten(-2).unbind(-1)
    return _quats_from_rotation_entries(*r)


def _quats_from_rotation_entries(r00, r01, r02, r10, r11, r12, r20, r21, r22) -> torch.Tensor:
    t_w = 1 + r00 + r11 + r22  # 4 w^2
    t_x = 1 + r00 - r11 - r22  # 4 x^2
    t_y = 1 - r00 + r11 - r22  # 4 y^2
    t_z = 1 - r00 - r11 + r22  # 4 z^2
    d_x, d_y, d_z = r21 - r12, r02 - r20, r10 - r01  # 4 w (x, y, z)
    s_xy, s_xz, s_yz = r01 + r10, r02 + r20, r12 + r21  # 4 xy, 4 xz, 4 yz
    dtype = t_w.dtype
    pick_w = (t_w >= torch.maximum(torch.maximum(t_x, t_y), t_z)).to(dtype)
    pick_x = (t_x >= torch.maximum(t_y, t_z)).to(dtype)
    pick_y = (t_y >= t_z).to(dtype)

    def choose(w_case, x_case, y_case, z_case):
        return _select(pick_w, w_case, _select(pick_x, x_case, _select(pick_y, y_case, z_case)))

    # Each candidate is 4 q_k * (w, x, y, z); normalising removes the 4 q_k, flipping fixes w >= 0.
    w = choose(t_w, d_x, d_y, d_z)
    x = choose(d_x, t_x, s_xy, s_xz)
    y = choose(d_y, s_xy, t_y, s_yz)
    z = choose(d_z, s_xz, s_yz, t_z)
    inv = torch.rsqrt(w * w + x * x + y * y + z * z)
    inv = inv * (1 - 2 * (w < 0).to(dtype))
    return torch.stack((w * inv, x * inv, y * inv, z * inv), -1)


# -- symmetric 3x3 eigendecomposition -------------------------------------------------------------

# Splats handled per vectorised pass: large enough to amortise per-op overhead, small enough that
# the ~60 temporaries of a pass stay small (~60 MB in float64) whatever N is.
_CHUNK = 1 << 17


def decompose_covariances(covariances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 3, 3) symmetric PSD covariances -> (quats (..., 4), scales (..., 3)).

    Inverse of `covariances_from_quats_scales`: scales are the square roots of the eigenvalues in
    descending order (as an SVD orders them), quats (w, x, y, z; w >= 0) rotate the principal
    axes into place and always describe a proper rotation (det = +1). Runs on the tensor's own
    device in closed form (no iterative solver, no CPU round trip); see `_symmetric_eigen3` for
    how repeated eigenvalues, zero and rank-deficient matrices stay finite.
    """
    if covariances.shape[-2:] != (3, 3):
        raise ValueError(f"covariances must have shape (..., 3, 3), got {tuple(covariances.shape)}")
    lead = covariances.shape[:-2]
    flat = covariances.reshape(-1, 9)
    quats, scales = [], []
    for part in flat.split(_CHUNK):
        c = _compute_dtype(part)
        a00, a01, a02, a10, a11, a12, a20, a21, a22 = part.to(c).unbind(-1)
        values, axes = _symmetric_eigen3(a00, a11, a22, (a01 + a10) / 2, (a02 + a20) / 2, (a12 + a21) / 2)
        quats.append(_quats_from_columns(axes).to(covariances.dtype))
        scales.append(torch.stack([v.clamp(min=0).sqrt() for v in values], -1).to(covariances.dtype))
    return _join(quats, lead, 4, covariances), _join(scales, lead, 3, covariances)


def transform_gaussian_frames(
    quats: torch.Tensor, scales: torch.Tensor, linear: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Orientation and scales of Gaussians after the linear map `linear` (A Sigma A^T).

    quats (..., N, 4) (w, x, y, z), scales (..., N, 3) linear std-devs; `linear` is (3, 3) or
    (..., 3, 3) / (..., N, 3, 3) broadcasting against the splats' leading dims. Returns the new
    (quats, scales) with scales descending. A diagonal `linear` (SHARP's NDC -> metric
    unprojection) takes a cheaper path (Sigma' = D Sigma D). Works chunk by chunk along N so peak
    memory stays a small multiple of the inputs.
    """
    if linear.shape[-2:] != (3, 3):
        raise ValueError(f"linear must have shape (..., 3, 3), got {tuple(linear.shape)}")
    linear = linear.to(device=quats.device)
    diagonal = bool((linear - torch.diag_embed(linear.diagonal(dim1=-2, dim2=-1)) == 0).all())
    n = quats.shape[-2]
    # Bring `linear` to (..., N or 1, 3, 3) aligned with quats' (..., N, 4).
    while linear.dim() < quats.dim() + 1:
        linear = linear.unsqueeze(0)
    per_splat = linear.shape[-3] == n and n > 1
    if n == 0:
        return quats.clone(), scales.clone()
    out_q, out_s = [], []
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        c = _compute_dtype(quats)
        q = quats[..., start:stop, :].to(c)
        s = scales[..., start:stop, :].to(c)
        lin = (linear[..., start:stop, :, :] if per_splat else linear).to(c)
        rot = rotations_from_quats(q).unbind(-2)  # rows
        cov = _covariance_entries(rot, s)
        if diagonal:
            d0, d1, d2 = lin.diagonal(dim1=-2, dim2=-1).unbind(-1)
            cov = (
                cov[0] * (d0 * d0), cov[1] * (d1 * d1), cov[2] * (d2 * d2),
                cov[3] * (d0 * d1), cov[4] * (d0 * d2), cov[5] * (d1 * d2),
            )
        else:
            a_rows = [row.unbind(-1) for row in lin.unbind(-2)]
            cov = _congruence(cov, a_rows)
        values, axes = _symmetric_eigen3(*cov)
        if c == torch.float64:
            ns = torch.stack([v.clamp(min=0).sqrt() for v in values], -1)
        else:
            ns = _factored_scales(axes, rot, s, (d0, d1, d2) if diagonal else a_rows, diagonal)
        out_q.append(_quats_from_columns(axes).to(quats.dtype))
        out_s.append(ns.to(scales.dtype))
    return torch.cat(out_q, dim=-2), torch.cat(out_s, dim=-2)


def _factored_scales(axes, rot_rows, scales, linear, diagonal: bool) -> torch.Tensor:
    """Scales (..., 3) along the unit eigenvectors `axes` of M M^T, as |M^T v| with M = A R S.

    In float32 the small eigenvalues of the formed product A Sigma A^T are lost to rounding
    (absolute error ~1e-7 of the largest); |M^T v| only depends on v's direction error and
    keeps thin axes of needle-like splats an order of magnitude more accurate.
    """
    s_cols = scales.unbind(-1)
    r_entries = [row.unbind(-1) for row in rot_rows]
    lengths = []
    for axis in axes:
        if diagonal:
            w = tuple(d * a for d, a in zip(linear, axis))  # A^T v for a diagonal A
        else:
            w = tuple(_dot([row[j] for row in linear], axis) for j in range(3))
        m_t_v = [_dot([row[j] for row in r_entries], w) * s_cols[j] for j in range(3)]
        lengths.append(_dot(m_t_v, m_t_v).sqrt())
    mid = torch.maximum(lengths[1], lengths[2])  # keep descending despite rounding
    return torch.stack((torch.maximum(lengths[0], mid), mid, lengths[2]), -1)


def _covariance_entries(r: tuple[torch.Tensor, ...], scales: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Unique entries (s00, s11, s22, s01, s02, s12) of R diag(scales^2) R^T, one tensor each,
    from the rows of R ((..., 3) each) and scales (..., 3)."""
    t = scales * scales
    return (
        (r[0] * r[0] * t).sum(-1), (r[1] * r[1] * t).sum(-1), (r[2] * r[2] * t).sum(-1),
        (r[0] * r[1] * t).sum(-1), (r[0] * r[2] * t).sum(-1), (r[1] * r[2] * t).sum(-1),
    )


def _congruence(cov: tuple[torch.Tensor, ...], rows) -> tuple[torch.Tensor, ...]:
    """Unique entries of A S A^T from S's unique entries and A's rows (3 tuples of 3 entries)."""
    s00, s11, s22, s01, s02, s12 = cov
    sym = ((s00, s01, s02), (s01, s11, s12), (s02, s12, s22))
    as_rows = [tuple(_dot(row, col) for col in sym) for row in rows]  # A S (S symmetric)
    return (
        _dot(as_rows[0], rows[0]), _dot(as_rows[1], rows[1]), _dot(as_rows[2], rows[2]),
        _dot(as_rows[0], rows[1]), _dot(as_rows[0], rows[2]), _dot(as_rows[1], rows[2]),
    )


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """float64 on CPU (about 2x the float32 time there, and it keeps the thin axes of
    needle-like splats accurate); float32 on accelerators, which are slow at float64."""
    return torch.float64 if t.device.type == "cpu" else torch.float32


def _join(parts: list[torch.Tensor], lead: torch.Size, width: int, like: torch.Tensor) -> torch.Tensor:
    if not parts:
        return like.new_zeros(*lead, width)
    return torch.cat(parts).reshape(*lead, width)


def _symmetric_eigen3(a00, a11, a22, a01, a02, a12):
    """Closed-form eigendecomposition of symmetric 3x3 matrices given by their 6 unique entries.

    Returns (eigenvalues, axes): three eigenvalue tensors in descending order and the matching
    unit eigenvectors, each a tuple (x, y, z) of tensors; as columns they form a rotation.

    Method (branch-free, every case computed and selected per matrix):
    1. Normalise by the largest entry (no overflow/underflow), centre by the mean eigenvalue q and
       divide by the spread p, giving C = (A - qI) / p with eigenvalues 2 cos(phi + 2k pi/3).
    2. One eigenvalue is always isolated from the other two by at least sqrt(3) (in units of p):
       the largest when phi < pi/6, else the smallest. Its eigenvector is the best-conditioned
       cross product of two rows of C - mu I, which has rank 2.
    3. The other two eigenvectors lie in the plane orthogonal to it: diagonalise C restricted to
       that plane (a 2x2 problem, solved by an atan2 angle that is well defined even when the
       two eigenvalues coincide).
    The three eigenvectors form a cyclic permutation of a right-handed frame, so det(R) = +1 by
    construction. A zero or isotropic matrix (p = 0) yields a valid, arbitrary frame.
    """
    # For a PSD matrix every entry is bounded by the trace, so dividing by it keeps all products
    # below in range whatever the units. (An indefinite input with trace <= 0 is left unscaled.)
    norm = a00 + a11 + a22
    dtype = norm.dtype
    tiny = torch.finfo(dtype).tiny
    norm = _select((norm > 0).to(dtype), norm, torch.ones_like(norm))
    inv_norm = 1 / norm
    a00, a11, a22, a01, a02, a12 = (t * inv_norm for t in (a00, a11, a22, a01, a02, a12))

    q = (a00 + a11 + a22) / 3
    b00, b11, b22 = a00 - q, a11 - q, a22 - q
    p = torch.sqrt((b00 * b00 + b11 * b11 + b22 * b22 + 2 * (a01 * a01 + a02 * a02 + a12 * a12)) / 6)
    inv_p = (p > 0).to(dtype) / p.clamp(min=tiny)
    c00, c11, c22, c01, c02, c12 = (t * inv_p for t in (b00, b11, b22, a01, a02, a12))
    det_c = c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02)
    half_det = (det_c / 2).clamp(-1, 1)
    phi = torch.acos(half_det) / 3
    largest_isolated = (half_det >= 0).to(dtype)
    mu_iso = 2 * torch.cos(phi + (1 - largest_isolated) * (2 * torch.pi / 3))

    # Eigenvector of the isolated eigenvalue: largest cross product of rows of C - mu I.
    r0 = (c00 - mu_iso, c01, c02)
    r1 = (c01, c11 - mu_iso, c12)
    r2 = (c02, c12, c22 - mu_iso)
    x01, x02, x12 = _cross(r0, r1), _cross(r0, r2), _cross(r1, r2)
    n01, n02, n12 = (_dot(c, c) for c in (x01, x02, x12))
    pick01 = (n01 >= torch.maximum(n02, n12)).to(dtype)
    pick02 = (n02 >= n12).to(dtype)
    vx, vy, vz = (_select(pick01, a, _select(pick02, b, c)) for a, b, c in zip(x01, x02, x12))
    length = _select(pick01, n01, _select(pick02, n02, n12)).sqrt()
    valid = (length > 0).to(dtype)  # C = 0 (isotropic input): any frame will do, take e_x first
    inv_len = valid / length.clamp(min=tiny)
    vx, vy, vz = vx * inv_len + (1 - valid), vy * inv_len, vz * inv_len

    # Orthonormal basis (u, w) of the plane orthogonal to v, with v x u = w.
    x_dominant = (vx.abs() > vy.abs()).to(dtype)
    ux = -vz * x_dominant
    uy = vz * (1 - x_dominant)
    uz = _select(x_dominant, vx, -vy)
    u_len = torch.sqrt(ux * ux + uy * uy + uz * uz)
    ux, uy, uz = ux / u_len, uy / u_len, uz / u_len
    wx, wy, wz = _cross((vx, vy, vz), (ux, uy, uz))

    # C restricted to the plane: [[a, b], [b, c]] in the (u, w) basis.
    u, w = (ux, uy, uz), (wx, wy, wz)
    rows = ((c00, c01, c02), (c01, c11, c12), (c02, c12, c22))
    cu = tuple(_dot(row, u) for row in rows)
    pa, pb, pc = _dot(u, cu), _dot(w, cu), _dot(w, tuple(_dot(row, w) for row in rows))
    half_diff = (pa - pc) / 2
    theta = torch.atan2(pb, half_diff) / 2
    cos_t, sin_t = torch.cos(theta), torch.sin(theta)
    mean = (pa + pc) / 2
    radius = torch.sqrt(half_diff * half_diff + pb * pb)
    mu_hi, mu_lo = mean + radius, mean - radius
    hx, hy, hz = cos_t * ux + sin_t * wx, cos_t * uy + sin_t * wy, cos_t * uz + sin_t * wz
    lx, ly, lz = cos_t * wx - sin_t * ux, cos_t * wy - sin_t * uy, cos_t * wz - sin_t * uz

    # Order descending: (v, hi, lo) when the largest is isolated, else (hi, lo, v). Both are cyclic
    # shifts of the right-handed (v, u, w), so the matrix stays a rotation.
    a = largest_isolated
    mu0 = _select(a, torch.maximum(mu_iso, mu_hi), mu_hi)
    mu1 = _select(a, mu_hi, mu_lo)
    mu2 = _select(a, mu_lo, torch.minimum(mu_iso, mu_lo))
    col0 = [_select(a, v_, h_) for v_, h_ in ((vx, hx), (vy, hy), (vz, hz))]
    col1 = [_select(a, h_, l_) for h_, l_ in ((hx, lx), (hy, ly), (hz, lz))]
    col2 = [_select(a, l_, v_) for l_, v_ in ((lx, vx), (ly, vy), (lz, vz))]

    values = tuple((mu * p + q) * norm for mu in (mu0, mu1, mu2))
    return values, (tuple(col0), tuple(col1), tuple(col2))


def _quats_from_columns(axes) -> torch.Tensor:
    """Quaternions of the rotations whose columns are `axes` (three (x, y, z) tuples)."""
    c0, c1, c2 = axes
    return _quats_from_rotation_entries(c0[0], c1[0], c2[0], c0[1], c1[1], c2[1], c0[2], c1[2], c2[2])


def _select(weight: torch.Tensor, if_one: torch.Tensor, if_zero: torch.Tensor) -> torch.Tensor:
    """Per-element choice by a 0/1 float weight. torch.lerp is exact at weights 0 and 1 for
    finite inputs and is far faster than torch.where on CPU."""
    return torch.lerp(if_zero, if_one, weight)


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a, b):
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


# -- spherical harmonics under rotation ---------------------------------------------------------

# The real SH basis of 3DGS files (the reference `eval_sh`), degrees 1-3, without the DC term.
# Its signs differ from the textbook real SH (e.g. degree 1 is (-C1 y, C1 z, -C1 x)); it is still
# orthonormal, so each band rotates by an orthogonal matrix.
_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
          -0.4570457994644658, 1.445305721320277, -0.5900435899266435)
_SH_BANDS = ((0, 3), (3, 8), (8, 15))  # slices of the K coefficients beyond DC, per degree 1, 2, 3


def sh_basis(directions: torch.Tensor, degree: int) -> torch.Tensor:
    """(..., 3) unit directions -> (..., K) 3DGS SH basis values beyond DC, K = (degree + 1)^2 - 1.

    A splat's colour seen along d (from the camera towards the splat) is
    C0 * dc + sum_k sh_rest[k] * sh_basis(d)[k] (+ 0.5, per channel), the 3DGS convention.
    """
    if not 1 <= degree <= 3:
        raise ValueError(f"SH degree must be 1, 2 or 3, got {degree}.")
    x, y, z = directions.unbind(-1)
    values = [-_SH_C1 * y, _SH_C1 * z, -_SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        values += [
            _SH_C2[0] * x * y, _SH_C2[1] * y * z, _SH_C2[2] * (2 * zz - xx - yy),
            _SH_C2[3] * x * z, _SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        values += [
            _SH_C3[0] * y * (3 * xx - yy), _SH_C3[1] * x * y * z, _SH_C3[2] * y * (4 * zz - xx - yy),
            _SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), _SH_C3[4] * x * (4 * zz - xx - yy),
            _SH_C3[5] * z * (xx - yy), _SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(values, -1)


def _fibonacci_directions(count: int) -> torch.Tensor:
    """(count, 3) float64 unit vectors spread evenly over the sphere (none on a symmetry plane)."""
    i = torch.arange(count, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / count
    r = (1 - z * z).sqrt()
    phi = i * math.pi * (3 - math.sqrt(5))
    return torch.stack((r * torch.cos(phi), r * torch.sin(phi), z), -1)


def sh_rotation_matrices(rotation: torch.Tensor, degree: int) -> list[torch.Tensor]:
    """Per band l = 1..degree, the (2l+1, 2l+1) float64 matrix D_l with sh_basis(R d) = D_l sh_basis(d).

    Fitted, not tabulated: the basis is evaluated at 64 well-spread directions d and at R d and the
    linear system is solved by least squares. Rotations map each band onto itself, so the fit is
    exact to float64 rounding (~1e-15), whatever the basis' sign convention. `rotation`: (3, 3) proper.
    """
    r = rotation.detach().to(device="cpu", dtype=torch.float64)
    d = _fibonacci_directions(64)
    before, after = sh_basis(d, degree), sh_basis(d @ r.T, degree)
    fitted = torch.linalg.lstsq(before, after).solution.T  # after = before @ D^T, for the whole range
    return [fitted[a:b, a:b] for a, b in _SH_BANDS[:degree]]


def rotate_sh_rest(sh_rest: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """SH coefficients beyond DC (..., K, 3) of splats turned by `rotation` (3, 3, proper).

    The rotated splat seen along R d shows the colour the original showed along d:
    sum_k out[k] Y_k(R d) = sum_k sh_rest[k] Y_k(d). With Y(R d) = D Y(d) per band and D orthogonal,
    out = D sh_rest band by band. Runs on sh_rest's device and dtype (D is computed in float64).
    """
    k = sh_rest.shape[-2]
    degree = {3: 1, 8: 2, 15: 3}.get(k)
    if degree is None:
        raise ValueError(f"sh_rest has {k} coefficients per channel; expected 3, 8 or 15 (SH degrees 1-3).")
    bands = []
    for (a, b), d in zip(_SH_BANDS, sh_rotation_matrices(rotation, degree)):
        d = d.to(device=sh_rest.device, dtype=torch.float32 if sh_rest.dtype in (torch.float16, torch.bfloat16)
                 else sh_rest.dtype)
        bands.append(torch.matmul(d, sh_rest[..., a:b, :].to(d.dtype)).to(sh_rest.dtype))
    return torch.cat(bands, dim=-2)
