"""An edit back on the source take: the animator's rig, frame rate and place in the scene.

An ``EditedMotion`` lives in HumanML3D's canonical space (the 22-joint body at HumanML3D's
proportions, starting at the origin, 20 fps). ``edit_on_rig`` writes it on the source BVH's own
skeleton instead, and ``edit_on_joints`` on a joint source's own positions:

- kept frames before the first generated frame are the take's frames exactly (every channel
  value, bit for bit; a joint source's own positions);
- generated frames are retargeted onto the rig (``motion.rig_out``: bone directions of the 22
  joints, at the take's frame rate), placed in the scene by the similarity that maps the
  canonical body onto the take at the kept frame next to them (heading, position, and the
  HumanML3D skeleton's size over the take's: ``take_scale``); joints outside the 22 (fingers,
  twist bones, props) and the channels the solve leaves alone carry the take's pose over from
  the nearest kept frames (blended across a run between two kept parts);
- at each seam the difference between the kept frame and its retargeted equivalent fades out
  over the edit's seam window (``Seam.window``, in source frames), so the rig does not jump;
- kept frames after a generated part keep every joint's local rotation and translation
  channel, the root's transform aside: the take is rigidly re-anchored (heading and floor
  position, never height) to continue from where the generated part ends.

Frame counts: a kept part keeps all of its take frames (the source rate), a generated part
has as many frames at the take's rate as its duration; a span edit has the take's frame count.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mosa.edit.modes import EditedMotion
from mosa.edit.seams import DEFAULT_BLEND
from mosa.errors import MosaError
from mosa.motion.bvh import BVHData
from mosa.motion.io import MotionFile
from mosa.motion.retarget import resample, snap_fps
from mosa.motion.rig_out import (
    RigFrame,
    pose_on_rig,
    rig_frame,
    rig_tree,
    write_channels,
)
from mosa.motion.skeleton import FPS, LEG_BONES, NUM_JOINTS, PARENTS, TARGET_OFFSETS


@dataclass
class Take:
    """A source of an edit as it is in the scene: ``joints (T, 22, 3)`` at 20 fps, mosa space
    (for a BVH, through its ``frame``, so ``bvh``'s channels and these joints agree), and
    ``scale``: HumanML3D's skeleton size over the take's (``features.uniform_skeleton``)."""

    joints: np.ndarray
    scale: float = 1.0
    bvh: BVHData | None = None
    frame: RigFrame | None = None

    @property
    def fps(self) -> float:
        return FPS if self.bvh is None else snap_fps(self.bvh.fps)


def take_scale(joints: np.ndarray) -> float:
    """HumanML3D's right-leg length over the take's on its first frame (what
    ``extract_features`` scales the root path by)."""
    j = np.asarray(joints, np.float64)
    legs = np.linalg.norm(j[0, list(LEG_BONES)] - j[0, [PARENTS[b] for b in LEG_BONES]], axis=-1)
    return float(np.abs(TARGET_OFFSETS[list(LEG_BONES)]).max(-1).sum() / max(legs.sum(), 1e-9))


def take_of(source: MotionFile, bvh: BVHData | None = None, mapping=None) -> Take:
    """The ``Take`` of a source read by ``read_motion`` (and, for a BVH, its parsed file)."""
    if bvh is None:
        scale = 1.0 if source.source_kind == "features" else take_scale(source.joints)
        return Take(np.asarray(source.joints, np.float64), scale)
    frame, full = rig_frame(bvh, mapping)
    fps = snap_fps(bvh.fps)
    joints = resample(full, fps, FPS) if abs(fps - FPS) > 1e-6 else full
    return Take(joints, take_scale(joints), bvh, frame)


# -------------------------------------------------------------------------- placement


def _yaw(v: np.ndarray, w: np.ndarray) -> float:
    """Rotation angle about +Y that best turns vectors ``v (K, 3)`` onto ``w (K, 3)``."""
    s = np.sum(v[:, 2] * w[:, 0] - v[:, 0] * w[:, 2])
    c = np.sum(v[:, 0] * w[:, 0] + v[:, 2] * w[:, 2])
    return float(np.arctan2(s, c))


def _ry(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@dataclass
class Similarity:
    """``p -> R_y(yaw) @ (p - a) * size + b`` on ``(..., 3)`` points."""

    yaw: float
    a: np.ndarray
    b: np.ndarray
    size: float = 1.0

    def __call__(self, p: np.ndarray) -> np.ndarray:
        return ((p - self.a) * self.size) @ _ry(self.yaw).T + self.b


def canonical_to_scene(canon: np.ndarray, scene: np.ndarray, scale: float) -> Similarity:
    """The map from a canonical frame ``(22, 3)`` of the edit onto the same pose in the scene
    ``(22, 3)``: pelvis onto pelvis, best yaw of the root-relative joints, size ``1 / scale``."""
    yaw = _yaw(canon[1:] - canon[0], scene[1:] - scene[0])
    return Similarity(yaw, canon[0].copy(), scene[0].copy(), 1.0 / scale)


def re_anchor(scene: np.ndarray, placed: np.ndarray) -> Similarity:
    """The rigid move (yaw and a move on the floor) taking the take's frame ``scene (22, 3)``
    onto ``placed (22, 3)``, where the output has it."""
    yaw = _yaw(scene[1:] - scene[0], placed[1:] - placed[0])
    b = placed[0].copy()
    b[1] = scene[0, 1]  # heights stay the take's
    return Similarity(yaw, scene[0].copy(), b)


# ---------------------------------------------------------------------------- timeline


@dataclass
class _Piece:
    kind: str  # "kept" or "generated"
    start: int  # canvas frames
    end: int
    take: int | None = None
    source_start: int = 0


def _pieces(m: EditedMotion) -> list[_Piece]:
    if not m.segments:
        raise MosaError("the edit has no segments", "pass an EditedMotion from mosa.edit")
    return [_Piece(g.kind, g.start, g.end, g.source, g.source_start or 0) for g in m.segments]


def _kept_frames(p: _Piece, rows: int, frames: int, r: float, whole: bool) -> np.ndarray:
    """Take frames (at its own rate) of a kept piece: from its first row's time (0 for the
    take's start) to its end's; with ``whole``, to the take's last frame when the piece
    reaches the last row (or the last but one: features have a row less than joints)."""
    lo = 0 if p.source_start == 0 else int(np.ceil(p.source_start * r - 1e-6))
    end_row = p.source_start + p.end - p.start
    hi = min(frames, int(np.ceil(end_row * r - 1e-6)))
    if whole and end_row >= rows - 1:
        hi = frames
    return np.arange(lo, max(lo, hi))


def _interp(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``x (T, ...)`` linearly at fractional frames ``u (n,)`` (clamped)."""
    u = np.clip(u, 0, len(x) - 1)
    i0 = np.minimum(np.floor(u).astype(int), max(len(x) - 2, 0))
    i1 = np.minimum(i0 + 1, len(x) - 1)
    w = (u - i0).reshape(-1, *([1] * (x.ndim - 1)))
    return (1 - w) * x[i0] + w * x[i1]


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass
class _Timeline:
    """Output frames: canvas time ``u`` (20 fps frames), which piece, and for kept frames the
    take frame; placements per kept piece; canonical->scene maps per generated piece."""

    u: np.ndarray
    piece: np.ndarray
    take_frame: np.ndarray
    placements: dict[int, Similarity]
    maps: dict[int, Similarity]


def _timeline(m: EditedMotion, takes: list[Take], r: float) -> _Timeline:
    pieces = _pieces(m)
    canon = np.asarray(m.joints, np.float64)
    T = len(canon)
    kept_idx = [i for i, p in enumerate(pieces) if p.kind == "kept"]
    if not kept_idx:
        raise MosaError("the edit keeps no source frames", "nothing to put back on the take")
    u_of, take_of_frame = {}, {}
    for i in kept_idx:
        p, take = pieces[i], takes[pieces[i].take or 0]
        rate = take.fps / FPS
        frames = take.bvh.num_frames if take.bvh is not None else len(take.joints)
        kf = _kept_frames(p, len(take.joints), frames, rate, take.bvh is not None)
        take_of_frame[i] = kf
        u_of[i] = p.start + kf / rate - p.source_start
    # placements: the first kept piece stays where it is; a generated piece is placed from
    # the kept frame before it (else after it); a later kept piece follows the generated one
    placements: dict[int, Similarity] = {kept_idx[0]: Similarity(0.0, np.zeros(3), np.zeros(3))}
    maps: dict[int, Similarity] = {}
    order = list(range(kept_idx[0], len(pieces))) + list(range(kept_idx[0] - 1, -1, -1))
    for i in order:
        p = pieces[i]
        if p.kind == "kept":
            if i in placements:
                continue
            g = maps[i - 1]
            take = takes[p.take or 0]
            k = p.start
            placements[i] = re_anchor(take.joints[_row(p, k, take)], g(canon[k]))
            continue
        before = i > 0 and pieces[i - 1].kind == "kept" and i - 1 in placements
        side = i - 1 if before else i + 1
        q = pieces[side]
        k = q.end - 1 if side < i else q.start
        take = takes[q.take or 0]
        scene = placements[side](take.joints[_row(q, k, take)])
        sim = canonical_to_scene(canon[k], scene, take.scale)
        maps[i] = sim
    u_parts, piece_parts, frame_parts = [], [], []
    for i, p in enumerate(pieces):
        if p.kind == "kept":
            u_parts.append(u_of[i])
            frame_parts.append(take_of_frame[i])
        else:
            prev = u_of[i - 1][-1] if i > 0 and len(u_of.get(i - 1, [])) else None
            nxt = u_of[i + 1][0] if i + 1 < len(pieces) and len(u_of.get(i + 1, [])) else None
            if prev is not None and nxt is not None:
                u = prev + np.arange(1, int(np.ceil((nxt - prev) * r - 1e-6))) / r
            elif prev is not None:  # the motion ends generated
                u = prev + np.arange(1, int(np.floor((T - 1 - prev) * r + 1e-6)) + 1) / r
            else:  # the motion starts generated
                u = nxt - np.arange(int(np.floor(nxt * r + 1e-6)), 0, -1) / r
            u_parts.append(u)
            frame_parts.append(np.full(len(u), -1))
        piece_parts.append(np.full(len(u_parts[-1]), i))
    return _Timeline(
        np.concatenate(u_parts), np.concatenate(piece_parts), np.concatenate(frame_parts),
        placements, maps,
    )  # fmt: skip


def _row(p: _Piece, k: int, take: Take) -> int:
    """The take's 20 fps row of canvas frame ``k`` of kept piece ``p``."""
    return int(min(p.source_start + k - p.start, len(take.joints) - 1))


def _seam_windows(m: EditedMotion, r: float) -> dict[tuple[int, int], int]:
    """(kept canvas frame, step) -> window in output frames, from the edit's seams."""
    return {(s.frame, s.step): max(1, int(round(s.window * r))) for s in m.seams}


# ------------------------------------------------------------------------------ output


def edit_on_joints(m: EditedMotion, takes: list[Take]) -> np.ndarray:
    """``(T, 22, 3)`` at 20 fps: ``m`` on joint sources' own positions (kept frames are the
    take's joints, placed; generated ones the edit's poses at the take's bone lengths)."""
    tl = _timeline(m, takes, 1.0)
    pieces = _pieces(m)
    canon = np.asarray(m.joints, np.float64)
    out = np.zeros((len(tl.u), NUM_JOINTS, 3))
    lengths = _bone_lengths(takes[0].joints)
    gen_frames: dict[int, np.ndarray] = {}
    for i, p in enumerate(pieces):
        sel = np.flatnonzero(tl.piece == i)
        if p.kind == "kept":
            take = takes[p.take or 0]
            rows = np.minimum(tl.take_frame[sel], len(take.joints) - 1)
            x = take.joints[rows]
            out[sel] = x if i == _first_kept(pieces) else tl.placements[i](x)
        else:
            x = tl.maps[i](_interp(canon, tl.u[sel]))
            out[sel] = _with_lengths(x, lengths)
            gen_frames[i] = sel
    windows = _seam_windows(m, 1.0)
    for i, sel in gen_frames.items():
        for side, step in ((sel[0] - 1, 1), (sel[-1] + 1, -1)):
            if not 0 <= side < len(out):
                continue
            kept_u = tl.u[side]
            equiv = _with_lengths(tl.maps[i](_interp(canon, np.array([kept_u])))[0:1], lengths)
            delta = out[side] - equiv[0]
            w = _weights(sel, side, step, windows, pieces[i], m, len(sel))
            out[sel] += w[:, None, None] * delta
    return out.astype(np.float32)


def _first_kept(pieces: list[_Piece]) -> int:
    return next(i for i, p in enumerate(pieces) if p.kind == "kept")


def _bone_lengths(joints: np.ndarray) -> np.ndarray:
    b = joints[:, 1:] - joints[:, list(PARENTS[1:])]
    return np.median(np.linalg.norm(b, axis=-1), axis=0)


def _with_lengths(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``x (n, 22, 3)`` with its bone directions and ``lengths (21,)``, from its pelvis."""
    out = np.empty_like(x)
    out[:, 0] = x[:, 0]
    for j in range(1, NUM_JOINTS):
        b = x[:, j] - x[:, PARENTS[j]]
        b /= np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
        out[:, j] = out[:, PARENTS[j]] + b * lengths[j - 1]
    return out


def _weights(
    sel: np.ndarray, side: int, step: int, windows: dict, piece: _Piece, m, n: int
) -> np.ndarray:
    """Share of the seam at output frame ``side`` on generated output frames ``sel``."""
    k = piece.start - 1 if step > 0 else piece.end
    window = windows.get((k, step), DEFAULT_BLEND)
    closed = piece.start > 0 and piece.end < len(m.joints)
    if closed:
        window = min(window, n + 1)
    d = (sel - side) * step
    return 1.0 - _smoothstep(d / max(window, 1))


def edit_on_rig(m: EditedMotion, takes: list[Take]) -> BVHData:
    """``m`` on the skeleton of ``takes[0]`` (a BVH take), at its frame rate; see the module
    docstring. A kept part of another take is copied the same way when that take has the same
    skeleton and channels (``inbetween`` of two takes of one character), else retargeted."""
    base = takes[0]
    if base.bvh is None or base.frame is None:
        raise MosaError("edit_on_rig needs a BVH source", "use edit_on_joints for joint sources")
    bvh, frame = base.bvh, base.frame
    r = base.fps / FPS
    for t in takes[1:]:
        if t.bvh is not None and not _same_rig(bvh, t.bvh):
            raise MosaError(
                f"{t.bvh.path} is on a different skeleton than {bvh.path}",
                "give both takes on one rig, or write the in-between with --rig smpl",
            )
        if t.bvh is None:
            raise MosaError("cannot mix a BVH take with a joint source on the take's rig",
                            "write the result with --rig smpl")  # fmt: skip
    tl = _timeline(m, takes, r)
    pieces = _pieces(m)
    tree = rig_tree(bvh, frame.mapping)
    J, N = bvh.num_joints, len(tl.u)
    root = int(np.flatnonzero(bvh.parents < 0)[0])
    motion = np.zeros((N, bvh.motion.shape[1]))
    kept = tl.take_frame >= 0
    # kept frames: channel values copied, the root's re-anchored after a generated part
    for i, p in enumerate(pieces):
        if p.kind != "kept":
            continue
        sel = np.flatnonzero(tl.piece == i)
        rows = takes[p.take or 0].bvh.motion[tl.take_frame[sel]]
        if i != _first_kept(pieces):
            rows = _re_anchor_rows(bvh, frame, rows, tl.placements[i], root)
        motion[sel] = rows
    locals_, trans = _local_pose(bvh, motion)
    # generated frames
    canon = np.asarray(m.joints, np.float64)
    windows = _seam_windows(m, r)
    for i, p in enumerate(pieces):
        if p.kind != "generated":
            continue
        sel = np.flatnonzero(tl.piece == i)
        if not len(sel):
            continue
        sides = [s for s in (sel[0] - 1, sel[-1] + 1) if 0 <= s < N and kept[s]]
        free_r, free_t = _carry(locals_, trans, sel, sides)
        x = tl.maps[i](_interp(canon, tl.u[sel]))
        g_loc, g_tr = pose_on_rig(bvh, tree, frame, x, free_t, free_r, floor=False)
        for s in sides:  # the seam: the kept frame against its own retargeted equivalent
            x_s = tl.maps[i](_interp(canon, tl.u[[s]]))
            loc_s, tr_s = pose_on_rig(bvh, tree, frame, x_s, trans[[s]], locals_[[s]], floor=False)
            step = 1 if s < sel[0] else -1
            w = _weights(sel, s, step, windows, p, m, len(sel))
            delta = Rotation.from_matrix(locals_[s] @ np.swapaxes(loc_s[0], -1, -2)).as_rotvec()
            turn = Rotation.from_rotvec((w[:, None, None] * delta[None]).reshape(-1, 3))
            g_loc = turn.as_matrix().reshape(len(sel), J, 3, 3) @ g_loc
            g_tr[:, root] += w[:, None] * (trans[s, root] - tr_s[0, root])
        ref = motion[sel[0] - 1] if sel[0] > 0 and kept[sel[0] - 1] else None
        motion[sel] = write_channels(bvh, g_loc, g_tr, ref)
    return BVHData(
        names=list(bvh.names), parents=bvh.parents.copy(), offsets=bvh.offsets.copy(),
        channels=list(bvh.channels), frame_time=bvh.frame_time, motion=motion,
        end_sites=list(bvh.end_sites), path=bvh.path,
    )  # fmt: skip


def _same_rig(a: BVHData, b: BVHData) -> bool:
    return (
        list(a.names) == list(b.names)
        and np.array_equal(a.parents, b.parents)
        and list(a.channels) == list(b.channels)
        and abs(snap_fps(a.fps) - snap_fps(b.fps)) < 1e-6
    )


def _local_pose(bvh: BVHData, motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    data = BVHData(bvh.names, bvh.parents, bvh.offsets, bvh.channels, bvh.frame_time, motion)
    return data.local_transforms()


def _carry(
    locals_: np.ndarray, trans: np.ndarray, sel: np.ndarray, sides: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations and translations of generated frames ``sel`` carried over from the
    kept frames ``sides`` next to them: held from the one, or blended from the one before to
    the one after."""
    n, J = len(sel), locals_.shape[1]
    if not sides:
        return (np.broadcast_to(np.eye(3), (n, J, 3, 3)).copy(),
                np.zeros((n, J, 3)))  # fmt: skip
    if len(sides) == 1:
        s = sides[0]
        return np.repeat(locals_[s][None], n, 0), np.repeat(trans[s][None], n, 0)
    a, b = sides
    x = _smoothstep((sel - a) / (b - a))
    rot = np.empty((n, J, 3, 3))
    for j in range(J):
        slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([locals_[a, j], locals_[b, j]])))
        rot[:, j] = slerp(x).as_matrix()
    tr = (1 - x)[:, None, None] * trans[a][None] + x[:, None, None] * trans[b][None]
    return rot, tr


