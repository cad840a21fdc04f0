"""Motion editing (span, extend, lead-in, in-between, outpaint) on tiny random pipelines."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from mosa import edit as E
from mosa.cli import edit as cli_edit
from mosa.cli import inbetween as cli_inbetween
from mosa.edit.modes import source_rows
from mosa.errors import MosaError
from mosa.loading import load
from mosa.models.vae import CAQVAE, VAEConfig
from mosa.motion.features import extract_features, recover_joints, recover_root
from mosa.motion.io import read_motion, write_motion
from mosa.pipeline import Pipeline
from mosa.requests import EDIT_DEFAULTS
from tiny_models import CODE_DIM, K, V, tiny_sar, write_tiny_pipeline

FPS = 20


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_pipeline(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def pipe(ckpt):
    return load(ckpt, device="cpu")  # frames 40..196, unit 4


@pytest.fixture(scope="module")
def conv_pipe(pipe):
    """Same generator with a conv-only tokenizer: its decoder sees a few tokens either side,
    so frames far enough from an edit must decode exactly as the source's round trip."""
    torch.manual_seed(0)
    cfg = VAEConfig(width=32, depth=1, code_dim=CODE_DIM, codebook_size=V, num_scales=K,
                    encoder="conv", decoder="conv")  # fmt: skip
    vae = CAQVAE(cfg).eval()
    for book in vae.quantizer.codebooks:
        book.embed.normal_()
    return Pipeline(tiny_sar(), vae, pipe.mean.numpy(), pipe.std.numpy(), pipe.text_encoder)


@pytest.fixture(scope="module")
def joints(hml_sample):
    """A real HumanML3D clip, 121 frames = 120 feature frames (6 s)."""
    return np.load(hml_sample / "012314_new_joints.npy")[:121].astype(np.float32)


def _dist_to_generated(kept: np.ndarray) -> np.ndarray:
    gen = np.flatnonzero(~kept)
    return np.abs(np.arange(len(kept))[:, None] - gen[None]).min(1)


# -------------------------------------------------------------------------------- masks


def test_token_masks_by_hand():
    kept = np.arange(40) < 20  # first half kept
    got = E.token_masks(kept, [1, 2, 3, 5, 10])
    want = [
        [False],
        [True, False],
        [True, False, False],  # token 0 covers frames 0..13, token 1 frames 13..26
        [True, True, False, False, False],  # 8-frame tokens: 16..23 straddles the seam
        [True] * 5 + [False] * 5,
    ]
    for g, w in zip(got, want, strict=True):
        assert g.tolist() == w
    # a kept region in the middle, as a span edit at the start leaves
    got = E.token_masks(np.arange(40) >= 10, [4])[0]
    assert got.tolist() == [False, True, True, True]  # token 0 covers frames 0..9
    assert E.latent_mask(np.arange(12) >= 3, 4).tolist() == [False, True, True]


