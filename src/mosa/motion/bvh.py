"""BVH files: a parser for any hierarchy, vectorised forward kinematics, and a writer.

``read_bvh`` accepts ROOT/JOINT/End Site hierarchies with any channel subset and order (3- or
6-channel joints; when a joint has position channels they replace its OFFSET, as in Blender
and the Bandai-Namco data), any frame time, Windows line endings, tabs and scientific notation.
Euler angles are intrinsic in channel order: ``Zrotation Xrotation Yrotation`` means
``R = Rz @ Rx @ Ry`` applied to column vectors.

``save_bvh`` writes positions of the 22-joint SMPL body (``skeleton.JOINT_NAMES``) as a BVH
whose rotations are solved from the positions (see ``solve_rotations``). Offsets are written
in centimetres with Y up: the unit of the CMU/Mixamo/Bandai-Namco files and of Maya and
MotionBuilder scenes (in Blender set the importer's scale to 0.01).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from mosa import limits
from mosa.errors import MosaError
from mosa.io import atomic_path
from mosa.motion.skeleton import FPS, JOINT_NAMES, NUM_JOINTS, PARENTS

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
_CHANNEL_LOOKUP = {c.lower(): c for c in POSITION_CHANNELS + ROTATION_CHANNELS}
_FIX_HINT = "fix or re-export the file (a valid BVH has HIERARCHY, then MOTION with the frames)"


@dataclass
class BVHData:
    """A parsed BVH file.

    ``names``/``parents``/``offsets``/``channels`` describe the J joints in file order (parents
    come before children, roots have parent -1); ``motion`` is (T, C) with C the total number
    of channels, columns in joint order; ``end_sites`` holds (joint index, offset) pairs.
    """

    names: list[str]
    parents: np.ndarray  # (J,) int
    offsets: np.ndarray  # (J, 3) float64, source units
    channels: list[tuple[str, ...]]
    frame_time: float
    motion: np.ndarray  # (T, C) float64, positions in source units, angles in degrees
    end_sites: list[tuple[int, np.ndarray]] = field(default_factory=list)
    path: str = "<memory>"

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def channel_columns(self) -> list[np.ndarray]:
        """Per joint, the column indices of its channels in ``motion``."""
        cols, start = [], 0
        for ch in self.channels:
            cols.append(np.arange(start, start + len(ch)))
            start += len(ch)
        return cols

    def local_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Local rotation matrices (T, J, 3, 3) and translations (T, J, 3) of every joint."""
        T, J = self.num_frames, self.num_joints
        rot = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
        trans = np.broadcast_to(self.offsets, (T, J, 3)).copy()
        for j, (ch, cols) in enumerate(zip(self.channels, self.channel_columns(), strict=True)):
            seq, angle_cols = "", []
            for name, col in zip(ch, cols, strict=True):
                if name in POSITION_CHANNELS:
                    trans[:, j, POSITION_CHANNELS.index(name)] = self.motion[:, col]
                else:
                    seq += name[0]
                    angle_cols.append(col)
            if seq:
                rot[:, j] = euler_to_matrix(np.radians(self.motion[:, angle_cols]), seq)
        return rot, trans

    def global_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """World rotation matrices (T, J, 3, 3) and positions (T, J, 3), vectorised over T."""
        rot, pos = self.local_transforms()
        # in place, joint by joint: a parent comes before its children, so its entries are
        # already global when a child reads them (half the memory of separate arrays)
        for j, p in enumerate(self.parents):
            if p >= 0:
                pos[:, j] = pos[:, p] + np.einsum("tij,tj->ti", rot[:, p], pos[:, j])
                rot[:, j] = rot[:, p] @ rot[:, j]
        return rot, pos

    def global_positions(self) -> np.ndarray:
        """Joint positions (T, J, 3) in source units and axes."""
        return self.global_transforms()[1]


