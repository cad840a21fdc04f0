"""benchmarks/edit_acceptance.py: the seam criterion against the source each seam joins."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mosa import edit as E
from mosa.motion.features import extract_features, recover_joints

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def acc():
    path = ROOT / "benchmarks" / "edit_acceptance.py"
    spec = importlib.util.spec_from_file_location("edit_acceptance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _source(hml_sample, start: int, frames: int) -> np.ndarray:
    joints = np.load(hml_sample / "012314_new_joints.npy").astype(np.float32)
    return extract_features(joints[start : start + frames + 1])


def _edited(segments, peaks: dict[int, float], T: int = 30) -> E.EditedMotion:
    """A still pose whose joint 5 moves once at each step of ``peaks`` (step -> m/s)."""
    joints = np.zeros((T, 22, 3), np.float32)
    for step, speed in peaks.items():
        joints[step + 1 :, 5, 0] += speed / 20.0
    kept = np.zeros(T, bool)
    for g in segments:
        kept[g.start : g.end] = g.kind == "kept"
    return E.EditedMotion(text="", seed=0, joints=joints, features=np.zeros((T, 263)),
                          kept=kept, segments=segments)  # fmt: skip


def test_each_seam_against_its_own_source(acc, hml_sample):
    """Seam 1 joins source 0, seam 2 source 1: each peak over that source's p95 (the
    reference formula written out), the worst one reported; pooled p95 alongside."""
    a, b = _source(hml_sample, 0, 40), _source(hml_sample, 60, 40)
    segments = [E.Segment("kept", 0, 10, 0, 0), E.Segment("generated", 10, 20),
                E.Segment("kept", 20, 30, 1, 0)]  # fmt: skip
    m = _edited(segments, {9: 2.0, 21: 1.0})
    assert acc.seam_sources(m) == [(10, 0), (20, 1)]
    got = acc.seam_speed_ratio(m, [a, b], window=3)

    def peaks(f):  # per step, the fastest joint's speed (m/s)
        return np.linalg.norm(np.diff(recover_joints(f), axis=0), axis=-1).max(1) * 20

    def p95(f):
        return np.percentile(peaks(f), 95)

    ratios = [2.0 / p95(a), 1.0 / p95(b)]
    assert [s["ratio"] for s in got["seams"]] == pytest.approx(ratios, rel=1e-4)
    assert got["seam_ratio"] == pytest.approx(max(ratios), rel=1e-4)
    worst = int(np.argmax(ratios))
    assert got["seam_peak_speed"] == pytest.approx([2.0, 1.0][worst], rel=1e-4)
    assert got["source_p95_speed"] == pytest.approx([p95(a), p95(b)][worst], rel=1e-4)
    pooled = np.concatenate([peaks(a), peaks(b)])
    want = [2.0, 1.0][worst] / np.percentile(pooled, 95)
    assert got["seam_ratio_pooled"] == pytest.approx(want, rel=1e-4)
    # a peak outside every seam window does not count
    far = acc.seam_speed_ratio(_edited(segments, {2: 9.0, 9: 2.0, 21: 1.0}), [a, b], window=3)
    assert far["seam_ratio"] == pytest.approx(got["seam_ratio"], rel=1e-6)
