"""A user's own armature: its rest skeleton as BVH for the server, and the server's BVH answer
as pose-bone channels.

The server maps any humanoid rig onto its 22 joints and retargets generated motion onto it
(``rig_bvh`` of ``/api/generate`` and ``/api/sequence``; ``mosa.motion.rig_out`` in mosa), so
the add-on needs no mapping of its own: it writes the armature's rest pose as a BVH skeleton
(offsets in armature space, every joint's rest frame the armature's axes), and turns each
answered frame's local rotations into Blender's pose basis. Pure Python, no ``bpy``: the bones
come in as ``RigBone`` values (``armature.rig_bones`` reads them from an armature).

For a BVH whose rest frames are the armature's axes, a joint's channel rotation ``L`` is its
rotation relative to its parent in armature space, and Blender's pose basis of the bone is
``B^T L B`` (``B``: the bone's rest rotation, ``bone.matrix_local``); the root's location
basis is ``B^T (p - head)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from . import kinematics as K
from .inputs import InputError

POSITIONS = ("Xposition", "Yposition", "Zposition")
ROOT_CHANNELS = (*POSITIONS, "Zrotation", "Xrotation", "Yrotation")
JOINT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")


@dataclass(frozen=True)
class RigBone:
    """A bone of an armature at rest, in armature space (parents before children)."""

    name: str
    parent: int  # index of the parent bone, -1 for the root
    head: K.Vec
    tail: K.Vec
    rest: K.Mat  # bone.matrix_local's rotation, row-major 3x3


@dataclass(frozen=True)
class BvhMotion:
    """The parts of a BVH answer the add-on uses."""

    names: list[str]
    channels: list[tuple[str, ...]]
    offsets: list[K.Vec]
    frame_time: float
    frames: list[list[float]]


def bvh_name(name: str) -> str:
    """A bone name as one BVH token (BVH names cannot hold white space)."""
    return "_".join(name.split()) or "bone"


def check_bones(bones: Sequence[RigBone]) -> None:
    """``InputError`` for an armature the server cannot take as one skeleton."""
    roots = [b.name for b in bones if b.parent < 0]
    if len(roots) != 1:
        raise InputError(
            f"the armature has {len(roots)} root bones ({', '.join(roots[:4]) or 'none'}); "
            "the motion needs one hierarchy: parent the roots to one bone, or select a mosa "
            "armature (or nothing) to get one"
        )
    names = [bvh_name(b.name) for b in bones]
    if len(set(names)) != len(names):
        raise InputError("two bones of the armature have the same name once spaces are removed")


def rest_bvh(bones: Sequence[RigBone], fps: float) -> str:
    """The armature's rest skeleton as BVH text (one frame, armature units and axes)."""
    check_bones(bones)
    children: list[list[int]] = [[] for _ in bones]
    for i, b in enumerate(bones):
        if b.parent >= 0:
            children[b.parent].append(i)
    lines = ["HIERARCHY"]
    root = next(i for i, b in enumerate(bones) if b.parent < 0)
    _joint(bones, children, root, 0, lines)
    head = bones[root].head
    values = [*head, *([0.0] * (3 + 3 * (len(bones) - 1)))]
    lines += ["MOTION", "Frames: 1", f"Frame Time: {1.0 / fps:.8f}", _row(values)]
    return "\n".join(lines) + "\n"


def _row(values: Sequence[float]) -> str:
    return " ".join(f"{v:.6f}" for v in values)


def _joint(bones, children, i: int, depth: int, lines: list[str]) -> None:
    b, pad = bones[i], "  " * depth
    if b.parent < 0:
        lines += [f"{pad}ROOT {bvh_name(b.name)}", pad + "{", f"{pad}  OFFSET 0 0 0"]
        lines.append(f"{pad}  CHANNELS 6 {' '.join(ROOT_CHANNELS)}")
    else:
        offset = K.sub(b.head, bones[b.parent].head)
        lines += [f"{pad}JOINT {bvh_name(b.name)}", pad + "{", f"{pad}  OFFSET {_row(offset)}"]
        lines.append(f"{pad}  CHANNELS 3 {' '.join(JOINT_CHANNELS)}")
    for c in children[i]:
        _joint(bones, children, c, depth + 1, lines)
    if not children[i]:
        end = K.sub(b.tail, b.head)
        lines += [f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET {_row(end)}", pad + "  }"]
    lines.append(pad + "}")