def euler_to_matrix(angles: np.ndarray, seq: str) -> np.ndarray:
    """Rotation matrices (T, 3, 3) of intrinsic Euler angles (T, len(seq)) in radians.

    Intrinsic ``seq="ZXY"`` is ``Rz @ Rx @ Ry``, the BVH convention (``scipy``'s upper-case
    sequences mean the same; this is a faster equivalent).
    """
    out = np.broadcast_to(np.eye(3), (angles.shape[0], 3, 3))
    for k, axis in enumerate(seq.upper()):
        c, s = np.cos(angles[:, k]), np.sin(angles[:, k])
        m = np.zeros((angles.shape[0], 3, 3))
        i, j = {"X": (1, 2), "Y": (2, 0), "Z": (0, 1)}[axis]  # the plane the axis turns
        a = "XYZ".index(axis)
        m[:, a, a] = 1.0
        m[:, i, i], m[:, i, j], m[:, j, i], m[:, j, j] = c, -s, s, c
        out = out @ m
    return out


# ----------------------------------------------------------------------------- parsing


def _error(path: str, line: int | None, message: str, hint: str = _FIX_HINT) -> MosaError:
    where = f"{path}, line {line}" if line is not None else path
    return MosaError(f"{where}: {message}", hint)


def _parse_floats(tokens: list[str], path: str, line: int, what: str) -> list[float]:
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise _error(path, line, f"{what}: '{bad}' is not a number") from None
    if not all(np.isfinite(values)):
        raise _error(path, line, f"{what}: non-finite value (nan or inf)")
    return values


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _read_text(path: str | os.PathLike) -> str:
    p = Path(path)
    if not p.exists():
        raise MosaError(f"BVH file not found: {p}", "check the path and the file name")
    if not p.is_file():
        what = "a folder" if p.is_dir() else "not a regular file"
        raise MosaError(f"{p} is {what}, not a BVH file", "pass the path of a .bvh file")
    limits.check_file_size(p)
    # Joint names are ASCII in practice; a stray byte in a comment must not stop the import.
    return p.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")


def read_bvh(path: str | os.PathLike) -> BVHData:
    """Parse a BVH file. Every malformed input raises ``MosaError`` naming file and line."""
    return parse_bvh(_read_text(path), str(path))


def parse_bvh(text: str, src: str = "<BVH text>") -> BVHData:
    """Parse BVH ``text`` (e.g. sent over HTTP); errors name ``src`` and the line."""
    lines = text.splitlines()  # handles \n, \r\n and \r
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise _error(src, None, "the file is empty")
    if lines[first].split()[0].upper() != "HIERARCHY":
        raise _error(src, first + 1, "not a BVH file: it must start with HIERARCHY")
    data, motion_line = _parse_hierarchy(lines, first + 1, src)
    frames, frame_time, data_start = _parse_motion_header(lines, motion_line, src)
    _check_size(src, data.num_joints, frames, frame_time)
    data.frame_time = frame_time
    data.motion = _parse_frames(lines, data_start, frames, sum(len(c) for c in data.channels), src)
    data.path = src
    return data


def _check_size(src: str, joints: int, frames: int, frame_time: float) -> None:
    """The bounds of ``mosa.limits`` on a file's skeleton and motion, before parsing frames:
    what posing it costs (joints x frames) and its length at 20 fps (a take of 200 frames
    with ``Frame Time: 1000`` lasts 55 hours)."""
    limits.check(
        "MOSA_MAX_JOINT_FRAMES",
        joints * frames,
        f"{src}: {joints:,} joints x {frames:,} frames = {joints * frames:,} joint-frames",
    )
    seconds = (frames - 1) * frame_time
    at_fps = float(np.floor(seconds * FPS)) + 1
    limits.check(
        "MOSA_MAX_FRAMES",
        at_fps,
        f"{src}: {frames:,} frames of {frame_time:g} s last {seconds:,.1f} s, "
        f"{at_fps:,.0f} frames at {FPS:g} fps",
        "check the 'Frame Time:' line (seconds per frame, e.g. 0.00833333 for 120 fps); if "
        f"the take is right, raise the limit: MOSA_MAX_FRAMES={limits.round_up(at_fps)}",
    )


