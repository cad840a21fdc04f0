"""Run inside Blender (``blender -b --factory-startup --python import_bvh.py -- OUT.json
STEP A.bvh B.bvh ...``): import each BVH with Blender's own importer, no axis conversion and
no scaling, and write the world position of every bone's head (= the BVH joint) on every
STEP-th frame to OUT.json: ``{file: {"frames": [...], "joints": {name: [[x, y, z], ...]}}}``.

Debian's Blender 3.4 runs its BVH importer under Python 3.11, where ``open(path, 'rU')``
fails; the mode is patched at run time."""

import builtins
import json
import sys

import bpy

_open = builtins.open


def _open_without_u(file, mode="r", *args, **kwargs):
    if isinstance(mode, str) and "U" in mode:
        mode = mode.replace("U", "") or "r"
    return _open(file, mode, *args, **kwargs)


def main(argv):
    out_path, step, files = argv[0], int(argv[1]), argv[2:]
    builtins.open = _open_without_u
    result = {}
    try:
        for path in files:
            for obj in list(bpy.data.objects):
                bpy.data.objects.remove(obj, do_unlink=True)
            bpy.ops.import_anim.bvh(
                filepath=path, axis_forward="Y", axis_up="Z", global_scale=1.0,
                rotate_mode="NATIVE", use_fps_scale=False, update_scene_fps=True,
                update_scene_duration=True, frame_start=1,
            )  # fmt: skip
            arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
            scene = bpy.context.scene
            frames = list(range(scene.frame_start, scene.frame_end + 1, step))
            joints = {b.name: [] for b in arm.pose.bones}
            for f in frames:
                scene.frame_set(f)
                world = arm.matrix_world
                for b in arm.pose.bones:
                    joints[b.name].append(list(world @ b.head))
            result[path] = {"frames": [f - scene.frame_start for f in frames], "joints": joints}
    finally:
        builtins.open = _open
    with _open(out_path, "w") as f:
        json.dump(result, f)


main(sys.argv[sys.argv.index("--") + 1 :])
