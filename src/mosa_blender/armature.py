"""mosa's armature in Blender and the actions on it (bpy; the math is in ``kinematics``).

The armature has one bone per joint of the 22-joint body (``kinematics.JOINT_NAMES``), each
bone's head at its joint, unconnected (so every joint sits exactly where the motion puts it),
quaternion rotations, and the custom property ``mosa_skeleton`` on its data, by which the
add-on knows its own armatures. An action keys every bone's ``rotation_quaternion`` and the
pelvis's ``location`` on every frame, linear between frames; keys are written a curve at a
time (``keyframe_points.add`` + ``foreach_set``), never a key at a time.

``Rig`` is what the operators need of mosa's own armature (bone rest rotations, offsets, the
root's head, the bone of each joint; ``mosa_rig``). A user's own armature is read as
``rig_bvh.RigBone`` values (``rig_bones``) and keyed from the server's BVH on its skeleton
(``new_rig_action``), in each pose bone's own rotation mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy

from . import kinematics as K
from . import rig_bvh as RB

MARK = "mosa_skeleton"
QUAT = 'pose.bones["{}"].rotation_quaternion'
LOC = 'pose.bones["{}"].location'
_LINEAR = 1  # the KeyframePoint.interpolation enum's value of 'LINEAR'


@dataclass
class Rig:
    """An armature as the solver sees it, in armature space: per joint, the bone's name, its
    rest rotation (``bone.matrix_local``) and its offset from its parent's head."""

    obj: bpy.types.Object
    bones: list[str]
    rest: list[K.Mat]
    offsets: list[K.Vec]
    root_head: K.Vec


def is_mosa_armature(obj) -> bool:
    return (
        obj is not None
        and obj.type == "ARMATURE"
        and obj.data.get(MARK) is not None
        and all(name in obj.data.bones for name in K.JOINT_NAMES)
    )


def mosa_rig(obj) -> Rig:
    """The ``Rig`` of one of the add-on's armatures."""
    bones = obj.data.bones
    heads = [tuple(bones[n].head_local) for n in K.JOINT_NAMES]
    rest = [tuple(x for row in bones[n].matrix_local.to_3x3() for x in row) for n in K.JOINT_NAMES]
    offsets = [h if p < 0 else K.sub(h, heads[p]) for h, p in zip(heads, K.PARENTS, strict=True)]
    return Rig(obj, list(K.JOINT_NAMES), rest, offsets, heads[0])


def create_armature(context, offsets: list[K.Vec], name: str = "mosa") -> bpy.types.Object:
    """A new mosa armature whose rest pose has ``offsets``, linked to the active collection,
    selected and active (in object mode)."""
    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    data = bpy.data.armatures.new(name)
    data[MARK] = "22-joint SMPL body (HumanML3D order)"
    obj = bpy.data.objects.new(name, data)
    obj.show_in_front = True
    layer = context.view_layer.active_layer_collection
    usable = layer is not None and not (layer.exclude or layer.hide_viewport)
    (layer.collection if usable else context.scene.collection).objects.link(obj)
    for other in context.selected_objects:
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    heads, tails = K.rest_positions(offsets), K.bone_tails(offsets)
    edit = data.edit_bones
    for j, bone_name in enumerate(K.JOINT_NAMES):
        eb = edit.new(bone_name)
        eb.head = heads[j]
        tail = tails[j] if K.norm(tails[j]) > 1e-3 else (0.0, 0.0, 0.02)  # never zero-length
        eb.tail = K.add(heads[j], tail)
        eb.roll = 0.0
        eb.use_connect = False
        if K.PARENTS[j] >= 0:
            eb.parent = edit[K.JOINT_NAMES[K.PARENTS[j]]]
    bpy.ops.object.mode_set(mode="OBJECT")
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    return obj


# -- writing keys -------------------------------------------------------------------------------


def _curves(rig: Rig, quats, locations) -> list[tuple[str, int, str, list[float]]]:
    """``(data path, index, group, values)`` of every channel."""
    out = []
    for j, name in enumerate(rig.bones):
        for c in range(4):
            out.append((QUAT.format(name), c, name, [q[c] for q in quats[j]]))
    root = rig.bones[0]
    for c in range(3):
        out.append((LOC.format(root), c, root, [v[c] for v in locations]))
    return out