def _parse_hierarchy(lines: list[str], start: int, src: str) -> tuple[BVHData, int]:
    """Parse from the line after HIERARCHY up to MOTION; returns the data and MOTION's index."""
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float] | None] = []
    channels: list[tuple[str, ...]] = []
    end_sites: list[tuple[int, np.ndarray]] = []
    # Stack entries: joint index, or ("end", parent index, end_sites index).
    stack: list[int | tuple[int, int]] = []
    pending: int | tuple[int, int] | None = None
    opened_at: list[int] = []

    for i in range(start, len(lines)):
        tokens = lines[i].split()
        if not tokens:
            continue
        lineno = i + 1
        # Some exporters put the braces on the JOINT line: "JOINT Hips {" or "OFFSET 0 0 0 }".
        trailing: list[str] = []
        while len(tokens) > 1 and tokens[-1] in ("{", "}"):
            trailing.insert(0, tokens.pop())
        for tok in [tokens, *([t] for t in trailing)]:
            key = tok[0].upper()
            if key == "MOTION":
                if stack or pending is not None:
                    raise _error(src, lineno, "MOTION before the hierarchy's braces are closed")
                if not names:
                    raise _error(src, lineno, "the hierarchy has no ROOT joint")
                data = BVHData(
                    names=names,
                    parents=np.asarray(parents, dtype=np.int64),
                    offsets=np.asarray(offsets, dtype=np.float64),
                    channels=channels,
                    frame_time=0.0,
                    motion=np.zeros((0, 0)),
                    end_sites=end_sites,
                )
                return data, i
            if key in ("ROOT", "JOINT"):
                if pending is not None:
                    raise _error(src, lineno, f"expected '{{' before {tok[0]}")
                if key == "ROOT" and stack:
                    raise _error(src, lineno, "ROOT inside another joint")
                if key == "JOINT" and not stack:
                    raise _error(src, lineno, "JOINT outside any ROOT")
                if len(tok) < 2:
                    raise _error(src, lineno, f"{tok[0]} without a name")
                if isinstance(stack[-1] if stack else 0, tuple):
                    raise _error(src, lineno, "JOINT inside an End Site")
                if len(names) >= limits.get("MOSA_MAX_JOINTS"):
                    limits.check("MOSA_MAX_JOINTS", len(names) + 1, f"{src}: more joints")
                parents.append(stack[-1] if stack else -1)  # type: ignore[arg-type]
                names.append(" ".join(tok[1:]))  # some exporters keep spaces in names
                offsets.append(None)
                channels.append(())
                pending = len(names) - 1
            elif key == "END":
                if not stack or isinstance(stack[-1], tuple) or pending is not None:
                    raise _error(src, lineno, "End Site outside a joint")
                end_sites.append((stack[-1], np.zeros(3)))
                pending = (stack[-1], len(end_sites) - 1)
            elif key == "{":
                if pending is None:
                    raise _error(src, lineno, "'{' without a ROOT, JOINT or End Site before it")
                stack.append(pending)
                opened_at.append(lineno)
                pending = None
            elif key == "}":
                if not stack:
                    raise _error(src, lineno, "'}' without a matching '{'")
                top = stack.pop()
                opened_at.pop()
                if isinstance(top, int) and offsets[top] is None:
                    raise _error(src, lineno, f"joint '{names[top]}' has no OFFSET")
            elif key == "OFFSET":
                if not stack or pending is not None:
                    raise _error(src, lineno, "OFFSET outside a joint's braces")
                if len(tok) != 4:
                    raise _error(src, lineno, f"OFFSET needs 3 numbers, found {len(tok) - 1}")
                values = _parse_floats(tok[1:], src, lineno, "OFFSET")
                top = stack[-1]
                if isinstance(top, tuple):
                    end_sites[top[1]] = (top[0], np.asarray(values))
                else:
                    offsets[top] = values
            elif key == "CHANNELS":
                if not stack or isinstance(stack[-1], tuple) or pending is not None:
                    raise _error(src, lineno, "CHANNELS outside a joint's braces")
                channels[stack[-1]] = _parse_channels(tok, src, lineno)
            else:
                raise _error(src, lineno, f"unexpected '{tok[0]}' in the hierarchy")
    where = f" (the '{{' on line {opened_at[-1]} is never closed)" if opened_at else ""
    raise _error(src, len(lines), f"the file ends before MOTION: truncated?{where}")


