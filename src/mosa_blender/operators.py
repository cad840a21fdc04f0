"""The operators: ``mosa.generate``, ``mosa.regenerate``, ``mosa.extend``, ``mosa.sequence``
(and the panel's helpers). Each takes everything it needs as properties, so a script calls it
as the panel does; each reports a mistake or an unreachable server with ``self.report`` and
returns ``{'CANCELLED'}`` (a script's ``bpy.ops`` call then raises ``RuntimeError`` with that
one line, no traceback).

Nothing is overwritten: Generate and Sequence make a new action, Regenerate and Extend a copy
(``<action>.mosa.001``) with the new frames, every other key copied as it was; the action they
replace stays in the file (fake user). The new frames are moved to meet the kept ones
(``kinematics.join_span``): the server re-derives the frames it keeps, the add-on does not.
"""

from __future__ import annotations

import time

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty

from . import armature as A
from . import inputs
from . import kinematics as K
from . import rig_bvh as RB
from .client import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    Client,
    ServerError,
    ServerStatus,
    first_bvh,
    first_motion,
)
from .inputs import InputError

STATUS = ServerStatus()  # what the panel shows about the server
SEED_HELP = "seed of the motion (-1: a random one)"
LAST_TIMING: dict[str, float] = {}  # seconds of the last run: "server", "blender", "total"
JOIN_FADE_S = 0.5  # seconds over which a new part's pose settles from the kept frame's


def preferences(context):
    addon = context.preferences.addons.get(__package__)
    return None if addon is None else addon.preferences


def server_url(context) -> str:
    prefs = preferences(context)
    return (getattr(prefs, "server_url", "") or DEFAULT_URL).strip()


def client(context) -> Client:
    prefs = preferences(context)
    return Client(server_url(context), getattr(prefs, "timeout", DEFAULT_TIMEOUT))


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def active_mosa_armature(context):
    """The selected armature, if it is one of the add-on's (active first)."""
    candidates = [context.active_object, *context.selected_objects]
    return next((o for o in candidates if A.is_mosa_armature(o)), None)


def edit_target(context):
    """``(rig, action, (first, last))`` of the selected mosa armature's action, or
    ``InputError`` saying what to select."""
    obj = active_mosa_armature(context)
    if obj is None:
        raise InputError(
            "select a mosa armature with an action: Generate makes one (Regenerate and Extend "
            "work on mosa armatures; on your own armature, Generate or Sequence a new action)"
        )
    action = obj.animation_data.action if obj.animation_data else None
    span = None if action is None else A.key_range(action)
    if span is None or span[1] <= span[0]:
        raise InputError(f"'{obj.name}' has no keyed action: Generate a motion first")
    return A.mosa_rig(obj), action, span


def to_server(motion, fps: float) -> list:
    """Armature-space points at the scene's ``fps`` -> the server's joints (mosa axes, 20 fps,
    0.1 mm)."""
    joints = K.resample(K.motion_from_blender(motion), fps, K.FPS)
    return [[[round(c, 5) for c in p] for p in f] for f in joints]


def from_server(payload, fps: float):
    """The first motion of an answer in armature space at the scene's ``fps``."""
    joints, src_fps = first_motion(payload)
    return K.resample(K.motion_to_blender(joints), src_fps, fps)


