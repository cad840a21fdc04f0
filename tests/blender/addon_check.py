"""Inside headless Blender: install the add-on zip, run every operator against a live server,
write what happened as JSON (tests/test_blender_addon.py asserts on it).

    blender -b --factory-startup --python-exit-code 1 --python tests/blender/addon_check.py \
        -- --zip mosa_blender.zip --url http://127.0.0.1:PORT --down-url http://127.0.0.1:PORT2 \
        --out results.json

Every check records facts (counts, errors, frames), not verdicts, except where the comparison
needs Blender (key values, joint positions): those are computed here, the thresholds are the
test's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback

import bpy

argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
ap = argparse.ArgumentParser()
ap.add_argument("--zip", required=True)
ap.add_argument("--url", required=True)
ap.add_argument("--down-url", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--rig-json", required=True, help="a humanoid skeleton to build as the user's rig")
args = ap.parse_args(argv)

results: dict = {"blender": bpy.app.version_string}


def save() -> None:
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


def call(op, **kw) -> dict:
    """Run ``bpy.ops.mosa.<op>``: its result or the error it reported (and whether that was a
    traceback, i.e. an exception escaping the operator)."""
    t0 = time.perf_counter()
    try:
        out = getattr(bpy.ops.mosa, op)(**kw)
        return {"result": sorted(out), "seconds": time.perf_counter() - t0}
    except RuntimeError as exc:
        text = str(exc)
        return {
            "error": text,
            "traceback": "Traceback" in text,
            "seconds": time.perf_counter() - t0,
        }


def keys(action) -> dict[str, list[float]]:
    """Every curve's keys as a flat list (frame, value, frame, value, ...)."""
    out = {}
    for fc in action.fcurves:
        co = [0.0] * (2 * len(fc.keyframe_points))
        fc.keyframe_points.foreach_get("co", co)
        out[f"{fc.data_path}[{fc.array_index}]"] = co
    return out


def split_keys(before: dict, after: dict, lo: int, hi: int) -> dict:
    """Keys outside ``lo``-``hi``: do they match exactly; inside: how many changed."""
    outside_equal, outside_count, inside_changed, inside_count = True, 0, 0, 0
    for name, co in before.items():
        old = {co[i]: co[i + 1] for i in range(0, len(co), 2)}
        new_co = after.get(name, [])
        new = {new_co[i]: new_co[i + 1] for i in range(0, len(new_co), 2)}
        for f, v in old.items():
            if lo <= f <= hi:
                inside_count += 1
                inside_changed += int(new.get(f) != v)
            else:
                outside_count += 1
                outside_equal &= new.get(f) == v  # bit-identical, float32 as stored
    return {"outside_equal": outside_equal, "outside_keys": outside_count,
            "inside_keys": inside_count, "inside_changed": inside_changed}  # fmt: skip


