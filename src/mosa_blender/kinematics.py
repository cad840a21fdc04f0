"""Joint positions <-> bone rotations for the 22-joint body, in plain Python (no numpy, no bpy).

Blender's Python has no numpy on every system (Debian's has none), so this is written with
tuples: a vector is ``(x, y, z)``, a rotation a row-major 3x3 tuple of 9 floats, a motion a
list of frames of 22 vectors. Everything here is in Blender's axes (Z up, the body facing -Y);
``to_blender``/``from_blender`` convert from and to mosa's (Y up, facing +Z, +X the body's
left).

The solver (``solve``) is mosa's BVH solver (``mosa.motion.bvh.solve_rotations``) in small:
the pelvis and spine3 take the rotation of the frame their children span (left-right axis and
up axis); every other joint with a child takes the swing that turns its rest bone onto the
posed one in its parent's frame (no twist); joints without a child keep their parent's
rotation. Bones are aimed from the *reconstructed* joint, so a bone of another length does not
add up along the chain. ``forward`` is the inverse: local rotations and a root path -> joints.

``bone_channels`` / ``channel_rotations`` convert the local rotations (rest orientation of every
joint the identity) to and from Blender pose-bone channels, whose rotations are in each bone's
own rest frame: ``P = B^T L B`` for a bone whose rest rotation (armature space) is ``B``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

Vec = tuple[float, float, float]
Mat = tuple[float, ...]  # row-major 3x3
Quat = tuple[float, float, float, float]  # (w, x, y, z), Blender's order

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
)  # fmt: skip
NUM_JOINTS = len(JOINT_NAMES)
FPS = 20.0  # the server's motions
CHILDREN: tuple[tuple[int, ...], ...] = tuple(
    tuple(c for c in range(NUM_JOINTS) if PARENTS[c] == j) for j in range(NUM_JOINTS)
)
# hubs: joint -> (left child, right child, up child): the frame their children span
HUBS = {0: (1, 2, 3), 9: (13, 14, 12)}

# rest direction (mosa axes) of each bone parent -> joint, a T-pose facing +Z (the hubs'
# children, 1-3 and 12-14, take their place from the motion): mosa.motion.bvh._REST_DIRECTION
_REST_DIRECTIONS = (
    (0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, -1, 0), (0, 1, 0),
    (0, -1, 0), (0, -1, 0), (0, 1, 0), (0, -0.4, 1), (0, -0.4, 1), (0, 1, 0),
    (1, 0, 0), (-1, 0, 0), (0, 1, 0), (1, 0, 0), (-1, 0, 0), (1, 0, 0), (-1, 0, 0),
    (1, 0, 0), (-1, 0, 0),
)  # fmt: skip
# where the bones of joints without a child point (mosa axes), as a fraction of the parent bone
_LEAF_TAILS = {15: ((0, 1, 0), 1.0), 20: ((1, 0, 0), 0.35), 21: ((-1, 0, 0), 0.35),
               10: ((0, 0, 1), 0.35), 11: ((0, 0, 1), 0.35)}  # fmt: skip

IDENTITY: Mat = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


# -- small vector / matrix helpers --------------------------------------------------------------


def add(a: Sequence[float], b: Sequence[float]) -> Vec:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def sub(a: Sequence[float], b: Sequence[float]) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def scale(a: Sequence[float], s: float) -> Vec:
    return (a[0] * s, a[1] * s, a[2] * s)


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def cross(a: Sequence[float], b: Sequence[float]) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def norm(a: Sequence[float]) -> float:
    return math.sqrt(dot(a, a))


def unit(a: Sequence[float], eps: float = 1e-12) -> Vec:
    n = norm(a)
    return scale(a, 1.0 / n) if n > eps else (0.0, 0.0, 0.0)


def mul(a: Mat, b: Mat) -> Mat:
    """``a @ b`` of two 3x3 matrices."""
    return tuple(
        a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j]
        for i in range(3)
        for j in range(3)
    )


def apply(m: Mat, v: Sequence[float]) -> Vec:
    """``m @ v``."""
    return (
        m[0] * v[0] + m[1] * v[1] + m[2] * v[2],
        m[3] * v[0] + m[4] * v[1] + m[5] * v[2],
        m[6] * v[0] + m[7] * v[1] + m[8] * v[2],
    )


def transpose(m: Mat) -> Mat:
    return (m[0], m[3], m[6], m[1], m[4], m[7], m[2], m[5], m[8])


def from_columns(x: Vec, y: Vec, z: Vec) -> Mat:
    return (x[0], y[0], z[0], x[1], y[1], z[1], x[2], y[2], z[2])


def axis_angle(axis: Vec, angle: float) -> Mat:
    """Rotation by ``angle`` radians about the unit ``axis`` (Rodrigues)."""
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    t = 1.0 - c
    return (
        t * x * x + c, t * x * y - s * z, t * x * z + s * y,
        t * x * y + s * z, t * y * y + c, t * y * z - s * x,
        t * x * z - s * y, t * y * z + s * x, t * z * z + c,
    )  # fmt: skip


def swing(a: Vec, b: Vec) -> Mat:
    """The smallest rotation taking unit vector ``a`` onto unit vector ``b``."""
    axis = cross(a, b)
    s, c = norm(axis), dot(a, b)
    if s < 1e-12:
        if c > 0:
            return IDENTITY
        helper = (1.0, 0.0, 0.0) if abs(a[0]) < 0.9 else (0.0, 1.0, 0.0)
        return axis_angle(unit(cross(a, helper)), math.pi)  # half turn
    return axis_angle(scale(axis, 1.0 / s), math.atan2(s, c))


def frame(left: Vec, up: Vec) -> Mat:
    """Rotation whose columns are the left-right axis, forward (up x left) and up (``up``
    made perpendicular to ``left``)."""
    x = unit(left)
    z = unit(sub(up, scale(x, dot(up, x))))
    return from_columns(x, cross(z, x), z)


def to_quaternion(m: Mat) -> Quat:
    """The unit quaternion (w, x, y, z) of rotation ``m``, w >= 0."""
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m
    tr = m00 + m11 + m22
    if tr > 0:
        s = 2.0 * math.sqrt(tr + 1.0)
        q = (0.25 * s, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s)
    elif m00 > m11 and m00 > m22:
        s = 2.0 * math.sqrt(1.0 + m00 - m11 - m22)
        q = ((m21 - m12) / s, 0.25 * s, (m01 + m10) / s, (m02 + m20) / s)
    elif m11 > m22:
        s = 2.0 * math.sqrt(1.0 + m11 - m00 - m22)
        q = ((m02 - m20) / s, (m01 + m10) / s, 0.25 * s, (m12 + m21) / s)
    else:
        s = 2.0 * math.sqrt(1.0 + m22 - m00 - m11)
        q = ((m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, 0.25 * s)
    n = math.sqrt(sum(c * c for c in q))
    sign = -1.0 if q[0] < 0 else 1.0
    return tuple(sign * c / n for c in q)  # type: ignore[return-value]


def from_quaternion(q: Sequence[float]) -> Mat:
    """Rotation of quaternion (w, x, y, z), normalised first (an animator's keys need not be)."""
    n = math.sqrt(sum(c * c for c in q)) or 1.0
    w, x, y, z = (c / n for c in q)
    return (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )  # fmt: skip


# -- axes, rest pose and resampling -------------------------------------------------------------


def to_blender(v: Sequence[float]) -> Vec:
    """A point in mosa's axes (Y up, facing +Z) in Blender's (Z up, facing -Y)."""
    return (float(v[0]), -float(v[2]), float(v[1]))


def from_blender(v: Sequence[float]) -> Vec:
    """The inverse of ``to_blender``."""
    return (float(v[0]), float(v[2]), -float(v[1]))


def motion_to_blender(joints: Sequence[Sequence[Sequence[float]]]) -> list[list[Vec]]:
    """Server joints ``(T, 22, 3)`` (metres, mosa axes) -> Blender axes."""
    return [[to_blender(p) for p in f] for f in joints]


def motion_from_blender(joints: Sequence[Sequence[Sequence[float]]]) -> list[list[Vec]]:
    return [[from_blender(p) for p in f] for f in joints]


def rest_offsets(motion: Sequence[Sequence[Vec]]) -> list[Vec]:
    """Rest-pose offsets (22 vectors, Blender axes) of each joint from its parent, fitted to
    a motion ``(T, 22)`` (Blender axes), as ``mosa.motion.bvh.rest_offsets`` does: bone lengths
    are medians over the motion, the hubs' children keep their mean place in the hub's frame,
    the other bones point along a T-pose facing -Y; the root's offset is the height of the
    pelvis over the ankles, so the rest pose stands on the floor."""
    if not motion:
        raise ValueError("rest_offsets needs a motion with at least one frame")
    out: list[Vec] = [(0.0, 0.0, 0.0)] * NUM_JOINTS
    for hub, kids in HUBS.items():
        for c in kids:
            local = [apply(transpose(_hub_frame(f, f[hub], hub)), sub(f[c], f[hub]))
                     for f in motion]  # fmt: skip
            out[c] = scale(tuple(map(math.fsum, zip(*local, strict=True))), 1.0 / len(local))  # type: ignore[arg-type]
    for j in range(1, NUM_JOINTS):
        if any(j in kids for kids in HUBS.values()):
            continue
        length = statistics.median(norm(sub(f[j], f[PARENTS[j]])) for f in motion)
        out[j] = scale(unit(to_blender(_REST_DIRECTIONS[j])), length)
    out[0] = (0.0, 0.0, -sum(out[j][2] for j in (1, 4, 7)))  # hip -> knee -> ankle, down
    return out


def rest_positions(offsets: Sequence[Vec]) -> list[Vec]:
    """Joint positions of the rest pose (the root's offset is its position)."""
    pos: list[Vec] = []
    for j, off in enumerate(offsets):
        pos.append(tuple(off) if PARENTS[j] < 0 else add(pos[PARENTS[j]], off))  # type: ignore[arg-type]
    return pos


def bone_tails(offsets: Sequence[Vec]) -> list[Vec]:
    """Per joint, the vector from its head to its bone's tail: towards its child (the hubs:
    the up child), or for joints without one along ``_LEAF_TAILS``."""
    tails = []
    for j in range(NUM_JOINTS):
        if j in HUBS:
            tails.append(tuple(offsets[HUBS[j][2]]))
        elif CHILDREN[j]:
            tails.append(tuple(offsets[CHILDREN[j][0]]))
        else:
            direction, fraction = _LEAF_TAILS[j]
            length = max(norm(offsets[j]) * fraction, 0.02)
            tails.append(scale(unit(to_blender(direction)), length))
    return tails  # type: ignore[return-value]


def resample(frames: Sequence[Sequence[Vec]], src_fps: float, dst_fps: float) -> list[list[Vec]]:
    """A motion (T frames at ``src_fps``, lasting T / src_fps s) at ``dst_fps``: linear
    interpolation of every point, the same duration rounded to whole frames."""
    T = len(frames)
    if abs(src_fps - dst_fps) < 1e-9 or T < 2:
        return [list(f) for f in frames]
    n = max(1, math.ceil(T * dst_fps / src_fps - 1e-6))
    out = []
    for k in range(n):
        t = min(k * src_fps / dst_fps, T - 1)
        i = min(int(t), T - 2)
        w = t - i
        a, b = frames[i], frames[i + 1]
        out.append([add(scale(p, 1 - w), scale(q, w)) for p, q in zip(a, b, strict=True)])
    return out


# -- the solver and forward kinematics ----------------------------------------------------------


def _hub_frame(points: Sequence[Vec], centre: Vec, j: int) -> Mat:
    left, right, up = HUBS[j]
    return frame(sub(points[left], points[right]), sub(points[up], centre))


def solve_frame(points: Sequence[Vec], offsets: Sequence[Vec]) -> list[Mat]:
    """Local rotations (22 matrices) that pose the ``offsets`` skeleton like ``points``."""
    rest_hubs = {j: _hub_frame(offsets, (0.0, 0.0, 0.0), j) for j in HUBS}
    glob: list[Mat] = [IDENTITY] * NUM_JOINTS
    local: list[Mat] = [IDENTITY] * NUM_JOINTS
    recon: list[Vec] = [tuple(points[0])] * NUM_JOINTS  # type: ignore[list-item]
    for j in range(NUM_JOINTS):
        p = PARENTS[j]
        parent = IDENTITY if p < 0 else glob[p]
        if p >= 0:
            recon[j] = add(recon[p], apply(parent, offsets[j]))
        if j in HUBS:
            glob[j] = mul(_hub_frame(points, recon[j], j), transpose(rest_hubs[j]))
            local[j] = mul(transpose(parent), glob[j])
        elif CHILDREN[j]:
            c = CHILDREN[j][0]
            bone = apply(transpose(parent), sub(points[c], recon[j]))
            local[j] = swing(unit(offsets[c]), unit(bone)) if norm(bone) > 1e-9 else IDENTITY
            glob[j] = mul(parent, local[j])
        else:
            glob[j] = parent
    return local


def solve(motion: Sequence[Sequence[Vec]], offsets: Sequence[Vec]) -> list[list[Mat]]:
    """Local rotations ``(T, 22)`` for a motion ``(T, 22)`` of points (see ``solve_frame``)."""
    return [solve_frame(points, offsets) for points in motion]


def forward_frame(local: Sequence[Mat], root: Vec, offsets: Sequence[Vec]) -> list[Vec]:
    """Joint positions (22) of local rotations with the root at ``root``."""
    glob: list[Mat] = [IDENTITY] * NUM_JOINTS
    pos: list[Vec] = [tuple(root)] * NUM_JOINTS  # type: ignore[list-item]
    for j in range(NUM_JOINTS):
        p = PARENTS[j]
        if p < 0:
            glob[j] = local[j]
        else:
            glob[j] = mul(glob[p], local[j])
            pos[j] = add(pos[p], apply(glob[p], offsets[j]))
    return pos


def forward(
    rotations: Sequence[Sequence[Mat]], roots: Sequence[Vec], offsets: Sequence[Vec]
) -> list[list[Vec]]:
    return [forward_frame(r, t, offsets) for r, t in zip(rotations, roots, strict=True)]


# -- Blender pose-bone channels -----------------------------------------------------------------


def bone_channels(
    rotations: Sequence[Sequence[Mat]],
    roots: Sequence[Vec],
    bone_rest: Sequence[Mat],
    root_head: Vec,
    after: Sequence[Quat] | None = None,
) -> tuple[list[list[Quat]], list[Vec]]:
    """Pose-bone channels of local rotations ``(T, 22)`` and root positions ``(T,)``:
    quaternions ``(22, T)`` (each on the hemisphere of the one before, so curves do not flip;
    ``after``: the 22 quaternions of the frame before the first, if any) and the root bone's
    locations ``(T,)``. ``bone_rest``: each bone's rest rotation in armature space
    (``bone.matrix_local``), ``root_head``: the root bone's rest head."""
    quats: list[list[Quat]] = [[] for _ in range(NUM_JOINTS)]
    for frame_rot in rotations:
        for j, local in enumerate(frame_rot):
            b = bone_rest[j]
            q = to_quaternion(mul(transpose(b), mul(local, b)))
            prev = quats[j][-1] if quats[j] else (after[j] if after else None)
            if prev is not None and sum(x * y for x, y in zip(q, prev, strict=True)) < 0:
                q = (-q[0], -q[1], -q[2], -q[3])
            quats[j].append(q)
    b0 = transpose(bone_rest[0])
    locations = [apply(b0, sub(r, root_head)) for r in roots]
    return quats, locations


def channel_rotations(
    quats: Sequence[Sequence[Quat]],
    locations: Sequence[Vec],
    bone_rest: Sequence[Mat],
    root_head: Vec,
) -> tuple[list[list[Mat]], list[Vec]]:
    """The inverse of ``bone_channels``: local rotations ``(T, 22)`` and root positions."""
    T = len(locations)
    rotations = [[IDENTITY] * NUM_JOINTS for _ in range(T)]
    for j in range(NUM_JOINTS):
        b = bone_rest[j]
        bt = transpose(b)
        for t in range(T):
            rotations[t][j] = mul(b, mul(from_quaternion(quats[j][t]), bt))
    roots = [add(root_head, apply(bone_rest[0], loc)) for loc in locations]
    return rotations, roots


# -- joining generated frames to kept ones ------------------------------------------------------

Seam = tuple[Sequence[Vec], Sequence[Vec]]  # (the edited motion's frame, the source's frame)


def heading(points: Sequence[Vec]) -> float:
    """The body's heading about Z (radians): the angle of its hip axis in the ground plane."""
    left, right = points[HUBS[0][0]], points[HUBS[0][1]]
    return math.atan2(left[1] - right[1], left[0] - right[0])


def _turn(p: Vec, angle: float, centre: Vec) -> Vec:
    c, s = math.cos(angle), math.sin(angle)
    x, y = p[0] - centre[0], p[1] - centre[1]
    return (centre[0] + c * x - s * y, centre[1] + s * x + c * y, p[2])


def _seam(seam: Seam) -> tuple[float, Vec, Vec, list[Vec]]:
    """The rigid move (a turn about Z taking the edited root onto the source's) that makes the
    edited frame agree with the source's: ``(angle, edited root, source root, what remains
    per joint)``."""
    edited, source = seam
    angle = heading(source) - heading(edited)
    angle = math.atan2(math.sin(angle), math.cos(angle))
    moved = [add(_turn(p, angle, edited[0]), sub(source[0], edited[0])) for p in edited]
    return (
        angle,
        tuple(edited[0]),
        tuple(source[0]),
        [sub(s, m) for s, m in zip(source, moved, strict=True)],
    )  # type: ignore[return-value]


def join_span(
    span: Sequence[Sequence[Vec]],
    before: Seam | None,
    after: Seam | None,
    fade: int = 10,
) -> list[list[Vec]]:
    """``span`` (frames cut from an edited motion) moved so that it joins the kept source.

    The server's answer has the kept frames too, but not exactly the ones sent (it re-derives
    them, and moves the frames after a span to where the span ends), while the add-on keeps
    the animator's keys as they are. ``before``/``after``: the edited motion's and the source's
    frame just before / after the span, where there is one. Each seam gives the rigid move
    (turn about Z, shift) that makes the frames' roots and headings agree, plus what remains
    per joint. Between two seams the move's angle and anchor points are blended linearly (so
    every frame is moved rigidly, never squashed), and so is the per-joint rest; with one seam
    the whole span takes its move, the per-joint rest fading out over ``fade`` frames. The
    frames on both sides of a seam then meet as closely as neighbouring frames of the edited
    motion do. A motion that differs from the source by one rigid move comes back exactly.
    """
    n = len(span)
    a = None if before is None else _seam(before)
    b = None if after is None else _seam(after)
    out = []
    for i, points in enumerate(span):
        if a and b:
            w = (i + 1) / (n + 1)
            fa, fb = 1 - w, w
        elif a:
            w, fa, fb = 0.0, max(0.0, 1 - (i + 1) / (fade + 1)), 0.0
        elif b:
            w, fa, fb = 1.0, 0.0, max(0.0, 1 - (n - i) / (fade + 1))
        else:
            out.append([tuple(p) for p in points])
            continue
        lo, hi = a or b, b or a
        angle = (1 - w) * lo[0] + w * hi[0]
        anchor = add(scale(lo[1], 1 - w), scale(hi[1], w))
        image = add(scale(lo[2], 1 - w), scale(hi[2], w))
        shift = sub(image, anchor)
        frame_out = []
        for j, p in enumerate(points):
            q = add(_turn(p, angle, anchor), shift)
            if a:
                q = add(q, scale(a[3][j], fa))
            if b:
                q = add(q, scale(b[3][j], fb))
            frame_out.append(q)
        out.append(frame_out)
    return out