def _parse_channels(tok: list[str], src: str, lineno: int) -> tuple[str, ...]:
    if len(tok) < 2 or not (tok[1].isascii() and tok[1].isdigit()):
        raise _error(src, lineno, "CHANNELS needs a count, e.g. 'CHANNELS 3 Zrotation ...'")
    n = int(tok[1])
    if len(tok) - 2 != n:
        raise _error(src, lineno, f"CHANNELS declares {n} channels but names {len(tok) - 2}")
    out = []
    for name in tok[2:]:
        canon = _CHANNEL_LOOKUP.get(name.lower())
        if canon is None:
            raise _error(
                src, lineno, f"unknown channel '{name}' (expected X/Y/Z position/rotation)"
            )
        if canon in out:
            raise _error(src, lineno, f"channel '{name}' appears twice")
        out.append(canon)
    return tuple(out)


def _header_value(lines: list[str], i: int, label: str, src: str) -> str:
    """The value after ``label`` ('Frames:' or 'Frame Time:') on line ``i``."""
    if i >= len(lines):
        raise _error(src, len(lines), f"the file ends before the '{label}' line: truncated?")
    text = lines[i].strip()
    squashed = text.replace(" ", "").replace("\t", "").lower()
    key = label.replace(" ", "").lower()
    if not squashed.startswith(key):
        raise _error(src, i + 1, f"expected '{label} ...', found '{text[:40]}'")
    value = text.split(":", 1)[1].strip()
    if not value:
        raise _error(src, i + 1, f"'{label}' has no value")
    return value


def _next_nonempty(lines: list[str], i: int) -> int:
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i


def _parse_motion_header(lines: list[str], motion_line: int, src: str) -> tuple[int, float, int]:
    i = _next_nonempty(lines, motion_line + 1)
    value = _header_value(lines, i, "Frames:", src)
    if not (value.isascii() and value.isdigit()):
        raise _error(src, i + 1, f"'Frames:' must be a whole number, found '{value}'")
    frames = int(value)
    if frames == 0:
        raise _error(src, i + 1, "the file has zero frames", "export at least one frame of motion")
    j = _next_nonempty(lines, i + 1)
    value = _header_value(lines, j, "Frame Time:", src)
    (frame_time,) = _parse_floats([value], src, j + 1, "Frame Time")
    if frame_time <= 0:
        raise _error(src, j + 1, f"Frame Time must be positive, found {value}")
    return frames, frame_time, j + 1


_CHUNK = 4096  # frame lines converted at a time


def _parse_frames(lines: list[str], start: int, frames: int, n_channels: int, src: str):
    """Parse the frame lines into (frames, n_channels) float64, checking every line."""
    rows = [(i + 1, ln) for i, ln in enumerate(lines[start:], start) if ln.strip()]
    if n_channels == 0 and not rows:  # no channels: every frame line is empty
        return np.zeros((frames, 0))
    if len(rows) < frames:
        last = rows[-1][0] if rows else start
        raise _error(
            src,
            last,
            f"'Frames: {frames}' but the file ends after {len(rows)} frame lines: truncated?",
            f"re-export the file, or set 'Frames: {len(rows)}' to keep the frames it has",
        )
    if len(rows) > frames:
        raise _error(
            src,
            rows[frames][0],
            f"'Frames: {frames}' but the file has {len(rows)} frame lines",
            f"set 'Frames: {len(rows)}' or remove the extra lines",
        )
    motion = np.empty((frames, n_channels))
    for at in range(0, frames, _CHUNK):  # in chunks: a token list of the whole file is GBs
        chunk = rows[at : at + _CHUNK]
        split = [ln.split() for _, ln in chunk]
        for (lineno, _), tokens in zip(chunk, split, strict=True):
            if len(tokens) != n_channels:
                raise _error(
                    src,
                    lineno,
                    f"frame line has {len(tokens)} values but the CHANNELS sum to {n_channels}",
                )
        if n_channels == 0:
            continue
        try:  # fast path: one conversion for the whole chunk
            values = np.array([t for tokens in split for t in tokens], dtype=np.float64)
        except ValueError:
            for (lineno, _), tokens in zip(chunk, split, strict=True):
                _parse_floats(tokens, src, lineno, "frame values")
            raise  # unreachable: some line must have failed above
        values = values.reshape(len(chunk), n_channels)
        if not np.isfinite(values).all():
            bad = int(np.argwhere(~np.isfinite(values))[0, 0])
            raise _error(src, chunk[bad][0], "frame values: non-finite value (nan or inf)")
        motion[at : at + len(chunk)] = values
    return motion


# ----------------------------------------------------------------------------- writing


