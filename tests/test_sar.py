"""SAR transformer: layout, block-causal attention, KV cache, padding, sampling utilities."""

from __future__ import annotations

import math

import pytest
import torch

from mosa.errors import MosaError
from mosa.models.length import LengthConfig, LengthEstimator, load_length
from mosa.models.quantizer import PAD_TOKEN, MultiScaleQuantizer
from mosa.models.sar import (
    KVCache,
    Linear,
    SARConfig,
    SARTransformer,
    ScaleLayout,
    int8_available,
    load_sar,
    sar_loss,
    save_sar,
)
from mosa.sampling import filter_logits, sample_tokens

CODE_DIM, V, TEXT_DIM, K = 8, 16, 12, 10


def tiny(**kw) -> SARTransformer:
    cfg = SARConfig(
        codebook_size=V,
        code_dim=CODE_DIM,
        text_dim=TEXT_DIM,
        dim=32,
        layers=2,
        heads=4,
        ff=64,
        num_scales=K,
        dropout=0.0,
        **kw,
    )
    return SARTransformer(cfg).eval()


def quantizer() -> MultiScaleQuantizer:
    torch.manual_seed(1)
    q = MultiScaleQuantizer(CODE_DIM, V, K).eval()
    for book in q.codebooks:  # spread codes out so tokens vary
        book.embed.normal_()
    return q


@torch.no_grad()  # the tokenizer is frozen: its outputs carry no graph
def batch(n: list[int], q: MultiScaleQuantizer, seed: int = 0):
    """Tokens, teacher-forcing inputs, layout and a random text condition for lengths ``n``."""
    g = torch.Generator().manual_seed(seed)
    B, width = len(n), max(n)
    nt = torch.tensor(n)
    z = torch.randn(B, width, CODE_DIM, generator=g)
    mask = torch.arange(width)[None] < nt[:, None]
    tokens = q.encode(z * mask[..., None], mask)
    inputs = q.teacher_forcing_inputs(tokens, nt)
    layout = ScaleLayout(torch.tensor([q.scale_lengths(v) for v in n]))
    text = torch.randn(B, 6, TEXT_DIM, generator=g)
    tmask = torch.ones(B, 6, dtype=torch.bool)
    tmask[0, 4:] = False
    pooled = torch.randn(B, TEXT_DIM, generator=g)
    return tokens, inputs, layout, (text, tmask, pooled, nt)


def test_layout_by_hand():
    lay = ScaleLayout(torch.tensor([[1, 2, 3], [1, 1, 2]]))
    assert lay.widths == [1, 2, 3] and lay.offsets == [0, 1, 3, 6]
    assert lay.valid.tolist() == [[True] * 6, [True, True, False, True, True, False]]
    assert lay.frac[0].tolist() == pytest.approx([0.5, 0.25, 0.75, 1 / 6, 0.5, 5 / 6])
    m = lay.attn_mask()[1, 0].int().tolist()
    # sample 1: keys 2 and 5 are padding; scale of positions = [0, 1, 1, 2, 2, 2]
    assert m[0] == [1, 0, 0, 0, 0, 0]
    assert m[1] == [1, 1, 0, 0, 0, 0]
    assert m[4] == [1, 1, 0, 1, 1, 0]


@pytest.mark.parametrize("n", [[1], [7], [10, 3], [49, 23, 12]])
def test_shapes_per_scale(n):
    q, m = quantizer(), tiny()
    tokens, inputs, layout, c = batch(n, q)
    assert len(inputs) == K - 1
    logits = m.teacher_forced(m.condition(*c), layout, inputs)
    assert logits.shape == (len(n), sum(layout.widths), V)
    for k in range(K):
        assert layout.widths[k] == max(q.scale_lengths(v)[k] for v in n)
        assert tokens[k].shape == (len(n), layout.widths[k])
    assert layout.widths[0] == 1 and layout.widths[-1] == max(n)
    text, tmask, pooled, _ = c
    loss, stats = sar_loss(m(text, tmask, pooled, layout, inputs), layout, tokens)
    # an untrained head is close to uniform: the loss is close to log V
    assert abs(float(loss.detach()) - math.log(V)) < 0.5
    assert 0 <= stats["acc"] <= 1


