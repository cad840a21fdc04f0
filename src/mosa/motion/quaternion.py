"""Quaternion and rotation helpers for the motion representation.

Quaternions are ``(w, x, y, z)`` and act on column vectors: ``qrot(q, v) = q v q^-1``.
``qmul``, ``qinv``, ``qrot``, ``qnormalize``, ``quat_to_matrix``, ``matrix_to_cont6d`` and
``cont6d_to_matrix`` accept numpy arrays or torch tensors (the result has the input's type, and
torch inputs stay differentiable); the others are numpy only. All functions broadcast over any
leading dims ``(...)``.

The continuous 6D representation (Zhou et al. 2019) of a rotation matrix ``R`` is its first two
columns, ``(R[:, 0], R[:, 1])``, as in HumanML3D.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _stack(parts: list, like: Array, axis: int = -1) -> Array:
    if isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=axis)
    return np.stack(parts, axis=axis)


def _cross(a: Array, b: Array) -> Array:
    """Cross product over the last axis, (..., 3) x (..., 3) -> (..., 3)."""
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return _stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], a)


def _norm(a: Array) -> Array:
    """Euclidean norm over the last axis, keeping it: (..., n) -> (..., 1)."""
    return (
        (a * a).sum(-1, keepdims=True) ** 0.5
        if isinstance(a, np.ndarray)
        else a.norm(dim=-1, keepdim=True)
    )


def qmul(q: Array, r: Array) -> Array:
    """Hamilton product ``q * r`` (rotate by ``r`` first, then ``q``): (..., 4) x2 -> (..., 4)."""
    w1, x1, y1, z1 = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    w2, x2, y2, z2 = r[..., 0], r[..., 1], r[..., 2], r[..., 3]
    return _stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        q,
    )


def qinv(q: Array) -> Array:
    """Inverse of a unit quaternion (its conjugate): (..., 4) -> (..., 4)."""
    return _stack([q[..., 0], -q[..., 1], -q[..., 2], -q[..., 3]], q)


def qnormalize(q: Array) -> Array:
    """Scale to unit length: (..., 4) -> (..., 4)."""
    return q / _norm(q)


def qrot(q: Array, v: Array) -> Array:
    """Rotate vectors ``v`` (..., 3) by unit quaternions ``q`` (..., 4) -> (..., 3).

    Uses v' = v + 2 w (u x v) + 2 u x (u x v) with u the vector part of q.
    """
    u = q[..., 1:]
    uv = _cross(u, v)
    return v + 2 * (q[..., :1] * uv + _cross(u, uv))


def qbetween(v0: np.ndarray, v1: np.ndarray) -> np.ndarray:
    """Shortest-arc unit quaternion rotating direction ``v0`` onto ``v1``: (..., 3) x2 -> (..., 4).

    Built as normalize(|v0||v1| + v0.v1, v0 x v1) as in HumanML3D, so ``w >= 0``. For opposite
    directions (where that is 0/0) it returns a half turn about an axis perpendicular to ``v0``.
    """
    v0, v1 = np.broadcast_arrays(np.asarray(v0, dtype=np.float64), np.asarray(v1, np.float64))
    scale = np.sqrt((v0**2).sum(-1) * (v1**2).sum(-1))
    q = np.concatenate([(scale + (v0 * v1).sum(-1))[..., None], np.cross(v0, v1)], axis=-1)
    norm = np.linalg.norm(q, axis=-1)
    opposite = norm <= 1e-9 * np.maximum(scale, 1e-300)
    if opposite.any():
        a = v0[opposite]
        # Cross with the coordinate axis least aligned with v0 gives a perpendicular axis.
        e = np.eye(3)[np.abs(a).argmin(-1)]
        axis = np.cross(a, e)
        q[opposite] = np.concatenate([np.zeros((len(a), 1)), axis], axis=-1)
        norm = np.linalg.norm(q, axis=-1)
    return q / norm[..., None]


def qfix(q: np.ndarray) -> np.ndarray:
    """Flip signs along time so consecutive quaternions have a non-negative dot product.

    q: (T, ..., 4) with time first -> same shape. q and -q are the same rotation; this removes
    the jumps between them.
    """
    dots = (q[1:] * q[:-1]).sum(-1)
    flips = np.cumsum(dots < 0, axis=0) % 2 == 1
    out = q.copy()
    out[1:][flips] *= -1
    return out


def quat_to_matrix(q: Array) -> Array:
    """Unit-or-not quaternions (..., 4) -> rotation matrices (..., 3, 3) (scale is divided out)."""
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    s = 2.0 / (q * q).sum(-1)
    rows = [
        1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
        s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
        s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
    ]  # fmt: skip
    return _stack(rows, q).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) with ``w >= 0``.

    Picks, per matrix, the largest of 4w^2, 4x^2, 4y^2, 4z^2 to divide by (numerically stable).
    """
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 * (w^2, x^2, y^2, z^2), each computed from the trace and diagonal.
    sq = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    m01, m02, m10 = m[..., 0, 1], m[..., 0, 2], m[..., 1, 0]
    m12, m20, m21 = m[..., 1, 2], m[..., 2, 0], m[..., 2, 1]
    d21, d02, d10 = m21 - m12, m02 - m20, m10 - m01
    s21, s02, s10 = m21 + m12, m02 + m20, m10 + m01
    # Row k holds 4 * q_k * (w, x, y, z); divide it by 4 * q_k = 2 sqrt(sq_k).
    cands = np.stack(
        [
            np.stack([sq[..., 0], d21, d02, d10], -1),
            np.stack([d21, sq[..., 1], s10, s02], -1),
            np.stack([d02, s10, sq[..., 2], s21], -1),
            np.stack([d10, s02, s21, sq[..., 3]], -1),
        ],
        -2,
    )
    best = sq.argmax(-1)
    pick = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    scale = 2.0 * np.sqrt(np.take_along_axis(sq, best[..., None], axis=-1).clip(min=1e-12))
    q = pick / scale
    return np.where(q[..., :1] < 0, -q, q)


def matrix_to_cont6d(m: Array) -> Array:
    """Rotation matrices (..., 3, 3) -> 6D (..., 6): first column then second column."""
    cols = [m[..., 0, 0], m[..., 1, 0], m[..., 2, 0], m[..., 0, 1], m[..., 1, 1], m[..., 2, 1]]
    return _stack(cols, m)


def cont6d_to_matrix(d6: Array) -> Array:
    """6D (..., 6) -> rotation matrices (..., 3, 3) by Gram-Schmidt on the two columns."""
    a, b = d6[..., 0:3], d6[..., 3:6]
    x = a / _norm(a)
    z = _cross(x, b)
    z = z / _norm(z)
    y = _cross(z, x)
    return _stack([x, y, z], d6, axis=-1)


def quat_to_cont6d(q: Array) -> Array:
    """Quaternions (..., 4) -> 6D (..., 6)."""
    return matrix_to_cont6d(quat_to_matrix(q))


def cont6d_to_quat(d6: np.ndarray) -> np.ndarray:
    """6D (..., 6) -> unit quaternions (..., 4) with ``w >= 0``."""
    return matrix_to_quat(cont6d_to_matrix(np.asarray(d6, dtype=np.float64)))


def yrot_quat(angle: Array) -> Array:
    """Rotation by ``angle`` radians about +Y: (...) -> quaternions (..., 4)."""
    half = angle / 2
    zero = half * 0
    if isinstance(angle, torch.Tensor):
        return torch.stack([half.cos(), zero, half.sin(), zero], dim=-1)
    return np.stack([np.cos(half), zero, np.sin(half), zero], axis=-1)
