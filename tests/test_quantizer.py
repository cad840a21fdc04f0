"""Invariants of the MTPS multi-scale quantizer, the plain RVQ and the EMA codebook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mosa.errors import MosaError
from mosa.models.quantizer import (
    PAD_TOKEN,
    PLAN_CACHE_SIZE,
    Codebook,
    MultiScaleQuantizer,
    Phi,
    ResidualQuantizer,
    _resample_matrix,
    scale_lengths,
    usage_stats,
)

K = 10


def _real_latents(hml_sample: Path, dim: int = 32) -> list[torch.Tensor]:
    """Fixed latents from real motion: normalised features, a fixed random projection to
    ``dim`` channels and 4x temporal average pooling -> list of ``(n, dim)``."""
    mean = np.load(hml_sample / "Mean.npy")
    std = np.load(hml_sample / "Std.npy")
    gen = torch.Generator().manual_seed(123)
    proj = torch.linalg.qr(torch.randn(263, dim, generator=gen))[0]  # orthonormal columns
    out = []
    for name in ("000612_new_joint_vecs.npy", "012314_new_joint_vecs.npy"):
        x = torch.from_numpy(((np.load(hml_sample / name) - mean) / std).astype(np.float32))
        t = x.shape[0] // 4 * 4
        z = (x[:t] @ proj).T[None]  # (1, dim, t)
        out.append(F.avg_pool1d(z, 4)[0].T)  # (t/4, dim)
    return out


def _fit_codebooks(q: torch.nn.Module, latents: list[torch.Tensor], steps: int = 40) -> None:
    """EMA-train the codebooks on random crops of the given latents (no gradients)."""
    gen = torch.Generator().manual_seed(0)
    q.train()
    with torch.no_grad():
        for _ in range(steps):
            crops = []
            for z in latents:
                n = int(torch.randint(10, z.shape[0] + 1, (1,), generator=gen))
                s = int(torch.randint(0, z.shape[0] - n + 1, (1,), generator=gen))
                crops.append(z[s : s + n])
            width = max(c.shape[0] for c in crops)
            zb = torch.zeros(len(crops), width, crops[0].shape[1])
            mask = torch.zeros(len(crops), width, dtype=torch.bool)
            for i, c in enumerate(crops):
                zb[i, : c.shape[0]] = c
                mask[i, : c.shape[0]] = True
            q(zb, mask)
    q.eval()


@pytest.fixture(scope="module")
def latents(hml_sample: Path) -> list[torch.Tensor]:
    return _real_latents(hml_sample)


@pytest.fixture(scope="module")
def fitted(latents) -> MultiScaleQuantizer:
    torch.manual_seed(0)
    q = MultiScaleQuantizer(32, num_codes=64, num_scales=K)
    _fit_codebooks(q, latents)
    return q


def test_scale_lengths_every_supported_length():
    for n in range(10, 101):
        ls = scale_lengths(n, K)
        assert len(ls) == K
        assert ls[0] == 1 and ls[-1] == n
        assert all(b > a for a, b in zip(ls, ls[1:], strict=False)), (n, ls)


def test_scale_lengths_short_latents_repeat_sizes():
    for n in range(1, 10):
        ls = scale_lengths(n, K)
        assert len(ls) == K and ls[0] == 1 and ls[-1] == n
        assert all(b >= a for a, b in zip(ls, ls[1:], strict=False)), (n, ls)
        assert set(ls) == set(range(1, n + 1))  # every size up to n is visited
    assert scale_lengths(7, 1) == [7]
    with pytest.raises(MosaError):
        scale_lengths(0, K)


def test_resample_matrices_match_interpolate():
    x = torch.randn(2, 5, 23, dtype=torch.float64)  # (B, C, n)
    for m in (1, 4, 9, 23):
        down = x @ _resample_matrix(23, m, "area").T
        assert torch.allclose(down, F.interpolate(x, size=m, mode="area"))
        y = torch.randn(2, 5, m, dtype=torch.float64)
        up = y @ _resample_matrix(m, 23, "linear").T
        assert torch.allclose(up, F.interpolate(y, size=23, mode="linear", align_corners=False))


@pytest.mark.parametrize("n", [4, 10, 17, 49, 100])
def test_token_shapes_per_scale(fitted, n):
    z = torch.randn(3, n, 32)
    mask = torch.ones(3, n, dtype=torch.bool)
    tokens = fitted.encode(z, mask)
    assert len(tokens) == K
    for k, (tok, size) in enumerate(zip(tokens, scale_lengths(n, K), strict=True)):
        assert tok.shape == (3, size), k
        assert tok.dtype == torch.long
        assert int(tok.min()) >= 0 and int(tok.max()) < 64
    assert fitted.decode(tokens, n).shape == (3, n, 32)


def test_error_falls_as_scales_are_added(fitted, latents):
    z = latents[0][None]  # (1, 49, 32) real-motion latent
    mask = torch.ones(z.shape[:2], dtype=torch.bool)
    tokens = fitted.encode(z, mask)
    with torch.no_grad():
        errors = [
            float((fitted.decode(tokens[:k], z.shape[1]) - z).pow(2).mean())
            for k in range(1, K + 1)
        ]
    base = float(z.pow(2).mean())  # error of predicting zero
    assert errors[0] < base
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 0.25 * errors[0], errors


def test_straight_through_gradient_reaches_input(fitted):
    z = torch.randn(2, 12, 32, requires_grad=True)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    out = fitted(z, mask)
    w = torch.randn_like(out.f_hat)
    (out.f_hat * w).sum().backward()
    # identity gradient at valid positions, none at padding
    expected = w * mask[..., None]
    assert torch.allclose(z.grad, expected)
    # the refinement convs learn from the decoder's gradient too
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in fitted.phis.parameters())
    fitted.zero_grad()


def test_variable_lengths_match_per_sample(fitted, latents):
    lens = [49, 23, 11, 5]
    zs = [latents[0][: lens[0]], latents[1][3:26], latents[0][30:41], latents[1][:5]]
    zb = torch.zeros(len(lens), max(lens), 32)
    mask = torch.zeros(len(lens), max(lens), dtype=torch.bool)
    for i, z in enumerate(zs):
        zb[i, : len(z)] = z
        mask[i, : len(z)] = True
    batch_tokens = fitted.encode(zb, mask)
    batch_fhat = fitted(zb, mask).f_hat
    for i, z in enumerate(zs):
        alone = fitted.encode(z[None], torch.ones(1, len(z), dtype=torch.bool))
        for k in range(K):
            size = scale_lengths(lens[i], K)[k]
            assert torch.equal(batch_tokens[k][i, :size], alone[k][0]), (i, k)
            assert (batch_tokens[k][i, size:] == PAD_TOKEN).all()
        f_alone = fitted.decode(alone, len(z))[0]
        assert torch.allclose(batch_fhat[i, : len(z)], f_alone, atol=1e-5)
        assert batch_fhat[i, len(z) :].abs().sum() == 0


def test_next_scale_input_consistent_with_decode(fitted, latents):
    zs = [latents[0][:40], latents[1][:26]]
    zb = torch.zeros(2, 40, 32)
    mask = torch.zeros(2, 40, dtype=torch.bool)
    for i, z in enumerate(zs):
        zb[i, : len(z)] = z
        mask[i, : len(z)] = True
    n = mask.sum(1)
    tokens = fitted.encode(zb, mask)
    tf = fitted.teacher_forcing_inputs(tokens, n)
    assert len(tf) == K - 1
    f_hat = None
    for k in range(K - 1):
        f_hat = fitted.add_scale(f_hat, tokens[k], k, n)
        assert torch.allclose(f_hat, fitted.decode(tokens[: k + 1], n), atol=1e-6)
        nxt = fitted.next_scale_input(f_hat, k, n)
        assert torch.allclose(nxt, tf[k], atol=1e-6)
        # independent reference: area interpolation of each sample's own reconstruction
        for i, length in enumerate(n.tolist()):
            size = scale_lengths(length, K)[k + 1]
            ref = F.interpolate(f_hat[i : i + 1, :length].transpose(1, 2), size=size, mode="area")
            assert torch.allclose(nxt[i, :size], ref[0].T, atol=1e-5)
            assert nxt[i, size:].abs().sum() == 0
    full = fitted.add_scale(f_hat, tokens[K - 1], K - 1, n)
    assert torch.allclose(full, fitted(zb, mask).f_hat, atol=1e-5)
    with pytest.raises(MosaError):
        fitted.next_scale_input(full, K - 1, n)


def test_plans_cached_in_eval_only():
    q = MultiScaleQuantizer(8, 16, K).eval()
    n = torch.tensor([30, 12])
    a = q.plan(n, 2)
    n[0] = 5  # the caller's tensor changes afterwards: the cached plan must not
    assert a.n.tolist() == [30, 12] and a.lengths[:, -1].tolist() == [30, 12]
    assert q.plan([30, 12], 2) is a  # same lengths (list or tensor): same plan
    assert q.plan([30, 13], 2) is not a and q.plan(7, 3) is not a
    for v in range(1, PLAN_CACHE_SIZE + 2):
        q.plan([v], 1)
    assert len(q._plans) == PLAN_CACHE_SIZE  # bounded: least recently used dropped
    assert q.plan([30, 12], 2) is not a
    q.train()
    assert q.plan([30, 12], 2) is not q.plan([30, 12], 2)


def test_unpadded_plan_skips_masks_exactly():
    torch.manual_seed(0)
    phi = Phi(8)
    with torch.no_grad():
        phi.conv.weight.normal_()  # not the identity it starts as
    x = torch.randn(3, 11, 8)
    full = torch.ones(3, 11, dtype=torch.bool)
    assert torch.equal(phi(x, None), phi(x, full))
    # reference: the 3-tap convolution written out, mixed with the input by the ratio
    w, b, a = phi.conv.weight.detach(), phi.conv.bias.detach(), phi.ratio.detach()
    xp = F.pad(x, (0, 0, 1, 1))
    conv = sum(xp[:, j : j + 11] @ w[:, :, j].T for j in range(3)) + b
    torch.testing.assert_close(phi(x, None).detach(), (1 - a) * x + a * conv)
    q = MultiScaleQuantizer(8, 16, K).eval()
    assert not q.plan([20, 20], 2).padded and q.plan([20, 9], 2).padded
    assert q.plan([9], 1, width=12).padded


def test_dead_code_restart_fires_for_unused_codes():
    torch.manual_seed(0)
    book = Codebook(16, 4, decay=0.5, restart_threshold=0.1)
    centers = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    data = centers.repeat_interleave(50, 0) + 0.01 * torch.randn(100, 4)
    with torch.no_grad():
        book.embed.copy_(torch.full((16, 4), 1000.0))
        book.embed[:2] = centers
        book.embed_avg.copy_(book.embed)
        book.initted.fill_(True)
    mask = torch.ones(1, 100, dtype=torch.bool)
    restarts = []
    for _ in range(3):
        book.quantize(data[None], mask, update=True)
        restarts.append(book.last_restarts)
    # far codes lose usage geometrically (1, .5, .25): dead at the second update, all 14
    assert restarts[0] == 0 and restarts[1] == 14
    # restarted codes now sit on current-batch latents
    dist_to_data = torch.cdist(book.embed, data).min(1).values
    assert dist_to_data.max() < 0.5


def test_no_restart_when_threshold_is_zero():
    book = Codebook(16, 4, decay=0.5, restart_threshold=0.0)
    data = torch.randn(1, 50, 4)
    mask = torch.ones(1, 50, dtype=torch.bool)
    for _ in range(5):
        book.quantize(data, mask, update=True)
        assert book.last_restarts == 0


def test_codebook_initialised_from_data_and_ema_moves_codes_to_means():
    torch.manual_seed(0)
    book = Codebook(2, 3, decay=0.0, restart_threshold=0.0)  # decay 0: codes = batch means
    a = torch.tensor([5.0, 0, 0]) + 0.1 * torch.randn(40, 3)
    b = torch.tensor([-5.0, 0, 0]) + 0.1 * torch.randn(40, 3)
    x = torch.cat([a, b])[None]
    mask = torch.ones(1, 80, dtype=torch.bool)
    with torch.no_grad():
        book.embed.copy_(torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]))
        book.initted.fill_(True)
    idx, _ = book.quantize(x, mask, update=True)
    assert torch.equal(idx[0], torch.cat([torch.zeros(40), torch.ones(40)]).long())
    assert torch.allclose(book.embed[0], a.mean(0), atol=1e-4)
    assert torch.allclose(book.embed[1], b.mean(0), atol=1e-4)


def test_usage_stats_hand_computed():
    s = usage_stats(torch.tensor([2.0, 2.0, 0.0, 0.0]))
    assert s["utilisation"] == pytest.approx(0.5)
    assert s["perplexity"] == pytest.approx(2.0)
    s = usage_stats(torch.tensor([1.0, 1.0, 1.0, 1.0]))
    assert s["perplexity"] == pytest.approx(4.0)


def test_codebook_stats_per_scale(fitted, latents):
    fitted.reset_usage()
    z = latents[0][None]
    fitted.encode(z, torch.ones(z.shape[:2], dtype=torch.bool))
    stats = fitted.codebook_stats()
    assert len(stats) == K
    assert stats[0]["utilisation"] == pytest.approx(1 / 64)  # one token at scale 0
    for s, size in zip(stats, scale_lengths(z.shape[1], K), strict=True):
        assert 0 < s["utilisation"] <= min(size, 64) / 64 + 1e-9
        assert 1 <= s["perplexity"] <= size + 1e-6


def test_shared_codebook_option(latents):
    q = MultiScaleQuantizer(32, num_codes=64, num_scales=K, shared_codebook=True, num_phi=1)
    assert len(q.codebooks) == 1 and len(q.phis) == 1
    _fit_codebooks(q, latents, steps=5)
    tokens = q.encode(latents[0][None], torch.ones(1, latents[0].shape[0], dtype=torch.bool))
    assert [t.shape[1] for t in tokens] == scale_lengths(latents[0].shape[0], K)


def test_residual_quantizer_layers(latents):
    torch.manual_seed(0)
    q = ResidualQuantizer(32, num_codes=64, num_layers=6)
    _fit_codebooks(q, latents)
    z = latents[1][None]
    mask = torch.ones(z.shape[:2], dtype=torch.bool)
    tokens = q.encode(z, mask)
    assert len(tokens) == 6 and all(t.shape == z.shape[:2] for t in tokens)
    errors = [float((q.decode(tokens[:k]) - z).pow(2).mean()) for k in range(1, 7)]
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors
    out = q(z, mask)
    assert torch.allclose(out.f_hat, q.decode(tokens), atol=1e-6)