def test_layout_rounds_crops_and_checks():
    f = np.zeros((50, 263), np.float32)
    c = E.layout([E.Part(f), E.Part(frames=9)], 4, (40, 196))
    assert c.frames == 60 and c.kept.sum() == 50  # 59 -> 60: the extra frame is generated
    assert [(s.kind, s.start, s.end) for s in c.segments] == [
        ("kept", 0, 50),
        ("generated", 50, 60),
    ]
    with pytest.raises(MosaError, match="longer than the generator's maximum 9.8 s"):
        E.layout([E.Part(np.zeros((190, 263))), E.Part(frames=20)], 4, (40, 196))
    # crop drops the source frames farthest from the generated ones: the start here
    a = np.arange(190, dtype=np.float32)[:, None].repeat(263, 1)
    c = E.layout([E.Part(a, source=0), E.Part(frames=20)], 4, (40, 196), crop=True)
    # 190 + 20 -> 212 frames (rounded up to 4): 16 too many
    assert c.frames == 196 and c.segments[0].source_start == 16
    assert c.features[0, 0] == 16 and c.features[173, 0] == 189
    # both ends kept: the longer end gives up frames first, then both alternate
    c = E.layout(
        [E.Part(a[:150], source=0), E.Part(frames=8), E.Part(a[:50], source=1)],
        4,
        (40, 196),
        crop=True,
    )
    assert [s.end - s.start for s in c.segments] == [138, 8, 50]
    # outpainting (both ends generated): the kept source loses frames on both sides
    c = E.layout(
        [E.Part(frames=20), E.Part(a, source=0), E.Part(frames=20)], 4, (40, 196), crop=True
    )
    # 230 frames -> 232 (multiple of 4) -> 36 cut, 18 a side; the frame that rounding to 4
    # then adds back is generated
    assert [s.end - s.start for s in c.segments] == [22, 154, 20]
    assert c.segments[1].source_start == 18 and c.features[22, 0] == 18
    assert c.features[175, 0] == 171  # 190 - 18 frames cut at the end -> last kept is 171
    with pytest.raises(MosaError, match="only 30 source frames are kept"):
        E.layout(
            [E.Part(frames=100), E.Part(a[:30], source=0), E.Part(frames=100)],
            4, (40, 196), crop=True,
        )  # fmt: skip
    with pytest.raises(MosaError, match="shorter than the generator's minimum 2 s"):
        E.layout([E.Part(f[:10]), E.Part(frames=10)], 4, (40, 196))
    with pytest.raises(MosaError, match="nothing to generate"):
        E.layout([E.Part(f)], 4, (40, 196))


# -------------------------------------------------------------------------------- span edit


def _independent_tokens(pipe, features):
    x = (torch.from_numpy(features) - pipe.mean) / pipe.std
    return [t[0].numpy() for t in pipe.vae.encode(x[None])]


def _span_canvas(joints, unit=4):
    """What a span edit's generator sees: one row per source frame, then the last frame held
    up to a whole number of tokens (dropped from the output)."""
    rows = source_rows(joints, FPS)
    return np.concatenate([rows, np.repeat(rows[-1:], (-len(rows)) % unit, axis=0)])


def test_span_forces_source_tokens_outside_the_span(pipe, joints):
    m = E.edit_span(pipe, joints, "a person jumps", 2.0, 3.5, seed=1, context=None)
    feats = _span_canvas(joints)  # 121 frames + 3 held
    assert m.joints.shape == (121, 22, 3) and m.kept.sum() == 121 - 30  # as long as the source
    assert not m.kept[40:70].any() and m.kept[:40].all() and m.kept[70:].all()
    src = _independent_tokens(pipe, feats)  # the source's own tokens
    scales = pipe.vae.quantizer.scale_lengths(31)
    assert [len(t) for t in m.tokens] == scales
    forced = 0
    for k in range(K):
        mask = m.token_masks[k]
        np.testing.assert_array_equal(m.source_tokens[k], src[k])
        np.testing.assert_array_equal(m.tokens[k][mask], src[k][mask])
        forced += mask.sum()
        # tokens touching the span are free: the sampled ones differ from the source somewhere
    assert forced > 0 and not m.token_masks[0].any()
    assert m.token_masks[-1].tolist() == [i < 10 or i >= 18 for i in range(31)]
    assert any((m.tokens[k] != src[k])[~m.token_masks[k]].any() for k in range(K))


