"""scripts/make_examples.py (over mosa.eval.prompt_examples): its figure table, its per-prompt
pass counts and the files it writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mosa.eval import prompt_examples as P

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_examples.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("make_examples", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_table_formats_the_figures(ex):
    d = {"forward_m": 1.0, "turn_deg": 12.3, "speed_mps": 0.5, "wrist_l_above_head_m": 0.3,
         "wrist_r_above_head_m": -0.2, "head_drop_m": 0.25}  # fmt: skip
    text = P.table([{"prompt": "p", **d}])
    assert "| 00 | p | +1.00 | +12 | +0.50 | +0.30 | -0.20 | +0.25 |" in text


def test_check_counts_apply_the_rules(ex, tmp_path):
    """``check_counts`` counts, per prompt, the generated motions whose figures pass its rule:
    the same count as applying the rule by hand to the same seeds' motions."""
    import torch

    import mosa
    from tiny_models import write_tiny_pipeline

    torch.set_num_threads(1)
    pipe = mosa.load(write_tiny_pipeline(tmp_path / "ckpt"), device="cpu")
    rows = P.check_counts(pipe, ex.CHECKS, seeds=3, seed=7, seconds=2.0)
    assert [r["prompt"] for r in rows] == list(ex.CHECKS)
    for r in rows:
        _, ok = ex.CHECKS[r["prompt"]]
        motions = pipe.generate([r["prompt"]] * 3, seconds=2.0, seed=7)
        assert r["passed"] == sum(bool(ok(P.describe(m.joints))) for m in motions)
        assert r["seeds"] == 3 and f"| {r['prompt']} |" in P.check_table(rows)
    # the rules themselves, on figures built by hand
    fig = {"forward_m": -0.6, "turn_deg": 0.0, "speed_mps": 2.0, "head_drop_m": 0.2,
           "wrist_r_above_head_m": 0.1, "wrist_l_above_head_m": -0.3}  # fmt: skip
    assert ex.CHECKS["a person walks backward"][1](fig)
    assert not ex.CHECKS["a person walks forward"][1](fig)
    assert ex.CHECKS["a person raises the right hand"][1](fig)
    assert not ex.CHECKS["a person raises the left hand"][1](fig)


def test_make_examples_writes_the_figures_and_counts(ex, tmp_path):
    """GIFs per prompt (stale ones removed), the contact sheet, ``figures.json`` with
    ``describe``'s figures of each motion and ``checks.json`` with ``check_counts``."""
    import json

    import torch

    import mosa
    from tiny_models import write_tiny_pipeline

    torch.set_num_threads(1)
    pipe = mosa.load(write_tiny_pipeline(tmp_path / "ckpt"), device="cpu")
    out = tmp_path / "examples"
    out.mkdir()
    (out / "07.gif").write_bytes(b"stale")
    prompts = ["a person walks backward", "a person bows"]
    checks = {p: ex.CHECKS[p] for p in prompts}
    lines = []
    rows = P.make_examples(pipe, prompts, out, seconds=2.0, seed=5, checks=checks,
                           check_seeds=2, log=lines.append)  # fmt: skip
    assert sorted(p.name for p in out.glob("*.gif")) == ["00.gif", "01.gif"]
    assert (out / "contact_sheet.png").is_file()
    motions = pipe.generate(prompts, seconds=2.0, seed=5)
    want = [{"prompt": m.text, "seed": m.seed, **P.describe(m.joints, m.fps)} for m in motions]
    assert rows == want and json.loads((out / "figures.json").read_text()) == want
    counts = json.loads((out / "checks.json").read_text())
    assert counts == P.check_counts(pipe, checks, 2)
    assert lines == [P.table(rows), P.check_table(counts)]
