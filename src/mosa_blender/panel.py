"""The "mosa" tab of the 3D viewport's sidebar: server status, Generate, Edit, Sequence."""

from __future__ import annotations

import textwrap

import bpy

from . import operators

WRAP = 42  # characters per line of a message in the sidebar


def _lines(layout, text: str, icon: str = "NONE") -> None:
    for i, line in enumerate(textwrap.wrap(text, WRAP) or [""]):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")


def _redraw() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()
    return None  # once


def _redraw_soon() -> None:
    """Redraw the sidebars once a background server check has had time to finish."""
    if not bpy.app.timers.is_registered(_redraw):
        bpy.app.timers.register(_redraw, first_interval=1.0)


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "mosa"


class VIEW3D_PT_mosa(_Panel, bpy.types.Panel):
    bl_label = "mosa"

    def draw(self, context):
        layout = self.layout
        url = operators.server_url(context)
        state = operators.STATUS.state(url)
        if state is None:
            layout.label(text=f"Checking {url} ...", icon="SORTTIME")
            _redraw_soon()
        elif state[0]:
            layout.label(text=f"Server: {url}", icon="CHECKMARK")
        else:
            box = layout.box()
            box.alert = True
            _lines(box, f"No mosa server answers at {url}.", "ERROR")
            _lines(box, "Start one: mosa serve --checkpoint <folder>, or set the URL in the "
                   "add-on preferences.")  # fmt: skip
            box.operator("mosa.check_server", text="Retry", icon="FILE_REFRESH")
            _redraw_soon()
        obj = operators.active_mosa_armature(context)
        if obj is not None:
            action = obj.animation_data.action if obj.animation_data else None
            layout.label(text=f"{obj.name}: {action.name if action else 'no action'}",
                         icon="ARMATURE_DATA")  # fmt: skip
        elif context.active_object is not None and context.active_object.type == "ARMATURE":
            name = context.active_object.name
            _lines(layout, f"{name}: your own armature. Generate and Sequence retarget onto it; "
                   "Regenerate and Extend need a mosa armature.", "INFO")  # fmt: skip


class VIEW3D_PT_mosa_generate(_Panel, bpy.types.Panel):
    bl_label = "Generate"
    bl_parent_id = "VIEW3D_PT_mosa"

    def draw(self, context):
        s = context.scene.mosa
        layout = self.layout
        layout.prop(s, "prompt", text="")
        row = layout.row(align=True)
        row.prop(s, "auto_length")
        sub = row.row(align=True)
        sub.enabled = not s.auto_length
        sub.prop(s, "seconds", text="")
        row = layout.row(align=True)
        row.prop(s, "random_seed")
        sub = row.row(align=True)
        sub.enabled = not s.random_seed
        sub.prop(s, "seed", text="")
        op = layout.operator("mosa.generate", icon="PLAY")
        op.text, op.seed = s.prompt, s.seed_value()
        op.seconds = 0.0 if s.auto_length else s.seconds


class VIEW3D_PT_mosa_edit(_Panel, bpy.types.Panel):
    bl_label = "Edit in place"
    bl_parent_id = "VIEW3D_PT_mosa"

    def draw(self, context):
        s = context.scene.mosa
        layout = self.layout
        layout.prop(s, "edit_prompt", text="")
        row = layout.row(align=True)
        row.prop(s, "frame_start")
        row.prop(s, "frame_end")
        row.operator("mosa.range_from_timeline", text="", icon="TIME")
        op = layout.operator("mosa.regenerate", icon="FILE_REFRESH")
        op.text, op.frame_start, op.frame_end = s.edit_prompt, s.frame_start, s.frame_end
        op.seed = s.seed_value()
        row = layout.row(align=True)
        row.prop(s, "extend_seconds")
        op = row.operator("mosa.extend", icon="FORWARD")
        op.text, op.seconds, op.seed = s.edit_prompt, s.extend_seconds, s.seed_value()


class VIEW3D_PT_mosa_sequence(_Panel, bpy.types.Panel):
    bl_label = "Sequence"
    bl_parent_id = "VIEW3D_PT_mosa"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        s = context.scene.mosa
        layout = self.layout
        for i, p in enumerate(s.prompts):
            row = layout.row(align=True)
            row.prop(p, "text", text="")
            sub = row.row(align=True)
            sub.enabled = not s.auto_length
            sub.prop(p, "seconds", text="")
            row.operator("mosa.prompt_remove", text="", icon="X").index = i
        layout.operator("mosa.prompt_add", icon="ADD")
        texts = [p.text for p in s.prompts]
        op = layout.operator("mosa.sequence", icon="SEQ_SEQUENCER")
        op.texts = " | ".join(texts)
        op.seconds = "" if s.auto_length else " | ".join(f"{p.seconds:g}" for p in s.prompts)
        op.seed = s.seed_value()


CLASSES = (VIEW3D_PT_mosa, VIEW3D_PT_mosa_generate, VIEW3D_PT_mosa_edit, VIEW3D_PT_mosa_sequence)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
