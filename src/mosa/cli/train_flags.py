"""Flags every ``mosa train ...`` command shares: the run folder and the schedule."""

from __future__ import annotations

import argparse
from typing import Any

DEVICE_HELP = "cpu, cuda or cuda:N (default: cuda if available)"


def add_run_arguments(
    parser: argparse.ArgumentParser,
    config_help: str,
    resume_help: str = "continue from OUT/last (its model config wins)",
) -> None:
    """``--out --config --resume --force``: where the run lives and how it starts."""
    parser.add_argument("--out", required=True, help="output folder (last/, best/, metrics.csv)")
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--resume", action="store_true", help=resume_help)
    parser.add_argument(
        "--force",
        action="store_true",
        help="start a fresh run in --out, deleting the run there (last/, best/, metrics.csv)",
    )


def add_schedule_arguments(
    parser: argparse.ArgumentParser, batch_help: str = "motions per batch per process"
) -> None:
    """``--max-steps --batch-size --lr --seed``: ``TrainConfig`` fields set from flags."""
    parser.add_argument("--max-steps", type=int, help="total optimisation steps")
    parser.add_argument("--batch-size", type=int, help=batch_help)
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int, help="random seed")


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device --val-every --max-minutes``."""
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument("--val-every", type=int, help="steps between validations")
    parser.add_argument("--max-minutes", type=float, help="stop after this much training time")


def train_overrides(args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """The ``TrainConfig`` fields the flags set (None: not given); ``extra``: more field names
    read from ``args`` as they are."""
    out = {"max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr,
           "seed": args.seed}  # fmt: skip
    if hasattr(args, "max_minutes"):
        out["val_every"] = args.val_every
        out["max_time_s"] = None if args.max_minutes is None else args.max_minutes * 60
    out.update({name: getattr(args, name) for name in extra})
    return out


def add_balance_arguments(parser: argparse.ArgumentParser) -> None:
    """``--balance-by/--balance-power/--balance-cap`` (``mosa.train.balance``)."""
    parser.add_argument(
        "--balance-by",
        metavar="REGEX|actions",
        help="repeat rare groups of training items; the group is the regex's first capture "
        "group in the item name (Bandai-Namco content: '_([a-z-]+)_'), or with 'actions' the "
        "item's rarest action in the dataset's actions.json",
    )
    parser.add_argument(
        "--balance-power", type=float, default=0.5, help="repeats = (typical / group size) ** this"
    )
    parser.add_argument("--balance-cap", type=int, default=8, help="most repeats of one item")


def balance_from_args(args: argparse.Namespace) -> tuple[str, float, int] | None:
    """``(pattern, power, cap)`` of the balance flags, or None without ``--balance-by``."""
    if not args.balance_by:
        return None
    return (args.balance_by, args.balance_power, args.balance_cap)
