"""Read DeepMimic motion clips (``humanoid3d_*.txt``) as (T, 22, 3) SMPL joints: ``load_deepmimic``.

A clip is JSON: ``{"Loop": "wrap" | "none", "Frames": [[dt, ...], ...]}``. Each row holds the
duration of that frame (``dt``, seconds until the next row; the last row's is 0), then the
root's world position (metres) and rotation, then every other joint of the character in
joint order: a quaternion ``(w, x, y, z)`` for a spherical joint, one angle (radians) for a
revolute joint (DeepMimic rotates those about the joint frame's Z axis; for the knees the
limits are [-pi, 0] and for the elbows [0, pi], so the shin swings back and the forearm
forward, as they must), nothing for a fixed joint (the wrists).

The character file (``humanoid3d_character.txt``) gives the skeleton: ``Skeleton.Joints`` with
``Parent`` and the attach point ``AttachX/Y/Z`` in the parent's frame (metres). DeepMimic's
axes are Y up, X forward and Z to the body's right (the right hip attaches at +Z); they are
turned into HumanML3D's Y up, Z forward, X left by a proper rotation, so left stays left.

The 15 DeepMimic joints become the 22-joint body as ``retarget.py`` does for BVH files: the
root is the pelvis, the chest joint spine2 (it sits where SMPL's spine2 does, 0.24 m above
the root), spine1/spine3/collars are interpolated, the toes are points at the front of the
foot box and the head a point 0.1 m above the neck joint, both rigid on their body.

Clips are resampled to ``fps`` by slerping the joint rotations (not the positions, which
would shorten limbs in a flip recorded at 16 fps), then run through forward kinematics.
``min_seconds`` lengthens short clips: a ``wrap`` clip (a cycle) is repeated, each cycle
placed where and facing where the previous one ended, with the small pose mismatch at each
seam blended over the last 0.25 s of the cycle; a ``none`` clip holds its first and last
pose. ``DeepMimicMotion.cycles`` says how many times the cycle plays.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mosa.errors import MosaError
from mosa.motion.retarget import ImportedMotion, map_joints, put_on_floor

CHARACTER_FILE = "humanoid3d_character.txt"
_DOF = {"none": 7, "spherical": 4, "revolute": 1, "fixed": 0}  # values per joint in a row
# Points rigid on a body, in its joint's frame (DeepMimic axes, metres): the ball of the foot
# (front of humanoid3d's 0.177 m foot box, near its sole) and the head joint (skull base).
TOE_OFFSET = np.array([0.115, -0.04, 0.0])
HEAD_OFFSET = np.array([0.0, 0.10, 0.0])
SEAM_SECONDS = 0.25  # a looped cycle's seam mismatch is blended over this long
# DeepMimic (X forward, Y up, Z right) -> HumanML3D (X left, Y up, Z forward), row vectors.
_TO_SMPL = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
# SMPL joint -> DeepMimic joint or virtual point (None: interpolated).
MAPPING: dict[str, str | None] = {
    "pelvis": "root", "spine1": None, "spine2": "chest", "spine3": None, "neck": "neck",
    "head": "head", "left_collar": None, "right_collar": None,
    **{
        f"{side}_{smpl}": f"{side}_{dm}"
        for side in ("left", "right")
        for smpl, dm in (("hip", "hip"), ("knee", "knee"), ("ankle", "ankle"), ("foot", "toe"),
                         ("shoulder", "shoulder"), ("elbow", "elbow"), ("wrist", "wrist"))
    },
}  # fmt: skip
HINT = "pass a DeepMimic humanoid3d_*.txt clip and its humanoid3d_character.txt"


@dataclass
class Character:
    """A DeepMimic skeleton: J joints in file order, parents before children."""

    names: list[str]
    types: list[str]
    parents: list[int]
    attach: np.ndarray  # (J, 3) attach point in the parent's frame, metres
    attach_rot: np.ndarray  # (J, 3, 3) rotation of the joint frame in the parent's frame

    @property
    def row_size(self) -> int:
        """Values per frame row: dt plus every joint's degrees of freedom."""
        return 1 + sum(_DOF[t] for t in self.types)


