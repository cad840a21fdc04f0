"""The kinematic figures of scripts/make_examples.py on motions built so the answer is known."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_examples.py"


@pytest.fixture(scope="module")
def ex():
    spec = importlib.util.spec_from_file_location("make_examples", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _yaw(points: np.ndarray, deg: float) -> np.ndarray:
    """Rotate ``(..., 3)`` about +Y by ``deg`` (right-handed: +Z turns towards +X)."""
    a = np.radians(deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    return points @ rot.T


def test_describe_walk_back_and_turn(ex, hml_sample):
    pose = np.load(hml_sample / "012314_new_joints.npy")[0]
    pose = pose - pose[0] * [1, 0, 1]  # root over the origin
    face = ex.facing_direction(pose[None])[0]
    T = 41
    # 3 m straight backwards, no turn
    back = pose[None] - np.linspace(0, 3, T)[:, None, None] * [face[0], 0, face[1]]
    d = ex.describe(back, fps=20)
    assert d["forward_m"] == pytest.approx(-3.0, abs=1e-6)
    assert d["travel_m"] == pytest.approx(3.0, abs=1e-6)
    assert d["speed_mps"] == pytest.approx(3.0 / 2.0, rel=1e-6)  # 3 m in 40 frames at 20 fps
    assert d["turn_deg"] == pytest.approx(0.0, abs=1e-6)
    # turning on the spot to the person's left (towards +X when facing +Z) by 90 degrees
    left = np.stack([_yaw(pose, 90 * t / (T - 1) * np.sign(face[1] or 1)) for t in range(T)])
    assert ex.describe(left)["turn_deg"] == pytest.approx(90.0, abs=1e-3)


def test_describe_arms_and_bow(ex, hml_sample):
    pose = np.load(hml_sample / "012314_new_joints.npy")[:1].repeat(10, axis=0)
    up = pose.copy()
    up[5, ex.L_WRIST, 1] = pose[5, ex.HEAD, 1] + 0.3  # left wrist 30 cm over the head
    up[7, ex.HEAD, 1] -= 0.25  # head dips 25 cm for one frame
    d = ex.describe(up)
    assert d["wrist_l_above_head_m"] == pytest.approx(0.3, abs=1e-6)
    r = pose[0, ex.R_WRIST, 1] - pose[0, ex.HEAD, 1] + 0.25  # highest while the head dips
    assert d["wrist_r_above_head_m"] == pytest.approx(r, abs=1e-6)
    assert d["head_drop_m"] == pytest.approx(0.25, abs=1e-6)
    rows = [{"prompt": "p", **d}]
    assert "| 00 | p |" in ex.table(rows) and "+0.30" in ex.table(rows)


def test_check_counts_apply_the_rules(ex, tmp_path):
    """``check_counts`` counts, per prompt, the generated motions whose figures pass its rule:
    the same count as applying the rule by hand to the same seeds' motions."""
    import torch

    import mosa
    from tiny_models import write_tiny_pipeline

    torch.set_num_threads(1)
    pipe = mosa.load(write_tiny_pipeline(tmp_path / "ckpt"), device="cpu")
    rows = ex.check_counts(pipe, seeds=3, seed=7, seconds=2.0)
    assert [r["prompt"] for r in rows] == list(ex.CHECKS)
    for r in rows:
        _, ok = ex.CHECKS[r["prompt"]]
        motions = pipe.generate([r["prompt"]] * 3, seconds=2.0, seed=7)
        assert r["passed"] == sum(bool(ok(ex.describe(m.joints))) for m in motions)
        assert r["seeds"] == 3 and f"| {r['prompt']} |" in ex.check_table(rows)
    # the rules themselves, on figures built by hand
    fig = {"forward_m": -0.6, "turn_deg": 0.0, "speed_mps": 2.0, "head_drop_m": 0.2,
           "wrist_r_above_head_m": 0.1, "wrist_l_above_head_m": -0.3}  # fmt: skip
    assert ex.CHECKS["a person walks backward"][1](fig)
    assert not ex.CHECKS["a person walks forward"][1](fig)
    assert ex.CHECKS["a person raises the right hand"][1](fig)
    assert not ex.CHECKS["a person raises the left hand"][1](fig)