def test_edits_sample_with_the_edit_defaults(ckpt, pipe, joints, tmp_path):
    """Sampling options an edit leaves open come from ``pipe.edit_defaults`` (EDIT_DEFAULTS
    over the checkpoint's defaults, under pipeline.json's ``edit_defaults``); given ones win."""
    assert pipe.defaults["cfg"] == 2.0  # the tiny pipeline.json
    assert pipe.edit_defaults == {**pipe.defaults, **EDIT_DEFAULTS}
    assert EDIT_DEFAULTS["cfg"] != pipe.defaults["cfg"]

    def run(**kw):
        return E.edit_span(pipe, joints, "a person jumps", 2.0, 3.5, seed=1, **kw).tokens

    default, edit_cfg = run(), run(cfg=EDIT_DEFAULTS["cfg"])
    gen_cfg = run(cfg=pipe.defaults["cfg"], top_p=None)
    assert all(np.array_equal(a, b) for a, b in zip(default, edit_cfg, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(default, gen_cfg, strict=True))
    # pipeline.json's edit_defaults override both
    import json
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(ckpt, folder)
    spec = json.loads((folder / "pipeline.json").read_text())
    spec["edit_defaults"] = {"cfg": 1.5, "top_p": 0.8}
    (folder / "pipeline.json").write_text(json.dumps(spec))
    other = load(folder, device="cpu")
    assert other.edit_defaults == {**other.defaults, "cfg": 1.5, "top_p": 0.8}
    assert other.defaults["cfg"] == 2.0


def test_kept_frames_decode_to_the_source_round_trip(conv_pipe, pipe, joints):
    feats = _span_canvas(joints)
    for p, margin, exact in ((conv_pipe, 24, True), (pipe, 4, False)):
        m = E.edit_span(p, joints, "a person kicks", 2.0, 3.5, seed=3, context=None)
        x = (torch.from_numpy(feats) - p.mean) / p.std
        with torch.no_grad():
            rt = p.vae.decode(p.vae.encode(x[None]), len(feats))[0] * p.std + p.mean
        rt = rt.numpy()[: len(joints)]
        far = _dist_to_generated(m.kept) > margin
        err = np.abs(m.decoded - rt).mean(1)
        if exact:  # outside the conv decoder's reach: the very same numbers
            np.testing.assert_allclose(m.decoded[far], rt[far], atol=1e-5)
        else:  # global attention in the decoder: close, well below the edited span's change
            assert err[far].mean() < 0.6 * err[~m.kept].mean()
        np.testing.assert_allclose(m.reconstruction, rt, atol=1e-5)


def test_output_joins_source_and_decode(pipe, joints):
    feats = source_rows(joints, FPS)
    m = E.edit_span(pipe, joints, "a person jumps", 2.0, 3.5, seed=1, blend=6)
    np.testing.assert_allclose(m.canvas[m.kept], feats[m.kept], atol=1e-6)
    # kept frames are the source's own features, up to the seams
    np.testing.assert_array_equal(m.features[m.kept], feats[m.kept])
    assert [(s.frame, s.step) for s in m.seams] == [(39, 1), (70, -1)]
    assert all(6 <= s.window <= 31 for s in m.seams)  # --blend is the shortest window
    want, w, _ = E.offset_join(m.canvas, m.decoded, m.kept, min_window=6, fps=pipe.fps)
    np.testing.assert_array_equal(m.features, want)
    np.testing.assert_array_equal(m.weights, w)
    assert (m.weights[m.kept] == 1).all() and (m.weights[~m.kept] <= 1 + 1e-6).all()
    # a long continuation: the decode itself once the seam's window is over
    m = E.extend(pipe, joints, "a person walks", 3.0, seed=0)
    [seam] = m.seams
    assert seam.frame == 119 and seam.window <= E.MAX_WINDOW < 60
    far = np.arange(len(m.kept)) >= 119 + seam.window
    np.testing.assert_array_equal(m.weights[far], 0.0)
    np.testing.assert_array_equal(m.features[far], m.decoded[far])
    # decoded everywhere when the source is not kept
    raw = E.edit_span(pipe, joints, "a person jumps", 2.0, 3.5, seed=1, keep_source=False)
    np.testing.assert_allclose(raw.features, raw.decoded, atol=1e-6)


def _seam_and_rest(m, seams, half=5):
    disp = np.linalg.norm(np.diff(m.joints, axis=0), axis=-1).max(-1)  # (T-1,) metres / frame
    near = np.zeros(len(disp), bool)
    for s in seams:
        near[max(0, s - half - 1) : s + half] = True
    return disp[near].max(), disp[~near].max()


def test_seams_have_no_jump(pipe, joints):
    m = E.edit_span(pipe, joints, "a person jumps", 2, 3.5, seed=1)
    seam, rest = _seam_and_rest(m, (40, 70))
    assert seam <= rest
    # pasting the decode between the source's frames does jump: the check can fail
    m.joints = recover_joints(np.where(m.kept[:, None], m.canvas, m.decoded))
    seam0, rest0 = _seam_and_rest(m, (40, 70))
    assert seam0 > 1.5 * rest0 and seam0 > 2 * seam


def test_root_is_continuous_and_kept_part_re_anchored(pipe, joints):
    m = E.edit_span(pipe, joints, "a person turns around", 1.0, 3.0, seed=5)
    _, root = recover_root(m.features)
    step = np.linalg.norm((root[1:] - root[:-1])[:, [0, 2]], axis=-1)
    # each root step is exactly the feature's root velocity: nothing teleports at the seams
    np.testing.assert_allclose(step, np.hypot(m.features[:-1, 1], m.features[:-1, 2]), atol=1e-5)
    # the kept part after the edit is the source's motion moved rigidly to where the edit ends
    t0 = 60 + E.DEFAULT_BLEND
    _, src_root = recover_root(extract_features(joints))
    a, b = m.joints[t0:], _src_joints(joints)[t0:]
    da = np.linalg.norm(a[:, None, 0] - a[None, :, 0], axis=-1)
    db = np.linalg.norm(b[:, None, 0] - b[None, :, 0], axis=-1)
    np.testing.assert_allclose(da, db, atol=1e-4)
    np.testing.assert_allclose(a[..., 1], b[..., 1], atol=1e-5)  # heights
    assert np.linalg.norm(root[t0] - src_root[t0]) > 1e-3  # moved, not pasted in place


def _src_joints(joints):
    return recover_joints(source_rows(joints, FPS))


# -------------------------------------------------------------------------------- other modes


def test_modes_lengths_and_kept_frames(pipe, joints):
    feats = extract_features(joints)  # 120 frames
    m = E.extend(pipe, joints, "a person walks", 1.0, seed=0)
    assert m.joints.shape[0] == 140 and m.kept[:120].all() and not m.kept[120:].any()
    np.testing.assert_array_equal(m.features[:116], feats[:116])
    m = E.lead_in(pipe, joints, "a person walks", 1.1, seed=0)  # 22 + 120 -> 144
    assert m.joints.shape[0] == 144 and not m.kept[:24].any() and m.kept[24:].all()
    np.testing.assert_array_equal(m.features[-115:], feats[-115:])
    a, b = joints[:41], joints[60:101]
    m = E.inbetween(pipe, a, b, "a person jumps", 1.0, seed=0)
    assert m.joints.shape[0] == 100
    assert [(s.kind, s.start, s.end, s.source) for s in m.segments] == [
        ("kept", 0, 40, 0),
        ("generated", 40, 60, None),
        ("kept", 60, 100, 1),
    ]
    np.testing.assert_array_equal(m.features[64:], extract_features(b)[4:])
    m = E.outpaint(pipe, a, "a person waves", 1.0, 0.5, seed=0)
    assert m.joints.shape[0] == 72 and m.kept.sum() == 40 and m.kept[22:62].all()
    # the deprecated pipeline methods call the same functions, with a warning
    with pytest.warns(DeprecationWarning, match="mosa.edit.extend"):
        w = pipe.extend(joints, "a person walks", 1.0, seed=0)
    np.testing.assert_array_equal(
        w.features, E.extend(pipe, joints, "a person walks", 1.0, seed=0).features
    )


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        (3.0, 2.0, "empty or negative"),
        (2.0, 2.0, "empty or negative"),
        (-1.0, 2.0, "outside the motion"),
        (5.0, 7.5, "outside the motion"),
        (2.0, 2.15, "fewer than one token"),
    ],
)
def test_span_errors(pipe, joints, start, end, match):
    with pytest.raises(MosaError, match=match) as info:
        E.edit_span(pipe, joints, "a person jumps", start, end)
    assert "0-6.05 s" in str(info.value) or "0.2 s" in str(info.value)  # 121 frames


