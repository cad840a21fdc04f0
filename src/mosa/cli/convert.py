"""``mosa convert``: .bvh <-> .npy joints <-> .npy features, by extension."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument(
        "--to",
        choices=("joints", "features"),
        default="joints",
        help="what a .npy output holds (default joints)",
    )
    p.add_argument("--mapping", default=None, help="BVH joint mapping (preset name or JSON file)")


def run(args: argparse.Namespace) -> int:
    from mosa.cli.common import check_output
    from mosa.motion.io import convert

    check_output(args.output)
    motion = convert(args.input, args.output, to=args.to, mapping=args.mapping)
    seconds = len(motion.joints) / motion.fps
    print(
        f"wrote {args.output} ({len(motion.joints)} frames, {seconds:.2f} s at "
        f"{motion.fps:g} fps, from {motion.source_kind})"
    )
    return 0
