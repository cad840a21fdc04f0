"""Long takes from a sequence of prompts (``mosa sequence``): cost and acceptance.

1. **Cost**: wall time and resident memory (RSS) of takes of 10, 20 and 40 parts of 3 s each.
2. **Seams**: every seam of a few sequences of user-phrased prompts, over ``--seeds`` seeds,
   with the edit seam criterion (each part is an ``extend`` of the take so far: the peak joint
   speed near the seam over the p95 of the kept context it continues, pass ``<= 1.5``).
3. **Parts**: every part whose prompt names an action with a kinematic rule, on its frames.

The figures are ``mosa.eval.sequence_report``; this is its command line. It writes
``sequences.json`` and ``sequences.md`` (the tables of docs/sequences.md) to ``--out``.

    python benchmarks/sequences.py --checkpoint checkpoints --out runs/sequences --seeds 20
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from mosa.errors import MosaError
from mosa.eval.sequence_report import (
    SHOTS,
    cost_row,
    markdown,
    measure_shot,
    summarise_shot,
    warm_up,
)
from mosa.io import atomic_write_text
from mosa.loading import load


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="pipeline checkpoint folder")
    p.add_argument("--out", type=Path, required=True, help="folder for sequences.json/.md")
    p.add_argument("--seeds", type=int, default=20, help="seeds per sequence (default 20)")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument(
        "--parts",
        type=int,
        nargs="*",
        default=[10, 20, 40],
        help="part counts to time (default 10 20 40; none: skip timing)",
    )
    p.add_argument(
        "--shots",
        nargs="*",
        default=None,
        help=f"sequences to measure (default all: {', '.join(s.name for s in SHOTS)})",
    )
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    try:
        pipe = load(args.checkpoint, args.device)
        shots = [s for s in SHOTS if args.shots is None or s.name in args.shots]
        if not shots:
            raise MosaError(f"no sequence named {args.shots}", "see --help for the names")
        cost = []
        if args.parts:
            warm_up(pipe)
        for n in args.parts:
            cost.append(cost_row(pipe, n))
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in cost[-1].items()}), flush=True)  # fmt: skip
        rows, summaries = {}, []
        for shot in shots:
            seeds = range(args.first_seed, args.first_seed + args.seeds)
            rows[shot.name] = [measure_shot(pipe, shot, s) for s in seeds]
            summaries.append(summarise_shot(shot, rows[shot.name]))
            s = summaries[-1]
            print(f"{shot.name}: every seam passes in {s['seeds_all_seams_pass']}/{s['seeds']} "
                  "seeds", flush=True)  # fmt: skip
    except MosaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = {
        "checkpoint": str(args.checkpoint or "checkpoints"),
        "device": str(pipe.device), "threads": args.threads,
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "seconds": round(time.time() - start, 1),
        "cost": cost, "summaries": summaries, "rows": rows,
    }  # fmt: skip
    table = markdown(cost, summaries)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "sequences.json", json.dumps(report, indent=2))
    atomic_write_text(args.out / "sequences.md", table)
    print(table)
    print(f"wrote {args.out}/sequences.json and sequences.md ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
