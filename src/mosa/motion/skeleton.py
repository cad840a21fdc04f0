"""The 22-joint SMPL body topology used by HumanML3D, and the 263-d feature layout.

Joint order, kinematic chains and the unit rest directions (``RAW_OFFSETS``) follow HumanML3D's
``paramUtil`` (t2m). Y is up, +Z is forward, +X is the body's left.
"""

from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip
NUM_JOINTS = len(JOINT_NAMES)
FPS = 20.0

# Chains from the pelvis (legs, spine) and from spine3 (arms), as in HumanML3D.
KINEMATIC_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),
    (0, 1, 4, 7, 10),
    (0, 3, 6, 9, 12, 15),
    (9, 14, 17, 19, 21),
    (9, 13, 16, 18, 20),
)

PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
)  # fmt: skip

# Unit direction of each bone (parent -> joint) in the rest pose.
RAW_OFFSETS = np.array(
    [
        [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0],
        [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0],
        [-1, 0, 0], [0, 0, 1], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
        [0, -1, 0],
    ],
    dtype=np.float32,
)  # fmt: skip

# Left/right swap: MIRROR_INDEX[j] is the joint that j becomes when the body is mirrored.
_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21))
MIRROR_INDEX: tuple[int, ...] = tuple(
    next((b if j == a else a for a, b in _PAIRS if j in (a, b)), j) for j in range(NUM_JOINTS)
)

FOOT_LEFT = (7, 10)  # left ankle, left foot
FOOT_RIGHT = (8, 11)
# right hip, left hip, right shoulder, left shoulder: they define the facing direction
FACE_JOINTS = (2, 1, 17, 16)

# 263-d HumanML3D feature layout: (start, stop) per part.
FEATURE_DIM = 263
ROOT_SLICE = slice(0, 4)  # angular velocity about Y, linear velocity XZ, root height
RIC_SLICE = slice(4, 4 + (NUM_JOINTS - 1) * 3)  # 21 root-relative joint positions
ROT_SLICE = slice(RIC_SLICE.stop, RIC_SLICE.stop + (NUM_JOINTS - 1) * 6)  # 21 x 6D rotations
VEL_SLICE = slice(ROT_SLICE.stop, ROT_SLICE.stop + NUM_JOINTS * 3)  # 22 local velocities
CONTACT_SLICE = slice(VEL_SLICE.stop, VEL_SLICE.stop + 4)  # 4 foot contacts
assert CONTACT_SLICE.stop == FEATURE_DIM

# HumanML3D's target skeleton: every clip is retargeted to these bone lengths (their reference
# subject 000021). Bone length of joint j = |joint j - parent j| in metres, measured on the
# released humanml3d-sample/012314_new_joints.npy (already uniformed to this skeleton: the
# lengths agree over its 170 frames within 2e-6 m) and averaged over frames. Entry 0 is the root.
BONE_LENGTHS = np.array(
    [
        0.0, 0.1030740, 0.1098834, 0.1315682, 0.3936232, 0.3901882, 0.1431902, 0.4324330,
        0.4256434, 0.0573647, 0.1433818, 0.1494191, 0.2193600, 0.1374868, 0.1433828,
        0.1030392, 0.1316140, 0.1229844, 0.2568399, 0.2630919, 0.2660118, 0.2698763,
    ],
    dtype=np.float32,
)  # fmt: skip
# (22, 3) rest-pose offset of each joint from its parent, as HumanML3D's get_offsets_joints.
TARGET_OFFSETS = RAW_OFFSETS * BONE_LENGTHS[:, None]
# uniform_skeleton scales the root trajectory by the ratio of right-leg lengths, the sum of these
# two bones: right thigh (hip -> knee, joint 5) and right shin (knee -> ankle, joint 8).
LEG_BONES = (5, 8)
