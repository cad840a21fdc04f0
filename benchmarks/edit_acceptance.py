"""Acceptance numbers of span editing (``mosa edit --start S --end E``) for a checkpoint.

For each source motion, regenerate ``[start, end)`` for ``--text`` and measure:

1. **MPJPE outside the span** (mm): output vs source joints on the kept frames, in the root's
   frame (a kept part after the edit is re-anchored, so global positions differ by design),
   next to the tokenizer's **reconstruction MPJPE** on the same frames.
   Pass: ``outside <= reconstruction + 10 mm``. Also reported for the raw decode (before
   the seam join with the source), which is the model's own contribution.
2. **Peak seam speed** (m/s): the fastest joint within ``blend + 4`` frames of a seam,
   over the 95th percentile of the source's per-step fastest-joint speed, for the source that
   seam joins (each seam of an in-between against its own source). Pass: ratio ``<= 1.5``
   at every seam. The peak is also
   split by where it lies: steps between two kept frames (the source's own motion, which
   the edit keeps as it is) and steps touching a generated frame.
3. **Span follows text** (needs ``--evaluator``): evaluator distance text <-> edited span
   vs text <-> the source's original span. Pass: the edited span is closer.

The criteria are ``mosa.eval.edit_acceptance`` (``measure_span``); this is its command line.

    python benchmarks/edit_acceptance.py --checkpoint checkpoints walk.bvh run.npy \\
        --text "a person jumps" --start 2 --end 3.5 --evaluator runs/evaluator --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from mosa.edit.modes import DEFAULT_CONTEXT, parse_context
from mosa.edit.seams import DEFAULT_BLEND
from mosa.errors import MosaError
from mosa.eval.edit_acceptance import measure_span, summarise
from mosa.io import atomic_write_text
from mosa.loading import load
from mosa.motion.io import read_motion


def measure(pipe, source: Path, args, evaluator=None) -> dict:
    """``measure_span`` of one source file with the command line's options."""
    motion = read_motion(source, mapping=args.mapping)
    return {"source": str(source), **measure_span(
        pipe, motion, args.text, args.start, args.end, seed=args.seed, cfg=args.cfg,
        blend=args.blend, crop=args.crop, context=args.context, evaluator=evaluator,
    )}  # fmt: skip


def _context(text: str) -> float | None:
    """argparse type of ``--context`` (``parse_context``: seconds >= 0 or ``all``)."""
    try:
        return parse_context(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sources", nargs="+", type=Path, help="source motions (.bvh or .npy)")
    p.add_argument("--checkpoint", type=Path, default=None, help="pipeline checkpoint folder")
    p.add_argument("--text", required=True, help="what the regenerated span should show")
    p.add_argument("--start", type=float, required=True, help="span start (s)")
    p.add_argument("--end", type=float, required=True, help="span end (s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg", type=float, default=None)
    p.add_argument("--blend", type=int, default=DEFAULT_BLEND)
    p.add_argument("--crop", action="store_true", help="crop sources longer than the maximum")
    p.add_argument(
        "--context",
        type=_context,
        default=DEFAULT_CONTEXT,
        help="seconds of the source either side that the generator sees ('all': everything)",
    )
    p.add_argument("--mapping", default=None, help="BVH joint mapping")
    p.add_argument("--evaluator", default=None, help="evaluator DIR or t2m:PATH (metric 3)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        pipe = load(args.checkpoint, args.device)
        evaluator = None
        if args.evaluator:
            from mosa.eval.loading import load_evaluator

            evaluator = load_evaluator(args.evaluator)
        rows = [measure(pipe, s, args, evaluator) for s in args.sources]
    except MosaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarise(rows)
    for r in rows:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
    print("summary:", json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                  for k, v in summary.items()}))  # fmt: skip
    if args.json:
        atomic_write_text(args.json, json.dumps({"rows": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