@dataclass
class DeepMimicMotion(ImportedMotion):
    """``ImportedMotion`` of a DeepMimic clip; ``loop`` is the file's Loop, ``cycles`` how
    often a ``wrap`` clip plays, ``padded_seconds`` the held poses added to a ``none`` clip."""

    loop: str = "none"
    cycles: int = 1
    padded_seconds: float = 0.0


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise MosaError(f"DeepMimic {what} not found: {path}", HINT)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MosaError(f"{path}: not a DeepMimic {what} (invalid JSON: {exc})", HINT) from None
    if not isinstance(data, dict):
        raise MosaError(f"{path}: not a DeepMimic {what} (not a JSON object)", HINT)
    return data


def read_character(path: str | os.PathLike) -> Character:
    """Parse a DeepMimic character file's ``Skeleton.Joints``."""
    path = Path(path)
    data = _read_json(path, "character file")
    try:
        joints = sorted(data["Skeleton"]["Joints"], key=lambda j: int(j["ID"]))
        names = [str(j["Name"]) for j in joints]
        types = [str(j["Type"]).lower() for j in joints]
        parents = [int(j["Parent"]) for j in joints]
        attach = np.array([[float(j[f"Attach{a}"]) for a in "XYZ"] for j in joints])
        theta = np.array([[float(j.get(f"AttachTheta{a}", 0.0)) for a in "XYZ"] for j in joints])
    except (KeyError, TypeError, ValueError) as exc:
        raise MosaError(f"{path}: bad Skeleton.Joints entry ({exc!r})", HINT) from None
    unknown = sorted(set(types) - set(_DOF))
    if unknown or any(p >= j for j, p in enumerate(parents)) or parents[:1] != [-1]:
        raise MosaError(
            f"{path}: unsupported skeleton (joint types {unknown or 'ok'}; the root must come "
            "first and parents before children)",
            HINT,
        )
    # Intrinsic X-Y-Z Euler angles; every joint of humanoid3d has zero AttachTheta.
    attach_rot = Rotation.from_euler("XYZ", theta).as_matrix()
    return Character(names, types, parents, attach, attach_rot)


def _quat_xyzw(wxyz: np.ndarray, path: Path) -> np.ndarray:
    """(..., 4) w-first quaternions -> unit x-y-z-w (scipy's order)."""
    q = wxyz[..., [1, 2, 3, 0]]
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if not (norm > 1e-6).all():
        raise MosaError(f"{path}: a quaternion in the frames is zero", HINT)
    return q / norm


@dataclass
class _Keys:
    """Key frames: times (K,), root positions (K, 3), local rotations (K, J, 4) x-y-z-w."""

    times: np.ndarray
    root: np.ndarray
    quats: np.ndarray


def _parse_frames(frames: np.ndarray, char: Character, path: Path) -> _Keys:
    """Rows (K, row_size) -> key frames; revolute angles become rotations about Z."""
    K = len(frames)
    quats = np.zeros((K, len(char.names), 4))
    quats[..., 3] = 1.0
    root = np.zeros((K, 3))
    col = 1
    for j, kind in enumerate(char.types):
        if kind == "none":
            root = frames[:, col : col + 3]
            quats[:, j] = _quat_xyzw(frames[:, col + 3 : col + 7], path)
        elif kind == "spherical":
            quats[:, j] = _quat_xyzw(frames[:, col : col + 4], path)
        elif kind == "revolute":
            half = frames[:, col] / 2
            quats[:, j, 2], quats[:, j, 3] = np.sin(half), np.cos(half)
        col += _DOF[kind]
    dt = frames[:, 0]
    if (dt[:-1] < 0).any() or not dt[:-1].sum() > 0:
        raise MosaError(f"{path}: frame durations must be positive", HINT)
    times = np.concatenate([[0.0], np.cumsum(dt[:-1])])
    keep = np.concatenate([[True], np.diff(times) > 1e-9])  # a zero-length frame: drop it
    return _Keys(times[keep], root[keep], quats[keep])


def _heading(q: np.ndarray) -> float:
    """Angle about Y of the root's forward (+X) axis, for one x-y-z-w quaternion."""
    v = Rotation.from_quat(q).apply([1.0, 0.0, 0.0])
    return math.atan2(-v[2], v[0])


