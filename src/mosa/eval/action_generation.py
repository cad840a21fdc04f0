"""Does the generator show each action? Kinematic rules (``mosa.eval.actions``) on generated
motions, over many seeds, for prompts phrased as a user types them (not as the caption
templates are), next to the action's training clips and its real clips' pass rate.

A rule is first checked on the real clips (``actions.rule_pass_rates``): a rule the real clips
fail is a bad rule. The table per action then reads: clips in training, real pass rate,
generated pass rate (one column per checkpoint compared, e.g. before and after a retraining).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence

from mosa.eval.actions import ACTION_RULES, check_action

# action -> prompts as a user would type them (HumanML3D annotators' style); two per action so
# that a pass rate is not one phrasing's luck
USER_PROMPTS: dict[str, tuple[str, ...]] = {
    "walk": ("a person walks forward", "someone strolls ahead at a relaxed pace"),
    "walk backwards": ("a person walks backwards", "someone takes several steps backward"),
    "walk sideways": ("a person steps sideways to the left", "someone sidesteps to the right"),
    "turn": ("a person turns around", "someone walks and then turns to the left"),
    "run": ("a person runs forward", "someone jogs in a straight line"),
    "wave": ("a person waves with the right hand", "someone waves hello with their left hand"),
    "raise hands": ("a person raises both arms above their head", "someone lifts their hands up"),
    "bow": ("a person bows", "someone bends forward in a polite bow"),
    "kick": ("a person kicks with the right leg", "someone kicks forward with their left foot"),
    "punch": ("a person punches forward", "someone throws a few punches like a boxer"),
    "slash": ("a person slashes with a sword", "someone swings a sword down"),
    "dance": ("a person dances", "someone dances happily on the spot"),
    "jump": ("a person jumps up and down", "someone jumps forward"),
    "jumping jacks": ("a person does jumping jacks", "someone is doing jumping jacks"),
    "sit down": ("a person sits down", "someone sits down on a chair"),
    "stand up": ("a person stands up from a chair", "someone gets up from sitting"),
    "squat": ("a person squats down and stands back up", "someone does a squat"),
    "climb": ("a person climbs up a ladder", "someone climbs up some steps"),
    "crawl": ("a person crawls forward on hands and knees", "someone crawls on the floor"),
    "cartwheel": ("a person does a cartwheel", "someone performs a cartwheel"),
    "roll": ("a person rolls on the floor", "someone does a forward roll"),
    "flip": ("a person does a backflip", "someone flips in the air"),
    "spin": ("a person spins around in a full circle", "someone spins on the spot"),
    "drink": ("a person drinks from a cup", "someone raises a bottle and drinks"),
    "basketball": ("a person dribbles a basketball", "someone plays basketball"),
    "soccer": ("a person kicks a soccer ball", "someone kicks a football hard"),
    "bend over": ("a person bends over to pick something up", "someone picks up a box"),
    "twist": ("a person twists their torso left and right", "someone twists at the waist"),
    "reach": ("a person reaches forward for something", "someone reaches up high"),
    "laugh": ("a person laughs", "someone laughs out loud"),
    "wash": ("a person washes their hands", "someone washes their face"),
    "balance": ("a person balances on one leg", "someone stands on one foot"),
    "dab": ("a person does a dab", "someone dabs"),
}  # fmt: skip


def generated_pass_rates(
    pipe,
    actions: Sequence[str] | None = None,
    seeds: int = 16,
    seed: int = 0,
    seconds: float | None = None,
    prompts: Mapping[str, Sequence[str]] = USER_PROMPTS,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Per action: how many of ``seeds`` motions per prompt (seeds ``seed ..``) pass its rule.

    ``seconds`` None lets the length estimator pick, as ``mosa generate`` does. Rows hold the
    action, ``motions``, ``passed``, ``pass_rate`` and each prompt's count in ``prompts``.
    """
    rows = []
    for name in actions or list(prompts):
        if name not in ACTION_RULES:
            continue
        per_prompt = {}
        for text in prompts[name]:
            with warnings.catch_warnings():  # out-of-vocabulary prompts are the point here
                warnings.simplefilter("ignore")
                motions = pipe.generate([text] * seeds, seconds=seconds, seed=seed)
            per_prompt[text] = sum(check_action(name, m.joints, m.fps) for m in motions)
        passed, total = sum(per_prompt.values()), seeds * len(per_prompt)
        rows.append(_row(name, passed, total, per_prompt))
        if progress is not None:
            progress(f"{name}: {passed}/{total}")
    return rows


def _row(name: str, passed: int, total: int, per_prompt: dict[str, int]) -> dict:
    return {
        "action": name,
        "motions": total,
        "passed": passed,
        "pass_rate": round(passed / total, 3) if total else None,
        "prompts": per_prompt,
    }


def training_clips(dataset_root: str | os.PathLike, split: str = "train") -> dict[str, int]:
    """``{action: clips}`` of a dataset split (``actions.json``; mirrored copies count)."""
    from mosa.vocabulary import split_captions

    counts: dict[str, int] = {}
    for acts in split_captions(dataset_root, split).clip_actions.values():
        for a in acts:
            counts[a] = counts.get(a, 0) + 1
    return counts


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{100 * rate:.0f}%"


def action_table(
    clips: Mapping[str, int],
    real: Sequence[dict],
    generated: Mapping[str, Sequence[dict]],
) -> str:
    """Markdown: action, clips in training, real pass rate, one generated column per run.

    ``real``: ``actions.rule_pass_rates`` rows; ``generated``: column title -> rows of
    ``generated_pass_rates``.
    """
    real_by = {r["action"]: r for r in real}
    gen_by = {title: {r["action"]: r for r in rows} for title, rows in generated.items()}
    head = "| action | clips in training | real pass rate | " + " | ".join(gen_by) + " |"
    lines = [head, "|---|---:|---:|" + "---:|" * len(gen_by)]
    for name in ACTION_RULES:
        cells = []
        for rows in gen_by.values():
            r = rows.get(name)
            cells.append(
                "-" if r is None else f"{_pct(r['pass_rate'])} ({r['passed']}/{r['motions']})"
            )
        real_rate = _pct(real_by[name]["pass_rate"]) if name in real_by else "n/a"
        lines.append(f"| {name} | {clips.get(name, 0)} | {real_rate} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
