"""HumanML3D's 263-d motion features: joint positions -> features and back.

Per frame t (T - 1 frames from T joint frames, 20 fps, metres, Y up):

    [0]        root angular velocity about Y (half-angle, radians/frame)
    [1:3]      root linear velocity on XZ, in the root's facing frame
    [3]        root height
    [4:67]     joints 1..21 relative to the root, XZ-centred and rotated to face +Z (ric)
    [67:193]   local rotations of joints 1..21 as continuous 6D
    [193:259]  velocities of the 22 joints in the root's facing frame
    [259:263]  foot contacts: left ankle, left foot, right ankle, right foot

``extract_features`` follows HumanML3D's ``process_file`` step by step (uniform skeleton, floor,
origin, face +Z, contacts, inverse kinematics, root velocities) including its quirks, so that
features of motions we import live in the same space as the released data.
``recover_joints`` is HumanML3D's ``recover_from_ric``.

Known HumanML3D quirk, kept for compatibility: the angular velocity is the arcsin of the
Y component of a per-frame quaternion whose sign is not fixed, so on the frame where the
smoothed facing crosses -Z (a 180 degree turn from the start) it has the wrong sign, and
recovered trajectories are rotated by that error from then on (see the released clip 000612,
frame 142).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from mosa.errors import MosaError
from mosa.motion.quaternion import qbetween, qinv, qmul, qrot, quat_to_cont6d
from mosa.motion.skeleton import (
    FACE_JOINTS,
    FEATURE_DIM,
    FOOT_LEFT,
    FOOT_RIGHT,
    JOINT_NAMES,
    KINEMATIC_CHAINS,
    LEG_BONES,
    MIRROR_INDEX,
    NUM_JOINTS,
    PARENTS,
    RAW_OFFSETS,
    TARGET_OFFSETS,
)

_PARENTS = np.array(PARENTS)
assert all(p < j for j, p in enumerate(PARENTS)), "joints must come after their parents"
# HumanML3D's IK measures every chain's first bone against the root rotation, also for the arm
# chains that start at spine3: those joints (13, 14) get the root as their "parent" rotation.
_IK_PARENTS = _PARENTS.copy()
for _chain in KINEMATIC_CHAINS:
    _IK_PARENTS[_chain[1]] = 0
_UP = np.array([0.0, 1.0, 0.0])
_FORWARD = np.array([0.0, 0.0, 1.0])
# Gaussian width (frames) HumanML3D uses to smooth the facing direction before it becomes the
# root rotation of the features.
_FACING_SIGMA = 20.0


def _as_joints(joints: np.ndarray, min_frames: int = 1) -> np.ndarray:
    """Validate (T, 22, 3) joint positions and return them as float64."""
    arr = np.asarray(joints)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3):
        raise MosaError(
            f"expected joint positions of shape (T, {NUM_JOINTS}, 3), got {arr.shape}",
            "pass the 22 SMPL body joints (HumanML3D order) in metres, Y up",
        )
    if arr.shape[0] < min_frames:
        raise MosaError(
            f"motion has {arr.shape[0]} frame(s), at least {min_frames} are needed",
            "use a longer clip",
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise MosaError("joint positions contain NaN or infinite values", "clean the input motion")
    return arr


# ----------------------------------------------------------------------------------------------
# Skeleton helpers


def _bone_rotations(joints: np.ndarray) -> np.ndarray:
    """Global rotation taking each rest bone direction onto the posed one.

    joints (T, 22, 3) -> (T, 21, 4) for joints 1..21 (the bone from each joint's parent).
    """
    bones = joints[:, 1:] - joints[:, _PARENTS[1:]]
    length = np.linalg.norm(bones, axis=-1, keepdims=True)
    if (length < 1e-9).any():
        t, j = np.argwhere(length[..., 0] < 1e-9)[0]
        raise MosaError(
            f"joint {JOINT_NAMES[j + 1]} sits on its parent at frame {t} (zero-length bone)",
            "check the joint mapping of the input motion",
        )
    return qbetween(RAW_OFFSETS[1:], bones / length)


def _place_bones(root: np.ndarray, bones: np.ndarray) -> np.ndarray:
    """Chain bone vectors from the root: root (T, 3), bones (T, 21, 3) -> joints (T, 22, 3)."""
    out = np.empty((root.shape[0], NUM_JOINTS, 3))
    out[:, 0] = root
    for j in range(1, NUM_JOINTS):
        out[:, j] = out[:, _PARENTS[j]] + bones[:, j - 1]
    return out


def uniform_skeleton(joints: np.ndarray, target_offsets: np.ndarray = TARGET_OFFSETS) -> np.ndarray:
    """Retarget a motion onto the target bone lengths, as HumanML3D's uniform_skeleton.

    joints (T, 22, 3) -> (T, 22, 3). The root path is scaled by the ratio of right-leg lengths
    (first frame); every bone keeps its direction and takes the target length. This is
    HumanML3D's IK on the source followed by FK with ``target_offsets``: the local rotations of
    a chain telescope, so each bone ends up rotated by the shortest arc from its rest direction
    to its posed direction.
    """
    joints = _as_joints(joints)
    target_offsets = np.asarray(target_offsets, dtype=np.float64)
    src_leg = np.linalg.norm(joints[0, LEG_BONES] - joints[0, _PARENTS[list(LEG_BONES)]], axis=-1)
    tgt_leg = np.abs(target_offsets[list(LEG_BONES)]).max(-1)
    if not src_leg.sum() > 1e-6:  # also NaN
        raise MosaError(
            "the motion's first frame has legs of no length (hip, knee and ankle at one point)",
            "pass joints (T, 22, 3) in metres in SMPL joint order",
        )
    scale = tgt_leg.sum() / src_leg.sum()
    bones = qrot(_bone_rotations(joints), target_offsets[1:])
    return _place_bones(joints[:, 0] * scale, bones)


def mirror_joints(joints: np.ndarray) -> np.ndarray:
    """Mirror a motion left/right: (..., 22, 3) -> (..., 22, 3).

    Negates X and swaps left and right joints, as HumanML3D builds its mirrored "M" clips.
    """
    out = np.array(joints, copy=True)[..., list(MIRROR_INDEX), :]
    out[..., 0] *= -1
    return out


# ----------------------------------------------------------------------------------------------
# Extraction


def _facing_across(joints: np.ndarray, hip_sign: float) -> np.ndarray:
    """Unit left-to-right body axis from hips and shoulders: (..., 22, 3) -> (..., 3).

    across = hip_sign * (r_hip - l_hip) + (r_shoulder - l_shoulder); forward = up x across.
    """
    r_hip, l_hip, r_sdr, l_sdr = FACE_JOINTS
    across = hip_sign * (joints[..., r_hip, :] - joints[..., l_hip, :])
    across = across + joints[..., r_sdr, :] - joints[..., l_sdr, :]
    return across / np.linalg.norm(across, axis=-1, keepdims=True)


def facing_direction(joints: np.ndarray) -> np.ndarray:
    """Unit forward direction on the floor, ``(x, z)``: joints ``(..., 22, 3)`` -> ``(..., 2)``
    (forward = up x across, from hips and shoulders)."""
    across = _facing_across(joints, hip_sign=1.0)
    forward = np.stack([across[..., 2], -across[..., 0]], axis=-1)
    return forward / np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-8)


def _root_rotation(joints: np.ndarray) -> np.ndarray:
    """Per-frame root rotation turning the smoothed facing direction to +Z: (T, 22, 3) -> (T, 4).

    Reproduces HumanML3D's Skeleton.inverse_kinematics_np(smooth_forward=True) as used for the
    released data: it unpacks FACE_JOINTS as (l_hip, r_hip, ...), so the hip term enters with
    the opposite sign (the shoulders are wider, so the direction stays forward); the
    unnormalised forward vectors are Gaussian-smoothed over time; and frame 0 is set to the
    identity (the released features start with a large angular velocity because of it).
    """
    forward = np.cross(_UP, _facing_across(joints, hip_sign=-1.0))
    forward = gaussian_filter1d(forward, _FACING_SIGMA, axis=0, mode="nearest")
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    rot = qbetween(forward, _FORWARD)
    rot[0] = (1.0, 0.0, 0.0, 0.0)
    return rot


def local_rotations(joints: np.ndarray, root_rot: np.ndarray) -> np.ndarray:
    """HumanML3D's IK: local rotations of joints 1..21, (T, 22, 3), (T, 4) -> (T, 21, 4).

    Each bone's global rotation is the shortest arc from its rest direction; its local rotation
    is relative to the parent bone's global rotation (the root's for a chain's first bone).
    """
    glob = np.concatenate([root_rot[:, None], _bone_rotations(joints)], axis=1)
    return qmul(qinv(glob[:, _IK_PARENTS[1:]]), glob[:, 1:])


def foot_contacts(joints: np.ndarray, threshold: float = 0.002) -> np.ndarray:
    """HumanML3D foot contacts: (T, 22, 3) -> (T - 1, 4) float32 in {0, 1}.

    A foot joint (left ankle, left foot, right ankle, right foot) is in contact at frame t when
    its squared displacement from t to t + 1, in m^2 per frame at 20 fps, is below
    ``threshold`` (HumanML3D's velocity factor; 0.002 means moving less than ~4.5 cm a frame).
    """
    feet = joints[:, list(FOOT_LEFT + FOOT_RIGHT)]
    step = ((feet[1:] - feet[:-1]) ** 2).sum(-1)
    return (step < threshold).astype(np.float32)


def _canonicalise(joints: np.ndarray) -> np.ndarray:
    """Floor at y = 0, first root over the origin, first frame facing +Z: (T,22,3) -> (T,22,3)."""
    pos = joints.copy()
    pos[..., 1] -= pos[..., 1].min()
    pos -= pos[0, 0] * np.array([1.0, 0.0, 1.0])
    forward = np.cross(_UP, _facing_across(pos[0], hip_sign=1.0))
    return qrot(qbetween(forward, _FORWARD), pos)


def extract_features(
    joints: np.ndarray,
    feet_threshold: float = 0.002,
    *,
    target_offsets: np.ndarray = TARGET_OFFSETS,
) -> np.ndarray:
    """HumanML3D features of a motion: joints (T, 22, 3) metres, Y up, 20 fps -> (T - 1, 263).

    Returns float32. The motion is first retargeted to ``target_offsets`` (HumanML3D's skeleton
    by default; keep it for anything compared with HumanML3D data), put on the floor, moved to
    the origin and turned to face +Z, so the result does not depend on where the clip was
    recorded or on the performer's size.
    """
    joints = _as_joints(joints, min_frames=2)
    pos = _canonicalise(uniform_skeleton(joints, target_offsets))
    contacts = foot_contacts(pos, feet_threshold)

    root_rot = _root_rotation(pos)  # (T, 4)
    rot6d = quat_to_cont6d(local_rotations(pos, root_rot))  # (T, 21, 6)

    # Root velocities: linear in the next frame's facing frame, angular as a half-angle.
    root_vel = qrot(root_rot[1:], pos[1:, 0] - pos[:-1, 0])
    ang_vel = np.arcsin(qmul(root_rot[1:], qinv(root_rot[:-1]))[:, 2])

    # Rotation-invariant positions: XZ relative to the root, turned to face +Z.
    ric = pos - pos[:, :1] * np.array([1.0, 0.0, 1.0])
    ric = qrot(root_rot[:, None], ric)

    local_vel = qrot(root_rot[:-1, None], pos[1:] - pos[:-1])

    n = len(pos) - 1
    parts = [
        ang_vel[:, None],
        root_vel[:, [0, 2]],
        pos[:-1, 0, 1:2],
        ric[:-1, 1:].reshape(n, -1),
        rot6d[:-1].reshape(n, -1),
        local_vel.reshape(n, -1),
        contacts,
    ]
    features = np.concatenate(parts, axis=-1)
    if not np.isfinite(features).all():
        raise MosaError(
            "could not find the facing direction: hips and shoulders are degenerate",
            "check that the input has distinct left/right hips and shoulders, in metres, Y up",
        )
    return features.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Recovery


Features = np.ndarray | torch.Tensor


def _as_tensor(features: Features) -> tuple[torch.Tensor, bool]:
    """Accept numpy or torch (..., T, 263); return a float tensor and whether it was numpy."""
    is_numpy = not isinstance(features, torch.Tensor)
    x = torch.from_numpy(np.ascontiguousarray(features)) if is_numpy else features
    if x.ndim < 2 or x.shape[-1] != FEATURE_DIM:
        raise MosaError(
            f"expected motion features of shape (..., T, {FEATURE_DIM}), got {tuple(x.shape)}",
            "pass HumanML3D 263-d features (de-normalised), frames on the second-to-last axis",
        )
    if not x.is_floating_point():
        x = x.float()
    return x, is_numpy


def _rotate_y(v: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate vectors (..., 3) about +Y by ``angle`` (...) radians (right-handed)."""
    c, s = angle.cos(), angle.sin()
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return torch.stack([c * x + s * z, y, c * z - s * x], dim=-1)


def _root_angle_and_position(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., T, 263) -> root facing angle (..., T) about Y and root position (..., T, 3).

    The facing angle is the rotation taking the world into the root frame (HumanML3D's r_rot);
    frame 0 is taken as facing +Z and later frames integrate the angular velocity.
    """
    half = torch.cumsum(torch.cat([torch.zeros_like(x[..., :1, 0]), x[..., :-1, 0]], -1), -1)
    angle = 2 * half
    zero = torch.zeros_like(x[..., :-1, 0])
    step = torch.stack([x[..., :-1, 1], zero, x[..., :-1, 2]], dim=-1)  # (..., T-1, 3)
    step = _rotate_y(step, -angle[..., 1:])  # back from the root frame into the world
    origin = torch.zeros_like(x[..., :1, :3])  # (..., 1, 3) also for a single frame
    xz = torch.cumsum(torch.cat([origin, step], dim=-2), dim=-2)
    root = torch.stack([xz[..., 0], x[..., 3], xz[..., 2]], dim=-1)
    return angle, root


def recover_root(features: Features) -> tuple[Features, Features]:
    """Root rotation and position from features (..., T, 263), numpy or torch.

    Returns ``(rotation (..., T, 4), position (..., T, 3))`` with the input's type; the rotation
    is the quaternion ``(cos a, 0, sin a, 0)`` taking world directions into the root frame, as
    HumanML3D's recover_root_rot_pos.
    """
    x, is_numpy = _as_tensor(features)
    angle, root = _root_angle_and_position(x)
    half = angle / 2
    zero = torch.zeros_like(half)
    quat = torch.stack([half.cos(), zero, half.sin(), zero], dim=-1)
    return (quat.numpy(), root.numpy()) if is_numpy else (quat, root)


def local_joints(features: np.ndarray) -> np.ndarray:
    """Joints in each frame's root frame: features ``(T, 263)`` -> ``(T, 22, 3)``, the root at
    ``(0, height, 0)`` and the others from the rotation-invariant positions (no trajectory)."""
    root = np.zeros((len(features), 1, 3), features.dtype)
    root[:, 0, 1] = features[:, 3]
    ric = features[:, 4 : 4 + (NUM_JOINTS - 1) * 3].reshape(len(features), NUM_JOINTS - 1, 3)
    return np.concatenate([root, ric], axis=1)


def recover_joints(features: Features) -> Features:
    """Global joint positions from features, HumanML3D's recover_from_ric.

    features (..., T, 263) numpy or torch -> (..., T, 22, 3) of the same type and dtype.
    Uses the root channels and the rotation-invariant positions only; differentiable in torch.
    """
    x, is_numpy = _as_tensor(features)
    angle, root = _root_angle_and_position(x)
    ric = x[..., 4 : 4 + (NUM_JOINTS - 1) * 3].reshape(*x.shape[:-1], NUM_JOINTS - 1, 3)
    joints = _rotate_y(ric, -angle[..., None])
    offset = torch.stack([root[..., 0], torch.zeros_like(root[..., 0]), root[..., 2]], dim=-1)
    joints = torch.cat([root[..., None, :], joints + offset[..., None, :]], dim=-2)
    return joints.numpy() if is_numpy else joints
