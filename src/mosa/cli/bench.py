"""``mosa bench``: flags -> :func:`mosa.bench.run_bench`, printed as a table or JSON."""

from __future__ import annotations

import argparse
import json

from mosa.cli.common import add_int8_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[1, 32], help="batch sizes to time (default 1 32)"
    )
    parser.add_argument("--frames", type=int, default=196, help="motion length (default 196)")
    parser.add_argument("--cfg", type=float, default=3.0, help="guidance scale (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per batch size")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument(
        "--checkpoint", default=None, help="checkpoint folder (default checkpoints/)"
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="random weights at --dim/--layers/--heads/--ff (no checkpoint)",
    )
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--ff", type=int, default=1024)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (use 1 on a machine shared with other jobs: oversubscribed "
        "threads make every op wait)",
    )
    parser.add_argument(
        "--dtype",
        choices=("fp32", "fp16", "bf16"),
        default="fp32",
        help="precision: fp32, or fp16/bf16 under autocast (GPUs; not with --int8)",
    )
    add_int8_argument(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from mosa.bench import format_report, run_bench

    report = run_bench(
        batch=args.batch, frames=args.frames, cfg=args.cfg, repeats=args.repeats,
        warmup=args.warmup, checkpoint=args.checkpoint, random_init=args.random_init,
        dim=args.dim, layers=args.layers, heads=args.heads, ff=args.ff, device=args.device,
        threads=args.threads, int8=args.int8, dtype=args.dtype,
    )  # fmt: skip
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
