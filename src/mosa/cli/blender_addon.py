"""``mosa blender-addon``: write the Blender add-on's installable zip."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("mosa_blender.zip"),
        help="the zip to write (default: mosa_blender.zip)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace an existing file")


def run(args: argparse.Namespace) -> int:
    from mosa.blender_addon import bl_info, write_addon_zip

    path = write_addon_zip(args.output, force=args.force)
    version = ".".join(map(str, bl_info()["blender"]))
    print(f"wrote {path}: in Blender {version} or later, Edit > Preferences > Add-ons > "
          f"Install... > {path.name}, then enable 'mosa: text to motion'; start the server "
          "with: mosa serve --checkpoint <folder>")  # fmt: skip
    return 0