def _number_format(precision: int | None):
    """``float -> str`` with ``precision`` decimals, or exact (shortest round-trip) for None."""
    if precision is None:
        return lambda x: np.format_float_positional(float(x), unique=True, trim="0")
    return lambda x: f"{x:.{precision}f}"


def write_bvh(path: str | os.PathLike, data: BVHData, precision: int | None = 6) -> None:
    """Write ``data`` as a BVH file (atomically): the text of ``format_bvh``."""
    text = format_bvh(data, precision)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def format_bvh(data: BVHData, precision: int | None = 6) -> str:
    """``data`` as BVH text.

    ``precision``: decimals per value; None writes each value's shortest exact form, so a file
    read with ``read_bvh`` and written back keeps every channel value bit for bit.

    The text lists joints depth-first, so its joint order (and the motion columns) may differ
    from ``data``'s when a joint's children are not contiguous; names are kept.
    """
    children: list[list[int]] = [[] for _ in data.names]
    for j, p in enumerate(data.parents):
        if p >= 0:
            children[p].append(j)
    ends: dict[int, list[np.ndarray]] = {}
    for j, off in data.end_sites:
        ends.setdefault(j, []).append(off)

    out = ["HIERARCHY"]
    order: list[int] = []  # joints in the order the file lists them

    num = _number_format(precision)

    def fmt(v: np.ndarray) -> str:
        return " ".join(num(x) for x in v)

    # depth-first without recursion: a chain of a thousand joints is a valid file
    todo: list[tuple[str, int, int]] = [
        ("open", j, 0) for j in reversed(range(len(data.names))) if data.parents[j] < 0
    ]
    while todo:
        step, j, depth = todo.pop()
        pad = "\t" * depth
        if step == "close":
            for off in ends.get(j, []):
                out.extend([f"{pad}\tEnd Site", f"{pad}\t{{", f"{pad}\t\tOFFSET {fmt(off)}"])
                out.append(f"{pad}\t}}")
            out.append(f"{pad}}}")
            continue
        order.append(j)
        kind = "ROOT" if data.parents[j] < 0 else "JOINT"
        out.append(f"{pad}{kind} {data.names[j]}")
        out.append(f"{pad}{{")
        out.append(f"{pad}\tOFFSET {fmt(data.offsets[j])}")
        out.append(f"{pad}\tCHANNELS {len(data.channels[j])} {' '.join(data.channels[j])}")
        todo.append(("close", j, depth))
        todo.extend(("open", c, depth + 1) for c in reversed(children[j]))
    out += ["MOTION", f"Frames: {data.num_frames}", f"Frame Time: {data.frame_time:.8f}"]
    columns = data.channel_columns()
    motion = data.motion[:, np.concatenate([columns[j] for j in order])]
    body = "\n".join(fmt(row) for row in motion)
    return "\n".join(out) + "\n" + body + "\n"


# -------------------------------------------------- inverse kinematics for the 22-joint body

_CHILDREN: tuple[tuple[int, ...], ...] = tuple(
    tuple(c for c in range(NUM_JOINTS) if PARENTS[c] == j) for j in range(NUM_JOINTS)
)
# Rest (T-pose) bone directions for joints with one child: legs down, feet forward and a
# little down, spine and head up, arms out sideways. Multi-child joints (pelvis, spine3) take
# their children's offsets from the motion itself, so their best-fit rotation is exact.
_REST_DIRECTION = {
    4: (0, -1, 0), 5: (0, -1, 0), 7: (0, -1, 0), 8: (0, -1, 0), 10: (0, -0.4, 1),
    11: (0, -0.4, 1), 6: (0, 1, 0), 9: (0, 1, 0), 15: (0, 1, 0), 16: (1, 0, 0),
    17: (-1, 0, 0), 18: (1, 0, 0), 19: (-1, 0, 0), 20: (1, 0, 0), 21: (-1, 0, 0),
}  # fmt: skip
# End sites: (joint, direction, length as a fraction of a reference bone (child, parent)).
_END_SITES = (
    (15, (0, 1, 0), 1.0, (15, 12)),  # head top: as long as the neck-to-head bone
    (20, (1, 0, 0), 0.35, (20, 18)),  # hands: a third of the forearm
    (21, (-1, 0, 0), 0.35, (21, 19)),
    (10, (0, 0, 1), 0.35, (10, 7)),  # toes: a third of the foot
    (11, (0, 0, 1), 0.35, (11, 8)),
)
_ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
_JOINT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")


