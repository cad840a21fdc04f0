"""Render the docs' example prompts with a checkpoint: one GIF each, a contact sheet, and a
table of kinematic figures per motion that says whether the text reached the motion
(``mosa.eval.prompt_examples``; the prompts and their rules are here).

python scripts/make_examples.py --checkpoint checkpoints --out docs/examples
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mosa.eval.prompt_examples import make_examples
from mosa.loading import load

# content and style words of the training captions, plus sentences no template used (last two)
PROMPTS = (
    "a person walks forward happily",
    "a person walks backward",
    "a person runs forward",
    "a person dashes forward",
    "someone waves with their right hand",
    "someone waves with their left hand",
    "a person raises both hands above the head",
    "a man bows politely",
    "an old man shuffles forward",
    "a tired person walks and turns left",
    "a person walks and turns right",
    "a proud person walks",
    "someone jogs",
    "a man greets by lifting his left arm",
)


# prompt -> what its motion must show (on ``describe``'s figures), for the pass counts over
# many seeds (``--check-seeds``): one seed's render can be lucky or unlucky
CHECKS = {
    "a person walks backward": ("moves >= 0.5 m backwards", lambda d: d["forward_m"] <= -0.5),
    "someone walks backwards": ("moves >= 0.5 m backwards", lambda d: d["forward_m"] <= -0.5),
    "a person walks forward": (
        "moves >= 1 m forwards, turns < 30°",
        lambda d: d["forward_m"] >= 1.0 and abs(d["turn_deg"]) < 30,
    ),
    "a person walks and turns left": ("turns > 45° left", lambda d: d["turn_deg"] > 45),
    "a person walks and turns right": ("turns > 45° right", lambda d: d["turn_deg"] < -45),
    "a person runs forward": ("mean speed > 1.8 m/s", lambda d: d["speed_mps"] > 1.8),
    "a person bows": ("head drops > 15 cm", lambda d: d["head_drop_m"] > 0.15),
    "a person raises the right hand": (
        "right wrist over the head, left not",
        lambda d: d["wrist_r_above_head_m"] > 0 > d["wrist_l_above_head_m"],
    ),
    "a person raises the left hand": (
        "left wrist over the head, right not",
        lambda d: d["wrist_l_above_head_m"] > 0 > d["wrist_r_above_head_m"],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=None, help="pipeline folder (default checkpoints/)")
    parser.add_argument("--out", type=Path, default=Path("docs/examples"))
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--check-seeds",
        type=int,
        default=0,
        help="also count, over this many seeds (100, 101, ...), the motions that show what "
        "their prompt asks (checks.json)",
    )
    args = parser.parse_args()
    pipe = load(args.checkpoint, device="cpu")
    make_examples(pipe, PROMPTS, args.out, seconds=args.seconds, seed=args.seed, checks=CHECKS,
                  check_seeds=args.check_seeds)  # fmt: skip


if __name__ == "__main__":
    main()