def test_length_errors(pipe, joints):
    long = np.concatenate([joints, joints[1:]])  # 241 frames > 196
    with pytest.raises(MosaError, match="longer than the generator's maximum"):
        E.edit_span(pipe, long, "a person jumps", 2, 3, context=None)
    m = E.edit_span(pipe, long, "a person jumps", 2, 3, crop=True, seed=0, context=None)
    assert len(m.joints) == 196 and (~m.kept).sum() == 20
    # with a context window (the default) the whole source stays
    m = E.edit_span(pipe, long, "a person jumps", 2, 3, seed=0)
    assert len(m.joints) == 241 and (~m.kept).sum() == 20
    with pytest.raises(MosaError, match="the generated part would be 10.2 s") as info:
        E.extend(pipe, joints, "a person jumps", 10.2)
    assert "generate at most 9.8 s" in str(info.value)
    with pytest.raises(MosaError, match="context must be >= 0"):
        E.extend(pipe, joints, "a person jumps", 1, context=-1)
    with pytest.raises(MosaError, match="shorter than the generator's minimum"):
        E.edit_span(pipe, joints[:21], "a person jumps", 0.2, 0.6)
    with pytest.raises(MosaError, match="shorter than one token"):
        E.extend(pipe, joints, "a person jumps", 0.1)
    with pytest.raises(MosaError, match="positive number"):
        E.inbetween(pipe, joints[:41], joints[:41], "a person jumps", -1)
    with pytest.raises(MosaError, match="expected \\(T, 22, 3\\)"):
        E.extend(pipe, joints[:, :10], "a person jumps", 1)
    with pytest.raises(MosaError, match="prompt is empty"):
        E.extend(pipe, joints, "  ", 1)


