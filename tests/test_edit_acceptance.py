"""mosa.eval.edit_acceptance (and benchmarks/edit_acceptance.py, its command line): the seam
criterion against the source each seam joins, the other figures, the benchmark's rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from mosa import edit as E
from mosa.eval import edit_acceptance
from mosa.motion.features import extract_features, recover_joints

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def acc():
    return edit_acceptance


@pytest.fixture(scope="module")
def bench():
    path = ROOT / "benchmarks" / "edit_acceptance.py"
    spec = importlib.util.spec_from_file_location("edit_acceptance_bench", path)
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


def test_peaks_near_and_away_from_the_seams(acc):
    """Steps within the window of a seam split into kept-kept and touching-generated ones;
    ``peak_away_from_seams`` is the fastest step outside every window."""
    segments = [E.Segment("kept", 0, 10, 0, 0), E.Segment("generated", 10, 20),
                E.Segment("kept", 20, 30, 0, 0)]  # fmt: skip
    m = _edited(segments, {2: 9.0, 8: 3.0, 12: 4.0, 25: 5.0})
    assert list(acc.seam_frames(m)) == [10, 20]
    near = acc.near_seams(m, window=2)
    assert list(np.flatnonzero(near)) == [7, 8, 9, 10, 11, 17, 18, 19, 20, 21]
    got = acc.seam_peaks(m, window=2)
    assert got["seam_peak_kept_speed"] == pytest.approx(3.0, rel=1e-5)  # step 8: kept-kept
    assert got["seam_peak_generated_speed"] == 0.0  # step 12 is outside the windows
    assert acc.seam_peaks(m, window=3)["seam_peak_generated_speed"] == pytest.approx(4.0, rel=1e-5)
    assert acc.peak_away_from_seams(m, window=2) == pytest.approx(9.0, rel=1e-5)
    whole = _edited([E.Segment("generated", 0, 30)], {})
    assert acc.peak_away_from_seams(whole, window=2) == 0.0  # no seam: nothing is near one


def test_mpjpe_figures_count_the_kept_frames_in_the_window(acc, hml_sample):
    """Output equal to the source on kept frames: 0 mm; a decode that differs only outside
    the generator's window or on generated frames: 0 mm too; the pass allows 10 mm more than
    the reconstruction."""
    src = _source(hml_sample, 0, 30)
    segments = [E.Segment("kept", 0, 10, 0, 0), E.Segment("generated", 10, 20),
                E.Segment("kept", 20, 30, 0, 20)]  # fmt: skip
    m = _edited(segments, {})
    off = src.copy()
    off[10:20] += 1.0  # generated frames: not counted
    off[25:] += 1.0  # kept, but outside the window
    m.features, m.decoded, m.canvas, m.window = src, off, src, (0, 25)
    m.reconstruction = src.copy()
    m.reconstruction[:5, 4:67] += 0.01  # local joint positions: 5 of 25 kept frames
    got = acc.mpjpe_figures(m)
    assert got["mpjpe_outside_mm"] == 0.0 and got["mpjpe_outside_decoded_mm"] == 0.0
    assert got["recon_mpjpe_mm"] > 0
    assert got["mpjpe_pass"] is True
    m.features = m.reconstruction + 0.0
    m.features[5:10, 4:67] += 1.0  # far off
    assert acc.mpjpe_figures(m)["mpjpe_pass"] is False


def test_summarise_means_figures_and_requires_every_pass(acc):
    rows = [
        {"source": "a", "frames": 10, "seed": 0, "x": 1.0, "ok_pass": True, "seams": [{}]},
        {"source": "b", "frames": 12, "seed": 0, "x": 3.0, "ok_pass": False, "seams": [{}]},
    ]
    assert acc.summarise(rows) == {"x": 2.0, "ok_pass": False}
    assert acc.summarise(rows[:1]) == {"x": 1.0, "ok_pass": True}


def test_benchmark_rows_are_measure_span(bench, hml_sample, tmp_path, capsys):
    """The command line measures each source with ``measure_span`` and writes the rows and
    their summary."""
    import json

    import torch

    from mosa.loading import load
    from mosa.motion.io import read_motion
    from tiny_models import write_tiny_pipeline

    torch.set_num_threads(1)
    ckpt = write_tiny_pipeline(tmp_path / "ckpt")
    src = hml_sample / "012314_new_joint_vecs.npy"
    out = tmp_path / "acc.json"
    argv = [str(src), "--checkpoint", str(ckpt), "--text", "a person jumps", "--start", "1",
            "--end", "2.5", "--seed", "3", "--device", "cpu", "--json", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    got = json.loads(out.read_text())
    [row] = got["rows"]
    want = edit_acceptance.measure_span(load(ckpt, "cpu"), read_motion(src), "a person jumps",
                                        1.0, 2.5, seed=3)  # fmt: skip
    assert row == {"source": str(src), **json.loads(json.dumps(want))}
    assert got["summary"] == json.loads(json.dumps(edit_acceptance.summarise([want])))
    assert "summary:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main([*argv, "--context", "soon"])
    assert "expected seconds >= 0 or 'all'" in capsys.readouterr().err