def parse_bvh(text: str) -> BvhMotion:
    """The joints, channels, offsets and frames of BVH text; ``ValueError`` when malformed."""
    tokens = text.split()
    names, channels, offsets = [], [], []
    i, in_end = 0, False
    while i < len(tokens) and tokens[i] != "MOTION":
        t = tokens[i]
        if t in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            i += 2
        elif t == "End":
            in_end = True
            i += 2
        elif t == "OFFSET":
            if not in_end:
                offsets.append(tuple(float(x) for x in tokens[i + 1 : i + 4]))
            i += 4
        elif t == "CHANNELS":
            n = int(tokens[i + 1])
            channels.append(tuple(tokens[i + 2 : i + 2 + n]))
            i += 2 + n
        elif t == "}":
            in_end = False
            i += 1
        else:
            i += 1
    if (
        i >= len(tokens)
        or tokens[i + 1] != "Frames:"
        or tokens[i + 3 : i + 5] != ["Frame", "Time:"]
    ):
        raise ValueError("no MOTION section")
    count, frame_time = int(tokens[i + 2]), float(tokens[i + 5])
    width = sum(len(c) for c in channels)
    values = [float(x) for x in tokens[i + 6 :]]
    if len(names) != len(channels) or len(values) != count * width or frame_time <= 0:
        raise ValueError("the frames do not match the hierarchy")
    frames = [values[k * width : (k + 1) * width] for k in range(count)]
    return BvhMotion(names, channels, offsets, frame_time, frames)


def _euler(names: Sequence[str], degrees: Sequence[float]) -> K.Mat:
    """Intrinsic Euler rotation of BVH channels: the product of the axis rotations in order."""
    m = K.IDENTITY
    for name, deg in zip(names, degrees, strict=True):
        axis = {"X": (1.0, 0.0, 0.0), "Y": (0.0, 1.0, 0.0), "Z": (0.0, 0.0, 1.0)}[name[0]]
        m = K.mul(m, K.axis_angle(axis, math.radians(deg)))
    return m


def pose_channels(
    bones: Sequence[RigBone], motion: BvhMotion
) -> tuple[list[list[K.Mat]], list[K.Vec]]:
    """Per frame, every bone's pose basis rotation (in ``bones``' order) and the root bone's
    location basis; ``ValueError`` when the answer is not on this armature's skeleton."""
    index = {n: k for k, n in enumerate(motion.names)}
    missing = [b.name for b in bones if bvh_name(b.name) not in index]
    if missing:
        raise ValueError(f"the answer lacks the bones {', '.join(missing[:4])}")
    starts, s = [], 0
    for ch in motion.channels:
        starts.append(s)
        s += len(ch)
    root = next(i for i, b in enumerate(bones) if b.parent < 0)
    rotations, locations = [], []
    for row in motion.frames:
        pose = []
        for b in bones:
            k = index[bvh_name(b.name)]
            ch, at = motion.channels[k], starts[k]
            rot = [(c, row[at + n]) for n, c in enumerate(ch) if c not in POSITIONS]
            local = _euler([c for c, _ in rot], [v for _, v in rot]) if rot else K.IDENTITY
            pose.append(K.mul(K.transpose(b.rest), K.mul(local, b.rest)))
            if k == index[bvh_name(bones[root].name)]:
                p = list(motion.offsets[k]) if k < len(motion.offsets) else [0.0, 0.0, 0.0]
                for n, c in enumerate(ch):
                    if c in POSITIONS:
                        p[POSITIONS.index(c)] = row[at + n]
                locations.append(K.apply(K.transpose(b.rest), K.sub(p, bones[root].head)))
        rotations.append(pose)
    return rotations, locations
