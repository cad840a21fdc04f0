"""``mosa render``: motions -> an animated stick figure (.mp4 / .gif)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mosa.errors import MosaError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, help="motion files")
    p.add_argument("-o", "--output", required=True, type=Path, help="out.mp4 or out.gif")
    p.add_argument("--caption", default=None, help="text shown above the animation")
    p.add_argument("--titles", nargs="*", default=None, help="one title per motion")
    p.add_argument("--mapping", default=None, help="BVH joint mapping (preset name or JSON file)")


def run(args: argparse.Namespace) -> int:
    from mosa import limits
    from mosa.cli.common import check_output
    from mosa.motion.io import read_motion
    from mosa.motion.render import VIDEO_EXTENSIONS, render_motions

    check_output(args.output, VIDEO_EXTENSIONS)
    titles = args.titles or [path.stem for path in args.inputs]
    if len(titles) != len(args.inputs):
        raise MosaError(
            f"{len(titles)} titles for {len(args.inputs)} motions",
            "give one --titles entry per input",
        )
    limits.check("MOSA_MAX_PANELS", len(args.inputs), f"{len(args.inputs)} motions to render")
    motions = [read_motion(path, mapping=args.mapping) for path in args.inputs]
    out = render_motions(
        [m.joints for m in motions], args.output, titles=titles, caption=args.caption
    )
    print(f"wrote {out} ({len(motions)} motion(s), {max(len(m.joints) for m in motions)} frames)")
    return 0
