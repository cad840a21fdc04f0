"""``python -m mosa.cli.eval_reconstruction --vae DIR --data DIR [--split test] [--png F]
[--by-corpus]``: tokenizer reconstruction metrics
(:func:`mosa.eval.reconstruction.evaluate_tokenizer`) as JSON, optionally the MPJPE-vs-scales
plot, or per corpus of a merged dataset (``evaluate_by_corpus``). Not a ``mosa`` subcommand."""

from __future__ import annotations

import argparse
import json
import sys

from mosa.errors import MosaError

DESCRIPTION = "tokenizer reconstruction metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vae", required=True, help="tokenizer checkpoint folder")
    parser.add_argument("--data", required=True, help="HumanML3D-layout dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--device", default=None)
    parser.add_argument("--max-items", type=int, default=None)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--png", help="write the MPJPE-vs-scales plot here")
    parser.add_argument(
        "--by-corpus", action="store_true", help="metrics per corpus of a merged dataset"
    )


def run(args: argparse.Namespace) -> int:
    from mosa.eval.reconstruction import evaluate_by_corpus, evaluate_tokenizer, plot_scale_curve
    from mosa.io import atomic_write_text

    if args.by_corpus:
        if args.png:
            raise MosaError("--png draws one curve", "leave out --by-corpus or --png")
        res = evaluate_by_corpus(args.vae, args.data, args.split, device=args.device)
    else:
        res = evaluate_tokenizer(
            args.vae, args.data, args.split, device=args.device, max_items=args.max_items
        )
    text = json.dumps(res, indent=2) + "\n"
    if args.json:
        atomic_write_text(args.json, text)
    if args.png:
        plot_scale_curve(res, args.png)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except MosaError as exc:
        print(f"mosa: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
