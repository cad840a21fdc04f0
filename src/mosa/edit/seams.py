"""Seams: where kept and generated frames meet, and the offset blending that joins them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mosa.motion.features import (
    local_joints,
    local_rotations,
    recover_joints,
    recover_root,
)
from mosa.motion.quaternion import qrot, quat_to_cont6d
from mosa.motion.skeleton import (
    NUM_JOINTS,
    PARENTS,
    RIC_SLICE,
    ROT_SLICE,
    VEL_SLICE,
)

DEFAULT_BLEND = 4  # shortest window (frames) over which a seam offset decays (0.2 s at 20 fps)
MAX_WINDOW = 20  # longest one (1 s)
SPEED_BUDGET = 0.5  # most joint speed a seam correction may add, times the source's p95 speed
SMOOTHSTEP_SLOPE = 1.5  # steepest slope of 3 x^2 - 2 x^3 on [0, 1]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """``3 x^2 - 2 x^3`` on ``[0, 1]`` (clipped outside): 0 -> 1 with zero slope at both ends
    and the steepest slope, ``SMOOTHSTEP_SLOPE``, at ``x = 1/2``."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass
class Seam:
    """One seam of an offset join: the kept ``frame`` next to generated frames on side
    ``step`` (+1: they follow it, -1: they precede it); the offset measured there decays to
    zero over ``window`` generated frames. ``size`` (m) bounds how far the full offset moves
    any joint; ``reach``: frames from ``frame`` to the kept frame across the generated run
    (0: the run is open, it ends the motion)."""

    frame: int
    step: int
    window: int = 1
    size: float = 0.0
    reach: int = 0


def find_seams(kept: np.ndarray) -> list[Seam]:
    """The seams of ``kept (T,)`` bool, in order: for each run of generated frames
    ``[a, b)``, the kept frame ``a - 1`` (step +1) and the kept frame ``b`` (step -1), those
    that exist."""
    T, out = len(kept), []
    gen = np.flatnonzero(~kept)
    if len(gen) == 0:
        return out
    breaks = np.flatnonzero(np.diff(gen) > 1)
    for a, last in zip(gen[np.r_[0, breaks + 1]], gen[np.r_[breaks, len(gen) - 1]], strict=True):
        a, b = int(a), int(last) + 1
        closed = a > 0 and b < T
        if a > 0:
            out.append(Seam(a - 1, +1, reach=b - a + 1 if closed else 0))
        if b < T:
            out.append(Seam(b, -1, reach=b - a + 1 if closed else 0))
    return out


def seam_weights(T: int, seams: Sequence[Seam]) -> np.ndarray:
    """``(S, T)`` share of each seam's offset per frame: ``1 - smoothstep(d / window)`` on
    the frames ``d = 0 .. window`` steps from the seam frame on its generated side (1 on the
    seam frame itself), 0 elsewhere. With ``window <= reach``, a seam's weight is 0 on the
    kept frame across the run, so both seams of a run can be matched at once; two seams of a
    run never sum to more than 1."""
    w = np.zeros((len(seams), T), np.float64)
    t = np.arange(T)
    for i, s in enumerate(seams):
        d = (t - s.frame) * s.step
        on = (d >= 0) & (d <= (s.reach if s.reach else T))
        w[i, on] = 1.0 - _smoothstep(d[on] / max(s.window, 1))
    return w