def _blend_seam(keys: _Keys, turn: Rotation) -> _Keys:
    """The cycle without its last key, its last ``SEAM_SECONDS`` bent towards the next
    cycle's first pose (local joints, root tilt and height), so the loop has no jump."""
    t, duration = keys.times, keys.times[-1]
    window = min(SEAM_SECONDS, duration / 3)
    w = np.clip((t - (duration - window)) / window, 0.0, 1.0)[:-1]
    first, last = Rotation.from_quat(keys.quats[0]), Rotation.from_quat(keys.quats[-1])
    fix = first * last.inv()  # per joint: last pose -> first pose (local frames)
    fix_root = turn * first[0] * last[0].inv()  # the root's is in world axes, heading aligned
    quats = keys.quats[:-1].copy()
    for j in range(quats.shape[1]):
        corr = fix_root if j == 0 else fix[j]
        part = Rotation.from_rotvec(corr.as_rotvec()[None] * w[:, None])
        quats[:, j] = (part * Rotation.from_quat(quats[:, j])).as_quat()
    root = keys.root[:-1].copy()
    root[:, 1] += w * (keys.root[0, 1] - keys.root[-1, 1])
    return _Keys(t[:-1], root, quats)


def _loop(keys: _Keys, cycles: int) -> _Keys:
    """Play a cycle ``cycles`` times, each starting where and facing where the last ended."""
    if cycles <= 1:
        return keys
    turn = Rotation.from_euler("y", _heading(keys.quats[-1, 0]) - _heading(keys.quats[0, 0]))
    blended = _blend_seam(keys, turn)
    duration = keys.times[-1]
    times, roots, quats = [], [], []
    origin, facing = keys.root[0].copy(), Rotation.identity()
    for c in range(cycles):
        part = keys if c == cycles - 1 else blended
        rel = part.root - keys.root[0]
        root = facing.apply(rel) + origin
        q = part.quats.copy()
        q[:, 0] = (facing * Rotation.from_quat(q[:, 0])).as_quat()
        times.append(part.times + c * duration)
        roots.append(root)
        quats.append(q)
        end = facing.apply(keys.root[-1] - keys.root[0]) + origin
        origin = np.array([end[0], keys.root[0, 1], end[2]])
        facing = turn * facing
    return _Keys(np.concatenate(times), np.concatenate(roots), np.concatenate(quats))


def _hold(keys: _Keys, seconds: float) -> _Keys:
    """Hold the first and the last pose ``seconds / 2`` each."""
    half = seconds / 2
    times = np.concatenate([[0.0], keys.times + half, [keys.times[-1] + 2 * half]])
    root = np.concatenate([keys.root[:1], keys.root, keys.root[-1:]])
    quats = np.concatenate([keys.quats[:1], keys.quats, keys.quats[-1:]])
    return _Keys(times, root, quats)


