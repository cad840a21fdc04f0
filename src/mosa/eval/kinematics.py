"""Kinematic figures of a motion, for checks that need no learned evaluator: does a motion
asked to walk backward move backward, does a bow lower the head, which wrist is raised.

``describe(joints)`` returns the figures; the docs' example scripts put rules on them
(scripts/make_examples.py, scripts/make_edit_examples.py). ``Tracks(joints)`` holds per-frame
signals (heights above the floor, facing angle, body-frame joints) for the action rules of
``mosa.eval.actions``.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.ndimage import gaussian_filter1d

from mosa.errors import MosaError
from mosa.motion.features import facing_direction
from mosa.motion.skeleton import FOOT_LEFT, FOOT_RIGHT, JOINT_NAMES

HEAD, L_WRIST, R_WRIST = (JOINT_NAMES.index(n) for n in ("head", "left_wrist", "right_wrist"))


def describe(joints: np.ndarray, fps: float = 20.0) -> dict[str, float]:
    """Kinematic figures of joints ``(T, 22, 3)`` (metres, Y-up), T >= 2.

    forward: root displacement along the first frame's facing (negative: backward);
    turn: signed change of facing in degrees (positive: to the left, counter-clockwise seen
    from above); speed: mean root speed on the floor; wrist_*: highest wrist above the head;
    head_drop: standing head height minus the lowest head height (a bow or crouch);
    foot_lift: highest foot above its lowest point (a kick or step).
    """
    root = joints[:, 0, [0, 2]]
    face = facing_direction(joints)
    step = np.linalg.norm(np.diff(root, axis=0), axis=-1)
    a0, a1 = np.arctan2(face[0, 1], face[0, 0]), np.arctan2(face[-1, 1], face[-1, 0])
    turn = -np.degrees((a1 - a0 + np.pi) % (2 * np.pi) - np.pi)  # x-z plane: flip for CCW
    head = joints[:, HEAD, 1]
    feet = joints[:, list(FOOT_LEFT + FOOT_RIGHT), 1]
    return {
        "travel_m": float(np.linalg.norm(root[-1] - root[0])),
        "forward_m": float((root[-1] - root[0]) @ face[0]),
        "turn_deg": float(turn),
        "speed_mps": float(step.mean() * fps),
        "wrist_l_above_head_m": float((joints[:, L_WRIST, 1] - head).max()),
        "wrist_r_above_head_m": float((joints[:, R_WRIST, 1] - head).max()),
        "head_drop_m": float(np.percentile(head, 90) - head.min()),
        "foot_lift_m": float((feet - feet.min(axis=0)).max()),
    }


# --- per-frame signals, for the action rules (mosa.eval.actions) ---------------------------

PELVIS, NECK, SPINE3 = (JOINT_NAMES.index(n) for n in ("pelvis", "neck", "spine3"))
L_SHOULDER, R_SHOULDER = JOINT_NAMES.index("left_shoulder"), JOINT_NAMES.index("right_shoulder")
L_ELBOW, R_ELBOW = JOINT_NAMES.index("left_elbow"), JOINT_NAMES.index("right_elbow")
L_HIP, R_HIP = JOINT_NAMES.index("left_hip"), JOINT_NAMES.index("right_hip")
L_KNEE, R_KNEE = JOINT_NAMES.index("left_knee"), JOINT_NAMES.index("right_knee")
_FACING_SMOOTH = 2.0  # frames of Gaussian smoothing of the facing angle (hips are jittery)


class Tracks:
    """Per-frame signals of joints ``(T, 22, 3)`` (metres, Y-up) at ``fps``, computed on first
    use. Heights are above the floor, estimated as the 2nd percentile of the lowest joint."""

    def __init__(self, joints: np.ndarray, fps: float = 20.0):
        joints = np.asarray(joints, dtype=np.float64)
        if joints.ndim != 3 or joints.shape[1:] != (len(JOINT_NAMES), 3) or len(joints) < 2:
            raise MosaError(
                f"expected joints of shape (T >= 2, {len(JOINT_NAMES)}, 3), got {joints.shape}",
                "pass the 22 SMPL body joints (HumanML3D order) in metres, Y up",
            )
        self.fps = float(fps)
        self.floor = float(np.percentile(joints[:, :, 1].min(axis=1), 2))
        self.joints = joints - np.array([0.0, self.floor, 0.0])  # floor at y = 0

    def __len__(self) -> int:
        return len(self.joints)

    def height(self, joint: int) -> np.ndarray:
        """(T,) height of a joint above the floor."""
        return self.joints[:, joint, 1]

    @functools.cached_property
    def yaw(self) -> np.ndarray:
        """(T,) facing angle in radians, unwrapped, counter-clockwise seen from above."""
        face = facing_direction(self.joints)
        angle = -np.unwrap(np.arctan2(face[:, 1], face[:, 0]))
        return gaussian_filter1d(angle, _FACING_SMOOTH, mode="nearest")

    @functools.cached_property
    def facing(self) -> np.ndarray:
        """(T, 2) unit forward direction on the floor (x, z), from the smoothed ``yaw``."""
        a = -self.yaw
        return np.stack([np.cos(a), np.sin(a)], axis=-1)

    @functools.cached_property
    def root_velocity(self) -> np.ndarray:
        """(T - 1, 2) root velocity on the floor in the body frame: (forward, to the left), m/s."""
        step = np.diff(self.joints[:, PELVIS, [0, 2]], axis=0) * self.fps
        face = 0.5 * (self.facing[1:] + self.facing[:-1])
        left = np.stack([face[:, 1], -face[:, 0]], axis=-1)  # up x forward
        return np.stack([(step * face).sum(-1), (step * left).sum(-1)], axis=-1)

    @functools.cached_property
    def local(self) -> np.ndarray:
        """(T, 22, 3) joints in the body frame: pelvis over the origin, +Z forward, +X left,
        Y the height above the floor."""
        rel = self.joints - self.joints[:, PELVIS : PELVIS + 1] * np.array([1.0, 0.0, 1.0])
        f = self.facing[:, None, :]
        x = rel[..., 0] * f[..., 1] - rel[..., 2] * f[..., 0]
        z = rel[..., 0] * f[..., 0] + rel[..., 2] * f[..., 1]
        return np.stack([x, rel[..., 1], z], axis=-1)

    @functools.cached_property
    def feet(self) -> np.ndarray:
        """(T, 2) height of the lowest joint of each foot (left, right)."""
        y = self.joints[..., 1]
        return np.stack([y[:, list(FOOT_LEFT)].min(1), y[:, list(FOOT_RIGHT)].min(1)], axis=-1)

    @functools.cached_property
    def torso_up(self) -> np.ndarray:
        """(T, 3) unit direction pelvis -> neck (upright: y near 1; upside down: y < 0)."""
        v = self.joints[:, NECK] - self.joints[:, PELVIS]
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-8)

    def speed(self, joint: int, relative_to: int | None = None) -> np.ndarray:
        """(T - 1,) speed of a joint in m/s (relative to another joint when given)."""
        p = self.joints[:, joint]
        if relative_to is not None:
            p = p - self.joints[:, relative_to]
        return np.linalg.norm(np.diff(p, axis=0), axis=-1) * self.fps

    def seconds(self, frames: float) -> float:
        return frames / self.fps


def longest_run(mask: np.ndarray) -> int:
    """Length of the longest run of True in a 1-D bool array."""
    best = run = 0
    for m in np.asarray(mask, dtype=bool):
        run = run + 1 if m else 0
        best = max(best, run)
    return best


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a 1-D bool array, in order."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    starts, ends = np.flatnonzero(~m[:-1] & m[1:]), np.flatnonzero(m[:-1] & ~m[1:])
    return ends - starts


def count_runs(mask: np.ndarray, min_length: int = 1) -> int:
    """Number of runs of True at least ``min_length`` long."""
    return int((run_lengths(mask) >= min_length).sum())


def swings(signal: np.ndarray, amplitude: float) -> int:
    """Number of monotone legs of a 1-D signal that each move at least ``amplitude``
    (a zigzag with hysteresis: jitter under ``amplitude`` does not count). A wave of the hand
    left-right-left is 3 swings; a signal that only rises is 1."""
    x = np.asarray(signal, dtype=np.float64)
    if len(x) == 0:
        return 0
    count, direction, lo, hi, extreme = 0, 0, x[0], x[0], x[0]
    for v in x[1:]:
        if direction == 0:
            lo, hi = min(lo, v), max(hi, v)
            if v - lo >= amplitude or hi - v >= amplitude:
                count, direction, extreme = 1, (1 if v - lo >= amplitude else -1), v
        elif direction * (v - extreme) > 0:
            extreme = v  # the leg goes on
        elif direction * (extreme - v) >= amplitude:
            count, direction, extreme = count + 1, -direction, v  # a new leg
    return count