# -------------------------------------------------------------------------------- CLI


def _parse(add, argv):
    parser = argparse.ArgumentParser()
    add(parser)
    return parser.parse_args([str(a) for a in argv])


def test_cli_end_to_end_on_a_cmu_clip(ckpt, shared_data, tmp_path, capsys):
    bvh = shared_data / "cmu" / "01_01.bvh"  # 23 s: too long for the tiny generator
    src = read_motion(bvh)
    short = write_motion(tmp_path / "src.npy", src.joints[:121])  # 6 s via the API
    out = tmp_path / "edit.npy"
    args = _parse(cli_edit.add_arguments, [short, "--text", "a person jumps", "--start", 2,
                                         "--end", 3.5, "-o", out, "--checkpoint", ckpt,
                                         "--seed", 1])  # fmt: skip
    assert cli_edit.run(args) == 0
    assert np.load(out).shape == (121, 22, 3) and "wrote" in capsys.readouterr().out
    # the BVH itself extended by one second: whole with a context window, cropped on request
    # when the generator sees everything
    out = tmp_path / "ext.bvh"
    argv = [bvh, "--text", "a person walks", "--extend", 1, "-o", out, "--checkpoint", ckpt]
    assert cli_edit.run(_parse(cli_edit.add_arguments, [*argv, "--context", 2])) == 0
    n = len(src.joints) - 1  # feature frames of the source
    assert read_motion(out).num_frames == n + 20 + (-(n + 20)) % 4
    with pytest.raises(MosaError, match="--crop"):
        cli_edit.run(_parse(cli_edit.add_arguments, [*argv, "--context", "all"]))
    assert cli_edit.run(_parse(cli_edit.add_arguments, [*argv, "--context", "all", "--crop"])) == 0
    assert read_motion(out).num_frames == 196
    with pytest.raises(SystemExit):
        _parse(cli_edit.add_arguments, [*argv, "--context", "soon"])
    out = tmp_path / "both.npy"  # --extend with --lead-in: outpainting
    argv = [short, "--text", "a person walks", "--extend", 0.5, "--lead-in", 0.5, "-o", out,
            "--checkpoint", ckpt]  # fmt: skip
    assert cli_edit.run(_parse(cli_edit.add_arguments, argv)) == 0
    assert np.load(out).shape == (140, 22, 3)
    out = tmp_path / "mid.npy"
    argv = [short, short, "--text", "a person turns", "--seconds", 1, "-o", out,
            "--checkpoint", ckpt]  # fmt: skip
    assert cli_inbetween.run(_parse(cli_inbetween.add_arguments, argv)) == 0
    assert np.load(out).shape == (260, 22, 3)  # 120 + 20 + 120 frames, all kept
    argv = [*argv, "--context", "all", "--crop"]
    assert cli_inbetween.run(_parse(cli_inbetween.add_arguments, argv)) == 0
    assert np.load(out).shape == (196, 22, 3)  # cropped to the generator's maximum