def write_frames(action, rig: Rig, frames: list[int], quats, locations) -> None:
    """Key ``frames`` of ``action`` with channels (``kinematics.bone_channels``), after
    removing the keys already on those frames; every other key stays as it is."""
    write_curves(action, frames, _curves(rig, quats, locations))


def write_curves(action, frames: list[int], curves) -> None:
    """Key ``frames`` of ``action`` with ``curves`` (``(data path, index, group, values)``),
    after removing the keys already on those frames; every other key stays as it is."""
    if not frames:
        return
    lo, hi = min(frames) - 0.5, max(frames) + 0.5
    for path, index, group, values in curves:
        fc = action.fcurves.find(path, index=index)
        if fc is None:
            fc = action.fcurves.new(path, index=index, action_group=group)
        points = fc.keyframe_points
        n = len(points)
        co = [0.0] * (2 * n)
        points.foreach_get("co", co)
        for i in reversed(range(n)):  # the keys on the frames to write (few: a range)
            if lo < co[2 * i] < hi:
                points.remove(points[i], fast=True)
        kept = len(points)
        if kept != n:
            co = [0.0] * (2 * kept)
            points.foreach_get("co", co)
        interp = [0] * kept
        points.foreach_get("interpolation", interp)
        points.add(len(frames))
        for f, v in zip(frames, values, strict=True):
            co += (float(f), v)
        points.foreach_set("co", co)
        points.foreach_set("interpolation", interp + [_LINEAR] * len(frames))
        fc.update()  # sorts the keys by frame and sets the handles


def _blank_action(name: str, note: dict | None):
    """A new empty object action named ``name`` (Blender's 63 characters at most), kept by a
    fake user, with ``note``'s values (not None) as custom properties."""
    action = bpy.data.actions.new(name[:63])
    action.id_root = "OBJECT"
    action.use_fake_user = True
    for key, value in (note or {}).items():
        if value is not None:
            action[key] = value
    return action


def new_action(rig: Rig, name: str, first_frame: int, motion, *, note: dict | None = None):
    """A new action on ``rig`` keyed with ``motion`` ``(T, 22)`` (Blender axes, armature
    space) from ``first_frame``, assigned to the armature; the action it replaces keeps a
    fake user so that saving the file keeps it."""
    action = _blank_action(name, note)
    write_motion(action, rig, first_frame, motion)
    assign(rig.obj, action)
    return action


def write_motion(action, rig: Rig, first_frame: int, motion) -> list[int]:
    """Key ``motion`` (``(T, 22)`` points) on frames ``first_frame``... of ``action``
    (replacing keys there), its quaternions on the hemisphere of the frame before."""
    rotations = K.solve(motion, rig.offsets)
    before = read_quaternions(action, rig, first_frame - 1)
    roots = [f[0] for f in motion]
    quats, locations = K.bone_channels(rotations, roots, rig.rest, rig.root_head, before)
    frames = list(range(first_frame, first_frame + len(motion)))
    write_frames(action, rig, frames, quats, locations)
    return frames


def assign(obj, action) -> None:
    ad = obj.animation_data or obj.animation_data_create()
    if ad.action is not None and ad.action is not action:
        ad.action.use_fake_user = True
    ad.action = action


def copy_action(action, name: str):
    """A copy of ``action`` (every key as it is) named ``name``."""
    out = action.copy()
    out.name = name[:63]
    out.use_fake_user = True
    return out


# -- reading keys -------------------------------------------------------------------------------


def key_range(action) -> tuple[int, int] | None:
    """First and last keyed frame of ``action`` (whole frames), ``None`` without keys."""
    lo, hi = None, None
    for fc in action.fcurves:
        if len(fc.keyframe_points):
            a, b = fc.range()
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    return None if lo is None else (int(round(lo)), int(round(hi)))


