"""``mosa inbetween``: the motion between two motions, from text."""

from __future__ import annotations

import argparse
from pathlib import Path

from mosa.cli.common import (
    check_output,
    check_seconds_arg,
    load_from_args,
    prompt_warnings_to_stderr,
)
from mosa.cli.edit import add_edit_options, check_edit_options, edit_options, report, save
from mosa.edit.modes import inbetween
from mosa.motion.io import read_motion


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``mosa inbetween A B --text ... --seconds S -o OUT``."""
    parser.add_argument("a", type=Path, help="first motion (.bvh or .npy); its end is kept")
    parser.add_argument("b", type=Path, help="second motion (.bvh or .npy); its start is kept")
    parser.add_argument("--seconds", type=float, required=True, help="length of the transition")
    add_edit_options(parser)


def run(args: argparse.Namespace) -> int:
    check_output(args.output)
    _, hi, _, fps = check_edit_options(args)
    check_seconds_arg(args.seconds, "--seconds", hi / fps)
    a = read_motion(args.a, mapping=args.mapping)
    b = read_motion(args.b, mapping=args.mapping)
    pipe = load_from_args(args)
    with prompt_warnings_to_stderr():
        m = inbetween(pipe, a, b, args.text, args.seconds, **edit_options(args))
    report(m, save(m, args, [a, b]))
    return 0