class _MosaOperator(bpy.types.Operator):
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if context.mode not in ("OBJECT", "POSE"):
            cls.poll_message_set("switch to Object or Pose mode")
            return False
        return True

    def execute(self, context):
        url = server_url(context)
        start = time.perf_counter()
        self._server_s = 0.0
        try:
            message = self.run(context)
        except InputError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except ServerError as exc:
            if exc.status is None:  # no answer at all: the panel says so too
                STATUS.record(url, False, str(exc))
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        total = time.perf_counter() - start
        LAST_TIMING.update(server=self._server_s, blender=total - self._server_s, total=total)
        STATUS.record(url, True, "connected")
        self.report({"INFO"}, f"{message} ({total:.2f} s)")
        return {"FINISHED"}

    def ask(self, context, method: str, *args):
        """``client(context).<method>(*args)``, timed, with the server's notes reported."""
        t0 = time.perf_counter()
        payload = getattr(client(context), method)(*args)
        self._server_s += time.perf_counter() - t0
        note = payload.get("vocabulary") if isinstance(payload, dict) else None
        if isinstance(note, dict) and note.get("message"):
            self.report({"WARNING"}, str(note["message"]))
        return payload

    def run(self, context) -> str:
        raise NotImplementedError


def _sample_seed(payload) -> int | None:
    try:
        return int(payload["samples"][0]["seed"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def user_armature(context):
    """The active object when it is an armature of the user's own (not one of the add-on's):
    new motion is retargeted onto it by the server."""
    obj = context.active_object
    if obj is not None and obj.type == "ARMATURE" and not A.is_mosa_armature(obj):
        return obj
    return None


def rig_request(context) -> tuple[object, list, str | None]:
    """``(armature, bones, rest BVH)`` of the user's armature to retarget onto, or
    ``(None, [], None)`` when the motion goes onto a mosa armature."""
    obj = user_armature(context)
    if obj is None:
        return None, [], None
    bones = A.rig_bones(obj)
    return obj, bones, RB.rest_bvh(bones, scene_fps(context.scene))


def _target_rig(context, motion) -> tuple[A.Rig, str]:
    """The mosa armature a new motion goes onto: the selected one, else a new one."""
    obj = active_mosa_armature(context)
    if obj is not None:
        return A.mosa_rig(obj), ""
    obj = A.create_armature(context, K.rest_offsets(motion))
    return A.mosa_rig(obj), f"; created the mosa armature '{obj.name}'"


def _new_take(
    op, context, payload, name: str, note: dict, user=(None, [])
) -> tuple[bpy.types.Action, str, int]:
    """A new action from an answer: on the user's armature ``user`` (its object and bones,
    from the answer's BVH on its skeleton), else on a mosa armature (from the joints)."""
    scene = context.scene
    first = scene.frame_current
    note = {**note, "mosa_seed": _sample_seed(payload)}
    obj, bones = user
    if obj is not None:
        try:
            rotations, locations = RB.pose_channels(bones, RB.parse_bvh(first_bvh(payload)))
        except ValueError as exc:
            raise ServerError(f"the server's motion on '{obj.name}' is unusable ({exc})") from None
        action = A.new_rig_action(obj, name, first, bones, rotations, locations, note=note)
        last = first + len(locations) - 1
        return action, f"'{action.name}' on '{obj.name}': frames {first}-{last}, retargeted", first
    motion = from_server(payload, scene_fps(scene))
    rig, where = _target_rig(context, motion)
    action = A.new_action(rig, name, first, motion, note=note)
    text = f"'{action.name}' on '{rig.obj.name}': frames {first}-{first + len(motion) - 1}{where}"
    return action, text, first


class MOSA_OT_generate(_MosaOperator):
    """Generate a motion from text as a new action on the selected mosa armature (or a new one),
    starting at the current frame"""

    bl_idname = "mosa.generate"
    bl_label = "Generate"

    text: StringProperty(name="Prompt", description="what the motion shows")
    seconds: FloatProperty(
        name="Seconds", description="length (0: let the model choose)", default=0.0, min=0.0
    )
    seed: IntProperty(name="Seed", description=SEED_HELP, default=-1, min=-1)

    def run(self, context) -> str:
        text = inputs.check_text(self.text)
        seconds, seed = inputs.check_seconds(self.seconds), inputs.check_seed(self.seed)
        obj, bones, rig = rig_request(context)
        payload = self.ask(context, "generate", text, seconds, seed, rig)
        note = {"mosa_text": text}
        _, message, _ = _new_take(self, context, payload, text, note, (obj, bones))
        return message


class MOSA_OT_sequence(_MosaOperator):
    """Generate one continuous take of several prompts as a new action (a pose marker at the
    start of each part)"""

    bl_idname = "mosa.sequence"
    bl_label = "Sequence"

    texts: StringProperty(
        name="Prompts", description="the prompts in order, separated by '|' (or one per line)"
    )
    seconds: StringProperty(
        name="Seconds",
        description="one length per prompt separated by '|' (empty: let the model choose)",
    )
    seed: IntProperty(name="Seed", description=SEED_HELP, default=-1, min=-1)

    def run(self, context) -> str:
        texts = inputs.split_texts(self.texts)
        seconds = inputs.split_seconds(self.seconds, len(texts))
        obj, bones, rig = rig_request(context)
        payload = self.ask(context, "sequence", texts, seconds, inputs.check_seed(self.seed), rig)
        name = " | ".join(texts)
        note = {"mosa_text": name}
        action, message, first = _new_take(self, context, payload, name, note, (obj, bones))
        fps = scene_fps(context.scene)
        parts = payload.get("parts") or []
        markers = []
        for p in parts:
            if isinstance(p, dict) and isinstance(p.get("start"), int | float):
                markers.append((str(p.get("text", "")), first + round(p["start"] * fps)))
        A.pose_markers(action, markers)
        return f"{message}, {len(texts)} parts"


class MOSA_OT_regenerate(_MosaOperator):
    """Regenerate a frame range of the selected mosa armature's action from text, keeping every
    other frame, as a new action"""

    bl_idname = "mosa.regenerate"
    bl_label = "Regenerate range"

    text: StringProperty(name="Prompt", description="what the range shows")
    frame_start: IntProperty(name="Start", description="first frame to replace")
    frame_end: IntProperty(name="End", description="last frame to replace (included)")
    seed: IntProperty(name="Seed", description=SEED_HELP, default=-1, min=-1)

    def run(self, context) -> str:
        text = inputs.check_text(self.text)
        seed = inputs.check_seed(self.seed)
        rig, action, (first, last) = edit_target(context)
        fps = scene_fps(context.scene)
        a, b = self.frame_start, self.frame_end
        start_s, end_s = inputs.span_seconds(first, last, a, b, fps)
        source = A.read_motion(action, rig, list(range(first, last + 1)))
        payload = self.ask(context, "edit", to_server(source, fps), text, start_s, end_s, seed)
        motion = from_server(payload, fps)

        def seam(f: int):  # the answer's and the kept source's frame f, if f is kept
            return (motion[min(f - first, len(motion) - 1)], source[f - first])

        span = [motion[min(f - first, len(motion) - 1)] for f in range(a, b + 1)]
        before = seam(a - 1) if a > first else None
        after = seam(b + 1) if b < last else None
        span = K.join_span(span, before, after, fade=round(JOIN_FADE_S * fps))
        out = A.copy_action(action, inputs.next_action_name(action.name, bpy.data.actions))
        out["mosa_text"] = text
        A.write_motion(out, rig, a, span)
        A.assign(rig.obj, out)
        return f"'{out.name}' on '{rig.obj.name}': frames {a}-{b} regenerated, the rest kept"


class MOSA_OT_extend(_MosaOperator):
    """Add seconds of motion after the selected mosa armature's action, as a new action"""

    bl_idname = "mosa.extend"
    bl_label = "Extend"

    text: StringProperty(name="Prompt", description="what the added motion shows")
    seconds: FloatProperty(name="Seconds", description="seconds to add", default=2.0, min=0.0)
    seed: IntProperty(name="Seed", description=SEED_HELP, default=-1, min=-1)

    def run(self, context) -> str:
        text = inputs.check_text(self.text)
        seconds = inputs.check_seconds(self.seconds)
        if seconds is None:
            raise InputError("give the seconds to add (more than 0)")
        seed = inputs.check_seed(self.seed)
        rig, action, (first, last) = edit_target(context)
        fps = scene_fps(context.scene)
        source = A.read_motion(action, rig, list(range(first, last + 1)))
        payload = self.ask(context, "extend", to_server(source, fps), text, seconds, seed)
        motion = from_server(payload, fps)
        n = last - first + 1
        if len(motion) <= n:
            raise ServerError("the server's continuation is no longer than the motion sent")
        seam = (motion[n - 1], source[n - 1])
        added = K.join_span(motion[n:], seam, None, fade=round(JOIN_FADE_S * fps))
        out = A.copy_action(action, inputs.next_action_name(action.name, bpy.data.actions))
        out["mosa_text"] = f"{action.get('mosa_text', action.name)} | {text}"
        A.write_motion(out, rig, last + 1, added)
        A.assign(rig.obj, out)
        end = last + len(added)
        return f"'{out.name}' on '{rig.obj.name}': frames {last + 1}-{end} added"


class MOSA_OT_range_from_timeline(bpy.types.Operator):
    """Take the frame range to regenerate from the timeline: the preview range when it is on,
    else the frames of the selected keys"""

    bl_idname = "mosa.range_from_timeline"
    bl_label = "From Timeline"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        scene, settings = context.scene, context.scene.mosa
        if scene.use_preview_range:
            settings.frame_start, settings.frame_end = (
                scene.frame_preview_start,
                scene.frame_preview_end,
            )
            return {"FINISHED"}
        obj = active_mosa_armature(context)
        action = obj.animation_data.action if obj and obj.animation_data else None
        frames = []
        for fc in action.fcurves if action else ():
            n = len(fc.keyframe_points)
            sel, co = [False] * n, [0.0] * (2 * n)
            fc.keyframe_points.foreach_get("select_control_point", sel)
            fc.keyframe_points.foreach_get("co", co)
            frames += [co[2 * i] for i in range(n) if sel[i]]
        if not frames:
            self.report(
                {"ERROR"},
                "no range on the timeline: set a preview range (Ctrl P in the timeline) or "
                "select keys, or type the frames",
            )
            return {"CANCELLED"}
        settings.frame_start, settings.frame_end = round(min(frames)), round(max(frames))
        return {"FINISHED"}


class MOSA_OT_check_server(bpy.types.Operator):
    """Ask the mosa server whether it answers now"""

    bl_idname = "mosa.check_server"
    bl_label = "Check Server"

    def execute(self, context):
        url = server_url(context)
        try:
            info = Client(url, 3.0).health()
        except ServerError as exc:
            STATUS.record(url, False, str(exc))
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        model = info.get("model", {}) if isinstance(info, dict) else {}
        STATUS.record(url, True, f"connected ({model.get('checkpoint') or 'mosa'})")
        self.report({"INFO"}, f"mosa server at {url} answers")
        return {"FINISHED"}


class MOSA_OT_prompt_add(bpy.types.Operator):
    """Add a prompt to the sequence"""

    bl_idname = "mosa.prompt_add"
    bl_label = "Add Prompt"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        context.scene.mosa.prompts.add()
        return {"FINISHED"}


class MOSA_OT_prompt_remove(bpy.types.Operator):
    """Remove this prompt from the sequence"""

    bl_idname = "mosa.prompt_remove"
    bl_label = "Remove Prompt"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty()

    def execute(self, context):
        prompts = context.scene.mosa.prompts
        if 0 <= self.index < len(prompts):
            prompts.remove(self.index)
        return {"FINISHED"}


CLASSES = (
    MOSA_OT_generate,
    MOSA_OT_sequence,
    MOSA_OT_regenerate,
    MOSA_OT_extend,
    MOSA_OT_range_from_timeline,
    MOSA_OT_check_server,
    MOSA_OT_prompt_add,
    MOSA_OT_prompt_remove,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
