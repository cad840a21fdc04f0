"""``mosa train length``: flags -> :func:`mosa.train.length.train_length`."""

from __future__ import annotations

import argparse

from mosa.cli.train_flags import (
    DEVICE_HELP,
    add_run_arguments,
    add_schedule_arguments,
    train_overrides,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="HumanML3D-layout dataset folder")
    add_run_arguments(
        parser,
        'JSON file {"model": {LengthConfig fields}, "train": {...}}',
        resume_help="continue from OUT/last",
    )
    parser.add_argument("--text-encoder", default="minilm", help="minilm (default) or clip:PATH")
    parser.add_argument("--unit", type=int, default=4, help="frames per token (the VAE's)")
    parser.add_argument("--max-len", type=int, default=196, help="longest motion in frames")
    add_schedule_arguments(parser, batch_help="motions per batch")
    parser.add_argument("--device", help=DEVICE_HELP)


def run(args: argparse.Namespace) -> int:
    from mosa.train.common import report_done
    from mosa.train.length import build_configs, train_length

    flags = train_overrides(args)
    model_overrides, train = build_configs(args.config, flags)
    summary = train_length(
        args.data,
        args.out,
        model_overrides,
        train,
        resume=args.resume,
        force=args.force,
        device=args.device,
        text_encoder=args.text_encoder,
        unit=args.unit,
        max_len=args.max_len,
    )
    report_done(summary, args.out, "val loss", "{:.4f}")
    return 0
