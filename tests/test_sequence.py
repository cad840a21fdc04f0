"""Long takes from a sequence of prompts (``mosa.edit.sequences``) on the tiny random pipeline:
spans, the kept-frames rule, continuations as extend canvases, seeds, lengths, bad input, CLI."""

from __future__ import annotations

import argparse
import tracemalloc

import numpy as np
import pytest

from mosa import edit as E
from mosa.cli import main
from mosa.cli import sequence as cli_sequence
from mosa.edit.sequences import LENGTH_SEED_OFFSET, MIN_CONTEXT, OVERHANG, check_sequence
from mosa.errors import MosaError
from mosa.loading import load
from mosa.motion.features import recover_joints
from mosa.motion.io import MotionFile
from tiny_models import write_tiny_pipeline

FPS = 20
TEXTS = ["a person walks forward", "a person waves with the right hand", "a person bows"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_pipeline(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def pipe(ckpt):
    return load(ckpt, device="cpu")  # frames 40..196, unit 4


@pytest.fixture(scope="module")
def take(pipe):
    return E.sequence(pipe, TEXTS, [3, 2.1, 2], seed=7)


# -------------------------------------------------------------------------------- the take


def test_spans_add_up_to_the_take(take):
    assert take.spans == [(TEXTS[0], 0, 60), (TEXTS[1], 60, 102), (TEXTS[2], 102, 142)]
    assert take.joints.shape == (142, 22, 3) and take.features.shape == (142, 263)
    assert take.seams == [60, 102] and take.seconds == pytest.approx(7.1)
    assert [p.seed for p in take.parts] == [7, 8, 9] and take.seed == 7
    assert take.text == " / ".join(TEXTS)
    # the window is whole tokens: 58 + 42 and 80 + 40 frames
    assert [p.context for p in take.parts] == [0, 58, 80]
    np.testing.assert_allclose(take.joints, recover_joints(take.features), atol=1e-6)
    assert np.isfinite(take.joints).all()


def test_first_part_is_plain_generation(pipe, take):
    """Generated with the overhang (0.2 s = 4 frames: 64 frames, whole tokens), then cut."""
    [m] = pipe.generate(TEXTS[0], frames=64, seed=7)
    np.testing.assert_array_equal(take.features[:60], m.features[:60])
    assert OVERHANG == 0.2


def test_each_part_is_an_extend_of_the_take_so_far(pipe, take):
    """Part i is ``extend`` of the take's last ``context`` frames by the part and its
    overhang, the generator seeing it all; the overhang is dropped."""
    for p in take.parts[1:]:
        tail = take.features[p.start - p.context : p.start]
        src = MotionFile(recover_joints(tail), FPS, "features", tail)
        run = p.frames + 4
        m = E.extend(pipe, src, p.text, run / FPS, seed=p.seed, context=None,
                     damp_short_bones=True)  # fmt: skip
        assert len(m.features) == p.context + run  # whole tokens: nothing rounded
        np.testing.assert_array_equal(m.features[p.context : p.context + p.frames],
                                      take.features[p.start : p.end])  # fmt: skip


def test_later_parts_never_change_earlier_frames(pipe, take):
    """The rule: an earlier part's features are bit for bit what they were before the later
    parts existed (the seam blend lies in the later part); joints to float precision."""
    for k in (1, 2):
        short = E.sequence(pipe, TEXTS[:k], [3, 2.1, 2][:k], seed=7)
        n = len(short.features)
        np.testing.assert_array_equal(take.features[:n], short.features)
        np.testing.assert_allclose(take.joints[:n], short.joints, atol=1e-5)
        assert short.spans == take.spans[:k]


def test_the_root_carries_on_across_seams(take):
    """The first frame of a part starts at the kept pose: its step is no bigger than the
    biggest step inside the kept context (the take moves on, it does not jump)."""
    root = take.joints[:, 0]
    step = np.linalg.norm(np.diff(root, axis=0), axis=-1)
    for p in take.parts[1:]:
        inside = step[p.start - p.context : p.start - 1].max()
        assert step[p.start - 1] <= 2 * inside + 1e-6


def test_determinism_per_seed(pipe, take):
    again = E.sequence(pipe, TEXTS, [3, 2.1, 2], seed=7)
    np.testing.assert_array_equal(again.features, take.features)
    other = E.sequence(pipe, TEXTS, [3, 2.1, 2], seed=8)
    assert np.abs(other.features - take.features).max() > 1e-3
    drawn = E.sequence(pipe, TEXTS[:2], [2, 2])  # a seed is drawn and recorded
    np.testing.assert_array_equal(E.sequence(pipe, TEXTS[:2], [2, 2], seed=drawn.seed).features,
                                  drawn.features)  # fmt: skip


def test_seconds_none_uses_the_length_estimator(pipe):
    m = E.sequence(pipe, TEXTS, seed=3)
    first = pipe.frame_range[1] - round(OVERHANG * FPS)
    most = first - round(MIN_CONTEXT * FPS)
    for i, p in enumerate(m.parts):
        # the pipeline's own draw for that seed: the motion pipe.generate makes is that long
        [alone] = pipe.generate(p.text, seed=3 + i)
        want = min(len(alone.joints), first if i == 0 else most)
        assert p.frames == want
    # the estimator, not a constant: another seed or text changes some length
    lengths = {tuple(q.frames for q in E.sequence(pipe, TEXTS, seed=s).parts) for s in (3, 40, 99)}
    assert len(lengths) > 1
    assert LENGTH_SEED_OFFSET == 7919


def test_one_number_of_seconds_for_all_parts(pipe):
    m = E.sequence(pipe, TEXTS[:2], 2.5, seed=1)
    assert [p.frames for p in m.parts] == [50, 50]


def test_forty_short_parts(pipe):
    texts = [TEXTS[i % 3] for i in range(40)]
    tracemalloc.start()
    m = E.sequence(pipe, texts, [2] * 40, seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert m.joints.shape == (1600, 22, 3) and len(m.parts) == 40
    assert [p.start for p in m.parts] == list(range(0, 1600, 40))
    assert all(p.context == 80 for p in m.parts[2:])  # one window each: bounded per part
    assert np.isfinite(m.joints).all()
    assert peak < 200e6  # numpy + torch tensors traced by Python's allocator


def test_progress_callback(pipe):
    seen = []
    E.sequence(pipe, TEXTS[:2], [2, 2], seed=0, on_part=lambda i, p: seen.append((i, p.end)))
    assert seen == [(0, 40), (1, 80)]


# -------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("texts", "seconds", "kw", "needle", "hint"),
    [
        ([], None, {}, "no parts", "one prompt per part"),
        (["a person walks", ""], [2, 2], {}, "part 2 is empty", "describe"),
        (["a person walks", "   "], None, {}, "part 2 is empty", "describe"),
        (["a person walks", None], None, {}, "part 2 is missing", "describe"),
        (TEXTS, [3, 2], {}, "2 seconds value(s) for 3 part(s)", "one length per part"),
        (TEXTS, [3, 2, 2, 2], {}, "4 seconds value(s)", "one length per part"),
        (TEXTS, [3, 1.5, 2], {}, "part 2 is 1.5 s, shorter than the generator's minimum 2 s",
         "at least 2 s"),
        (TEXTS, [3, 0, 2], {}, "part 2 is 0 s, shorter", "at least 2 s"),
        (TEXTS, [3, -1, 2], {}, "part 2 is -1 s", "at least 2 s"),
        (TEXTS, [3, float("nan"), 2], {}, "part 2: seconds must be finite", "finite"),
        (TEXTS, [3, "2", 2], {}, "part 2: seconds must be a number", "number"),
        (TEXTS, [9.7, 2, 2], {}, "part 1 is 9.7 s, longer than 9.6 s", "same prompt"),
        (TEXTS, [3, 8.7, 2], {}, "part 2 is 8.7 s, longer than 8.6 s", "same prompt"),
        (TEXTS, [3, 2, 2], {"seed": -1}, "seed must be", "smaller seed"),
        (TEXTS, [3, 2, 2], {"seed": 1.5}, "seed must be a whole number", "pass e.g. 0"),
        (TEXTS, [3, 2, 2], {"seed": 2**63 - 2}, "seed must be 0-", "smaller seed"),
        (TEXTS, [3, 2, 2], {"context": 0.5}, "context must be at least 1 s", "context"),
        (TEXTS, [3, 2, 2], {"cfg": float("nan")}, "cfg", None),
        (TEXTS, [3, 2, 2], {"top_p": 2.0}, "top_p", None),
        (b"a person walks", None, {}, "texts is bytes", "decode"),
    ],
)  # fmt: skip
def test_bad_input_says_what_and_how(pipe, texts, seconds, kw, needle, hint):
    with pytest.raises(MosaError) as err:
        E.sequence(pipe, texts, seconds, **kw)
    assert needle in err.value.message, err.value.message
    assert err.value.hint and (hint is None or hint in err.value.hint), err.value.hint


def test_limits_bound_parts_and_take_length(pipe, monkeypatch):
    monkeypatch.setenv("MOSA_MAX_MOTIONS", "3")
    with pytest.raises(MosaError, match="4 parts.*MOSA_MAX_MOTIONS"):
        E.sequence(pipe, TEXTS + TEXTS[:1], [2] * 4)
    monkeypatch.delenv("MOSA_MAX_MOTIONS")
    monkeypatch.setenv("MOSA_MAX_FRAMES", "100")
    with pytest.raises(MosaError, match="120 frames.*MOSA_MAX_FRAMES") as err:
        check_sequence(TEXTS, [2, 2, 2], frame_range=pipe.frame_range)
    assert "MOSA_MAX_FRAMES=" in err.value.hint


def test_no_length_estimator(pipe, monkeypatch):
    monkeypatch.setattr(pipe, "length_model", None)
    with pytest.raises(MosaError, match="no length estimator") as err:
        E.sequence(pipe, TEXTS, seed=0)
    assert "--seconds" in err.value.hint


def test_pipeline_forward_resolves_by_name(pipe):
    """What ``Pipeline.sequence`` forwards to: ``mosa.edit.sequences`` looked up by name."""
    import importlib

    function = importlib.import_module("mosa.edit").sequence
    assert callable(function) and function is E.sequence
    m = function(pipe, TEXTS[:2], seconds=[2, 2], seed=5)
    np.testing.assert_array_equal(m.features, E.sequence(pipe, TEXTS[:2], [2, 2], seed=5).features)
    via_method = pipe.sequence(TEXTS[:2], seconds=[2, 2], seed=5)
    np.testing.assert_array_equal(via_method.features, m.features)
    assert via_method.spans == m.spans


# -------------------------------------------------------------------------------- CLI


def _parse(argv):
    parser = argparse.ArgumentParser()
    cli_sequence.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def test_cli_writes_the_take(ckpt, pipe, tmp_path, capsys):
    out = tmp_path / "take.npy"
    argv = [*TEXTS, "--seconds", 3, 2.1, 2, "--seed", 7, "-o", out, "--checkpoint", ckpt]
    assert cli_sequence.run(_parse(argv)) == 0
    ref = E.sequence(pipe, TEXTS, [3, 2.1, 2], seed=7).save(tmp_path / "ref.npy")
    np.testing.assert_array_equal(np.load(out), np.load(ref))  # what the library writes
    assert np.load(out).shape == (142, 22, 3)
    printed = capsys.readouterr().out
    assert "part 2/3    3.00-  5.10 s  seed 8: a person waves with the right hand" in printed
    assert "wrote" in printed and "142 frames" in printed and "3 parts" in printed
    bvh = tmp_path / "take.bvh"  # through the console entry point, by extension
    assert main(["sequence", *TEXTS[:2], "--seconds", "2", "2", "-o", str(bvh),
                 "--checkpoint", str(ckpt), "--seed", "1"]) == 0  # fmt: skip
    assert bvh.read_text().startswith("HIERARCHY") and "Frames: 80" in bvh.read_text()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--seconds", "3", "2"], "3 prompt(s) but 2 --seconds value(s)"),
        (["--seconds", "3", "1", "2"], "part 2 is 1 s, shorter than the generator's minimum"),
        (["--seconds", "3", "2", "2", "--context", "0"], "--context must be at least 1 s"),
        (["--seconds", "3", "2", "2", "--seed", "-3"], "seed must be"),
        (["--seconds", "3", "2", "2", "--cfg", "nan"], "--cfg"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(ckpt, tmp_path, capsys, extra, needle):
    out = tmp_path / "take.bvh"
    argv = ["sequence", *TEXTS, *extra, "-o", str(out), "--checkpoint", str(ckpt)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mosa: error: ") and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 2 and "hint:" in err  # the message, its hint
    assert not out.exists()


def test_cli_empty_part_and_bad_output(ckpt, tmp_path, capsys):
    assert main(["sequence", "a person walks", "", "-o", str(tmp_path / "t.bvh"),
                 "--checkpoint", str(ckpt)]) == 2  # fmt: skip
    assert "part 2 is empty" in capsys.readouterr().err
    assert main(["sequence", "a person walks", "-o", str(tmp_path / "t.fbx")]) == 2
    assert "unknown extension" in capsys.readouterr().err


# -------------------------------------------------------------------------------- report


def test_seam_rows_measure_the_continuation_itself(pipe, take):
    """``sequence_report.seam_rows`` of a take = the edit seam criterion on the ``extend``
    output that made each part, against that extend's source (the kept context)."""
    from mosa.eval.edit_acceptance import seam_speed_ratio
    from mosa.eval.sequence_report import part_rows, seam_rows

    rows = seam_rows(take, pipe.unit)
    assert [r["frame"] for r in rows] == take.seams
    for r, p in zip(rows, take.parts[1:], strict=True):
        tail = take.features[p.start - p.context : p.start]
        src = MotionFile(recover_joints(tail), FPS, "features", tail)
        m = E.extend(pipe, src, p.text, (p.frames + 4) / FPS, seed=p.seed, context=None,
                     damp_short_bones=True)  # fmt: skip
        ref = seam_speed_ratio(m, [tail], E.DEFAULT_BLEND + pipe.unit)
        assert r["ratio"] == pytest.approx(ref["seam_ratio"], rel=1e-4)
        assert r["pass"] == (ref["seam_ratio"] <= 1.5)
    parts = part_rows(take)
    assert [list(p["rules"]) for p in parts] == [["walk"], ["wave"], ["bow"]]
    assert all(isinstance(v, bool) for p in parts for v in p["rules"].values())


# -------------------------------------------------------------------------------- the join


def _pose_features(poses):
    """Feature frames holding local poses ``(T, 22, 3)`` (no root motion)."""
    f = np.zeros((len(poses), 263))
    f[:, 3] = poses[:, 0, 1]
    f[:, 4:67] = poses[:, 1:].reshape(len(poses), -1)
    return f


def test_damped_short_bones_do_not_whip_the_joints_below(hml_sample):
    """A decode whose forearm is 0.3 of the source's and turns 0.3 rad a frame: restoring
    the length in the plain join turns that into a wrist step of 0.3 rad x the full length;
    with ``damp_short_bones`` the wrist moves about as fast as in the decode."""
    from mosa.motion.features import local_joints
    from mosa.motion.skeleton import PARENTS

    pose = local_joints(np.load(hml_sample / "012314_new_joint_vecs.npy")[:1])[0].astype(float)
    wrist, elbow = 21, PARENTS[21]
    fore = pose[wrist] - pose[elbow]
    T, k = 40, 19  # frames 0..19 kept
    axis = np.cross(fore, [0.0, 0.0, 1.0])
    axis /= np.linalg.norm(axis)
    dec = np.repeat(pose[None], T, axis=0)
    for t in range(T):
        c, s_ = np.cos(0.3 * t), np.sin(0.3 * t)  # Rodrigues about an axis normal to the bone
        turned = fore * c + np.cross(axis, fore) * s_
        dec[t, wrist] = pose[elbow] + 0.3 * turned
    source, decoded = _pose_features(np.repeat(pose[None], T, axis=0)), _pose_features(dec)
    kept = np.arange(T) <= k
    plain, w0, _ = E.offset_join(source, decoded, kept, speed=1.0)
    same, _, _ = E.offset_join(source, decoded, kept, speed=1.0, damp_short_bones=False)
    np.testing.assert_array_equal(plain, same)  # off by default
    damped, w1, _ = E.offset_join(source, decoded, kept, speed=1.0, damp_short_bones=True)
    np.testing.assert_array_equal(w0, w1)
    np.testing.assert_array_equal(damped[kept], source[kept].astype(np.float32))  # kept: exact

    def step(f):  # the wrist's step into each frame, in the root frame
        return np.linalg.norm(np.diff(local_joints(f)[:, wrist], axis=0), axis=-1)

    own = step(decoded)[k + 1]  # the decode's wrist step between generated frames
    assert step(plain)[k] > 2.5 * own  # 0.3 rad of a full-length forearm
    assert step(damped)[k] < 1.5 * own
    far = w1 == 0  # once the offset has decayed, both are the decode
    assert far.any()
    np.testing.assert_allclose(damped[far], plain[far], atol=1e-6)
