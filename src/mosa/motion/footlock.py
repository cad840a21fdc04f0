"""Foot lock: feet that touch the floor stay where they are (no skating), by IK on the legs.

The generator predicts HumanML3D's 4 foot-contact features (left ankle, left toe, right ankle,
right toe: ``skeleton.CONTACT_SLICE``). A joint is locked on frames where its contact is on
and it is near the floor (within ``height`` of its own lowest point in the clip: HumanML3D's
contacts are a speed test only). Each run of locked frames pins the joint where it is on the
run's stillest frame; the lock blends in and out over ``blend`` frames either side
(``1 - smoothstep``). The leg follows by two-bone IK (hip-knee-ankle, the knee kept in the
plane the motion bends it in) and the toe by turning the foot bone, so every bone keeps its
length: a motion on one skeleton (``fit.fit_motion``) stays on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mosa.motion.skeleton import CONTACT_SLICE, FEATURE_DIM, NUM_JOINTS

# (hip, knee, ankle, toe) joint indices and their contact channels (ankle, toe)
LEGS = ((1, 4, 7, 10), (2, 5, 8, 11))
_CONTACT_CHANNELS = ((0, 1), (2, 3))
DEFAULT_BLEND = 3  # frames (0.15 s at 20 fps) over which a lock fades in and out
DEFAULT_HEIGHT = 0.05  # metres above a joint's lowest point that still count as the floor
_THRESHOLD = 0.5  # a predicted contact feature above this is "on"


@dataclass
class FootLockConfig:
    blend: int = DEFAULT_BLEND
    height: float = DEFAULT_HEIGHT
    min_frames: int = 2  # shorter contact runs are left alone


def contacts_from_features(features: np.ndarray, frames: int) -> np.ndarray:
    """``(frames, 4)`` bool contacts (left ankle, left toe, right ankle, right toe) from
    features ``(F, 263)``: the rows' contact channels, the last row repeated when the motion
    has more frames than rows."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
        raise ValueError(f"features must be (F, {FEATURE_DIM}), got {features.shape}")
    c = features[:, CONTACT_SLICE] > _THRESHOLD
    if len(c) < frames:
        c = np.concatenate([c, np.repeat(c[-1:], frames - len(c), axis=0)])
    return c[:frames]


