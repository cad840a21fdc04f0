"""The add-on's preferences (the server) and the panel's fields (``scene.mosa``)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .client import DEFAULT_TIMEOUT, DEFAULT_URL


class MosaPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    server_url: StringProperty(
        name="Server URL",
        description="address of a running `mosa serve`",
        default=DEFAULT_URL,
    )
    timeout: FloatProperty(
        name="Timeout",
        description="seconds to wait for the server's answer",
        default=DEFAULT_TIMEOUT,
        min=1.0,
        soft_max=3600.0,
        subtype="TIME_ABSOLUTE",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "server_url")
        layout.prop(self, "timeout")
        layout.label(text="Start the server with: mosa serve --checkpoint <folder>")
        layout.operator("mosa.check_server", icon="URL")


class MosaPrompt(bpy.types.PropertyGroup):
    text: StringProperty(name="Prompt", description="what this part shows")
    seconds: FloatProperty(name="Seconds", description="length of this part", default=3.0,
                           min=0.1, soft_max=10.0)  # fmt: skip


class MosaSettings(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="what the motion shows",
                           default="a person walks forward")  # fmt: skip
    auto_length: BoolProperty(name="Let the model choose", default=True,
                              description="the model picks the length (else: Seconds)")  # fmt: skip
    seconds: FloatProperty(name="Seconds", default=4.0, min=0.1, soft_max=10.0,
                           description="length of the motion")  # fmt: skip
    random_seed: BoolProperty(name="Random seed", default=True,
                              description="a new seed each time (else: Seed)")  # fmt: skip
    seed: IntProperty(name="Seed", default=0, min=0, description="seed of the motion")
    edit_prompt: StringProperty(name="Prompt", description="what the range or addition shows",
                                default="a person jumps")  # fmt: skip
    frame_start: IntProperty(name="Start", default=20, description="first frame to replace")
    frame_end: IntProperty(name="End", default=40, description="last frame to replace")
    extend_seconds: FloatProperty(name="Seconds", default=2.0, min=0.1, soft_max=10.0,
                                  description="seconds to add after the action")  # fmt: skip
    prompts: CollectionProperty(type=MosaPrompt)

    def seed_value(self) -> int:
        return -1 if self.random_seed else self.seed


CLASSES = (MosaPreferences, MosaPrompt, MosaSettings)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.mosa = PointerProperty(type=MosaSettings)


def unregister():
    del bpy.types.Scene.mosa
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
