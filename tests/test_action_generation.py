"""Per-action pass rates of generated motion (mosa.eval.action_generation) on a fake pipeline."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from mosa.eval.action_generation import (
    USER_PROMPTS,
    action_table,
    generated_pass_rates,
    training_clips,
)
from mosa.eval.actions import ACTION_RULES, check_action


@pytest.fixture(scope="module")
def standing(hml_sample) -> np.ndarray:
    """(60, 22, 3): one real frame held still, feet on the floor."""
    j = np.load(next(hml_sample.glob("*_new_joints.npy")))[0]
    j = j - [0.0, j[:, 1].min(), 0.0]
    return np.repeat(j[None], 60, axis=0).astype(np.float32)


def _jump(standing: np.ndarray) -> np.ndarray:
    out = standing.copy()
    t = np.arange(len(out)) / 20.0
    lift = np.where((t > 1.0) & (t < 1.5), 0.3 * np.sin((t - 1.0) / 0.5 * np.pi), 0.0)
    out[:, :, 1] += lift[:, None]
    return out


class FakePipe:
    """``generate`` gives a jump for prompts that say so, standing still otherwise."""

    def __init__(self, standing):
        self.standing, self.calls = standing, []

    def generate(self, texts, seconds=None, seed=None):
        self.calls.append((list(texts), seconds, seed))
        motion = _jump(self.standing) if "jump" in texts[0] else self.standing
        return [SimpleNamespace(joints=motion, fps=20.0) for _ in texts]


def test_rules_tell_the_fake_motions_apart(standing):
    assert check_action("jump", _jump(standing))
    assert not check_action("jump", standing)


def test_generated_pass_rates_count_per_prompt(standing):
    pipe = FakePipe(standing)
    rows = generated_pass_rates(pipe, ["jump", "walk"], seeds=3, seed=7)
    by = {r["action"]: r for r in rows}
    assert by["jump"]["passed"] == 6 and by["jump"]["motions"] == 6
    assert by["jump"]["pass_rate"] == 1.0
    assert by["walk"]["passed"] == 0 and by["walk"]["pass_rate"] == 0.0
    assert set(by["jump"]["prompts"]) == set(USER_PROMPTS["jump"])
    assert all(len(texts) == 3 and seed == 7 for texts, _, seed in pipe.calls)


def test_every_rule_has_user_prompts():
    assert set(USER_PROMPTS) == set(ACTION_RULES)
    assert all(len(p) >= 2 for p in USER_PROMPTS.values())


def test_action_table_columns():
    real = [{"action": "jump", "pass_rate": 1.0}]
    before = [{"action": "jump", "passed": 1, "motions": 4, "pass_rate": 0.25}]
    after = [{"action": "jump", "passed": 3, "motions": 4, "pass_rate": 0.75}]
    text = action_table({"jump": 30}, real, {"before": before, "after": after})
    head, rule, *lines = text.splitlines()
    assert head.endswith("| before | after |")
    row = next(line for line in lines if line.startswith("| jump |"))
    assert row == "| jump | 30 | 100% | 25% (1/4) | 75% (3/4) |"
    assert len(lines) == len(ACTION_RULES)


def test_training_clips_counts_actions(tmp_path):
    (tmp_path / "texts").mkdir()
    names = ["a", "b", "c"]
    for n in names:
        (tmp_path / "texts" / f"{n}.txt").write_text("a person jumps.#a/DET#0.0#0.0\n")
    (tmp_path / "train.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "actions.json").write_text(
        '{"a": ["jump"], "b": ["jump", "walk"], "c": ["walk"], "z": ["spin"]}'
    )
    assert training_clips(tmp_path, "train") == {"jump": 2, "walk": 2}