def contacts_from_joints(joints: np.ndarray, fps: float = 20.0, speed: float = 0.2) -> np.ndarray:
    """``(T, 4)`` bool contacts guessed from positions: the joint moves slower than
    ``speed`` m/s (used where no contact features are given)."""
    feet = np.asarray(joints)[:, [7, 10, 8, 11]]
    v = np.zeros(feet.shape[:2])
    if len(feet) > 1:
        step = np.linalg.norm(np.diff(feet, axis=0), axis=-1) * fps
        v[:-1], v[-1] = step, step[-1]
    return v < speed


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _runs(on: np.ndarray) -> list[tuple[int, int]]:
    """``[a, b)`` runs of True in a (T,) bool array."""
    d = np.diff(np.r_[0, on.astype(np.int8), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def lock_targets(
    track: np.ndarray, on: np.ndarray, low: np.ndarray, cfg: FootLockConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Where one joint is pinned and how much: ``track (T, 3)`` its positions, ``on (T,)`` its
    contact frames, ``low (T,)`` its frames near the floor -> ``(targets (T, 3), weights
    (T,))``. Every stretch of low frames that holds contacts is locked: each contact run pins
    the joint where it is on the run's stillest frame, between two runs the pin glides from
    one to the next (smoothstep), before the first and after the last it holds. The weight is
    1 on the stretch and fades out over ``cfg.blend`` frames either side, where the foot is
    off the floor (where fades overlap, the nearer stretch wins)."""
    T = len(track)
    targets, weights = track.copy(), np.zeros(T)
    speed = np.zeros(T)
    if T > 1:
        speed[1:] = np.linalg.norm(np.diff(track, axis=0), axis=-1)
        speed[0] = speed[1]
    t = np.arange(T)
    for a, b in _runs(low):
        runs = [(c, d) for c, d in _runs(on[a:b]) if d - c >= cfg.min_frames]
        if not runs:
            continue
        runs = [(a + c, a + d) for c, d in runs]
        pins = [track[c + int(np.argmin(speed[c:d]))] for c, d in runs]
        target = np.repeat(pins[0][None], b - a, axis=0)
        for (c, _), pin in zip(runs, pins, strict=True):
            target[c - a :] = pin
        for (_, d), (c2, _), p0, p1 in zip(runs[:-1], runs[1:], pins[:-1], pins[1:], strict=True):
            x = _smoothstep((np.arange(d, c2) - (d - 1)) / (c2 - d + 1))[:, None]
            target[d - a : c2 - a] = (1 - x) * p0 + x * p1
        dist = np.maximum(np.maximum(a - t, t - (b - 1)), 0)
        w = 1.0 - _smoothstep(dist / (cfg.blend + 1))
        take = w > weights
        full = np.concatenate([np.repeat(target[:1], a, 0), target,
                               np.repeat(target[-1:], T - b, 0)])  # fmt: skip
        targets[take], weights[take] = full[take], w[take]
    return targets, weights


def _two_bone_ik(
    hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray, goal: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """New knee and ankle ``(T, 3)`` reaching ``goal`` from ``hip`` with the thigh and shin
    lengths of ``hip``-``knee``-``ankle``, the knee in the plane of the old one (as near as the
    bone lengths allow when the goal is out of reach)."""
    l1 = np.linalg.norm(knee - hip, axis=-1)
    l2 = np.linalg.norm(ankle - knee, axis=-1)
    d_vec = goal - hip
    d = np.linalg.norm(d_vec, axis=-1)
    u = d_vec / np.maximum(d, 1e-9)[:, None]
    d = np.clip(d, np.abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6)
    a = (l1**2 - l2**2 + d**2) / (2 * d)
    h = np.sqrt(np.maximum(l1**2 - a**2, 0.0))
    pole = knee - hip
    v = pole - np.sum(pole * u, -1, keepdims=True) * u
    n = np.linalg.norm(v, axis=-1)
    # a straight leg has no bend plane: any perpendicular will do (h is ~0 there anyway)
    fallback = np.cross(u, np.array([1.0, 0.0, 0.0]))
    v = np.where((n > 1e-6)[:, None], v / np.maximum(n, 1e-9)[:, None], fallback)
    new_knee = hip + a[:, None] * u + h[:, None] * v
    new_ankle = hip + d[:, None] * u  # |new_ankle - new_knee| = l2 by construction
    return new_knee, new_ankle


def foot_lock(
    joints: np.ndarray,
    contacts: np.ndarray,
    cfg: FootLockConfig | None = None,
) -> np.ndarray:
    """Lock the feet of ``joints (T, 22, 3)`` (metres, Y up) on ``contacts (T, 4)`` (bool:
    left ankle, left toe, right ankle, right toe) -> ``(T, 22, 3)``. Only knees, ankles and
    toes move; bone lengths are kept."""
    cfg = cfg or FootLockConfig()
    out = np.array(joints, dtype=np.float64, copy=True)
    if out.ndim != 3 or out.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must be (T, {NUM_JOINTS}, 3), got {out.shape}")
    contacts = np.asarray(contacts, bool)
    if contacts.shape != (len(out), 4):
        raise ValueError(f"contacts must be ({len(out)}, 4), got {contacts.shape}")
    for (hip, knee, ankle, toe), (ca, ct) in zip(LEGS, _CONTACT_CHANNELS, strict=True):
        low = [out[:, j, 1] - out[:, j, 1].min() < cfg.height for j in (ankle, toe)]
        ankle_goal, wa = lock_targets(out[:, ankle], contacts[:, ca], low[0], cfg)
        toe_goal, wt = lock_targets(out[:, toe], contacts[:, ct], low[1], cfg)
        if not (wa.any() or wt.any()):
            continue
        foot = out[:, toe] - out[:, ankle]
        foot_len = np.linalg.norm(foot, axis=-1)
        # the ankle goes to its pin; with only the toe pinned, the foot moves with the toe
        goal = out[:, ankle] + wa[:, None] * (ankle_goal - out[:, ankle])
        goal += (wt * (1 - wa))[:, None] * (toe_goal - foot - goal)
        frames = np.flatnonzero(np.maximum(wa, wt) > 0)
        new_knee, new_ankle = _two_bone_ik(
            out[frames, hip], out[frames, knee], out[frames, ankle], goal[frames]
        )
        toe_want = new_ankle + foot[frames]
        toe_want += wt[frames, None] * (toe_goal[frames] - toe_want)
        d = toe_want - new_ankle
        d *= (foot_len[frames] / np.maximum(np.linalg.norm(d, axis=-1), 1e-9))[:, None]
        out[frames, knee], out[frames, ankle], out[frames, toe] = new_knee, new_ankle, new_ankle + d
    return out


def foot_speed_on_floor(joints: np.ndarray, contacts: np.ndarray, fps: float = 20.0) -> float:
    """Mean horizontal speed (m/s) of the foot joints on their contact frames (a quick check of
    a lock; the benchmark metric is ``mosa.eval.foot_skating``)."""
    feet = np.asarray(joints)[:, [7, 10, 8, 11]]
    v = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1) * fps
    on = np.asarray(contacts, bool)[:-1] & np.asarray(contacts, bool)[1:]
    return float(v[on].mean()) if on.any() else 0.0