def _bones(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions ``(..., 21, 3)`` and lengths ``(..., 21)`` of the bones of joints
    ``(..., 22, 3)`` (parent to joint)."""
    b = joints[..., 1:, :] - joints[..., list(PARENTS[1:]), :]
    length = np.linalg.norm(b, axis=-1)
    return b / np.maximum(length, 1e-8)[..., None], length


def _rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(..., 3)`` (axis times angle) of the shortest arcs taking unit
    vectors ``u`` onto ``v`` (``(..., 3)``); opposite vectors turn by pi about an axis
    perpendicular to ``u``."""
    axis = np.cross(u, v)
    sin, cos = np.linalg.norm(axis, axis=-1), np.sum(u * v, axis=-1)
    angle = np.arctan2(sin, cos)
    flip = sin < 1e-8
    if flip.any():  # parallel (angle 0, any axis) or opposite (angle pi, a perpendicular axis)
        other = np.where(np.abs(u[flip, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        axis[flip] = np.cross(u[flip], other)
        sin = np.where(flip, np.linalg.norm(axis, axis=-1), sin)
    return axis / np.maximum(sin, 1e-12)[..., None] * angle[..., None]


def _rotate(v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v (..., 3)`` by rotation vectors ``r (..., 3)`` (Rodrigues)."""
    angle = np.linalg.norm(r, axis=-1, keepdims=True)
    k = r / np.maximum(angle, 1e-12)
    c, s = np.cos(angle), np.sin(angle)
    return v * c + np.cross(k, v) * s + k * np.sum(k * v, axis=-1, keepdims=True) * (1 - c)


def _slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Unit vectors ``(..., 3)`` a share ``t (...)`` of the arc from unit vectors ``a`` to
    ``b`` (``t = 0``: ``a``, ``t = 1``: ``b``); nearly equal vectors are mixed linearly."""
    cos = np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)
    angle = np.arccos(cos)[..., None]
    sin, t = np.sin(angle), t[..., None]
    arc = (np.sin((1 - t) * angle) * a + np.sin(t * angle) * b) / np.maximum(sin, 1e-12)
    out = np.where(sin > 1e-6, arc, (1 - t) * a + t * b)
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)


def _chain_sum(per_bone: np.ndarray, root: float) -> np.ndarray:
    """``(22,)``: ``root`` plus ``per_bone (21,)`` summed along each joint's chain."""
    acc = np.zeros(NUM_JOINTS)
    acc[0] = root
    for j in range(1, NUM_JOINTS):
        acc[j] = acc[PARENTS[j]] + per_bone[j - 1]
    return acc


def _turn_bones(
    height: np.ndarray, dirs: np.ndarray, lengths: np.ndarray, rot: np.ndarray, d_len: np.ndarray
) -> np.ndarray:
    """Root-relative joints ``(N, 22, 3)``: the root at ``height (N,)``, each bone the unit
    direction ``dirs (N, 21, 3)`` turned by the rotation vector ``rot (N, 21, 3)``, of length
    ``lengths + d_len (N, 21)``, placed down the kinematic tree."""
    bones = _rotate(dirs, rot) * (lengths + d_len)[..., None]
    pos = np.zeros((len(bones), NUM_JOINTS, 3))
    pos[:, 0, 1] = height
    for j in range(1, NUM_JOINTS):  # parents come before children
        pos[:, j] = pos[:, PARENTS[j]] + bones[:, j - 1]
    return pos


def source_speed(features: np.ndarray, kept: np.ndarray, fps: float) -> float:
    """95th percentile joint speed (m/s, all joints) of ``features (T, 263)`` over the steps
    between two kept frames, as the edit benchmark measures a source (0 without such steps)."""
    both = kept[:-1] & kept[1:]
    if not both.any():
        return 0.0
    joints = np.asarray(recover_joints(features), np.float64)
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1)[both] * fps
    return float(np.percentile(speed, 95))


def _pose_channels(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation ``(T, 126)`` and local velocity ``(T, 66)`` channels that the root and
    joint-position channels of ``features (T, 263)`` imply (HumanML3D's inverse kinematics and
    velocities in the root frame; the last frame's velocity is 0)."""
    rot_q, _ = recover_root(features.astype(np.float64))
    joints = np.asarray(recover_joints(features.astype(np.float64)))
    rot = quat_to_cont6d(local_rotations(joints, rot_q)).reshape(len(features), -1)
    vel = np.zeros((len(features), NUM_JOINTS, 3))
    vel[:-1] = qrot(np.repeat(rot_q[:-1, None], NUM_JOINTS, 1), joints[1:] - joints[:-1])
    return rot, vel.reshape(len(features), -1)


_ROOT = slice(0, 4)  # angular velocity, linear velocity, height: offset additively


def seam_reference(decoded: np.ndarray, kept: np.ndarray, seams: Sequence[Seam]) -> np.ndarray:
    """``(S, 263)``: the decode at each seam's kept frame k as the generated side carries it
    back, ``2 d(k + step) - d(k + 2 step)`` (linear extrapolation; ``d(k + step)`` when the
    generated run is one frame long). The seam offsets are measured against it, not against
    ``d(k)``: the decoder sees the pasted source latent on one side and the generated one on
    the other, and its frames can jump where they meet; an offset measured at ``d(k)`` would
    carry that jump into the output."""
    T, out = len(kept), np.zeros((len(seams), decoded.shape[1]))
    for i, s in enumerate(seams):
        k1, k2 = s.frame + s.step, s.frame + 2 * s.step
        two = 0 <= k2 < T and not kept[k2]
        out[i] = 2 * decoded[k1] - decoded[k2] if two else decoded[k1]
    return out


def offset_join(
    source: np.ndarray,
    decoded: np.ndarray,
    kept: np.ndarray,
    *,
    min_window: int = DEFAULT_BLEND,
    max_window: int = MAX_WINDOW,
    budget: float = SPEED_BUDGET,
    speed: float | None = None,
    fps: float = 20.0,
    damp_short_bones: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[Seam]]:
    """Join kept source frames and decoded frames with decaying seam offsets (inertialization).

    ``source (T, 263)`` holds the source's features on ``kept (T,)`` frames (anything
    elsewhere), ``decoded (T, 263)`` the decode everywhere; both de-normalised. Kept frames
    are the source's, exactly. At each seam (kept frame k next to generated ones,
    ``find_seams``) the offset source(k) - reference(k) (``seam_reference``: the decode
    extrapolated from the generated side) is added to the generated frames with
    weight ``1 - smoothstep(d / window)`` at ``d`` frames from k (``seam_weights``): the first
    generated frame carries on from the kept pose with the decode's own motion, and the
    offset is gone ``window`` frames on. The two seams of a generated run add up, each matched
    exactly. The offset is additive on the root channels (angular and linear velocity,
    height: the root's path and speed carry on across the seam); on the root-relative joint
    positions it turns every bone by the weighted shortest arc from the decode's direction to
    the source's at k and offsets its length, then rebuilds the positions down the kinematic
    tree, so bones keep smooth lengths; the rotation and joint-velocity channels get the
    change that the new positions imply; foot contacts stay the decode's.

    ``window``: the full offset moves a joint by at most ``size`` metres (the height offset
    plus, down its chain, ``angle * length + |length change|`` per bone), and the weight
    changes by at most ``SMOOTHSTEP_SLOPE / window`` per frame, so on top of the motion of the
    decode's bones the correction moves a joint by at most ``SMOOTHSTEP_SLOPE * size /
    window`` per frame. The window keeps that under ``budget * speed / fps`` (``speed``: the
    source's 95th percentile joint speed in m/s, measured on the kept frames when None),
    within ``[min_window, max_window]`` frames and at most the run's ``reach`` when another
    kept part follows the run.

    ``damp_short_bones``: a bone the decode makes shorter than the source's at a seam (ratio
    ``r < 1`` of the lengths) follows the decode's changes of direction only a share ``1 - w
    (1 - r)`` of the way from the source's direction (``w``: the seam weight), so restoring
    its length does not turn the decode's fast turn of a short, degenerate bone into a fast
    step of the joints below it (a 0.1 m forearm at the seam, a 0.3 m wrist step); the share
    is 1, the plain join, once the seam offset has decayed. Off by default (the editing modes
    are measured without it; ``mosa.edit.sequences`` turns it on).

    Returns ``(features (T, 263) float32, weights (T,), seams)``: ``weights`` is the share of
    the seam offsets applied per frame (1 on kept frames, 0 where the decode is untouched).
    """
    source = np.asarray(source, np.float64)
    decoded = np.asarray(decoded, np.float64)
    kept = np.asarray(kept, bool)
    T = len(kept)
    out = decoded.copy()
    out[kept] = source[kept]
    seams = find_seams(kept)
    if not seams:
        return out.astype(np.float32), np.ones(T, np.float32), seams
    if speed is None:
        speed = source_speed(source, kept, fps)
    local_src, local_dec = local_joints(source), local_joints(decoded)
    dirs, lengths = _bones(local_dec)  # (T, 21, 3), (T, 21)
    ref = seam_reference(decoded, kept, seams)  # (S, 263)
    ref_dirs, ref_lengths = _bones(local_joints(ref))
    rot = np.zeros((len(seams), 21, 3))  # per seam: bone rotation vectors
    d_len = np.zeros((len(seams), 21))  # bone length offsets
    d_root = np.zeros((len(seams), 4))  # root channel offsets
    u_seam = np.zeros((len(seams), 21, 3))  # the source's bone directions and lengths there
    l_seam = np.ones((len(seams), 21))
    for i, s in enumerate(seams):
        u_src, l_src = _bones(local_src[s.frame])
        rot[i] = _rotation_between(ref_dirs[i], u_src)
        u_seam[i], l_seam[i] = u_src, l_src
        d_len[i] = l_src - ref_lengths[i]
        d_root[i] = source[s.frame, _ROOT] - ref[i, _ROOT]
        per_bone = np.linalg.norm(rot[i], axis=-1) * np.maximum(l_src, ref_lengths[i])
        s.size = float(_chain_sum(per_bone + np.abs(d_len[i]), abs(d_root[i, 3])).max())
        need = SMOOTHSTEP_SLOPE * s.size * fps / max(budget * speed, 1e-6)
        s.window = int(np.clip(np.ceil(need), max(min_window, 1), max(max_window, 1)))
        if s.reach:
            s.window = min(s.window, s.reach)
    w = seam_weights(T, seams)
    w[:, kept] = 0.0
    gen = np.flatnonzero(w.sum(axis=0) > 0)
    if len(gen):
        wg = w[:, gen]  # (S, G)
        out[gen, _ROOT] += wg.T @ d_root
        r = np.einsum("sg,sbc->gbc", wg, rot)
        if damp_short_bones:
            turned = _rotate(dirs[gen], r)
            ratio = np.clip(ref_lengths / np.maximum(l_seam, 1e-6), 0.0, 1.0)  # (S, 21)
            share = np.clip(1.0 - np.einsum("sg,sb->gb", wg, 1.0 - ratio), 0.0, 1.0)
            turned = _slerp(u_seam[wg.argmax(axis=0)], turned, share)  # from the nearest seam
            pos = _turn_bones(out[gen, 3], turned, lengths[gen], np.zeros_like(r), wg.T @ d_len)
        else:
            pos = _turn_bones(out[gen, 3], dirs[gen], lengths[gen], r, wg.T @ d_len)
        out[gen, RIC_SLICE] = pos[:, 1:].reshape(len(gen), -1)
        # rotations and joint velocities: the decode's, plus the change the new positions imply
        # (a frame's velocity runs to the next frame: the frame before a corrected one too)
        new, old = _pose_channels(out), _pose_channels(decoded)
        out[gen, ROT_SLICE] += new[0][gen] - old[0][gen]
        vel = np.union1d(gen, gen - 1)
        vel = vel[(vel >= 0) & ~kept[np.maximum(vel, 0)]]
        out[vel, VEL_SLICE] += new[1][vel] - old[1][vel]
    weights = np.where(kept, 1.0, w.sum(axis=0))
    return out.astype(np.float32), weights.astype(np.float32), seams