def read_motion(action, rig: Rig, frames: list[int]) -> list[list[K.Vec]]:
    """Joint positions ``(len(frames), 22)`` (armature space) that ``action`` poses ``rig``
    into on ``frames``; channels without a curve keep their rest value."""
    n = len(frames)

    def curve(path: str, index: int, default: float) -> list[float]:
        fc = action.fcurves.find(path, index=index)
        return [default] * n if fc is None else [fc.evaluate(f) for f in frames]

    quats = []
    for name in rig.bones:
        comps = [curve(QUAT.format(name), c, 1.0 if c == 0 else 0.0) for c in range(4)]
        quats.append(list(zip(*comps, strict=True)))
    loc = list(zip(*[curve(LOC.format(rig.bones[0]), c, 0.0) for c in range(3)], strict=True))
    rotations, roots = K.channel_rotations(quats, loc, rig.rest, rig.root_head)
    return K.forward(rotations, roots, rig.offsets)


def read_quaternions(action, rig: Rig, frame: int) -> list[K.Quat] | None:
    """The bones' quaternions on ``frame`` when ``action`` has keys there (else ``None``)."""
    span = key_range(action)
    if span is None or not span[0] <= frame <= span[1]:
        return None
    out = []
    for name in rig.bones:
        q = []
        for c in range(4):
            fc = action.fcurves.find(QUAT.format(name), index=c)
            q.append((1.0 if c == 0 else 0.0) if fc is None else fc.evaluate(frame))
        out.append(tuple(q))
    return out


def pose_markers(action, markers: list[tuple[str, int]]) -> None:
    """Name frames of ``action`` (shown in the Action Editor with "Show Pose Markers")."""
    for name, frame in markers:
        m = action.pose_markers.new(name[:63])
        m.frame = frame


# -- a user's own armature ------------------------------------------------------------------------


def rig_bones(obj) -> list[RB.RigBone]:
    """The bones of armature ``obj`` at rest (armature space), parents before children."""
    bones = sorted(obj.data.bones, key=lambda b: len(b.parent_recursive))
    index = {b.name: i for i, b in enumerate(bones)}
    return [
        RB.RigBone(
            b.name,
            -1 if b.parent is None else index[b.parent.name],
            tuple(b.head_local),
            tuple(b.tail_local),
            tuple(x for row in b.matrix_local.to_3x3() for x in row),
        )
        for b in bones
    ]


def _rotation_curves(pb, mats: list[K.Mat]) -> list[tuple[str, int, str, list[float]]]:
    """Curves of pose bone ``pb``'s rotation over frames ``mats`` in its own rotation mode."""
    import mathutils  # Blender's own; imported here so the module loads outside Blender too

    name, mode = pb.name, pb.rotation_mode
    quats, prev = [], None
    for m in mats:
        q = mathutils.Matrix((m[0:3], m[3:6], m[6:9])).to_quaternion()
        if prev is not None:
            q.make_compatible(prev)  # one hemisphere: no flips between frames
        quats.append(q)
        prev = q
    if mode == "QUATERNION":
        path, rows = "rotation_quaternion", [tuple(q) for q in quats]
    elif mode == "AXIS_ANGLE":
        path = "rotation_axis_angle"
        rows = [(angle, *axis) for axis, angle in (q.to_axis_angle() for q in quats)]
    else:
        path, rows, prev_e = "rotation_euler", [], None
        for q in quats:
            e = q.to_euler(mode) if prev_e is None else q.to_euler(mode, prev_e)
            rows.append(tuple(e))
            prev_e = e
    data_path = f'pose.bones["{name}"].{path}'
    return [(data_path, c, name, [r[c] for r in rows]) for c in range(len(rows[0]))]


def new_rig_action(obj, name: str, first_frame: int, bones, rotations, locations, *, note=None):
    """A new action on the user's armature ``obj`` from ``rig_bvh.pose_channels``' per-frame
    basis rotations and root locations, keyed from ``first_frame`` and assigned."""
    action = _blank_action(name, note)
    curves = []
    for j, bone in enumerate(bones):
        pb = obj.pose.bones[bone.name]
        curves += _rotation_curves(pb, [frame[j] for frame in rotations])
    root = next(b.name for b in bones if b.parent < 0)
    curves += [(LOC.format(root), c, root, [v[c] for v in locations]) for c in range(3)]
    write_curves(action, list(range(first_frame, first_frame + len(locations))), curves)
    assign(obj, action)
    return action
