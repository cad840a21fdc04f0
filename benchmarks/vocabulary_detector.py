"""How well the vocabulary check (``mosa.vocabulary``) tells what a model was trained on.

Builds the vocabulary of ``--data``'s train split (or loads a saved one, ``--vocabulary``) and
scores two sets:

1. **Labelled prompts** (below): paraphrases of every action of ``mosa.data.actions.ACTIONS``,
   as an annotator would write them, and actions no corpus of ours has (swimming, skiing, ...).
   A prompt should warn when one of its actions has no training clip in this dataset (so on
   the Bandai-only data "a person does a cartwheel" should warn, on the merged data it should
   not) and always when it is an action no corpus has. Reported: AUROC of the score
   (low score = should warn) and the confusion counts at the vocabulary's threshold.
2. **Test-split captions**: none should warn; reported: the false-warning rate.

Targets: AUROC >= 0.9, false warnings <= 5%.

    python benchmarks/vocabulary_detector.py --data data/bandai --json runs/vocab_bench.json
    python benchmarks/vocabulary_detector.py --data data/merged --save runs/merged_vocab
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from mosa.data.actions import ACTIONS
from mosa.errors import MosaError
from mosa.io import atomic_write_text
from mosa.vocabulary import (
    Vocabulary,
    build_vocabulary,
    load_vocabulary,
    save_vocabulary,
    split_captions,
)

AUROC_TARGET = 0.9
FALSE_WARNING_TARGET = 0.05
ABSENT = ()  # label of an action no corpus has: always should warn

# (prompt, actions it shows). Written for this benchmark, not taken from any caption template.
IN_CORPUS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a person walks forward at an easy pace", ("walk",)),
    ("someone takes several steps straight ahead", ("walk",)),
    ("a man slowly strolls forward", ("walk",)),
    ("the person walks ahead looking relaxed", ("walk",)),
    ("a person takes a few steps backwards", ("walk backwards",)),
    ("someone slowly walks backward", ("walk backwards",)),
    ("a woman carefully moves backwards step by step", ("walk backwards",)),
    ("a person side steps to the left", ("walk sideways",)),
    ("someone walks sideways to the right", ("walk sideways",)),
    ("a person walks forward and then turns right", ("turn",)),
    ("someone walks and makes a sharp turn to the left", ("turn",)),
    ("a man turns around while walking", ("turn",)),
    ("a person jogs forward", ("run",)),
    ("someone sprints ahead as fast as they can", ("run",)),
    ("a man runs quickly in a straight line", ("run",)),
    ("a person waves hello with the right hand", ("wave",)),
    ("someone waves goodbye to a friend", ("wave",)),
    ("a woman waves both arms above her head", ("wave",)),
    ("a person raises both hands in the air", ("raise hands",)),
    ("someone lifts the left arm straight up", ("raise hands",)),
    ("a man puts his right hand up high", ("raise hands",)),
    ("a person bows forward at the waist", ("bow",)),
    ("someone takes a deep respectful bow", ("bow",)),
    ("a man bows politely to the audience", ("bow",)),
    ("a person kicks forward with the right leg", ("kick",)),
    ("someone does a high kick into the air", ("kick",)),
    ("a man kicks with his left foot", ("kick",)),
    ("a person throws punches in front of them", ("punch",)),
    ("someone punches forward with the right fist", ("punch",)),
    ("a man boxes the air with both fists", ("punch",)),
    ("a person swings a sword with both hands", ("slash",)),
    ("someone slashes downward with a blade", ("slash",)),
    ("a person dances happily", ("dance",)),
    ("someone dances to music moving their arms", ("dance",)),
    ("a woman performs a short dance", ("dance",)),
    ("a person jumps forward with both feet", ("jump",)),
    ("someone jumps up and down in place", ("jump",)),
    ("a man hops forward a few times", ("jump",)),
    ("a person does jumping jacks", ("jumping jacks",)),
    ("someone performs several jumping jacks", ("jumping jacks",)),
    ("a person sits down on a chair", ("sit down",)),
    ("someone slowly sits down on a stool", ("sit down",)),
    ("a person stands up from a chair", ("stand up",)),
    ("someone gets up from the ground", ("stand up",)),
    ("a person squats down and stands back up", ("squat",)),
    ("someone does a few deep squats", ("squat",)),
    ("a person climbs up a ladder", ("climb",)),
    ("someone climbs up a few steps", ("climb",)),
    ("a person crawls forward on hands and knees", ("crawl",)),
    ("someone crawls across the floor", ("crawl",)),
    ("a person does a cartwheel", ("cartwheel",)),
    ("someone performs a cartwheel to the side", ("cartwheel",)),
    ("a person rolls forward on the ground", ("roll",)),
    ("someone does a forward roll", ("roll",)),
    ("a person does a backflip", ("flip",)),
    ("someone does a side flip", ("flip",)),
    ("a person spins around in place", ("spin",)),
    ("a dancer does a pirouette", ("spin",)),
    ("a person drinks from a bottle", ("drink",)),
    ("someone drinks a can of soda", ("drink",)),
    ("a person dribbles a basketball", ("basketball",)),
    ("someone dribbles a basketball while walking forward", ("basketball",)),
    ("a person kicks a soccer ball", ("soccer",)),
    ("someone plays soccer and kicks the ball", ("soccer",)),
    ("a person bends over to pick something up from the floor", ("bend over",)),
    ("someone bends down and picks up a box", ("bend over",)),
    ("a person twists the upper body from side to side", ("twist",)),
    ("someone stands and twists at the waist", ("twist",)),
    ("a person reaches up for something on a high shelf", ("reach",)),
    ("someone reaches forward with the right hand", ("reach",)),
    ("a person laughs out loud", ("laugh",)),
    ("someone laughs and holds their belly", ("laugh",)),
    ("a person washes a window", ("wash",)),
    ("someone washes their arms in the shower", ("wash",)),
    ("a person balances on one leg", ("balance",)),
    ("someone keeps their balance on one foot", ("balance",)),
    ("a person does a dab", ("dab",)),
    ("someone dabs with both arms", ("dab",)),
)  # fmt: skip

# Actions none of our corpora has (Bandai-Namco, CMU subjects 1-14, DeepMimic,
# AnimatedDrawings): checked against CMU-INDEX.md, the KIT-ML captions and the clip names.
NO_CORPUS: tuple[str, ...] = (
    "a person swims the front crawl stroke",
    "someone is swimming in a pool",
    "a man skis down a steep slope",
    "a person plays the guitar",
    "someone strums an acoustic guitar while standing",
    "a person rides a bicycle",
    "someone pedals a bike down the street",
    "a person juggles three balls",
    "someone types on a computer keyboard",
    "a person surfs on a board",
    "a man rows a boat with two oars",
    "a person paddles a kayak",
    "a golfer swings a golf club",
    "a person shoots an arrow with a bow",
    "an archer draws the bowstring and releases",
    "a man does push ups on the floor",
    "a person plays the violin",
    "someone plays the drums",
    "a person plays the piano",
    "a person brushes their teeth",
    "someone combs their hair",
    "a person rides a skateboard",
    "someone ice skates in circles",
    "a person casts a fishing rod",
    "a man hammers a nail into the wall",
    "someone saws a piece of wood",
    "a person chops vegetables on a cutting board",
    "a person stirs a pot on the stove",
    "someone texts on their phone",
    "a person talks on the phone",
    "a man reads a book",
    "someone writes on a whiteboard",
    "a person paints a wall with a roller",
    "someone vacuums the carpet",
    "a person irons a shirt",
    "someone folds laundry",
    "a person knits a scarf",
    "a man ties his shoelaces",
    "someone puts on a jacket",
    "a person lifts a barbell in a bench press",
    "someone shovels snow",
    "a person rides a horse",
    "a person bowls a bowling ball",
    "someone claps their hands",
    "two people shake hands",
    "a person takes a selfie",
    "someone spins a hula hoop around their waist",
    "a person snowboards down a hill",
    "a man plays the flute",
    "someone eats soup with a spoon",
)  # fmt: skip

PROMPTS: tuple[tuple[str, tuple[str, ...]], ...] = IN_CORPUS + tuple((p, ABSENT) for p in NO_CORPUS)
assert all(a in ACTIONS for _, acts in IN_CORPUS for a in acts)


def should_warn(vocab: Vocabulary, actions: tuple[str, ...]) -> bool:
    """True for an action no corpus has, or one with no training clip in this vocabulary."""
    return not actions or any(vocab.counts.get(a) is None or vocab.counts[a].clips == 0
                              for a in actions)  # fmt: skip


def auroc(scores_pos: np.ndarray, scores_neg: np.ndarray) -> float:
    """P(a should-warn prompt scores lower than a known one); ties count half."""
    if len(scores_pos) == 0 or len(scores_neg) == 0:
        return float("nan")
    lower = (scores_pos[:, None] < scores_neg[None, :]).mean()
    ties = (scores_pos[:, None] == scores_neg[None, :]).mean()
    return float(lower + 0.5 * ties)


def score_prompts(vocab: Vocabulary) -> list[dict]:
    reports = vocab.check_many([p for p, _ in PROMPTS])
    return [
        {"prompt": p, "actions": list(a), "should_warn": should_warn(vocab, a), **r.to_dict()}
        for (p, a), r in zip(PROMPTS, reports, strict=True)
    ]


def score_test_captions(vocab: Vocabulary, root: Path, split: str) -> list[dict]:
    caps = split_captions(root, split)
    reports = vocab.check_many(caps.texts, None, caps.tokens)
    return [{"caption": c, **r.to_dict()} for c, r in zip(caps.texts, reports, strict=True)]


def summarise(rows: list[dict], captions: list[dict], threshold: float) -> dict:
    pos = np.array([r["score"] for r in rows if r["should_warn"]])
    neg = np.array([r["score"] for r in rows if not r["should_warn"]])
    warned = np.array([not r["known"] for r in rows])
    truth = np.array([r["should_warn"] for r in rows])
    false_warn = float(np.mean([not c["known"] for c in captions])) if captions else float("nan")
    return {
        "threshold": round(threshold, 4),
        "prompts": len(rows),
        "should_warn": int(truth.sum()),
        "auroc": round(auroc(pos, neg), 4),
        "warned_correctly": int((warned & truth).sum()),
        "missed": int((~warned & truth).sum()),
        "false_warnings_on_prompts": int((warned & ~truth).sum()),
        "test_captions": len(captions),
        "false_warning_rate": round(false_warn, 4),
        "auroc_ok": bool(auroc(pos, neg) >= AUROC_TARGET),
        "false_warning_ok": bool(false_warn <= FALSE_WARNING_TARGET),
    }


def report(summary: dict, rows: list[dict], captions: list[dict]) -> str:
    lines = [
        f"AUROC {summary['auroc']:.3f} (target >= {AUROC_TARGET}) over {summary['prompts']} "
        f"prompts ({summary['should_warn']} should warn)",
        f"at threshold {summary['threshold']:.3f}: {summary['warned_correctly']} warned, "
        f"{summary['missed']} missed, {summary['false_warnings_on_prompts']} false warnings",
        f"false warnings on {summary['test_captions']} test captions: "
        f"{100 * summary['false_warning_rate']:.1f}% (target <= {100 * FALSE_WARNING_TARGET:.0f}%)",
    ]
    wrong = [r for r in rows if r["should_warn"] == r["known"]]
    if wrong:
        lines.append("wrong calls:")
        lines += [f"  {'missed' if r['should_warn'] else 'false '} {r['score']:+.3f} "
                  f"{r['prompt']!r} {r['unknown_words']}" for r in wrong]  # fmt: skip
    warned = [c for c in captions if not c["known"]][:10]
    if warned:
        lines.append("warned test captions (first 10):")
        lines += [f"  {c['score']:+.3f} {c['caption']!r}: {c['message']}" for c in warned]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="HumanML3D-layout dataset")
    parser.add_argument("--vocabulary", type=Path, help="load this saved vocabulary instead")
    parser.add_argument("--save", type=Path, help="save the built vocabulary here")
    parser.add_argument("--split", default="test", help="captions that must not warn")
    parser.add_argument("--json", type=Path, help="write the numbers and every score here")
    args = parser.parse_args(argv)
    try:
        t0 = time.time()
        vocab = load_vocabulary(args.vocabulary) if args.vocabulary else build_vocabulary(args.data)
        if vocab is None:
            raise MosaError(f"no vocabulary in {args.vocabulary}", "build one with --save")
        if args.save:
            save_vocabulary(vocab, args.save)
        built = time.time() - t0
        rows = score_prompts(vocab)
        captions = score_test_captions(vocab, args.data, args.split)
    except MosaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = summarise(rows, captions, vocab.threshold)
    summary.update(data=str(args.data), seconds_to_build=round(built, 1), meta=vocab.meta)
    print(report(summary, rows, captions))
    if args.json:
        payload = {"summary": summary, "prompts": rows, "test_captions": captions}
        atomic_write_text(args.json, json.dumps(payload, indent=1) + "\n")
    return 0 if summary["auroc_ok"] and summary["false_warning_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