def _resample(keys: _Keys, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Root positions (T, 3) and local rotations (T, J) as matrices (T, J, 3, 3) at ``fps``."""
    n = int(math.floor(keys.times[-1] * fps + 1e-6)) + 1
    t = np.minimum(np.arange(n) / fps, keys.times[-1])
    root = np.stack([np.interp(t, keys.times, keys.root[:, a]) for a in range(3)], axis=-1)
    mats = np.empty((n, keys.quats.shape[1], 3, 3))
    for j in range(keys.quats.shape[1]):
        mats[:, j] = Slerp(keys.times, Rotation.from_quat(keys.quats[:, j]))(t).as_matrix()
    return root, mats


def forward_kinematics(
    char: Character, root: np.ndarray, local: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (T, J, 3, 3) and positions (T, J, 3) from root positions (T, 3) and
    local joint rotations (T, J, 3, 3), in DeepMimic axes."""
    T, J = local.shape[:2]
    g_rot, g_pos = np.empty_like(local), np.empty((T, J, 3))
    for j, p in enumerate(char.parents):
        frame = char.attach_rot[j] @ local[:, j]
        if p < 0:
            g_rot[:, j], g_pos[:, j] = frame, root + char.attach[j]
        else:
            g_rot[:, j] = g_rot[:, p] @ frame
            g_pos[:, j] = g_pos[:, p] + g_rot[:, p] @ char.attach[j]
    return g_rot, g_pos


def _body_points(char: Character, g_rot: np.ndarray, g_pos: np.ndarray):
    """Joint names and positions (T, J + 3, 3) with the toes and the head added."""
    index = {n: j for j, n in enumerate(char.names)}
    needed = [n for n in ("neck", "left_ankle", "right_ankle") if n not in index]
    if needed:
        raise MosaError(f"the character has no joint(s) {needed}", HINT)
    names, extra = list(char.names), []
    for name, joint, offset in (
        ("left_toe", "left_ankle", TOE_OFFSET),
        ("right_toe", "right_ankle", TOE_OFFSET),
        ("head", "neck", HEAD_OFFSET),
    ):
        j = index[joint]
        names.append(name)
        extra.append(g_pos[:, j] + g_rot[:, j] @ offset)
    return names, np.concatenate([g_pos, np.stack(extra, axis=1)], axis=1)


def _character_path(path: Path, character: str | os.PathLike | None) -> Path:
    if character is not None:
        return Path(character)
    found = path.parent / CHARACTER_FILE
    if not found.is_file():
        raise MosaError(
            f"no character file given for {path} and no {CHARACTER_FILE} beside it", HINT
        )
    return found


def read_clip(path: Path, char: Character) -> tuple[str, np.ndarray]:
    """The clip's Loop mode and its frame rows (K, row_size)."""
    data = _read_json(path, "motion clip")
    loop = str(data.get("Loop", "none")).lower()
    try:
        frames = np.asarray(data["Frames"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise MosaError(f"{path}: no Frames table of numbers", HINT) from None
    if frames.ndim != 2 or frames.shape[1] != char.row_size or len(frames) < 2:
        raise MosaError(
            f"{path}: frames are {frames.shape}, the character needs rows of "
            f"{char.row_size} values (dt, root position and rotation, joints) and 2+ rows",
            HINT,
        )
    if not np.isfinite(frames).all():
        raise MosaError(f"{path}: the frames hold non-finite numbers", HINT)
    return loop, frames


def load_deepmimic(
    path: str | os.PathLike,
    character: str | os.PathLike | None = None,
    fps: float = 20.0,
    *,
    min_seconds: float = 0.0,
) -> DeepMimicMotion:
    """Read a DeepMimic clip as (T, 22, 3) joints: metres, Y up, +Z forward, feet on the floor.

    ``character``: the skeleton file (default: ``humanoid3d_character.txt`` beside the clip).
    ``min_seconds``: repeat a ``wrap`` clip's cycle / hold a ``none`` clip's end poses until
    it lasts this long.
    """
    if not fps > 0:
        raise MosaError(f"fps must be positive, got {fps}", "pass e.g. fps=20")
    path = Path(path)
    char = read_character(_character_path(path, character))
    loop, frames = read_clip(path, char)
    keys = _parse_frames(frames, char, path)
    duration = float(keys.times[-1])
    cycles, padded = 1, 0.0
    if duration < min_seconds:
        if loop == "wrap":
            cycles = math.ceil(min_seconds / duration - 1e-9)
            keys = _loop(keys, cycles)
        else:
            padded = min_seconds - duration
            keys = _hold(keys, padded)
    root, local = _resample(keys, fps)
    names, points = _body_points(char, *forward_kinematics(char, root, local))
    joints = map_joints(points, names, MAPPING) @ _TO_SMPL.T
    dt = frames[:-1, 0]
    return DeepMimicMotion(
        joints=put_on_floor(joints).astype(np.float32),
        fps=float(fps),
        source_fps=float(1.0 / np.median(dt[dt > 0])),
        source_frames=len(frames),
        rig="deepmimic",
        up_axis="+Y",
        unit="m",
        unit_scale=1.0,
        mirrored=False,
        mapping=dict(MAPPING),
        source_joint_names=tuple(char.names),
        source_path=str(path),
        loop=loop,
        cycles=cycles,
        padded_seconds=round(padded, 4),
    )
