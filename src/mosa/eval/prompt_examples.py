"""The docs/examples/ report: prompts generated with one seed and rendered (a GIF each and a
contact sheet) with their kinematic figures (``mosa.eval.kinematics.describe``), and, over
many seeds, how many motions per prompt pass a kinematic rule on those figures
(``check_counts``): one seed's render can be lucky or unlucky.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from mosa.eval.kinematics import describe
from mosa.io import atomic_write_text
from mosa.motion.render import render_contact_sheet, render_motions

# prompt -> (the rule in words, ok(describe's figures of the whole motion))
PromptChecks = Mapping[str, tuple[str, Callable[[dict], bool]]]

COLUMNS = (
    ("forward_m", "forward m"), ("turn_deg", "turn °"), ("speed_mps", "speed m/s"),
    ("wrist_l_above_head_m", "L wrist above head m"),
    ("wrist_r_above_head_m", "R wrist above head m"), ("head_drop_m", "head drop m"),
)  # fmt: skip


def check_counts(
    pipe, checks: PromptChecks, seeds: int, seed: int = 100, seconds: float = 4.0
) -> list[dict]:
    """For every ``checks`` prompt: how many of ``seeds`` motions (seeds ``seed ..``) pass."""
    rows = []
    for prompt, (rule, ok) in checks.items():
        motions = pipe.generate([prompt] * seeds, seconds=seconds, seed=seed)
        passed = sum(bool(ok(describe(m.joints, m.fps))) for m in motions)
        rows.append({"prompt": prompt, "rule": rule, "passed": passed, "seeds": seeds})
    return rows


def check_table(rows: list[dict]) -> str:
    """Markdown table of ``check_counts``."""
    lines = ["| prompt | must show | passed |", "|---|---|---|"]
    lines += [f"| {r['prompt']} | {r['rule']} | {r['passed']}/{r['seeds']} |" for r in rows]
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    """Markdown table of the figures of each motion (``prompt`` and ``describe``'s keys)."""
    head = "| # | prompt | " + " | ".join(name for _, name in COLUMNS) + " |"
    lines = [head, "|---|---|" + "---|" * len(COLUMNS)]
    for i, r in enumerate(rows):
        cells = " | ".join(f"{r[key]:+.2f}" if "deg" not in key else f"{r[key]:+.0f}"
                           for key, _ in COLUMNS)  # fmt: skip
        lines.append(f"| {i:02d} | {r['prompt']} | {cells} |")
    return "\n".join(lines)


def make_examples(
    pipe,
    prompts: Sequence[str],
    out: Path,
    *,
    seconds: float = 4.0,
    seed: int = 0,
    checks: PromptChecks | None = None,
    check_seeds: int = 0,
    log: Callable[[str], object] = print,
) -> list[dict]:
    """Generate ``prompts`` (one ``seed``) and write ``out/NN.gif`` (earlier ones removed),
    ``contact_sheet.png`` and ``figures.json``; with ``check_seeds``, also ``checks.json``
    (``check_counts`` of ``checks``). ``log`` gets the tables. Returns the figures."""
    out = Path(out)
    motions = pipe.generate(list(prompts), seconds=seconds, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("[0-9][0-9].gif"):
        old.unlink()
    for i, m in enumerate(motions):
        render_motions([m.joints], out / f"{i:02d}.gif", caption=m.text, width=240, dpi=60)
    render_contact_sheet([m.joints for m in motions], out / "contact_sheet.png",
                         titles=list(prompts))  # fmt: skip
    rows = [{"prompt": m.text, "seed": m.seed, **describe(m.joints, m.fps)} for m in motions]
    atomic_write_text(out / "figures.json", json.dumps(rows, indent=2) + "\n")
    log(table(rows))
    if check_seeds > 0:
        counts = check_counts(pipe, checks or {}, check_seeds)
        atomic_write_text(out / "checks.json", json.dumps(counts, indent=2) + "\n")
        log(check_table(counts))
    return rows
