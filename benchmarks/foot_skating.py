"""Foot skating of real test clips against generated motion, raw and as exported (foot lock).

MDM-style skating (``mosa.eval.foot_skating``: toes under 5 cm, mean 5-frame-averaged
horizontal speed, and the share of frames where a toe on the floor slides faster than
0.5 m/s) on:

- ``real``: the test clips' joints (``<data>/new_joints/<name>.npy``);
- ``raw``: the generator's joints for the clips' first captions, at the clips' lengths;
- ``fitted``: the same on one fitted skeleton (``motion.fit``), no lock;
- ``locked``: as ``mosa generate`` exports them (fitted, feet locked on the generator's
  contact features: ``motion.io.prepare_generated``).

    python benchmarks/foot_skating.py --data data/bandai --checkpoint checkpoints \\
        --clips 64 --out benchmarks/results/foot_skating.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mosa.eval.foot_skating import foot_skating, summarize
from mosa.io import atomic_write_text
from mosa.motion.io import prepare_generated


def _clips(data: Path, count: int) -> list[tuple[str, np.ndarray, str]]:
    names = [n.strip() for n in (data / "test.txt").read_text().splitlines() if n.strip()]
    out = []
    for name in names:
        joints, text = data / "new_joints" / f"{name}.npy", data / "texts" / f"{name}.txt"
        if joints.is_file() and text.is_file():
            caption = text.read_text().splitlines()[0].split("#")[0].strip()
            out.append((name, np.load(joints), caption))
        if len(out) == count:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/bandai"))
    ap.add_argument("--checkpoint", type=Path, default=Path("checkpoints"))
    ap.add_argument("--device", default=None)
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/foot_skating.json"))
    args = ap.parse_args(argv)

    import mosa

    clips = _clips(args.data, args.clips)
    pipe = mosa.load(args.checkpoint, args.device)
    lo, hi = pipe.frame_range
    unit = pipe.unit
    results: dict[str, list] = {"real": [], "raw": [], "fitted": [], "locked": []}
    t0 = time.perf_counter()
    for start in range(0, len(clips), args.batch_size):
        chunk = clips[start : start + args.batch_size]
        for i, (_, real, caption) in enumerate(chunk):
            frames = int(np.clip(len(real) // unit * unit, lo, hi))
            [m] = pipe.generate(caption, frames=frames, seed=args.seed + start + i)
            results["real"].append(foot_skating(real))
            results["raw"].append(foot_skating(m.joints))
            fitted = prepare_generated(m.joints, foot_lock=False)
            results["fitted"].append(foot_skating(fitted))
            locked = prepare_generated(m.joints, m.features, foot_lock=True)
            results["locked"].append(foot_skating(locked))
        print(f"{start + len(chunk)}/{len(clips)} clips", file=sys.stderr)
    report = {
        "data": str(args.data),
        "checkpoint": str(args.checkpoint),
        "clips": len(clips),
        "seconds": round(time.perf_counter() - t0, 1),
        "command": "python benchmarks/foot_skating.py " + " ".join(argv or sys.argv[1:]),
        **{k: summarize(v) for k, v in results.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    for k in results:
        s = report[k]
        print(
            f"{k:7s} skate speed mean {s['skate_speed_mean']:.3f} m/s, median "
            f"{s['skate_speed_median']:.3f}; skating ratio mean {s['ratio_mean']:.3f}, median "
            f"{s['ratio_median']:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
