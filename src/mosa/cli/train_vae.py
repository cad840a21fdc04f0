"""``mosa train vae``: flags -> :func:`mosa.train.vae.train_vae`."""

from __future__ import annotations

import argparse

from mosa.cli.train_flags import (
    add_run_arguments,
    add_schedule_arguments,
    add_timing_arguments,
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
    )
    report_done(summary, args.out, "val MPJPE", "{:.1f} mm")
    return 0
