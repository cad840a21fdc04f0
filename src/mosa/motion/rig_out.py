"""Put a 22-joint motion on any BVH rig: ``retarget_to_rig`` (``mosa generate --rig``).

The rig keeps everything of its own: hierarchy, joint names, offsets, channel order and frame
rate, its rest pose and axis conventions (a Z-up rig stays Z-up, a rig in inches stays in
inches; ``RigFrame`` is the map between its file coordinates and mosa's metres, Y up, read off
the rig as ``retarget.load_bvh`` reads it). Per frame:

1. The motion is scaled by the rig's leg length over the motion's (hip-knee-ankle), so its
   strides and root height fit the character, resampled to the rig's frame rate and taken into
   the rig's file coordinates.
2. Each rig joint mapped to one of the 22 (``retarget.resolve_mapping``) and with mapped joints
   below it gets the world rotation that aims its rest bones at them: the shortest swing from
   where its parent carries it when one mapped joint follows (limbs: no added twist), the
   best-fit rotation when several do (hips, chest: their geometry fixes the twist). Joints in
   between (connectors, unmapped spine joints) and joints with nothing mapped below (fingers,
   toes, props, the head's end) keep their given local rotations: the rest pose, or for edits
   what the take had on its nearest kept frame (``solve_pose``'s ``free``).
3. The root's translation places the pelvis; the lowest foot point over the clip is put back
   at the motion's lowest foot height (no sinking, no floating at the character's own size).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mosa.errors import MosaError
from mosa.motion.bvh import (
    POSITION_CHANNELS,
    ROTATION_CHANNELS,
    BVHData,
    read_bvh,
    swing_rotations,
    write_bvh,
)
from mosa.motion.retarget import (
    end_site_names,
    map_joints,
    mosa_space,
    positions_with_end_sites,
    resample,
    snap_fps,
    to_y_up,
)
from mosa.motion.skeleton import FPS, JOINT_NAMES, NUM_JOINTS

FEET = (7, 8, 10, 11)  # ankles and toes
_LEGS = ((1, 4, 7), (2, 5, 8))


@dataclass
class RigFrame:
    """How a rig's file coordinates map onto mosa's: ``mosa = (C @ file) * unit_scale - (0,
    floor, 0)`` with ``C`` the proper up-axis rotation, times a mirror of X when
    ``mirrored``; ``floor`` is the height (metres) of the lowest foot point of the rig's own
    frames, so mosa's floor (y = 0) is the rig's. ``mapping``: SMPL joint -> rig joint (or
    End Site name, None where interpolated)."""

    rig: str
    mapping: dict[str, str | None]
    up_axis: str
    unit_scale: float
    mirrored: bool
    floor: float

    @property
    def basis(self) -> np.ndarray:
        """``C`` (3, 3): file axes -> Y-up axes (improper when mirrored)."""
        c = to_y_up(np.eye(3), self.up_axis).T
        return np.diag([-1.0, 1.0, 1.0]) @ c if self.mirrored else c

    def to_mosa(self, p: np.ndarray) -> np.ndarray:
        return (p @ self.basis.T) * self.unit_scale - np.array([0.0, self.floor, 0.0])

    def to_file(self, p: np.ndarray) -> np.ndarray:
        return ((p + np.array([0.0, self.floor, 0.0])) / self.unit_scale) @ self.basis

    def vec_to_file(self, v: np.ndarray) -> np.ndarray:
        return (v / self.unit_scale) @ self.basis

    def rotation_to_file(self, r: np.ndarray) -> np.ndarray:
        """A rotation ``(..., 3, 3)`` of mosa space as the same motion in file space."""
        c = self.basis
        return c.T @ r @ c


def check_rig(bvh: BVHData) -> None:
    """``MosaError`` for a rig mosa cannot pose: several roots, no joints to turn."""
    roots = [bvh.names[j] for j in range(bvh.num_joints) if bvh.parents[j] < 0]
    if len(roots) != 1:
        raise MosaError(
            f"{bvh.path}: the rig has {len(roots)} root joints ({', '.join(roots)}); mosa poses "
            "one skeleton",
            "export the character's skeleton alone (one ROOT, e.g. its Hips), without props or "
            "other characters",
        )
    if not any(c in ROTATION_CHANNELS for ch in bvh.channels for c in ch):
        raise MosaError(f"{bvh.path}: the rig has no rotation channels", "export it with rotations")


def rig_frame(bvh: BVHData, mapping=None) -> tuple[RigFrame, np.ndarray]:
    """The ``RigFrame`` of ``bvh`` and its own frames as 22 joints ``(T, 22, 3)`` in mosa
    space (metres, Y up, at the file's frame rate, the lowest foot at 0): what
    ``retarget.load_bvh`` reads, without resampling."""
    check_rig(bvh)
    space = mosa_space(bvh, mapping)
    joints = space.joints
    floor = float(joints[:, list(FEET), 1].min())
    joints[..., 1] -= floor
    s = space
    return RigFrame(s.rig, s.mapping, s.up_axis, s.unit_scale, s.mirrored, floor), joints


def leg_length(joints: np.ndarray) -> float:
    """Mean hip-knee-ankle length (median over frames) of ``joints (T, 22, 3)``."""
    joints = np.asarray(joints, dtype=np.float64)
    out = []
    for hip, knee, ankle in _LEGS:
        a = np.linalg.norm(joints[:, knee] - joints[:, hip], axis=-1)
        b = np.linalg.norm(joints[:, ankle] - joints[:, knee], axis=-1)
        out.append(float(np.median(a + b)))
    return float(np.mean(out))


# ------------------------------------------------------------------------------ the rig tree


@dataclass
class RigTree:
    """The rig's joints plus its named End Sites as one tree (``nodes = joints + ends``):
    ``parents (N,)``, ``smpl`` SMPL joint index -> node, and for each solved node (mapped,
    with mapped nodes below) the paths to those nodes (each from a child of the solved node
    down to the mapped node)."""

    num_joints: int
    parents: np.ndarray
    end_offsets: dict[int, np.ndarray]  # end node -> offset from its joint
    smpl: dict[int, int]
    paths: dict[int, list[list[int]]]

    @property
    def solved(self) -> list[int]:
        return sorted(self.paths)


def rig_tree(bvh: BVHData, mapping: dict[str, str | None]) -> RigTree:
    names = list(bvh.names)
    parents = list(int(p) for p in bvh.parents)
    wanted = set(end_site_names(bvh))
    end_offsets = {}
    for j, off in bvh.end_sites:
        name = bvh.names[j] + ".end"
        if name in wanted:
            wanted.discard(name)
            end_offsets[len(names)] = np.asarray(off, dtype=np.float64)
            names.append(name)
            parents.append(j)
    index = {n: i for i, n in enumerate(names)}
    smpl = {k: index[mapping[n]] for k, n in enumerate(JOINT_NAMES) if mapping.get(n) is not None}
    mapped = set(smpl.values())
    children: list[list[int]] = [[] for _ in names]
    for i, p in enumerate(parents):
        if p >= 0:
            children[p].append(i)
    paths: dict[int, list[list[int]]] = {}
    for a in sorted(mapped):
        if a >= bvh.num_joints:
            continue  # End Sites have no rotation
        found: list[list[int]] = []
        todo = [[c] for c in children[a]]
        while todo:
            path = todo.pop()
            if path[-1] in mapped:
                found.append(path)
            else:
                todo.extend([*path, c] for c in children[path[-1]])
        if found:
            paths[a] = sorted(found)
    return RigTree(bvh.num_joints, np.asarray(parents), end_offsets, smpl, paths)


# ---------------------------------------------------------------------------- the rotations


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _kabsch(rest: np.ndarray, posed: np.ndarray) -> np.ndarray:
    """Best-fit rotations ``(T, 3, 3)`` with ``R @ rest[:, k] ~ posed[:, k]``, ``(T, K, 3)``."""
    h = np.einsum("tki,tkj->tij", rest, posed)
    u, _, vt = np.linalg.svd(h)
    v, ut = np.swapaxes(vt, 1, 2), np.swapaxes(u, 1, 2)
    d = np.sign(np.linalg.det(v @ ut))
    fix = np.ones_like(u[:, 0])
    fix[:, 2] = np.where(d == 0, 1.0, d)
    return v @ (fix[:, :, None] * ut)


def rest_translations(bvh: BVHData, frame: int = 0) -> np.ndarray:
    """``(J, 3)`` local translations of the rig's joints on ``frame`` (position channels
    replace the OFFSET where a joint has them)."""
    _, trans = replace(bvh, motion=bvh.motion[frame : frame + 1]).local_transforms()
    return trans[0]


def solve_pose(
    tree: RigTree,
    targets: np.ndarray,
    trans: np.ndarray,
    free: np.ndarray,
) -> np.ndarray:
    """Local rotations ``(T, J, 3, 3)`` of the rig joints that aim the rig's bones at
    ``targets (T, 22, 3)`` (file coordinates). ``trans (T, J, 3)``: local translations;
    ``free (T, J, 3, 3)``: local rotations of the joints that are not solved (and, for solved
    joints with one mapped joint below, the pose the swing starts from)."""
    T, J = free.shape[:2]
    local = free.copy()
    glob = np.empty((T, J, 3, 3))
    inverse = {node: k for k, node in tree.smpl.items()}
    for j in range(J):
        p = int(tree.parents[j])
        parent = glob[:, p] if p >= 0 else np.broadcast_to(np.eye(3), (T, 3, 3))
        if j in tree.paths:
            rest, posed = [], []
            for path in tree.paths[j]:
                v = _node_offset(tree, path[-1], trans, T)
                for c in reversed(path[:-1]):
                    v = trans[:, c] + np.einsum("tij,tj->ti", local[:, c], v)
                rest.append(v)
                posed.append(targets[:, inverse[path[-1]]] - targets[:, inverse[j]])
            rest_u, posed_u = _unit(np.stack(rest, 1)), _unit(np.stack(posed, 1))
            if len(rest) == 1:
                carry = parent @ free[:, j]
                start = np.einsum("tij,tj->ti", carry, rest_u[:, 0])
                g = swing_rotations(start, posed_u[:, 0]) @ carry
            else:
                g = _kabsch(rest_u, posed_u)
            local[:, j] = np.swapaxes(parent, 1, 2) @ g
        glob[:, j] = parent @ local[:, j]
    return local


def _node_offset(tree: RigTree, node: int, trans: np.ndarray, T: int) -> np.ndarray:
    if node >= tree.num_joints:
        return np.broadcast_to(tree.end_offsets[node], (T, 3))
    return trans[:, node]


def node_positions(tree: RigTree, local: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """World positions ``(T, N, 3)`` of every node (joints, then named End Sites)."""
    T, J = local.shape[:2]
    N = len(tree.parents)
    glob = np.empty((T, J, 3, 3))
    pos = np.empty((T, N, 3))
    for j in range(N):
        p = int(tree.parents[j])
        off = _node_offset(tree, j, trans, T)
        if p < 0:
            glob[:, j], pos[:, j] = local[:, j], off
            continue
        pos[:, j] = pos[:, p] + np.einsum("tij,tj->ti", glob[:, p], off)
        if j < J:
            glob[:, j] = glob[:, p] @ local[:, j]
    return pos


# ------------------------------------------------------------------------------- channels


def rotation_sequence(channels: tuple[str, ...]) -> str:
    return "".join(c[0] for c in channels if c in ROTATION_CHANNELS)


def euler_channels(rot: np.ndarray, seq: str, reference: np.ndarray | None = None) -> np.ndarray:
    """Intrinsic Euler angles ``(T, len(seq))`` in degrees of rotations ``(T, 3, 3)``, unwrapped
    over time (starting next to ``reference (len(seq),)`` degrees when given). A joint with
    fewer than 3 rotation channels gets the angles of its axes in a full sequence."""
    full = seq + "".join(a for a in "XYZ" if a not in seq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        angles = Rotation.from_matrix(rot).as_euler(full, degrees=True)[:, : len(seq)]
    if reference is not None:
        angles = np.concatenate([np.asarray(reference, dtype=np.float64)[None], angles])
    angles = np.unwrap(angles, period=360.0, axis=0)
    return angles[1:] if reference is not None else angles


def write_channels(
    bvh: BVHData,
    local: np.ndarray,
    trans: np.ndarray,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """The motion ``(T, C)`` of the rig's channels for local rotations ``(T, J, 3, 3)`` and
    translations ``(T, J, 3)``; ``reference (C,)``: a frame whose angles the first frame's
    stay next to (no 360-degree jumps where they join)."""
    T = local.shape[0]
    out = np.zeros((T, sum(len(c) for c in bvh.channels)))
    for j, (ch, cols) in enumerate(zip(bvh.channels, bvh.channel_columns(), strict=True)):
        seq = rotation_sequence(ch)
        rot_cols = [c for name, c in zip(ch, cols, strict=True) if name in ROTATION_CHANNELS]
        if seq:
            ref = None if reference is None else reference[rot_cols]
            out[:, rot_cols] = euler_channels(local[:, j], seq, ref)
        for name, c in zip(ch, cols, strict=True):
            if name in POSITION_CHANNELS:
                out[:, c] = trans[:, j, POSITION_CHANNELS.index(name)]
    return out


# ------------------------------------------------------------------------------ retarget


def _as_motion(joints: np.ndarray) -> np.ndarray:
    arr = np.asarray(joints, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3) or len(arr) == 0:
        raise MosaError(
            f"retarget_to_rig needs joints of shape (T, {NUM_JOINTS}, 3), got {arr.shape}",
            "pass the 22 SMPL joints in metres, Y up",
        )
    if not np.isfinite(arr).all():
        raise MosaError("retarget_to_rig: the joints contain nan or inf", "check the motion")
    return arr


def load_rig(rig: BVHData | str | os.PathLike) -> BVHData:
    """A rig given as parsed BVH or a path; ``MosaError`` naming the fix for anything else."""
    if isinstance(rig, BVHData):
        return rig
    path = Path(rig)
    if path.suffix.lower() != ".bvh":
        raise MosaError(
            f"--rig '{path}': a rig must be a .bvh file (got '{path.suffix or 'no extension'}')",
            "export the character's skeleton as BVH (Blender: File > Export > Motion Capture "
            "(.bvh)), or pass --rig smpl for mosa's own 22-joint skeleton",
        )
    return read_bvh(path)


def retarget_to_rig(
    joints: np.ndarray,
    rig: BVHData | str | os.PathLike,
    fps: float = FPS,
    *,
    mapping=None,
) -> BVHData:
    """The motion ``joints (T, 22, 3)`` (metres, Y up, at ``fps``, feet on the floor at 0)
    on the skeleton of ``rig``: same hierarchy, names, offsets, channels and frame rate; its
    frames replaced by the motion (see the module docstring). ``mapping``: the rig's joint
    mapping when it is not recognised (``retarget.resolve_mapping``)."""
    bvh = load_rig(rig)
    x = _as_motion(joints)
    frame, rig_joints = rig_frame(bvh, mapping)
    tree = rig_tree(bvh, frame.mapping)
    k = leg_length(rig_joints[:1]) / max(leg_length(x), 1e-6)
    x = x * k
    rig_fps = snap_fps(bvh.fps)
    if abs(rig_fps - fps) > 1e-6 and len(x) > 1:
        x = resample(x, fps, rig_fps)
    T, J = len(x), bvh.num_joints
    trans = np.broadcast_to(rest_translations(bvh), (T, J, 3)).copy()
    free = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
    local, trans = pose_on_rig(bvh, tree, frame, x, trans, free)
    motion = write_channels(bvh, local, trans)
    return replace(bvh, motion=motion)  # the rig's own Frame Time line


def pose_on_rig(
    bvh: BVHData,
    tree: RigTree,
    frame: RigFrame,
    x: np.ndarray,
    trans: np.ndarray,
    free: np.ndarray,
    *,
    floor: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations and translations ``(T, J, 3, 3)``, ``(T, J, 3)`` posing the rig like
    ``x (T, 22, 3)`` (mosa space, already at the rig's size and rate): ``solve_pose``, then
    the root's translation placing the pelvis, and with ``floor`` the lowest foot point
    over the clip at the motion's lowest foot height."""
    targets = frame.to_file(x)
    local = solve_pose(tree, targets, trans, free)
    root = int(np.flatnonzero(tree.parents < 0)[0])
    trans = trans.copy()
    trans[:, root] = 0.0
    pos = node_positions(tree, local, trans)
    pelvis = tree.smpl[0]
    trans[:, root] = targets[:, 0] - pos[:, pelvis]
    if floor:
        feet = [tree.smpl[k] for k in FEET if k in tree.smpl]
        pos = frame.to_mosa(node_positions(tree, local, trans)[:, feet])
        lift = x[:, list(FEET), 1].min() - pos[..., 1].min()
        trans[:, root] += frame.vec_to_file(np.array([0.0, lift, 0.0]))
    return local, trans


def rig_joints(bvh: BVHData, frame: RigFrame) -> np.ndarray:
    """``(T, 22, 3)`` mosa-space joints of ``bvh``'s frames read through ``frame`` (interpolated
    joints placed as ``retarget.map_joints`` places them)."""
    names, positions = positions_with_end_sites(bvh)
    return frame.to_mosa(map_joints(positions, names, frame.mapping))


def save_on_rig(
    path: str | os.PathLike,
    joints: np.ndarray,
    rig: BVHData | str | os.PathLike,
    fps: float = FPS,
    *,
    mapping=None,
) -> Path:
    """Write ``retarget_to_rig(joints, rig, fps)`` to ``path`` (atomically); returns ``path``."""
    write_bvh(path, retarget_to_rig(joints, rig, fps, mapping=mapping))
    return Path(path)