def _re_anchor_rows(
    bvh: BVHData, frame: RigFrame, rows: np.ndarray, move: Similarity, root: int
) -> np.ndarray:
    """Channel rows with the root rigidly moved by ``move`` (mosa space): the root's
    rotation turned by its yaw and its translation moved; every other channel as it is."""
    rows = rows.copy()
    local, trans = _local_pose(bvh, rows)
    turn = frame.rotation_to_file(_ry(move.yaw))
    new_rot = turn @ local[:, root]
    p = frame.to_mosa(trans[:, root])
    new_trans = trans.copy()
    new_trans[:, root] = frame.to_file(move(p))
    loc = local.copy()
    loc[:, root] = new_rot
    cols = bvh.channel_columns()[root]
    out = write_channels(_only(bvh, root), loc[:, [root]], new_trans[:, [root]], rows[0, cols])
    # the reference keeps the unwrapped angles next to the take's own (no 360 jumps)
    rows[:, cols] = out
    return rows


def _only(bvh: BVHData, j: int) -> BVHData:
    return BVHData([bvh.names[j]], np.array([-1]), bvh.offsets[[j]], [bvh.channels[j]],
                   bvh.frame_time, np.zeros((0, len(bvh.channels[j]))))  # fmt: skip


# ------------------------------------------------------------------------------- saving

