"""mosa inside Blender: text to motion on an armature, talking to a running ``mosa serve``.

Install the zip that ``mosa blender-addon -o mosa_blender.zip`` writes (Edit > Preferences >
Add-ons > Install...), start ``mosa serve --checkpoint <folder>``, and use the "mosa" tab of the
3D viewport's sidebar (N), or the operators from a script::

    bpy.ops.mosa.generate(text="a person walks forward", seconds=4.0, seed=1)
    bpy.ops.mosa.regenerate(text="a person jumps", frame_start=20, frame_end=50, seed=2)
    bpy.ops.mosa.extend(text="then sits down", seconds=2.0)
    bpy.ops.mosa.sequence(texts="walk forward | turn around | wave", seconds="3 | 2 | 2")

The add-on needs nothing beyond Blender's own Python: ``client`` (HTTP), ``kinematics``
(positions <-> rotations) and ``frames`` (ranges and timing) are plain Python; ``armature``,
``operators``, ``panel`` and ``preferences`` use ``bpy`` and load only in ``register``.
"""

bl_info = {
    "name": "mosa: text to motion",
    "author": "mosa contributors",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "View3D > Sidebar (N) > mosa",
    "description": "Generate, regenerate, extend and sequence motions from text with mosa serve",
    "doc_url": "https://github.com/mosa-motion/mosa/blob/main/docs/blender.md",
    "category": "Animation",
}

_MODULES = ("preferences", "operators", "panel")


def _modules():
    import importlib

    return [importlib.import_module(f"{__name__}.{m}") for m in _MODULES]


def register():
    for module in _modules():
        module.register()


def unregister():
    for module in reversed(_modules()):
        module.unregister()
