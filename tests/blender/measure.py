"""Inside headless Blender, against a running ``mosa serve`` (the shipped model): time the
Generate operator for a 4-s motion, measure how closely the armature follows the server's
joints, and render the docs' picture (docs/images/blender_generate.png). Not a test: the
numbers in docs/blender.md come from it.

    mosa serve --checkpoint checkpoints --port 8731 &
    mosa blender-addon -o /tmp/mosa_blender.zip
    blender -b --factory-startup --python-exit-code 1 --python tests/blender/measure.py -- \
        --zip /tmp/mosa_blender.zip --url http://127.0.0.1:8731 --runs 7 \
        --render docs/images/blender_generate.png
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import bpy

argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
ap = argparse.ArgumentParser()
ap.add_argument("--zip", required=True)
ap.add_argument("--url", required=True)
ap.add_argument("--runs", type=int, default=7)
ap.add_argument("--prompt", default="a person walks forward")
ap.add_argument("--render", default=None, help="PNG to write")
ap.add_argument("--out", default=None, help="JSON of the numbers")
args = ap.parse_args(argv)

bpy.ops.preferences.addon_install(filepath=args.zip, overwrite=True)
bpy.ops.preferences.addon_enable(module="mosa_blender")
bpy.context.preferences.addons["mosa_blender"].preferences.server_url = args.url

from mosa_blender import kinematics as K  # noqa: E402
from mosa_blender import operators  # noqa: E402
from mosa_blender.client import Client  # noqa: E402

scene = bpy.context.scene
scene.render.fps = 20
bpy.data.objects.remove(bpy.data.objects["Cube"])

# timing: the operator from call to keys, a new action each run (the first also makes the
# armature); the server's and Blender's shares from the operator's own clock
totals, server_s, blender_s = [], [], []
for seed in range(args.runs):
    scene.frame_set(1)
    t0 = time.perf_counter()
    out = bpy.ops.mosa.generate(text=args.prompt, seconds=4.0, seed=seed)
    totals.append(time.perf_counter() - t0)
    assert out == {"FINISHED"}, out
    server_s.append(operators.LAST_TIMING["server"])
    blender_s.append(operators.LAST_TIMING["blender"])
obj = bpy.context.active_object

# accuracy: the last action's bone heads against the server's joints for the same seed
reference = Client(args.url).generate(args.prompt, 4.0, args.runs - 1)["samples"][0]["joints"]
motion = K.motion_to_blender(reference)
errors, per_joint = [], {name: [] for name in K.JOINT_NAMES}
for i, frame in enumerate(motion):
    scene.frame_set(1 + i)
    for j, name in enumerate(K.JOINT_NAMES):
        p = tuple(obj.matrix_world @ obj.pose.bones[name].head)
        errors.append(K.norm(K.sub(p, frame[j])))
        per_joint[name].append(errors[-1])
worst = sorted(per_joint, key=lambda n: -max(per_joint[n]))[:4]
numbers = {
    "runs": args.runs,
    "frames": len(motion),
    "median_total_s": statistics.median(totals),
    "totals_s": totals,
    "median_server_s": statistics.median(server_s),
    "median_blender_s": statistics.median(blender_s),
    "mean_joint_error_mm": 1000 * statistics.fmean(errors),
    "median_joint_error_mm": 1000 * statistics.median(errors),
    "max_joint_error_mm": 1000 * max(errors),
    "worst_joints_max_mm": {n: 1000 * max(per_joint[n]) for n in worst},
    "load_average": os.getloadavg(),
}
print("MEASURE", json.dumps(numbers))
if args.out:
    with open(args.out, "w") as f:
        json.dump(numbers, f, indent=1)


# -- the picture: the armature as meshes (an armature itself does not render), a few poses --

LEFT, RIGHT, MID = (1.0, 0.19, 0.06, 1), (0.05, 0.46, 1.0, 1), (0.75, 0.75, 0.75, 1)


def material(name, rgba):
    m = bpy.data.materials.new(name)
    m.diffuse_color = rgba  # what Workbench shows
    return m


def bone_mesh(arm_obj):
    """One octahedral stick per bone (like Blender's bone display), skinned to its bone."""
    verts, faces, groups, mats = [], [], [], []
    for b in arm_obj.data.bones:
        head, tail = b.head_local, b.tail_local
        axis = tail - head
        length = axis.length
        m = b.matrix_local.to_3x3()
        x, z = m.col[0] * (0.14 * length), m.col[2] * (0.14 * length)
        mid = head + axis * 0.2
        base = len(verts)
        verts += [head, mid + x, mid + z, mid - x, mid - z, tail]
        faces += [(base, base + 1 + k, base + 1 + (k + 1) % 4) for k in range(4)]
        faces += [(base + 5, base + 1 + (k + 1) % 4, base + 1 + k) for k in range(4)]
        groups.append((b.name, range(base, base + 6)))
        side = 0 if b.name.startswith("left") else 1 if b.name.startswith("right") else 2
        mats += [side] * 8
    mesh = bpy.data.meshes.new("mosa_bones")
    mesh.from_pydata([tuple(v) for v in verts], [], faces)
    for mat in (material("left", LEFT), material("right", RIGHT), material("mid", MID)):
        mesh.materials.append(mat)
    mesh.polygons.foreach_set("material_index", mats)
    ob = bpy.data.objects.new("mosa_bones", mesh)
    scene.collection.objects.link(ob)
    for name, idx in groups:
        ob.vertex_groups.new(name=name).add(list(idx), 1.0, "REPLACE")
    ob.modifiers.new("armature", "ARMATURE").object = arm_obj
    ob.parent = arm_obj
    return ob


if args.render:
    skin = bone_mesh(obj)
    ghosts = (10, 26, 42, 58)
    for k, f in enumerate(ghosts):  # frozen copies of earlier poses, fading into the past
        scene.frame_set(f)
        dg = bpy.context.evaluated_depsgraph_get()
        copy = bpy.data.meshes.new_from_object(skin.evaluated_get(dg))
        ghost = bpy.data.objects.new(f"pose_{f}", copy)
        ghost.matrix_world = skin.matrix_world.copy()
        copy.materials.clear()
        shade = 0.55 + 0.1 * k
        copy.materials.append(material(f"ghost{f}", (shade, shade, shade * 1.04, 1)))
        scene.collection.objects.link(ghost)
    scene.frame_set(76)
    bpy.ops.mesh.primitive_plane_add(size=60)
    bpy.context.active_object.data.materials.append(material("floor", (0.3, 0.31, 0.33, 1)))
    # frame the path: the camera looks at the middle of the pelvis's track from the side
    track = [f[0] for f in motion]
    cx = sum(p[0] for p in track) / len(track)
    cy = sum(p[1] for p in track) / len(track)
    from mathutils import Vector

    cam_data = bpy.data.cameras.new("cam")
    cam_data.lens = 35
    cam = bpy.data.objects.new("cam", cam_data)
    scene.collection.objects.link(cam)
    side = Vector((track[-1][0] - track[0][0], track[-1][1] - track[0][1], 0.0))
    side = Vector((side.y, -side.x, 0.0)).normalized() if side.length > 0.3 else Vector((1, 0, 0))
    length = (Vector(track[-1]) - Vector(track[0])).length
    cam.location = Vector((cx, cy, 1.6)) + side * max(5.0, 1.25 * length + 2.5)
    direction = Vector((cx, cy, 0.8)) - cam.location
    cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    scene.camera = cam
    scene.render.engine = "BLENDER_WORKBENCH"
    shading = scene.display.shading
    shading.light, shading.color_type = "STUDIO", "MATERIAL"
    shading.show_shadows, shading.show_cavity = True, True
    shading.background_type = "WORLD"
    world = bpy.data.worlds.new("world")
    world.color = (0.2, 0.21, 0.23)
    scene.world = world
    scene.display.render_aa = "16"
    scene.render.resolution_x, scene.render.resolution_y = 960, 400
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.image_settings.compression = 100
    scene.render.filepath = os.path.abspath(args.render)
    t0 = time.perf_counter()
    bpy.ops.render.render(write_still=True)
    print(f"RENDER {args.render} in {time.perf_counter() - t0:.1f} s")
