"""``mosa sequence``: one continuous take from a sequence of prompts (``mosa.edit.sequences``).

    mosa sequence "a person walks forward" "a person waves with the right hand" \\
        "a person bows" --seconds 3 2 2 -o take.bvh
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
    load_from_args,
    prompt_warnings_to_stderr,
)
from mosa.edit.modes import DEFAULT_CONTEXT
from mosa.edit.seams import DEFAULT_BLEND
from mosa.edit.sequences import (
    MIN_CONTEXT,
    SequenceMotion,
    SequencePart,
    check_context,
    check_sequence,
    sequence,
)
from mosa.errors import MosaError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "texts", nargs="+", metavar="TEXT", help="what each part shows, in order (quoted)"
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="out.bvh, out.npy, out.mp4 or out.gif"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        nargs="+",
        default=None,
        metavar="S",
        help="length of each part, one per prompt (default: the length estimator's)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of part 1 (part i: + i)")
    add_sampling_arguments(parser)
    parser.add_argument(
        "--context",
        type=float,
        default=DEFAULT_CONTEXT,
        metavar="SECONDS",
        help="seconds of the take before each part that its generator sees (default "
        f"{DEFAULT_CONTEXT:g}, at least {MIN_CONTEXT:g}; less for long parts)",
    )
    parser.add_argument(
        "--blend",
        type=int,
        default=DEFAULT_BLEND,
        help=f"shortest seam window in frames (default {DEFAULT_BLEND})",
    )
    add_pipeline_arguments(parser)


def run(args: argparse.Namespace) -> int:
    check_output(args.output)
    if args.seconds is not None and len(args.seconds) != len(args.texts):
        raise MosaError(
            f"{len(args.texts)} prompt(s) but {len(args.seconds)} --seconds value(s)",
            "give one --seconds value per prompt, or leave --seconds out to let the length "
            'estimator pick, e.g. mosa sequence "a person walks" "a person bows" --seconds 3 2',
        )
    check_positive_arg(args.blend, "--blend")
    check_sampling_args(args)
    lo, hi, _, fps = check_pipeline_args(args)
    plan = check_sequence(args.texts, args.seconds, args.seed, frame_range=(lo, hi), fps=fps)
    check_context(args.context, fps, "--context")
    pipe = load_from_args(args)
    n = len(plan.texts)

    def progress(i: int, part: SequencePart) -> None:
        a, b = part.start / pipe.fps, part.end / pipe.fps
        print(f"  part {i + 1}/{n}  {a:6.2f}-{b:6.2f} s  seed {part.seed}: {part.text}")

    with prompt_warnings_to_stderr():
        take = sequence(
            pipe, plan.texts, args.seconds, plan.seed, context=args.context, blend=args.blend,
            cfg=args.cfg, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
            on_part=progress,
        )  # fmt: skip
    report(take, take.save(args.output))
    return 0


def report(take: SequenceMotion, path: Path) -> None:
    print(
        f"wrote {path} ({len(take.joints)} frames, {take.seconds:.2f} s, "
        f"{len(take.parts)} parts, seed {take.seed})"
    )
