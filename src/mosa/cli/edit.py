"""``mosa edit``: regenerate a span of a motion, extend it or lead into it, from text.

The flags every editing command shares (``add_edit_options``) live here too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mosa.cli.common import (
    add_pipeline_arguments,
    add_sampling_arguments,
    check_output,
    check_pipeline_args,
    check_positive_arg,
    check_sampling_args,
    check_seconds_arg,
    check_seed_arg,
    load_from_args,
    prompt_warnings_to_stderr,
)
from mosa.cli.generate import add_foot_lock_argument
from mosa.edit.modes import (
    DEFAULT_CONTEXT,
    EditedMotion,
    check_span,
    edit_span,
    outpaint,
    parse_context,
)
from mosa.edit.on_rig import check_edit_rig, save_edit
from mosa.edit.seams import DEFAULT_BLEND
from mosa.errors import MosaError
from mosa.motion.io import read_motion
from mosa.requests import check_text


def add_edit_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", required=True, help="what the generated part shows (quoted)")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="out.bvh, out.npy, out.mp4 or out.gif"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    add_sampling_arguments(parser)
    parser.add_argument(
        "--blend",
        type=int,
        default=DEFAULT_BLEND,
        help="shortest window (frames) over which the generated frames blend into the kept "
        f"pose at a seam; longer for larger differences (default {DEFAULT_BLEND})",
    )
    parser.add_argument(
        "--crop",
        action="store_true",
        help="if what the generator must see is too long for it (outpainting, or "
        "--context all), drop the source frames farthest from the edit",
    )
    parser.add_argument(
        "--context",
        type=context_arg,
        default=DEFAULT_CONTEXT,
        metavar="SECONDS|all",
        help="seconds of the kept motion on either side of the edit that the generator sees "
        f"(default {DEFAULT_CONTEXT:g}); the rest is kept as it is, so sources of any length "
        "work. Less follows the text more and the source less; 'all': the whole motion, "
        "which must then fit the generator's maximum length",
    )
    parser.add_argument("--mapping", default=None, help="BVH joint mapping (preset or JSON file)")
    parser.add_argument(
        "--rig",
        default="source",
        metavar="source|smpl",
        help="skeleton of the output: 'source' (default): a .bvh of a BVH source is on the "
        "source's own rig, frame rate and place in the scene, its kept frames exactly the "
        "source's (other outputs: the source's own joint positions); 'smpl': mosa's 22-joint "
        "skeleton at 20 fps, starting at the origin",
    )
    add_foot_lock_argument(parser)
    add_pipeline_arguments(parser)


def context_arg(text: str) -> float | None:
    """argparse type of ``--context``: seconds >= 0, or ``all`` (None: the whole motion)."""
    try:
        return parse_context(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``mosa edit SOURCE --text ... (--start S --end E | --extend SEC | --lead-in SEC) -o OUT``;
    ``--extend`` and ``--lead-in`` together generate on both sides (outpainting)."""
    parser.add_argument("source", type=Path, help="motion to edit (.bvh or .npy)")
    parser.add_argument("--start", type=float, default=None, help="span start (seconds)")
    parser.add_argument("--end", type=float, default=None, help="span end (seconds)")
    parser.add_argument(
        "--extend", type=float, default=None, help="generate this many seconds after the source"
    )
    parser.add_argument(
        "--lead-in",
        type=float,
        default=None,
        help="generate this many seconds before the source (with --extend: both sides)",
    )
    add_edit_options(parser)


def check_edit_options(args: argparse.Namespace) -> tuple[int, int, int, float]:
    """Check the shared editing flags before any loading; returns ``check_pipeline_args``'."""
    check_text(args.text, "--text")
    check_seed_arg(args.seed)
    check_positive_arg(args.blend, "--blend")
    check_sampling_args(args)
    check_edit_rig(args.rig)
    return check_pipeline_args(args)


def edit_options(args: argparse.Namespace) -> dict:
    return {
        "seed": args.seed, "cfg": args.cfg, "temperature": args.temperature,
        "top_k": args.top_k, "top_p": args.top_p, "blend": args.blend, "crop": args.crop,
        "context": args.context,
    }  # fmt: skip


def save(m: EditedMotion, args: argparse.Namespace, sources: list) -> Path:
    """Write ``m`` as ``--output``, ``--rig`` and ``--no-foot-lock`` ask (``save_edit``)."""
    return save_edit(
        m, args.output, sources, rig=args.rig, mapping=args.mapping,
        foot_lock=not args.no_foot_lock,
    )  # fmt: skip


def report(m: EditedMotion, path: Path) -> None:
    gen = sum(s.end - s.start for s in m.segments if s.kind == "generated")
    print(
        f"wrote {path} ({len(m.joints)} frames, {m.seconds:.2f} s, {gen / m.fps:.2f} s "
        f"generated, seed {m.seed}): {m.text}"
    )


def run(args: argparse.Namespace) -> int:
    check_output(args.output)
    span = args.start is not None or args.end is not None
    grow = args.extend is not None or args.lead_in is not None
    if span == grow:
        raise MosaError(
            "give either a span (--start S --end E) or --extend/--lead-in SECONDS",
            'e.g. mosa edit walk.bvh --text "a person jumps" --start 2 --end 3.5 -o out.bvh',
        )
    if span and (args.start is None or args.end is None):
        raise MosaError("a span needs both --start and --end", "e.g. --start 2 --end 3.5")
    _, hi, unit, fps = check_edit_options(args)
    for name, value in (("--extend", args.extend), ("--lead-in", args.lead_in)):
        check_seconds_arg(value, name, hi / fps)
    source = read_motion(args.source, mapping=args.mapping)
    if span:
        check_span(source.num_frames, args.start, args.end, fps, unit)
    pipe = load_from_args(args)
    opts = edit_options(args)
    with prompt_warnings_to_stderr():
        if span:
            m = edit_span(pipe, source, args.text, args.start, args.end, **opts)
        else:
            m = outpaint(pipe, source, args.text, args.lead_in or 0.0, args.extend or 0.0, **opts)
    report(m, save(m, args, [source]))
    return 0