def test_block_causal():
    q, m = quantizer(), tiny()
    _, inputs, layout, c = batch([20, 13], q)
    cond = m.condition(*c)
    ref = m.teacher_forced(cond, layout, inputs)
    for j in (1, 4, 9):  # perturb the input of scale j
        changed = [x.clone() for x in inputs]
        changed[j - 1] = changed[j - 1] + torch.randn_like(changed[j - 1])
        out = m.teacher_forced(cond, layout, changed)
        earlier = slice(0, layout.offsets[j])
        assert torch.equal(out[:, earlier], ref[:, earlier])
        later = layout.block(j)
        assert (out[0, later] - ref[0, later]).abs().max() > 1e-4


def test_padding_and_batch_independence():
    q, m = quantizer(), tiny()
    _, inputs, layout, (text, tmask, pooled, n) = batch([30, 11], q)
    both = m(text, tmask, pooled, layout, inputs)
    # sample 1 alone, with its own (unpadded) layout and shorter text
    lay1 = ScaleLayout(layout.lens[1:])
    in1 = [x[1:, : lay1.widths[k + 1]] for k, x in enumerate(inputs)]
    alone = m(text[1:], tmask[1:], pooled[1:], lay1, in1)
    valid = layout.valid[1]
    torch.testing.assert_close(both[1, valid], alone[0], atol=1e-5, rtol=1e-5)
    # garbage in padded input slots and masked text changes nothing
    noisy = [x.clone() for x in inputs]
    for k, x in enumerate(noisy):
        x[1, layout.lens[1, k + 1] :] = 100.0
    text2 = text.clone()
    text2[0, 4:] = 100.0
    out = m(text2, tmask, pooled, layout, noisy)
    torch.testing.assert_close(out[layout.valid], both[layout.valid], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", [[49], [40, 17, 9]])
def test_cached_equals_uncached(n):
    q, m = quantizer(), tiny()
    _, inputs, layout, c = batch(n, q)
    cond = m.condition(*c)
    full = m.teacher_forced(cond, layout, inputs)
    cache = m.start(cond, layout)
    steps = [m.step(cache, None if k == 0 else inputs[k - 1]) for k in range(K)]
    for k, s in enumerate(steps):
        assert s.shape == (len(n), layout.widths[k], V)
    cached = torch.cat(steps, dim=1)
    torch.testing.assert_close(cached[layout.valid], full[layout.valid], atol=1e-5, rtol=1e-5)
    with pytest.raises(RuntimeError):
        m.step(cache, inputs[0])


def _text_with_padding(B: int, seed: int = 3):
    """Text features where the last row has only 2 real tokens of 5."""
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(B, 5, TEXT_DIM, generator=g)
    mask = torch.ones(B, 5, dtype=torch.bool)
    mask[-1, 2:] = False
    return text, mask, torch.randn(B, TEXT_DIM, generator=g)


@pytest.mark.parametrize("n", [[49], [40, 17, 9]])
@torch.no_grad()
def test_guided_cache_equals_doubled_batch(n):
    """``start(guided=True)`` (null rows: shared inputs, constant cross-attention) gives the
    logits of the plain decode of the explicitly doubled batch [text; null text]."""
    q, m = quantizer(), tiny()
    _, inputs, layout, _ = batch(n, q)
    text, tmask, pooled = _text_with_padding(len(n))
    nt = torch.tensor(n)
    cond = m.condition(text, tmask, pooled, nt)
    doubled = cond.cat(m.null_condition(nt))

    def decode(cache, double_inputs: bool):
        out = []
        for k in range(K):
            x = None if k == 0 else inputs[k - 1]
            if x is not None and double_inputs:
                x = torch.cat([x, x])
            out.append(m.step(cache, x))
        return torch.cat(out, dim=1)

    valid = layout.repeat(2).valid
    ref = decode(m.start(doubled, layout.repeat(2)), True)
    got = decode(m.start(cond, layout, guided=True), False)
    assert got.shape == ref.shape == (2 * len(n), layout.length, V)
    torch.testing.assert_close(got[valid], ref[valid], atol=1e-5, rtol=1e-5)
    # the cached null-text output follows the weights: change them, compare again
    m.null_text.add_(0.5)
    m.blocks[0].cross.proj.weight.mul_(1.5)
    doubled = cond.cat(m.null_condition(nt))
    ref2 = decode(m.start(doubled, layout.repeat(2)), True)
    got2 = decode(m.start(cond, layout, guided=True), False)
    torch.testing.assert_close(got2[valid], ref2[valid], atol=1e-5, rtol=1e-5)
    assert (ref2[valid] - ref[valid]).abs().max() > 1e-3  # the change did matter
    # training mode (here without dropout) runs the null text through the general path
    m.train()
    got3 = decode(m.start(cond, layout, guided=True), True)
    torch.testing.assert_close(got3[valid], ref2[valid], atol=1e-5, rtol=1e-5)


def test_kv_cache_appends_like_concatenation():
    cache = KVCache(length=7)
    ks = [torch.randn(2, 3, w, 4) for w in (1, 2, 4)]
    vs = [torch.randn(2, 3, w, 4) for w in (1, 2, 4)]
    for i, (k, v) in enumerate(zip(ks, vs, strict=True)):
        got_k, got_v = cache.append(k, v)
        assert torch.equal(got_k, torch.cat(ks[: i + 1], dim=2))
        assert torch.equal(got_v, torch.cat(vs[: i + 1], dim=2))
    assert cache.end == 7


def test_linear_follows_its_weight_without_grad():
    """Outside autograd ``Linear`` uses a cached copy of its weight; the copy must follow every
    change of the weight. Reference: the sum written out by hand."""
    torch.manual_seed(0)
    lin = Linear(6, 5)
    x = torch.randn(2, 3, 6)

    def by_hand():
        w, b = lin.weight.detach(), lin.bias.detach()
        return (x[..., None, :] * w).sum(-1) + b

    assert list(lin.state_dict()) == list(torch.nn.Linear(6, 5).state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(lin(x), by_hand())
    with torch.no_grad():
        lin.weight.mul_(-2.0)  # in place: version counter
        torch.testing.assert_close(lin(x), by_hand())
    lin.load_state_dict({"weight": torch.randn(5, 6), "bias": torch.randn(5)})
    with torch.inference_mode():
        torch.testing.assert_close(lin(x), by_hand())
    # with autograd: the parameter itself, gradients flow
    lin(x).sum().backward()
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    lin.double()  # replaced storage (same version counter)
    x = x.double()
    with torch.no_grad():
        torch.testing.assert_close(lin(x), by_hand())


def test_condition_dropout_and_null():
    m = tiny()
    text = torch.randn(2, 5, TEXT_DIM)
    mask = torch.ones(2, 5, dtype=torch.bool)
    pooled = torch.randn(2, TEXT_DIM)
    n = torch.tensor([12, 30])
    c = m.condition(text, mask, pooled, n, drop=torch.tensor([True, False]))
    null = m.null_condition(n)
    torch.testing.assert_close(c.start[0], null.start[0])
    assert c.text_mask[0].tolist() == [True, False, False, False, False]
    torch.testing.assert_close(c.text[0, 0], null.text[0, 0])
    torch.testing.assert_close(c.text[1], m.text_proj(text[1]))
    # the length is part of the start token even without text
    assert (null.start[0] - null.start[1]).abs().max() > 1e-6


def test_training_reduces_loss():
    q = quantizer()
    m = tiny()
    m.config.cond_drop = 0.0
    tokens, inputs, layout, (text, tmask, pooled, _) = batch([24, 16, 9, 30], q)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    m.train()
    losses = []
    for _ in range(60):
        loss, _ = sar_loss(m(text, tmask, pooled, layout, inputs), layout, tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]


def test_save_load_roundtrip(tmp_path):
    m = tiny()
    save_sar(tmp_path / "sar", m)
    m2 = load_sar(tmp_path / "sar")
    assert m2.config == m.config
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(MosaError, match="expected 'sar'"):
        LengthEstimator(LengthConfig()).save(tmp_path / "len")
        load_sar(tmp_path / "len")


def test_filter_logits_by_hand():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()
    kept = filter_logits(logits, top_k=2).isfinite().tolist()
    assert kept == [True, True, False, False]
    # top-p 0.7: 0.5 < 0.7 so the second token stays; mass before the third is 0.8 -> dropped
    assert filter_logits(logits, top_p=0.7).isfinite().tolist() == [True, True, False, False]
    assert filter_logits(logits, top_p=0.85).isfinite().tolist() == [True, True, True, False]
    assert filter_logits(logits, top_p=0.3).isfinite().tolist() == [True, False, False, False]
    # temperature 2 on log-probs: softmax gives p^(1/2) renormalised
    t = filter_logits(logits, temperature=2.0).softmax(-1)
    ref = probs.sqrt() / probs.sqrt().sum()
    torch.testing.assert_close(t, ref)


def test_sample_tokens_frequencies_and_padding():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    logits = probs.log().expand(1, 20000, 5)
    valid = torch.ones(1, 20000, dtype=torch.bool)
    tok = sample_tokens(logits, [torch.Generator().manual_seed(3)], valid)
    freq = torch.bincount(tok[0], minlength=5).float() / 20000
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
    assert int(freq[4]) == 0
    valid2 = torch.tensor([[True, True, False]])
    out = sample_tokens(torch.zeros(1, 3, 5), [torch.Generator().manual_seed(0)], valid2)
    assert out[0, 2] == PAD_TOKEN and (out[0, :2] >= 0).all()
    greedy = sample_tokens(logits[:, :3], [torch.Generator()], valid[:, :3], greedy=True)
    assert greedy.tolist() == [[0, 0, 0]]


def test_length_estimator(tmp_path):
    cfg = LengthConfig(text_dim=TEXT_DIM, hidden=32, min_tokens=10, max_tokens=49, dropout=0.0)
    est = LengthEstimator(cfg)
    pooled = torch.randn(4, TEXT_DIM)
    target = torch.tensor([10, 20, 35, 49])
    opt = torch.optim.Adam(est.parameters(), lr=1e-2)
    for _ in range(100):
        loss = est.loss(pooled, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    est.eval()
    assert est.predict(pooled, sample=False).tolist() == target.tolist()
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    drawn = est.predict(pooled, generators=gens)
    assert ((drawn >= 10) & (drawn <= 49)).all()
    est.save(tmp_path / "len")
    again = load_length(tmp_path / "len")
    torch.testing.assert_close(again(pooled), est(pooled))
    with pytest.raises(MosaError):
        LengthEstimator(LengthConfig(min_tokens=20, max_tokens=10))


@pytest.mark.skipif(not int8_available(), reason="this torch build has no fbgemm int8 kernels")
def test_int8_linear_close_to_fp32_and_follows_its_weight():
    """int8 mode: outputs within int8 rounding of the float product (per-channel weight
    scales, 7-bit activations), not equal to it (the int8 kernel really runs), and rebuilt
    when the weight changes; with autograd the float weight is used."""
    torch.manual_seed(0)
    lin = Linear(64, 48)
    lin.int8 = True
    x = torch.randn(3, 5, 64)

    def rel_err(ref):
        with torch.inference_mode():
            got = lin(x)
        assert got.shape == ref.shape
        return float((got - ref).norm() / ref.norm())

    ref = torch.nn.functional.linear(x, lin.weight.detach(), lin.bias.detach())
    assert 0 < rel_err(ref) < 0.05
    with torch.no_grad():
        lin.weight.mul_(-3.0)  # the packed copy must follow
    assert 0 < rel_err(-3 * (ref - lin.bias.detach()) + lin.bias.detach()) < 0.05
    assert torch.equal(lin(x), torch.nn.functional.linear(x, lin.weight, lin.bias))  # autograd
    with torch.inference_mode():  # 1-D inputs keep their shape
        assert lin(x[0, 0]).shape == (48,)


@pytest.mark.skipif(not int8_available(), reason="this torch build has no fbgemm int8 kernels")
@torch.no_grad()
def test_set_int8_guided_decode_close_to_fp32():
    """``set_int8`` changes the blocks' linear layers only; a guided cached decode gives nearly
    the float distributions (small KL), and switching back restores the float logits exactly."""
    q, m = quantizer(), tiny()
    _, inputs, layout, c = batch([40, 17], q)
    cond = m.condition(*c)

    def decode(model=m):
        cache = model.start(cond, layout, guided=True)
        return torch.cat(
            [model.step(cache, None if k == 0 else inputs[k - 1]) for k in range(K)], dim=1
        )

    ref = decode()
    assert m.set_int8(True) is m
    assert all(x.int8 for x in m.blocks.modules() if isinstance(x, Linear))
    got = decode()
    valid = layout.repeat(2).valid
    p, lq = ref[valid].log_softmax(-1), got[valid].log_softmax(-1)
    kl = (p.exp() * (p - lq)).sum(-1)
    assert 0 < float(kl.max()) < 0.02
    m.set_int8(False)
    torch.testing.assert_close(decode(), ref, atol=0, rtol=0)
    # a fresh copy decoded in int8 first, then fp32: nothing cached under int8 (the null
    # text's cross-attention output) may leak into the float decode
    fresh = tiny()
    fresh.load_state_dict(m.state_dict())
    decode(fresh.set_int8(True))
    torch.testing.assert_close(decode(fresh.set_int8(False)), ref, atol=0, rtol=0)
