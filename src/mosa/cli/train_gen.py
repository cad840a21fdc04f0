"""``mosa train gen``: flags -> :func:`mosa.train.gen.train_gen`."""

from __future__ import annotations

import argparse

from mosa.cli.train_flags import (
    add_balance_arguments,
    add_run_arguments,
    add_schedule_arguments,
    add_timing_arguments,
    balance_from_args,
    train_overrides,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vae", required=True, help="tokenizer checkpoint folder (e.g. .../best)")
    parser.add_argument("--data", required=True, help="HumanML3D-layout dataset folder")
    add_run_arguments(
        parser, 'JSON file {"model": {SARConfig fields}, "train": {TrainConfig fields}}'
    )
    parser.add_argument(
        "--text-encoder", default="minilm", help="text encoder spec: minilm (default) or clip:PATH"
    )
    parser.add_argument(
        "--length", default=None, help="length estimator folder to name in pipeline.json (optional)"
    )
    parser.add_argument(
        "--init", help="warm-start from this SAR checkpoint folder (fresh optimizer and schedule)"
    )
    parser.add_argument("--max-len", type=int, default=196, help="longest crop in frames")
    add_schedule_arguments(parser)
    add_timing_arguments(parser)
    parser.add_argument("--val-items", type=int, default=2048, help="cap on validation motions")
    add_balance_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from mosa.train.common import report_done
    from mosa.train.gen import build_configs, train_gen

    model_overrides, train_cfg = build_configs(args.config, train_overrides(args))
    balance = balance_from_args(args)
    summary = train_gen(
        args.vae, args.data, args.out, model_overrides, train_cfg, resume=args.resume,
        force=args.force, init=args.init, device=args.device, text_encoder=args.text_encoder,
        length_dir=args.length, max_len=args.max_len, val_items=args.val_items, balance=balance,
    )  # fmt: skip
    report_done(summary, args.out, "val loss", "{:.4f}")
    return 0