def test_cli_errors(ckpt, tmp_path):
    src = tmp_path / "s.npy"
    np.save(src, np.zeros((50, 22, 3), np.float32))
    base = [src, "--text", "a person jumps", "--checkpoint", ckpt]
    cases = [
        ([*base, "--start", 1, "--end", 2, "-o", tmp_path / "x.txt"], "unknown extension"),
        ([*base, "-o", tmp_path / "x.npy"], "give either a span"),
        ([*base, "--start", 1, "--extend", 1, "-o", tmp_path / "x.npy"], "give either a span"),
        ([*base, "--start", 1, "-o", tmp_path / "x.npy"], "needs both --start and --end"),
    ]
    for argv, match in cases:
        with pytest.raises(MosaError, match=match):
            cli_edit.run(_parse(cli_edit.add_arguments, argv))
    with pytest.raises(MosaError, match="unknown extension"):
        cli_edit.run(_parse(cli_edit.add_arguments, [tmp_path / "s.fbx", *base[1:], "--extend", 1,
                                                 "-o", tmp_path / "x.npy"]))  # fmt: skip


# -------------------------------------------------------------------------------- window


def _kept(T, g0, g1):
    kept = np.ones(T, bool)
    kept[g0:g1] = False
    return kept


@pytest.mark.parametrize(
    ("T", "g0", "g1", "context", "want"),
    [
        (200, 100, 120, 40, (60, 160)),  # 40 kept frames either side
        (200, 100, 120, 0, (88, 132)),  # grown to the 40-frame minimum, whole tokens
        (200, 0, 20, 10, (0, 40)),  # a lead-in: the growth goes to the side that has room
        (400, 100, 250, 40, (76, 272)),  # shrunk to 196 frames, a token back from the longer side
        (200, 100, 120, None, (0, 200)),  # None: the whole canvas
    ],
)
def test_generator_window_by_hand(T, g0, g1, context, want):
    assert E.generator_window(_kept(T, g0, g1), context, 4, (40, 196)) == want


def test_generator_window_errors():
    with pytest.raises(MosaError, match="span 10 s, more than the generator's maximum 9.8 s"):
        E.generator_window(_kept(400, 100, 300), 0, 4, (40, 196))


def test_windowed_edit_is_the_edit_of_its_window(pipe, joints):
    """With a context window the generator runs on ``canvas.slice(a, b)`` alone; outside it
    the output is the source's features, and the joints integrate across unchanged."""
    long = np.concatenate([joints, joints[1:], joints[1:]])  # 360 feature frames
    feats = extract_features(long)
    parts = [E.Part(feats[:200], source=0), E.Part(frames=20),
             E.Part(feats[200:], source=0, source_start=200)]  # fmt: skip
    canvas = E.layout(parts, pipe.unit, pipe.frame_range, windowed=True)
    m = E.run_canvas(pipe, canvas, "a person jumps", context=1.5, seed=4)
    a, b = m.window
    assert (a, b) == (168, 252)  # 30 frames of context either side, in whole tokens
    part = E.run_canvas(pipe, canvas.slice(a, b), "a person jumps", context=None, seed=4)
    np.testing.assert_array_equal(m.features[a:b], part.features)
    np.testing.assert_array_equal(m.features[:a], canvas.features[:a])
    np.testing.assert_array_equal(m.features[b:], canvas.features[b:])
    assert [len(t) for t in m.tokens] == [len(t) for t in part.tokens]
    assert [(s.frame - a, s.step) for s in m.seams] == [(s.frame, s.step) for s in part.seams]
    # before the window, the very joints of the source; the kept part after it follows on
    np.testing.assert_allclose(m.joints[:a], recover_joints(feats)[:a], atol=1e-4)
    np.testing.assert_allclose(m.joints, recover_joints(m.features), atol=1e-5)
    assert (m.weights[:a] == 1).all() and (m.weights[b:] == 1).all()
    sub = canvas.slice(a, b)
    assert [(g.kind, g.start, g.end, g.source_start) for g in sub.segments] == [
        ("kept", 0, 32, 168),
        ("generated", 32, 52, None),
        ("kept", 52, 84, 200),
    ]