RIGS = ("source", "smpl")


def check_edit_rig(rig: str) -> None:
    """``MosaError`` unless an edit's ``rig`` is 'source' or 'smpl' (``RIGS``)."""
    if rig in RIGS:
        return
    hint = "use --rig source (the default) or --rig smpl"
    if str(rig).lower().endswith(".bvh"):
        hint = (
            "an edit stays on its source's rig; to put a motion on another character use "
            "mosa generate --rig character.bvh (mosa.motion.rig_out), or " + hint
        )
    raise MosaError(f"--rig {rig}: unknown rig for an edit", hint)


def lock_generated_feet(m: EditedMotion) -> np.ndarray:
    """``m.joints`` with the feet locked (``motion.footlock``) where the generator's contacts
    say so on generated frames; kept frames are left as they are."""
    from mosa.motion.footlock import contacts_from_features, foot_lock

    joints = np.asarray(m.joints, np.float64)
    if len(joints) < 2:
        return joints.astype(np.float32)
    contacts = contacts_from_features(np.asarray(m.features), len(joints))
    if m.kept is not None:
        contacts &= ~np.asarray(m.kept[: len(joints)], bool)[:, None]
    locked = foot_lock(joints, contacts)
    if m.kept is not None:
        locked[np.asarray(m.kept[: len(joints)], bool)] = joints[m.kept[: len(joints)]]
    return locked.astype(np.float32)


