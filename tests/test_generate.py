"""Generation loop (CFG, cache, seeds, strategies) and the Pipeline end to end on tiny weights."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from mosa.cli import generate as cli_generate
from mosa.errors import MosaError
from mosa.loading import load
from mosa.models.quantizer import PAD_TOKEN
from mosa.models.sar import ScaleLayout
from mosa.requests import GenerationRequest
from mosa.sampling import ForcedTokens, TokenStrategy, generate_tokens
from tiny_models import CODE_DIM, TEXT_DIM, K, V, tiny_sar, tiny_vae, write_tiny_pipeline


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_pipeline(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def pipe(ckpt):
    return load(ckpt, device="cpu")


def _cond(model, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    B = len(n)
    text = torch.randn(B, 5, TEXT_DIM, generator=g)
    mask = torch.ones(B, 5, dtype=torch.bool)
    pooled = torch.randn(B, TEXT_DIM, generator=g)
    return model.condition(text, mask, pooled, torch.tensor(n))


class Recorder(TokenStrategy):
    """Records the guided logits of each scale; optionally forces given tokens everywhere."""

    def __init__(self, force=None):
        self.logits, self.force = [], force

    def apply(self, k, logits, sampled):
        self.logits.append(logits.clone())
        return sampled if self.force is None else self.force[k][:, : sampled.shape[1]]


@torch.no_grad()
def test_cfg_against_teacher_forced_forward():
    m, vae = tiny_sar(), tiny_vae()
    q = vae.quantizer
    n = [23, 12]
    cond = _cond(m, n)
    # ground-truth tokens from a random latent; force them so the inputs are the teacher's
    z = torch.randn(2, 23, CODE_DIM)
    mask = torch.arange(23)[None] < torch.tensor(n)[:, None]
    truth = q.encode(z * mask[..., None], mask)
    layout = ScaleLayout(torch.tensor([q.scale_lengths(v) for v in n]))
    inputs = q.teacher_forcing_inputs(truth, torch.tensor(n))
    c_ref = m.teacher_forced(cond, layout, inputs)
    u_ref = m.teacher_forced(m.null_condition(cond.n), layout, inputs)
    valid = layout.valid
    for scale in (1.0, 2.5):
        rec = Recorder(force=truth)
        tokens, f_hat = generate_tokens(m, q, cond, cfg=scale, strategy=rec, guidance=True)
        got = torch.cat(rec.logits, dim=1)
        ref = u_ref + scale * (c_ref - u_ref)
        torch.testing.assert_close(got[valid], ref[valid], atol=1e-5, rtol=1e-5)
        for k in range(K):
            assert torch.equal(tokens[k], truth[k])
        torch.testing.assert_close(f_hat, q.decode(truth, torch.tensor(n)), atol=1e-5, rtol=1e-5)
    # cfg 1 without the doubled batch is the plain conditional pass
    rec = Recorder(force=truth)
    generate_tokens(m, q, cond, cfg=1.0, strategy=rec)
    torch.testing.assert_close(torch.cat(rec.logits, 1)[valid], c_ref[valid], atol=1e-5, rtol=1e-5)
    # one scale per sample: sample 0 unguided (exactly its conditional logits), sample 1 at 4
    rec = Recorder(force=truth)
    generate_tokens(m, q, cond, cfg=[1.0, 4.0], strategy=rec)
    got = torch.cat(rec.logits, dim=1)
    v0, v1 = valid[0], valid[1]
    torch.testing.assert_close(got[0, v0], c_ref[0, v0], atol=1e-5, rtol=1e-5)
    ref1 = u_ref[1, v1] + 4.0 * (c_ref[1, v1] - u_ref[1, v1])
    torch.testing.assert_close(got[1, v1], ref1, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_exactly_k_steps_and_previews():
    m, vae = tiny_sar(), tiny_vae()
    calls, seen = [], []
    orig = m.step

    def counting(cache, x=None):
        calls.append(None if x is None else x.shape[1])
        return orig(cache, x)

    m.step = counting
    cond = _cond(m, [49, 30])
    generate_tokens(
        m, vae.quantizer, cond, cfg=3.0, on_scale=lambda k, toks: seen.append((k, len(toks)))
    )
    assert len(calls) == K and calls[0] is None
    assert calls[1:] == [
        max(vae.quantizer.scale_lengths(v)[k] for v in (49, 30)) for k in range(1, K)
    ]
    assert seen == [(k, k + 1) for k in range(K)]


@torch.no_grad()
def test_seeds_reproducible_and_batch_independent():
    m, vae = tiny_sar(), tiny_vae()
    q = vae.quantizer
    g = torch.Generator().manual_seed(5)
    text = torch.randn(3, 5, TEXT_DIM, generator=g)
    pooled = torch.randn(3, TEXT_DIM, generator=g)
    mask = torch.ones(3, 5, dtype=torch.bool)
    n = torch.tensor([31, 17, 44])

    def run(rows, seeds):
        cond = m.condition(text[rows], mask[rows], pooled[rows], n[rows])
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return generate_tokens(m, q, cond, cfg=2.0, top_p=0.9, generators=gens)[0]

    alone = run([1], [7])
    mixed = run([0, 1, 2], [3, 7, 9])
    again = run([0, 1, 2], [3, 7, 9])
    other = run([1], [8])
    for k in range(K):
        w = q.scale_lengths(17)[k]
        assert torch.equal(alone[k][0, :w], mixed[k][1, :w])
        assert torch.equal(mixed[k], again[k])
        assert (mixed[k][1, w:] == PAD_TOKEN).all()
    assert any(not torch.equal(a, o) for a, o in zip(alone, other, strict=True))


@torch.no_grad()
def test_forced_tokens_kept_exactly():
    m, vae = tiny_sar(), tiny_vae()
    q = vae.quantizer
    n = [40, 21]
    lens = [q.scale_lengths(v) for v in n]
    widths = [max(lens[0][k], lens[1][k]) for k in range(K)]
    g = torch.Generator().manual_seed(0)
    forced = [torch.randint(0, V, (2, w), generator=g) for w in widths]
    # keep the first half of every scale of sample 0, the last third of sample 1
    masks = []
    for k, w in enumerate(widths):
        mk = torch.zeros(2, w, dtype=torch.bool)
        mk[0, : lens[0][k] // 2] = True
        mk[1, lens[1][k] - lens[1][k] // 3 : lens[1][k]] = True
        masks.append(mk)
    strat = ForcedTokens(forced, masks)
    tokens, _ = generate_tokens(m, q, _cond(m, n), cfg=2.0, temperature=1.5, strategy=strat)
    free = 0
    for k in range(K):
        assert torch.equal(tokens[k][masks[k]], forced[k][masks[k]])
        for b in range(2):
            assert (tokens[k][b, lens[b][k] :] == PAD_TOKEN).all()
        free += int((tokens[k][~masks[k]] != forced[k][~masks[k]]).sum())
    assert free > 0  # the unforced positions were sampled, not copied


def test_pipeline_end_to_end(pipe, tmp_path):
    out = pipe.generate(
        ["a person walks forward", "someone jumps"], seconds=[2.0, 3.2], seed=11, num_samples=2
    )
    assert [m.text for m in out] == ["a person walks forward"] * 2 + ["someone jumps"] * 2
    assert [m.seed for m in out] == [11, 12, 13, 14]
    assert [m.joints.shape for m in out] == [(40, 22, 3)] * 2 + [(64, 22, 3)] * 2
    assert all(m.features.shape == (len(m.joints), 263) for m in out)
    assert all(np.isfinite(m.joints).all() and m.fps == 20.0 for m in out)
    assert not np.allclose(out[0].joints, out[1].joints)
    # same seed, alone in its batch, gives the same motion
    [again] = pipe.generate("someone jumps", seconds=3.2, seed=13)
    np.testing.assert_allclose(again.joints, out[2].joints, atol=1e-4)
    # files: .npy holds the export (one fitted skeleton, feet locked), .bvh the same frames
    from mosa.motion.io import prepare_generated
    from mosa.motion.skeleton import PARENTS

    npy = out[0].save(tmp_path / "walk.npy")
    saved = np.load(npy)
    np.testing.assert_allclose(saved, prepare_generated(out[0].joints, out[0].features), atol=1e-6)
    bones = np.linalg.norm(saved[:, 1:] - saved[:, list(PARENTS[1:])], axis=-1)  # (T, 21)
    assert np.ptp(bones, axis=0).max() < 1e-4  # constant bone lengths
    assert np.abs(saved - out[0].joints).max() < 0.2  # and still the generated motion
    bvh = out[2].save(tmp_path / "jump.bvh").read_text()
    assert bvh.startswith("HIERARCHY")
    assert "Frames: 64" in bvh and "Frame Time: 0.05" in bvh


def test_generate_requests_each_row_as_if_alone(pipe):
    """Rows with their own text, length, seed, cfg and sampling options in one call give the
    motions each request gives alone; ``generate`` is the same path."""
    R = GenerationRequest
    reqs = [
        R("a person walks forward", seconds=2.0, seed=3, cfg=1.0),
        R("someone jumps", frames=64, seed=4, cfg=4.0, temperature=0.7, top_k=5),
        R("a person waves", seed=5, cfg=2.0, top_p=0.5),  # length from the estimator
        R("a person walks forward", seconds=2.4, seed=6, temperature=0.0),  # greedy
        R("someone jumps", seconds=3.0, seed=7, cfg=0.0, top_p=1.0, top_k=0),
    ]
    batch = pipe.generate_requests(reqs)
    assert [m.seed for m in batch] == [3, 4, 5, 6, 7]
    for r, m in zip(reqs, batch, strict=True):
        [alone] = pipe.generate_requests([r])
        assert m.text == alone.text == r.text and len(m.joints) == len(alone.joints)
        for a, b in zip(m.tokens, alone.tokens, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(m.joints, alone.joints, atol=1e-4)
    assert len(batch[0].joints) == 40 and len(batch[1].joints) == 64
    # batch_size splits the call without changing the motions
    split = pipe.generate_requests(reqs, batch_size=2)
    for a, b in zip(batch, split, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a.tokens, b.tokens, strict=True))
    # generate(...) is generate_requests on the requests it describes
    [g] = pipe.generate("someone jumps", frames=64, seed=4, cfg=4.0, temperature=0.7, top_k=5)
    assert all(np.array_equal(x, y) for x, y in zip(g.tokens, batch[1].tokens, strict=True))
    # greedy ignores the seed
    [greedy] = pipe.generate_requests([R("a person walks forward", seconds=2.4, seed=99,
                                         temperature=0.0)])  # fmt: skip
    assert all(np.array_equal(x, y) for x, y in zip(greedy.tokens, batch[3].tokens, strict=True))


def test_generate_requests_errors(pipe):
    R = GenerationRequest
    with pytest.raises(MosaError, match="no request"):
        pipe.generate_requests([])
    with pytest.raises(MosaError, match="request 2 is empty"):
        pipe.generate_requests([R("ok", seconds=2), R(" ", seconds=2)])
    with pytest.raises(MosaError, match="cfg must be >= 0"):
        pipe.generate_requests([R("ok", seconds=2, cfg=-1.0)])
    with pytest.raises(MosaError, match="cfg must be >= 0"):
        pipe.generate_requests([R("ok", seconds=2, cfg=float("nan"))])
    with pytest.raises(MosaError, match="top_p must be in"):
        pipe.generate_requests([R("ok", seconds=2), R("ok", seconds=2, top_p=1.5)])
    with pytest.raises(MosaError, match="outside the supported range"):
        pipe.generate_requests([R("ok", seconds=30)])


def test_pipeline_length_estimator_and_frames(pipe):
    out = pipe.generate("a person waves", seed=3, num_samples=3)
    lo, hi = pipe.frame_range
    assert (lo, hi) == (40, 196)
    for m in out:
        assert lo <= len(m.joints) <= hi and len(m.joints) % 4 == 0
    [m] = pipe.generate("a person waves", frames=101, seed=0)
    assert len(m.joints) == 100  # rounded to the tokenizer's 4-frame unit


def test_pipeline_input_errors(pipe):
    with pytest.raises(MosaError, match="empty"):
        pipe.generate("   ", seconds=3)
    with pytest.raises(MosaError, match="prompt 2 is empty"):
        pipe.generate(["ok", ""], seconds=3)
    with pytest.raises(MosaError, match="301 characters"):
        pipe.generate("a" * 301, seconds=3)
    with pytest.raises(MosaError, match=r"range 2-9.8 s \(40-196 frames"):
        pipe.generate("a person runs", seconds=12)
    with pytest.raises(MosaError, match="outside"):
        pipe.generate("a person runs", frames=10)
    with pytest.raises(MosaError, match="only one"):
        pipe.generate("a person runs", seconds=3, frames=60)
    with pytest.raises(MosaError, match="3 seconds values for 2 prompts"):
        pipe.generate(["a", "b"], seconds=[2, 3, 4])


def test_load_errors(ckpt, tmp_path):
    with pytest.raises(MosaError, match="does not exist"):
        load(tmp_path / "missing")
    # a tokenizer with another codebook size
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(ckpt, bad)
    shutil.rmtree(bad / "vae")
    tiny_vae(codebook_size=32).save(bad / "vae", np.zeros(263), np.ones(263))
    with pytest.raises(MosaError, match="codebook size 16, the tokenizer has 32"):
        load(bad, device="cpu")
    # corrupt config / missing weights / missing part named in pipeline.json
    (bad / "sar" / "config.json").write_text("{not json")
    with pytest.raises(MosaError, match="corrupt"):
        load(bad, device="cpu")
    (bad / "sar" / "config.json").unlink()
    with pytest.raises(MosaError, match="config.json is missing"):
        load(bad, device="cpu")
    (bad / "pipeline.json").write_text(json.dumps({"vae": "nowhere"}))
    with pytest.raises(MosaError, match="nowhere"):
        load(bad, device="cpu")


def test_no_length_model(ckpt, tmp_path):
    import shutil

    folder = tmp_path / "nolen"
    shutil.copytree(ckpt, folder)
    shutil.rmtree(folder / "length")
    (folder / "pipeline.json").write_text(json.dumps({}))
    p = load(folder, device="cpu")
    with pytest.raises(MosaError, match="no length estimator"):
        p.generate("a person sits down")
    assert len(p.generate("a person sits down", seconds=2.4, seed=0)[0].joints) == 48


def _cli(argv):
    parser = argparse.ArgumentParser()
    cli_generate.add_arguments(parser)
    return cli_generate.run(parser.parse_args(argv))


def test_cli(ckpt, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# demo\na person walks\n\n  a person   jumps high \n")
    out = tmp_path / "o" / "motion.npy"
    assert (
        _cli(
            [
                "--prompts",
                str(prompts),
                "--seconds",
                "2",
                "--seed",
                "4",
                "--num-samples",
                "2",
                "--checkpoint",
                str(ckpt),
                "--device",
                "cpu",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    files = sorted(p.name for p in out.parent.iterdir())
    assert files == [f"motion_{i:03d}.npy" for i in range(4)]
    text = capsys.readouterr().out
    assert "seed 7" in text and "a person jumps high" in text
    single = tmp_path / "one.bvh"
    _cli(
        [
            "a person bows",
            "--frames",
            "48",
            "--checkpoint",
            str(ckpt),
            "--device",
            "cpu",
            "-o",
            str(single),
        ]
    )
    assert single.is_file()
    with pytest.raises(MosaError, match="unknown extension"):
        _cli(["a person bows", "--seconds", "2", "-o", str(tmp_path / "x.txt")])
    with pytest.raises(MosaError, match="not both"):
        _cli(["a person bows", "--prompts", str(prompts), "-o", str(out)])
    long = tmp_path / "long.txt"
    long.write_text("ok\n" + "b" * 400 + "\n")
    with pytest.raises(MosaError, match=r"long.txt:2: prompt has 400 characters"):
        _cli(["--prompts", str(long), "-o", str(out), "--checkpoint", str(ckpt)])


def test_int8_pipeline(ckpt, tmp_path):
    """``--int8`` loads the generator with int8 linear layers (CPU only) and still writes a
    motion; on another device it is a clear error before any loading."""
    from mosa.models.sar import Linear, int8_available

    if not int8_available():
        pytest.skip("this torch build has no fbgemm int8 kernels")
    pipe = load(ckpt, "cpu", int8=True)
    assert all(m.int8 for m in pipe.sar.blocks.modules() if isinstance(m, Linear))
    [motion] = pipe.generate(["a person walks"], frames=48, seed=1)
    assert motion.joints.shape == (48, 22, 3) and np.isfinite(motion.joints).all()
    with pytest.raises(MosaError, match="--int8 is for CPU"):
        load(ckpt, "cuda", int8=True)
    out = tmp_path / "w.npy"
    args = ["a person waves", "--frames", "48", "--seed", "2", "--int8"]
    assert _cli(args + ["--checkpoint", str(ckpt), "--device", "cpu", "-o", str(out)]) == 0
    assert np.load(out).shape == (48, 22, 3)
