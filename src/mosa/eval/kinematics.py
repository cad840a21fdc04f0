"""Kinematic figures of a motion, for checks that need no learned evaluator: does a motion
asked to walk backward move backward, does a bow lower the head, which wrist is raised.

``describe(joints)`` returns the figures; the docs' example scripts put rules on them
(scripts/make_examples.py, scripts/make_edit_examples.py).
"""

from __future__ import annotations

import numpy as np

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