def save_edit(
    m: EditedMotion,
    path,
    sources: list[MotionFile],
    *,
    rig: str = "source",
    mapping=None,
    foot_lock: bool = True,
) -> Path:
    """Write an edit of ``sources`` (as ``read_motion`` read them) to ``path`` by extension.

    ``rig="source"``: a BVH output of a BVH source is on the take's own rig
    (``edit_on_rig``); any other output holds the sources' own joint positions on kept frames
    (``edit_on_joints``). ``rig="smpl"``: the edit as mosa made it (HumanML3D's skeleton, at
    the origin, 20 fps). ``foot_lock``: lock generated feet (``lock_generated_feet``)."""
    from mosa.motion.bvh import read_bvh, write_bvh
    from mosa.motion.io import write_motion

    check_edit_rig(rig)
    path = Path(path)
    if foot_lock:
        m = replace(m, joints=lock_generated_feet(m))
    if rig == "smpl":
        return m.save(path)
    bvh_sources = [s for s in sources if s.source_kind == "bvh"]
    if path.suffix.lower() == ".bvh" and bvh_sources and len(bvh_sources) == len(sources):
        takes = [take_of(s, read_bvh(s.path), mapping) for s in sources]
        write_bvh(path, edit_on_rig(m, takes), precision=None)  # kept frames bit for bit
        return path
    joints = edit_on_joints(m, [take_of(s) for s in sources])
    return write_motion(path, joints, fps=FPS, caption=m.text)
