"""``mosa train vae``: flags -> :func:`mosa.train.vae.train_vae`."""

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
    parser.add_argument("--data", required=True, help="HumanML3D-layout dataset folder")
    add_run_arguments(
        parser, 'JSON file {"model": {VAEConfig fields}, "train": {TrainConfig fields}}'
    )
    add_schedule_arguments(parser)
    parser.add_argument("--window", type=int, help="training crop length in frames")
    add_timing_arguments(parser)
    parser.add_argument("--val-items", type=int, default=None, help="cap on validation motions")
    parser.add_argument(
        "--init",
        help="warm-start from this tokenizer checkpoint folder (its weights, config and "
        "mean/std; fresh optimizer and schedule)",
    )
    add_balance_arguments(parser)


def configs_from_args(args: argparse.Namespace):
    """``(VAEConfig, TrainConfig)``: defaults < --config JSON < command-line flags."""
    from mosa.train.vae import build_configs

    return build_configs(args.config, train_overrides(args, "window"))


def run(args: argparse.Namespace) -> int:
    from mosa.train.common import report_done
    from mosa.train.vae import train_vae

    model_cfg, train_cfg = configs_from_args(args)
    summary = train_vae(
        args.data,
        args.out,
        model_cfg,
        train_cfg,
        resume=args.resume,
        force=args.force,
        device=args.device,
        val_items=args.val_items,
        init=args.init,
        balance=balance_from_args(args),
    )
    report_done(summary, args.out, "val MPJPE", "{:.1f} mm")
    return 0
