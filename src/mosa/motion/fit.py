"""One skeleton per motion: fit constant bone lengths to a 22-joint motion and pose it by FK.

Generated joints (and joints decoded from features) are positions per frame: their bone lengths
drift from frame to frame, which a BVH skeleton cannot do. ``fit_motion`` fits one skeleton
(``bvh.rest_offsets``: median bone lengths, the hips' and shoulders' mean geometry), solves
each frame's local rotations from the bone directions (``bvh.solve_rotations``: the best-fit
rotation over the child bones at the pelvis and spine3, whose three children fix the twist; the
shortest swing from the rest bone elsewhere) and poses the skeleton by forward kinematics. The
``.npy`` and the BVH of a motion are then the same positions: ``skeleton_bvh`` of fitted
joints finds the same skeleton and the same rotations again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mosa.errors import MosaError
from mosa.motion.bvh import rest_offsets, solve_rotations
from mosa.motion.skeleton import NUM_JOINTS, PARENTS


@dataclass
class FittedMotion:
    """A motion on one skeleton: ``offsets (22, 3)`` rest offsets from each parent (metres;
    entry 0 the rest pelvis height), ``rotations (T, 22, 3, 3)`` local rotations, ``root
    (T, 3)`` pelvis positions and ``joints (T, 22, 3)`` their forward kinematics."""

    offsets: np.ndarray
    rotations: np.ndarray
    root: np.ndarray
    joints: np.ndarray

    def bone_lengths(self) -> np.ndarray:
        """``(21,)`` lengths of the bones to joints 1..21 (constant over the motion)."""
        return np.linalg.norm(self.offsets[1:], axis=-1)


def forward_kinematics(offsets: np.ndarray, rotations: np.ndarray, root: np.ndarray) -> np.ndarray:
    """Joint positions ``(T, 22, 3)`` of the ``offsets (22, 3)`` skeleton posed by local
    ``rotations (T, 22, 3, 3)`` with the pelvis at ``root (T, 3)``."""
    T = rotations.shape[0]
    glob = np.empty((T, NUM_JOINTS, 3, 3))
    pos = np.empty((T, NUM_JOINTS, 3))
    glob[:, 0], pos[:, 0] = rotations[:, 0], root
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        glob[:, j] = glob[:, p] @ rotations[:, j]
        pos[:, j] = pos[:, p] + glob[:, p] @ offsets[j]
    return pos


def fit_motion(joints: np.ndarray) -> FittedMotion:
    """Fit one skeleton to ``joints (T, 22, 3)`` (metres, Y up) and pose it like the motion.

    The fitted joints keep every bone's direction where the bone has one child (legs, arms,
    neck, head, feet), the best fit of the hips/shoulders where it has several, the pelvis
    path exactly, and each bone's median length in every frame."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise MosaError(
            f"fit_motion needs joints of shape (T, {NUM_JOINTS}, 3), got {joints.shape}",
            "pass the 22 SMPL joints in metres, Y up",
        )
    if not np.isfinite(joints).all():
        raise MosaError("fit_motion: the joints contain nan or inf", "check the motion")
    offsets = rest_offsets(joints)
    rotations = solve_rotations(joints, offsets)
    root = joints[:, 0].copy()
    return FittedMotion(offsets, rotations, root, forward_kinematics(offsets, rotations, root))


def fitted_joints(joints: np.ndarray) -> np.ndarray:
    """``(T, 22, 3)`` float32: ``joints`` on one fitted skeleton (``fit_motion``)."""
    return fit_motion(joints).joints.astype(np.float32)


def bone_length_spread(joints: np.ndarray) -> float:
    """Largest range (max - min over frames, metres) of any bone's length in ``joints
    (T, 22, 3)``: 0 for a motion on one skeleton."""
    joints = np.asarray(joints, dtype=np.float64)
    bones = np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS[1:])], axis=-1)
    return float((bones.max(axis=0) - bones.min(axis=0)).max())
