"""Per action: does a checkpoint's generated motion pass the action's kinematic rule?

Generates ``--seeds`` motions for each of the user-phrased prompts of every action
(``mosa.eval.action_generation.USER_PROMPTS``) and writes the pass rates as JSON; with
``--table``, puts several such runs beside the action's training clips and its real clips' pass
rate (``mosa.eval.actions.rule_pass_rates``) in one markdown table.

    python benchmarks/action_generation.py --checkpoint checkpoints --seeds 16 \\
        --json runs/actions_after.json
    python benchmarks/action_generation.py --data data/merged \\
        --table before=runs/actions_before.json after=runs/actions_after.json \\
        --markdown runs/actions_table.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mosa.errors import MosaError
from mosa.eval.action_generation import action_table, generated_pass_rates, training_clips
from mosa.eval.actions import rule_pass_rates
from mosa.io import atomic_write_text


def _generate(args) -> dict:
    import mosa

    pipe = mosa.load(args.checkpoint, device=args.device)
    start = time.time()
    rows = generated_pass_rates(
        pipe, args.actions, seeds=args.seeds, seed=args.seed, seconds=args.seconds,
        progress=lambda line: print(line, flush=True),
    )  # fmt: skip
    return {
        "checkpoint": str(args.checkpoint),
        "seeds": args.seeds,
        "seed": args.seed,
        "seconds": args.seconds,
        "wall_s": round(time.time() - start, 1),
        "rows": rows,
    }


def _table(args) -> str:
    runs = {}
    for item in args.table:
        title, _, path = item.partition("=")
        runs[title] = json.loads(Path(path).read_text())["rows"]
    clips = training_clips(args.data, "train")
    real = rule_pass_rates(args.data, "all")
    return action_table(clips, real, runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="pipeline folder to generate with")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seeds", type=int, default=16, help="motions per prompt")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seconds", type=float, help="length (default: the length estimator)")
    parser.add_argument("--actions", nargs="*", help="only these actions")
    parser.add_argument("--json", type=Path, help="write the generated pass rates here")
    parser.add_argument("--data", type=Path, help="dataset for training clips and real rates")
    parser.add_argument("--table", nargs="*", metavar="TITLE=JSON", help="runs to tabulate")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    try:
        if args.table:
            if args.data is None:
                raise MosaError("--table needs --data", "pass the dataset folder")
            text = _table(args)
            print(text)
            if args.markdown:
                atomic_write_text(args.markdown, text + "\n")
            return 0
        if args.checkpoint is None:
            raise MosaError("nothing to do", "pass --checkpoint (generate) or --table")
        result = _generate(args)
    except MosaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")
    print(f"{sum(r['passed'] for r in result['rows'])} passed in {result['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
