"""Do the real clips of each action pass its kinematic rule (``mosa.eval.actions``)?

A rule is what a motion of its action must show; a rule the real clips of its action fail is a
bad rule, and one that most clips of other actions pass says little. For every action this
prints, on a dataset split, how many clips carry it (``actions.json``, else the Bandai-Namco
clip names, else the captions), the share of them that pass its rule, and the share of the
other clips that pass it too. Mirrored clips count as clips.

    python benchmarks/action_rules.py --data data/bandai --split all \\
        --json runs/action_rules.json --markdown runs/action_rules.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mosa.errors import MosaError
from mosa.eval.actions import pass_rate_table, rule_pass_rates
from mosa.io import atomic_write_text

GOOD_RULE = 0.9  # share of an action's own clips that should pass its rule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="HumanML3D-layout dataset")
    parser.add_argument("--split", default="all", help="train, val, test or all (all.txt)")
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    start = time.time()
    try:
        rows = rule_pass_rates(args.data, args.split)
    except MosaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = pass_rate_table(rows)
    checked = [r for r in rows if r["clips"]]
    bad = [r["action"] for r in checked if r["pass_rate"] < GOOD_RULE]
    summary = (
        f"{len(checked)} of {len(rows)} rules checked on real clips of {args.data} "
        f"({args.split}); under {GOOD_RULE:.0%} of their own clips pass: "
        f"{', '.join(bad) or 'none'} ({time.time() - start:.0f} s)"
    )
    print(table)
    print(summary)
    if args.markdown:
        atomic_write_text(args.markdown, table + "\n\n" + summary + "\n")
    if args.json:
        payload = {"data": str(args.data), "split": args.split, "rows": rows, "bad_rules": bad}
        atomic_write_text(args.json, json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
