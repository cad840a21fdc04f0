"""``mosa eval``: flags -> :func:`mosa.eval.run.evaluate_checkpoint`, the table, the JSON."""

from __future__ import annotations

import argparse
import json

from mosa.cli.common import add_int8_argument, add_sampling_arguments

SAMPLING = ("cfg", "temperature", "top_k", "top_p")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        help="a tokenizer (VAE) checkpoint (row: reconstruction) or a generation pipeline folder "
        "(rows: reconstruction + generation); default: $MOSA_CHECKPOINTS or checkpoints/, "
        "when it holds one",
    )
    parser.add_argument(
        "--evaluator",
        help="our evaluator checkpoint folder (default: evaluator/ in the checkpoint folder), "
        "or t2m:PATH for the official T2M evaluator files",
    )
    parser.add_argument(
        "--data",
        default="data/bandai",
        help="HumanML3D-layout dataset folder (default: %(default)s)",
    )
    parser.add_argument("--split", default="test", help="split to evaluate (default: %(default)s)")
    parser.add_argument("--replications", type=int, default=20, help="passes (default: 20)")
    parser.add_argument("--json", help="write the full results (every replication) here")
    parser.add_argument("--seed", type=int, default=0, help="seed of all random draws")
    parser.add_argument("--batch-size", type=int, default=256, help="encoding/generation chunk")
    parser.add_argument("--mm-samples", type=int, default=100, help="MultiModality captions")
    parser.add_argument("--mm-repeats", type=int, default=30, help="generations per caption")
    parser.add_argument("--device", help="device for the generator (default: cuda if available)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_int8_argument(parser)
    add_sampling_arguments(parser)  # default: the checkpoint's pipeline.json


def evaluate_from_args(args: argparse.Namespace) -> dict:
    """``mosa eval`` without the exit code: prints the table, returns the JSON report."""
    from mosa.eval.run import EvalSettings, evaluate_checkpoint, report_text
    from mosa.io import atomic_write_text

    settings = EvalSettings(
        replications=args.replications, batch_size=args.batch_size, seed=args.seed,
        mm_samples=args.mm_samples, mm_repeats=args.mm_repeats,
    )  # fmt: skip
    report = evaluate_checkpoint(
        args.data, args.split, evaluator=args.evaluator, checkpoint=args.checkpoint,
        device=args.device, int8=args.int8,
        sampling={k: getattr(args, k, None) for k in SAMPLING}, settings=settings,
        progress=not args.no_progress,
    )  # fmt: skip
    print(report_text(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return report


def run(args: argparse.Namespace) -> int:
    evaluate_from_args(args)
    return 0