def action_facts(obj) -> dict:
    action = obj.animation_data.action
    k = keys(action)
    counts = sorted({len(v) // 2 for v in k.values()})
    frames = sorted({v[i] for v in k.values() for i in range(0, len(v), 2)})
    moving = set()
    for name, co in k.items():
        values = co[1::2]
        if max(values) - min(values) > 1e-3:
            moving.add(name.split('"')[1])
    return {
        "action": action.name,
        "curves": len(k),
        "keys_per_curve": counts,
        "first": frames[0],
        "last": frames[-1],
        "frames": len(frames),
        "moving_bones": sorted(moving),
        "fake_user": action.use_fake_user,
    }


def joint_errors(obj, server_joints, first: int, fps: float) -> dict:
    """World positions of the pose bones' heads on the frames that fall on the server's
    20-fps frames, against the server's joints (mosa axes -> Blender's) and against the
    add-on's own forward kinematics of the keys (what Blender should show exactly)."""
    from mosa_blender import kinematics as K

    scene = bpy.context.scene
    motion = K.motion_to_blender(server_joints)
    offsets = [tuple(obj.data.bones[n].head_local) for n in K.JOINT_NAMES]
    offsets = [
        h if p < 0 else K.sub(h, offsets[p]) for h, p in zip(offsets, K.PARENTS, strict=True)
    ]
    fk = K.forward(K.solve(motion, offsets), [f[0] for f in motion], offsets)
    errs, fk_errs, pelvis = [], [], []
    step = 20.0 / fps
    k = 0
    while True:
        t = k * step  # server frame of scene frame first + k
        i = round(t)
        if i >= len(motion):
            break
        if abs(t - i) < 1e-6:
            scene.frame_set(first + k)
            mw = obj.matrix_world
            for j, name in enumerate(K.JOINT_NAMES):
                p = tuple(mw @ obj.pose.bones[name].head)
                errs.append(K.norm(K.sub(p, motion[i][j])))
                fk_errs.append(K.norm(K.sub(p, fk[i][j])))
                if j == 0:
                    pelvis.append(errs[-1])
        k += 1
    return {
        "compared_frames": len(pelvis),
        "mean_error_m": sum(errs) / len(errs),
        "max_error_m": max(errs),
        "max_fk_error_m": max(fk_errs),
        "max_pelvis_error_m": max(pelvis),
    }


def frame_steps(obj, first: int, last: int) -> dict:
    """Mean joint displacement from each frame to the next: at the joins of a regenerated
    range 20-40 and, for scale, the median over the action."""
    heads = []
    for f in range(first, last + 1):
        bpy.context.scene.frame_set(f)
        heads.append([obj.matrix_world @ pb.head for pb in obj.pose.bones])
    steps = [sum((a - b).length for a, b in zip(p, q, strict=True)) / len(p)
             for p, q in zip(heads, heads[1:], strict=False)]  # fmt: skip
    return {"19-20": steps[19 - first], "40-41": steps[40 - first],
            "median": sorted(steps)[len(steps) // 2]}  # fmt: skip


class Layout:
    """Stands in for ``UILayout``: records labels, properties and operator buttons."""

    def __init__(self, log: list):
        self.log, self.enabled, self.alert = log, True, False

    def _sub(self, *args, **kw):
        return Layout(self.log)

    row = column = box = split = _sub

    def label(self, text="", icon="NONE"):
        self.log.append(["label", text])

    def prop(self, data, name, **kw):
        self.log.append(["prop", name, str(getattr(data, name))])

    def operator(self, idname, **kw):
        op = type("Op", (), {})()
        self.log.append(["operator", idname, op])
        return op


def draw_panels(obj, prefs) -> dict:
    from mosa_blender import operators, panel

    ctx = bpy.context
    settings = ctx.scene.mosa
    settings.prompt, settings.auto_length, settings.random_seed = "a person bows", False, False
    settings.seconds, settings.seed = 3.5, 11
    settings.prompts.add().text = "a person walks"
    settings.prompts.add().text = "a person sits"
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    ctx.view_layer.objects.active = obj

    def draw(cls) -> list:
        log: list = []
        cls.draw(type("P", (), {"layout": Layout(log)})(), ctx)
        return [[x if not hasattr(x, "__dict__") else vars(x) for x in e] for e in log]

    names = ("VIEW3D_PT_mosa_generate", "VIEW3D_PT_mosa_edit", "VIEW3D_PT_mosa_sequence")
    out = {name: draw(getattr(panel, name)) for name in names}
    operators.STATUS.record(prefs.server_url, True, "connected")
    out["status_up"] = draw(panel.VIEW3D_PT_mosa)
    prefs.server_url = args.down_url
    operators.STATUS.record(args.down_url, False, "no mosa server answers")
    out["status_down"] = draw(panel.VIEW3D_PT_mosa)
    prefs.server_url = args.url
    return out


def build_rig(path: str):
    """The user's armature: bones from a JSON skeleton (names, parents, heads and tails in
    Blender axes, metres), each with its own roll so that rest rotations are not the axes."""
    with open(path) as f:
        skel = json.load(f)
    obj = bpy.data.objects.new("my_rig", bpy.data.armatures.new("my_rig"))
    bpy.context.scene.collection.objects.link(obj)
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    edit = obj.data.edit_bones
    for j, name in enumerate(skel["names"]):
        eb = edit.new(name)
        eb.head, eb.tail, eb.roll = skel["heads"][j], skel["tails"][j], 0.37 * j
        if skel["parents"][j] >= 0:
            eb.parent = edit[skel["names"][skel["parents"][j]]]
    bpy.ops.object.mode_set(mode="OBJECT")
    for k, pb in enumerate(obj.pose.bones):  # the animator's own choices of rotation mode
        pb.rotation_mode = ("QUATERNION", "XYZ", "ZXY", "AXIS_ANGLE")[k % 4]
    return obj


def pose_heads(obj, first: int, last: int) -> dict[str, list]:
    """Every pose bone's head (armature space) on frames ``first..last``."""
    out = {pb.name: [] for pb in obj.pose.bones}
    for f in range(first, last + 1):
        bpy.context.scene.frame_set(f)
        bpy.context.view_layer.update()
        for pb in obj.pose.bones:
            out[pb.name].append(list(pb.head))
    return out


def run() -> None:
    from mosa_blender import armature, rig_bvh
    from mosa_blender.client import Client

    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 20, 1.0
    server = Client(args.url)
    prompt = "a person walks forward"

    # 1. generate with the default cube selected: a new mosa armature, keys from frame 10
    scene.frame_set(10)
    results["generate"] = call("generate", text=prompt, seconds=4.0, seed=1)
    obj = bpy.context.active_object
    results["generate"].update(action_facts(obj), object=obj.name, type=obj.type)
    results["generate"]["armatures"] = sum(o.type == "ARMATURE" for o in bpy.data.objects)
    reference = server.generate(prompt, 4.0, 1)["samples"][0]["joints"]
    results["generate"]["server_frames"] = len(reference)
    results["generate"]["joints"] = joint_errors(obj, reference, 10, 20.0)
    first_action = obj.animation_data.action.name

    # 2. a second generate onto the selected mosa armature: a second action, the first kept
    scene.frame_set(1)
    results["generate2"] = call("generate", text="a person jumps", seconds=3.0, seed=2)
    results["generate2"].update(action_facts(obj))
    results["generate2"]["armatures"] = sum(o.type == "ARMATURE" for o in bpy.data.objects)
    results["generate2"]["first_action_kept"] = first_action in bpy.data.actions
    results["generate2"]["first_action_fake_user"] = bpy.data.actions[first_action].use_fake_user

    # 3. regenerate frames 20-40 of the current action (frames 1-60)
    action = obj.animation_data.action
    before = keys(action)
    results["regenerate"] = call(
        "regenerate", text="a person waves", frame_start=20, frame_end=40, seed=3
    )
    new = obj.animation_data.action
    results["regenerate"].update(action_facts(obj), source=action.name)
    results["regenerate"]["source_unchanged"] = keys(action) == before
    results["regenerate"].update(split_keys(before, keys(new), 20, 40))
    results["regenerate"]["steps_m"] = frame_steps(obj, 1, 60)  # how smooth the joins are

    # 4. extend the regenerated action by 2 s
    action = obj.animation_data.action
    before = keys(action)
    results["extend"] = call("extend", text="a person sits down", seconds=2.0, seed=4)
    results["extend"].update(action_facts(obj), source=action.name)
    results["extend"]["source_frames"] = len(next(iter(before.values()))) // 2
    results["extend"].update(split_keys(before, keys(obj.animation_data.action), 10**6, 10**6))

    # 5. a sequence of three prompts
    scene.frame_set(1)
    results["sequence"] = call(
        "sequence", texts="a person walks forward | a person turns around | a person waves",
        seconds="2 | 2 | 2", seed=5,
    )  # fmt: skip
    results["sequence"].update(action_facts(obj))
    act = obj.animation_data.action
    results["sequence"]["markers"] = [(m.name, m.frame) for m in act.pose_markers]

    # 6. another frame rate: keys on whole frames of the scene, same duration
    scene.render.fps = 30
    scene.frame_set(1)
    results["generate30"] = call("generate", text=prompt, seconds=4.0, seed=1)
    results["generate30"].update(action_facts(obj))
    results["generate30"]["joints"] = joint_errors(obj, reference, 1, 30.0)
    scene.render.fps = 20

    # 7. the user's own armature selected: the server retargets the motion onto it
    own = build_rig(args.rig_json)
    bpy.ops.object.select_all(action="DESELECT")
    own.select_set(True)
    bpy.context.view_layer.objects.active = own
    before = sum(o.type == "ARMATURE" for o in bpy.data.objects)
    scene.frame_set(1)
    results["own_rig"] = call("generate", text=prompt, seconds=2.0, seed=6)
    results["own_rig"]["armatures_added"] = (
        sum(o.type == "ARMATURE" for o in bpy.data.objects) - before
    )
    results["own_rig"]["rest_bvh"] = rig_bvh.rest_bvh(armature.rig_bones(own), 20.0)
    if "result" in results["own_rig"]:
        facts = action_facts(own)
        results["own_rig"].update(
            facts, heads=pose_heads(own, int(facts["first"]), int(facts["last"]))
        )
    scene.frame_set(1)
    results["own_rig_sequence"] = call(
        "sequence", texts="a person walks forward | a person waves", seconds="2 | 2", seed=3
    )
    if "result" in results["own_rig_sequence"]:
        results["own_rig_sequence"].update(action_facts(own))
    empty = bpy.data.objects.new("no_bones", bpy.data.armatures.new("no_bones"))
    scene.collection.objects.link(empty)
    bpy.ops.object.select_all(action="DESELECT")
    empty.select_set(True)
    bpy.context.view_layer.objects.active = empty
    n_actions = len(bpy.data.actions)
    results["own_rig_empty"] = call("generate", text=prompt, seconds=2.0, seed=6)
    results["own_rig_empty"]["actions_made"] = len(bpy.data.actions) - n_actions
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj

    # 8. mistakes: one reported line each, no traceback, nothing made
    n_actions = len(bpy.data.actions)
    bad = {
        "empty_prompt": ("generate", {"text": "   ", "seconds": 4.0}),
        "empty_range": ("regenerate", {"text": "a person waves", "frame_start": 30,
                                       "frame_end": 20}),
        "outside_range": ("regenerate", {"text": "a person waves", "frame_start": 5,
                                         "frame_end": 500}),
        "sequence_lengths": ("sequence", {"texts": "walk | wave", "seconds": "2"}),
        "extend_zero": ("extend", {"text": "a person waves", "seconds": 0.0}),
    }  # fmt: skip
    results["errors"] = {name: call(op, **kw) for name, (op, kw) in bad.items()}
    prefs = bpy.context.preferences.addons["mosa_blender"].preferences
    prefs.server_url = args.down_url
    results["errors"]["server_down"] = call("generate", text=prompt, seconds=4.0)
    results["errors"]["server_down_regenerate"] = call(
        "regenerate", text="a person waves", frame_start=20, frame_end=40
    )
    prefs.server_url = args.url
    bpy.ops.object.select_all(action="DESELECT")
    bpy.context.view_layer.objects.active = None
    results["errors"]["no_armature_regenerate"] = call(
        "regenerate", text="a person waves", frame_start=20, frame_end=40
    )
    results["errors_actions_made"] = len(bpy.data.actions) - n_actions
    # the panel's classes are registered; Blender draws panels only in a window, so their
    # draw() runs here on a stand-in layout that records what it is asked to show
    results["panel_registered"] = hasattr(bpy.types, "VIEW3D_PT_mosa")
    results["panel"] = draw_panels(obj, prefs)


try:
    bpy.ops.preferences.addon_install(filepath=args.zip, overwrite=True)
    bpy.ops.preferences.addon_enable(module="mosa_blender")
    prefs = bpy.context.preferences.addons["mosa_blender"].preferences
    results["default_url"] = prefs.server_url
    prefs.server_url = args.url
    import mosa_blender

    results["installed_from"] = mosa_blender.__file__
    run()
    bpy.ops.preferences.addon_disable(module="mosa_blender")
    results["unregistered"] = not hasattr(bpy.types, "VIEW3D_PT_mosa")
except Exception:  # noqa: BLE001 - recorded for the test, which prints it
    results["crash"] = traceback.format_exc()
finally:
    save()
sys.exit(1 if "crash" in results else 0)
