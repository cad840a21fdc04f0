"""Render the docs' example prompts with a checkpoint: one GIF each plus a contact sheet.

python scripts/make_examples.py --checkpoint checkpoints --out docs/examples
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import mosa
from mosa.motion.render import render_contact_sheet, render_motions

PROMPTS = (
    "a person walks forward happily",
    "a person walks backward",
    "a person runs forward",
    "someone waves with their right hand",
    "a person raises both hands above the head",
    "a man bows politely",
    "an old man shuffles forward",
    "a tired person walks and turns left",
    "someone jogs",
    "a man greets by lifting his left arm",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None, help="pipeline folder (default checkpoints/)")
    parser.add_argument("--out", type=Path, default=Path("docs/examples"))
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pipe = mosa.load(args.checkpoint, device="cpu")
    motions = pipe.generate(list(PROMPTS), seconds=args.seconds, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, m in enumerate(motions):
        render_motions([m.joints], args.out / f"{i:02d}.gif", caption=m.text, width=240, dpi=60)
    render_contact_sheet([m.joints for m in motions], args.out / "contact_sheet.png",
                         titles=list(PROMPTS))  # fmt: skip
    for m in motions:  # a crude check that the text reached the motion
        j = m.joints
        travel = np.linalg.norm(j[-1, 0, [0, 2]] - j[0, 0, [0, 2]])
        hands = (j[:, [20, 21], 1] - j[:, [15], 1]).max(axis=0)  # wrist minus head height
        lifts = f"{hands[0]:+.2f}/{hands[1]:+.2f} m"
        print(f"{m.text!r:50} travel {travel:5.2f} m, wrist above head L/R {lifts}")


if __name__ == "__main__":
    main()
