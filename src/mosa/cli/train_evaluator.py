"""``mosa train evaluator``: flags -> :func:`mosa.eval.train_evaluator.train`."""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="HumanML3D-layout dataset folder")
    parser.add_argument(
        "--out", required=True, help="run folder (best/, log.csv, test_metrics.json)"
    )
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default: 20)")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per batch (default: 64)")
    parser.add_argument(
        "--lr", type=float, default=4e-4, help="AdamW learning rate (default: 4e-4)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--width", type=int, default=128,
        help="movement/text GRU width, the motion GRU gets twice (default: 128, about 18 min "
        "on one CPU core for Bandai-Namco; 512 = the official sizes)",
    )  # fmt: skip
    parser.add_argument("--max-minutes", type=float, help="stop after this much training time")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument(
        "--force",
        action="store_true",
        help="train afresh in --out, deleting the run already there (best/, log.csv, ...)",
    )


def train_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`mosa.eval.train_evaluator.train` the flags give."""
    return {
        "data": args.data, "out": args.out, "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "width": args.width,
        "max_minutes": args.max_minutes, "threads": args.threads, "device": args.device,
        "progress": not args.no_progress, "force": args.force,
    }  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from mosa.eval.train_evaluator import train

    train(**train_kwargs(args))
    return 0
