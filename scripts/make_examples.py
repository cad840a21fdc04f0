"""Render the docs' example prompts with a checkpoint: one GIF each, a contact sheet, and a
table of kinematic figures per motion that says whether the text reached the motion.

python scripts/make_examples.py --checkpoint checkpoints --out docs/examples
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mosa
from mosa.eval.kinematics import describe
from mosa.io import atomic_write_text
from mosa.motion.render import render_contact_sheet, render_motions

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


def check_counts(pipe, seeds: int, seed: int = 100, seconds: float = 4.0) -> list[dict]:
    """For every ``CHECKS`` prompt: how many of ``seeds`` motions (seeds ``seed ..``) pass."""
    rows = []
    for prompt, (rule, ok) in CHECKS.items():
        motions = pipe.generate([prompt] * seeds, seconds=seconds, seed=seed)
        passed = sum(bool(ok(describe(m.joints, m.fps))) for m in motions)
        rows.append({"prompt": prompt, "rule": rule, "passed": passed, "seeds": seeds})
    return rows


def check_table(rows: list[dict]) -> str:
    lines = ["| prompt | must show | passed |", "|---|---|---|"]
    lines += [f"| {r['prompt']} | {r['rule']} | {r['passed']}/{r['seeds']} |" for r in rows]
    return "\n".join(lines)


COLUMNS = (
    ("forward_m", "forward m"), ("turn_deg", "turn °"), ("speed_mps", "speed m/s"),
    ("wrist_l_above_head_m", "L wrist above head m"),
    ("wrist_r_above_head_m", "R wrist above head m"), ("head_drop_m", "head drop m"),
)  # fmt: skip


def table(rows: list[dict]) -> str:
    head = "| # | prompt | " + " | ".join(name for _, name in COLUMNS) + " |"
    lines = [head, "|---|---|" + "---|" * len(COLUMNS)]
    for i, r in enumerate(rows):
        cells = " | ".join(f"{r[key]:+.2f}" if "deg" not in key else f"{r[key]:+.0f}"
                           for key, _ in COLUMNS)  # fmt: skip
        lines.append(f"| {i:02d} | {r['prompt']} | {cells} |")
    return "\n".join(lines)


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
    pipe = mosa.load(args.checkpoint, device="cpu")
    motions = pipe.generate(list(PROMPTS), seconds=args.seconds, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("[0-9][0-9].gif"):
        old.unlink()
    for i, m in enumerate(motions):
        render_motions([m.joints], args.out / f"{i:02d}.gif", caption=m.text, width=240, dpi=60)
    render_contact_sheet([m.joints for m in motions], args.out / "contact_sheet.png",
                         titles=list(PROMPTS))  # fmt: skip
    rows = [{"prompt": m.text, "seed": m.seed, **describe(m.joints, m.fps)} for m in motions]
    atomic_write_text(args.out / "figures.json", json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    if args.check_seeds > 0:
        checks = check_counts(pipe, args.check_seeds)
        atomic_write_text(args.out / "checks.json", json.dumps(checks, indent=2) + "\n")
        print(check_table(checks))


if __name__ == "__main__":
    main()