def _unit(v: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def _body_frame(joints: np.ndarray, left: int, right: int, centre: int, up: int) -> np.ndarray:
    """Per-frame rotation (T, 3, 3) whose columns are the body's left, up and forward axes."""
    x = _unit(joints[:, left] - joints[:, right])
    y = joints[:, up] - joints[:, centre]
    y = _unit(y - np.sum(y * x, -1, keepdims=True) * x)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


def _hub_offsets(joints: np.ndarray, hub: int, frame: np.ndarray) -> dict[int, np.ndarray]:
    """Mean offsets of the hub's children expressed in the hub's body frame (its rest pose)."""
    out = {}
    for c in _CHILDREN[hub]:
        local = np.einsum("tji,tj->ti", frame, joints[:, c] - joints[:, hub])
        out[c] = local.mean(axis=0)
    return out


def rest_offsets(joints: np.ndarray) -> np.ndarray:
    """Rest-pose offsets (22, 3) of each joint from its parent, from positions (T, 22, 3).

    Bone lengths are medians over the clip. The pelvis's and spine3's children keep their mean
    geometry in the hip / shoulder body frame; the other bones point along ``_REST_DIRECTION``
    (a T-pose standing on the floor, facing +Z).
    """
    joints = np.asarray(joints, dtype=np.float64)
    offsets = np.zeros((NUM_JOINTS, 3))
    pelvis_frame = _body_frame(joints, 1, 2, 0, 3)
    chest_frame = _body_frame(joints, 13, 14, 9, 12)
    offsets_hub = {**_hub_offsets(joints, 0, pelvis_frame), **_hub_offsets(joints, 9, chest_frame)}
    for j in range(1, NUM_JOINTS):
        if j in offsets_hub:
            offsets[j] = offsets_hub[j]
        else:
            length = np.median(np.linalg.norm(joints[:, j] - joints[:, PARENTS[j]], axis=-1))
            offsets[j] = length * _unit(np.asarray(_REST_DIRECTION[j], dtype=np.float64))
    # Root offset: the pelvis height of the rest pose, so the T-pose stands on the floor.
    leg = offsets[[1, 4, 7]].sum(axis=0)
    offsets[0] = (0.0, -leg[1], 0.0)
    return offsets


def swing_rotations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations (T, 3, 3) taking unit vectors a (T, 3) onto unit vectors b (T, 3)."""
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1)
    c = np.sum(a * b, axis=-1)
    angle = np.arctan2(s, c)
    axis = axis / np.maximum(s, 1e-12)[:, None]
    opposite = (s < 1e-8) & (c < 0)
    if opposite.any():  # half turn about any axis perpendicular to a
        helper = np.where(np.abs(a[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
        axis[opposite] = _unit(np.cross(a, helper))[opposite]
    return Rotation.from_rotvec(axis * angle[:, None]).as_matrix()


def _kabsch(rest: np.ndarray, posed: np.ndarray) -> np.ndarray:
    """Best-fit rotations R (T, 3, 3) with R @ rest[k] ~ posed[:, k].

    ``rest`` is (K, 3), ``posed`` (T, K, 3): the Kabsch solution, batched over T.
    """
    h = np.einsum("ki,tkj->tij", rest, posed)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.swapaxes(vt, 1, 2) @ np.swapaxes(u, 1, 2)))
    fix = np.ones_like(u[:, 0])
    fix[:, 2] = d
    return np.swapaxes(vt, 1, 2) @ (fix[:, :, None] * np.swapaxes(u, 1, 2))


def solve_rotations(joints: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Local joint rotations (T, 22, 3, 3) that pose the ``offsets`` skeleton like ``joints``.

    The pelvis and spine3 get the best-fit rotation over their child bones; every other joint
    with a child gets the swing that turns its rest bone onto the posed one in its parent's
    frame (no twist). Joints without a child (head, wrists, feet) keep their parent's rotation.
    Bones are aimed from the *reconstructed* joint position at the target child, so a misfit
    (a source whose bones stretch) does not add up along the chain.
    """
    joints = np.asarray(joints, dtype=np.float64)
    T = joints.shape[0]
    glob = np.zeros((T, NUM_JOINTS, 3, 3))
    local = np.broadcast_to(np.eye(3), (T, NUM_JOINTS, 3, 3)).copy()
    recon = np.zeros_like(joints)
    recon[:, 0] = joints[:, 0]
    for j in range(NUM_JOINTS):
        if j > 0:
            parent_rot = glob[:, PARENTS[j]]
            recon[:, j] = recon[:, PARENTS[j]] + parent_rot @ offsets[j]
        else:
            parent_rot = np.broadcast_to(np.eye(3), (T, 3, 3))
        kids = list(_CHILDREN[j])
        if len(kids) > 1:
            glob[:, j] = _kabsch(offsets[kids], joints[:, kids] - recon[:, j : j + 1])
            local[:, j] = np.swapaxes(parent_rot, 1, 2) @ glob[:, j]
        elif len(kids) == 1:
            bone = np.einsum("tji,tj->ti", parent_rot, joints[:, kids[0]] - recon[:, j])
            rest = np.broadcast_to(_unit(offsets[kids[0]]), (T, 3))
            local[:, j] = swing_rotations(rest, _unit(bone))
            glob[:, j] = parent_rot @ local[:, j]
        else:
            glob[:, j] = parent_rot
    return local


def _euler_degrees(rot: np.ndarray, channels: tuple[str, ...]) -> np.ndarray:
    """Euler angles (T, 3) in channel order, unwrapped over time so curves have no 360 jumps."""
    seq = "".join(c[0] for c in channels if c in ROTATION_CHANNELS)
    with warnings.catch_warnings():  # gimbal lock still gives a valid (if arbitrary) triple
        warnings.simplefilter("ignore", UserWarning)
        angles = Rotation.from_matrix(rot).as_euler(seq, degrees=True)
    return np.unwrap(angles, period=360.0, axis=0)


def skeleton_bvh(joints: np.ndarray, fps: float = 20.0, scale: float = 100.0) -> BVHData:
    """Build the BVH of the 22-joint body posed like ``joints`` (T, 22, 3), metres, Y up.

    ``scale`` converts metres to the file's unit (100: centimetres).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or joints.shape[0] == 0:
        raise MosaError(
            f"save_bvh needs joint positions of shape (T, {NUM_JOINTS}, 3), got {joints.shape}",
            "pass positions of the 22 SMPL joints in skeleton.JOINT_NAMES order, in metres",
        )
    if not np.isfinite(joints).all():
        raise MosaError("save_bvh: the joint positions contain nan or inf", "check the motion")
    if not fps > 0:
        raise MosaError(f"save_bvh: fps must be positive, got {fps}", "pass e.g. fps=20")
    offsets = rest_offsets(joints)
    local = solve_rotations(joints, offsets)
    columns = [joints[:, 0] * scale, _euler_degrees(local[:, 0], _ROOT_CHANNELS)]
    columns += [_euler_degrees(local[:, j], _JOINT_CHANNELS) for j in range(1, NUM_JOINTS)]
    end_sites = []
    for j, direction, fraction, (a, b) in _END_SITES:
        length = fraction * np.median(np.linalg.norm(joints[:, a] - joints[:, b], axis=-1))
        end_sites.append((j, scale * length * np.asarray(direction, dtype=np.float64)))
    return BVHData(
        names=list(JOINT_NAMES),
        parents=np.asarray(PARENTS, dtype=np.int64),
        offsets=offsets * scale,
        channels=[_ROOT_CHANNELS] + [_JOINT_CHANNELS] * (NUM_JOINTS - 1),
        frame_time=1.0 / fps,
        motion=np.concatenate(columns, axis=1),
        end_sites=end_sites,
    )


def save_bvh(path: str | os.PathLike, joints: np.ndarray, fps: float = 20.0) -> None:
    """Write joint positions (T, 22, 3), metres, Y up, as a BVH in centimetres (atomically).

    The skeleton has the SMPL joint names, a 6-channel pelvis root and 3-channel joints
    (Z X Y rotation order), End Sites on head, hands and feet, and a T-pose rest pose whose
    bone lengths and hip/shoulder geometry come from the motion. ``load_bvh`` of the file gives
    back the positions (exactly for a rigid skeleton; see ``solve_rotations``).
    """
    write_bvh(path, skeleton_bvh(joints, fps))
