"""mosa.eval.kinematics.describe on motions built so the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from mosa.eval import kinematics as K
from mosa.motion.features import facing_direction


def _yaw(points: np.ndarray, deg: float) -> np.ndarray:
    """Rotate ``(..., 3)`` about +Y by ``deg`` (right-handed: +Z turns towards +X)."""
    a = np.radians(deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return points @ rot.T


def test_joint_indices_are_the_named_joints():
    assert (K.HEAD, K.L_WRIST, K.R_WRIST) == (15, 20, 21)


def test_describe_walk_back_and_turn(hml_sample):
    pose = np.load(hml_sample / "012314_new_joints.npy")[0]
    pose = pose - pose[0] * [1, 0, 1]  # root over the origin
    face = facing_direction(pose[None])[0]
    T = 41
    # 3 m straight backwards, no turn
    back = pose[None] - np.linspace(0, 3, T)[:, None, None] * [face[0], 0, face[1]]
    d = K.describe(back, fps=20)
    assert d["forward_m"] == pytest.approx(-3.0, abs=1e-6)
    assert d["travel_m"] == pytest.approx(3.0, abs=1e-6)
    assert d["speed_mps"] == pytest.approx(3.0 / 2.0, rel=1e-6)  # 3 m in 40 frames at 20 fps
    assert d["turn_deg"] == pytest.approx(0.0, abs=1e-6)
    # turning on the spot to the person's left (towards +X when facing +Z) by 90 degrees
    left = np.stack([_yaw(pose, 90 * t / (T - 1) * np.sign(face[1] or 1)) for t in range(T)])
    assert K.describe(left)["turn_deg"] == pytest.approx(90.0, abs=1e-3)


def test_describe_arms_bow_and_feet(hml_sample):
    pose = np.load(hml_sample / "012314_new_joints.npy")[:1].repeat(10, axis=0)
    up = pose.copy()
    up[5, K.L_WRIST, 1] = pose[5, K.HEAD, 1] + 0.3  # left wrist 30 cm over the head
    up[7, K.HEAD, 1] -= 0.25  # head dips 25 cm for one frame
    up[3, 10, 1] += 0.4  # left foot lifted 40 cm for one frame
    d = K.describe(up)
    assert d["wrist_l_above_head_m"] == pytest.approx(0.3, abs=1e-6)
    r = pose[0, K.R_WRIST, 1] - pose[0, K.HEAD, 1] + 0.25  # highest while the head dips
    assert d["wrist_r_above_head_m"] == pytest.approx(r, abs=1e-6)
    assert d["head_drop_m"] == pytest.approx(0.25, abs=1e-6)
    assert d["foot_lift_m"] == pytest.approx(0.4, abs=1e-6)
    assert d["travel_m"] == 0.0 and d["speed_mps"] == 0.0
