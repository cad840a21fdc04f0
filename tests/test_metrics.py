"""T2M metrics against closed forms, hand computations and independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from mosa.errors import MosaError
from mosa.eval import metrics as M


class ScriptedRng:
    """Returns pre-set index draws, so a randomised metric can be checked by hand."""

    def __init__(self, *draws):
        self.draws = [np.asarray(d) for d in draws]

    def choice(self, n, size, replace=False):
        d = self.draws.pop(0)
        assert len(d) == size and d.max() < n and not replace
        return d


# ---------------------------------------------------------------- FID


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    got = M.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_frechet_one_dimensional():
    # 1-D: (m1 - m2)^2 + (sigma1 - sigma2)^2
    assert M.frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9 + 1)


def test_frechet_full_covariances_match_scipy_sqrtm():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    covmean = linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    assert M.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
    assert M.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-8)


def test_frechet_singular_covariance_is_finite():
    # Fewer samples than dimensions: rank-deficient covariances.
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 40)), rng.normal(size=(10, 40)) + 1
    d = M.fid(a, b)
    assert np.isfinite(d) and d > 0
    assert M.fid(a, a) == pytest.approx(0, abs=1e-6)


def test_fid_of_large_samples_approaches_closed_form():
    rng = np.random.default_rng(3)
    mu1, mu2 = np.array([0.0, 1.0, -1.0]), np.array([0.5, 0.0, 1.0])
    v1, v2 = np.array([1.0, 0.5, 2.0]), np.array([0.25, 1.5, 1.0])
    x = mu1 + rng.normal(size=(200_000, 3)) * np.sqrt(v1)
    y = mu2 + rng.normal(size=(200_000, 3)) * np.sqrt(v2)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert M.fid(x, y) == pytest.approx(expected, rel=0.02)


def test_frechet_rejects_mismatched_shapes():
    with pytest.raises(MosaError):
        M.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


# ---------------------------------------------------------------- R-Precision / MM-Dist


def _ranked_embeddings(ranks: list[int], pool: int = 32):
    """Motions 100 * e_j; text i has 1 on its own axis and 2 on ``ranks[i]`` other axes of its pool.

    Distance^2(t_i, m_j) = |t_i|^2 + 100^2 - 200 t_i[j], so exactly ranks[i] motions are
    closer than the own one.
    """
    n = len(ranks)
    motions = np.zeros((n, pool))
    texts = np.zeros((n, pool))
    for i, r in enumerate(ranks):
        j_own = i % pool
        motions[i, j_own] = 100
        texts[i, j_own] = 1
        others = [j for j in range(pool) if j != j_own][:r]
        texts[i, others] = 2
    return texts, motions


def test_r_precision_perfect_match():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(64, 16))
    out = M.r_precision(m + 1e-3 * rng.normal(size=m.shape), m)
    assert out["top1"] == out["top2"] == out["top3"] == 1.0


def test_r_precision_known_ranks_and_mm_dist():
    ranks = [i % 5 for i in range(64)] + [0] * 10  # 10 extra pairs: an incomplete pool, dropped
    texts, motions = _ranked_embeddings(ranks)
    out = M.r_precision(texts, motions, top_k=3, pool=32)
    # ranks cycle 0..4 over 64 pairs: 13 of rank 0, 13 of rank 1, 13 of rank 2
    assert out["top1"] == pytest.approx(13 / 64)
    assert out["top2"] == pytest.approx(26 / 64)
    assert out["top3"] == pytest.approx(39 / 64)
    # |t_i - 100 e_i|^2 = 99^2 + 4 * rank_i
    expected = np.mean([np.sqrt(99**2 + 4 * r) for r in ranks[:64]])
    assert out["mm_dist"] == pytest.approx(expected)


def test_r_precision_of_unrelated_embeddings_is_chance():
    rng = np.random.default_rng(4)
    t, m = rng.normal(size=(32 * 300, 8)), rng.normal(size=(32 * 300, 8))
    out = M.r_precision(t, m)
    for k in (1, 2, 3):
        assert out[f"top{k}"] == pytest.approx(k / 32, abs=0.01)


def test_r_precision_needs_a_full_pool():
    with pytest.raises(MosaError):
        M.r_precision(np.zeros((31, 4)), np.zeros((31, 4)))


# ---------------------------------------------------------------- Diversity / MultiModality


def test_diversity_by_hand():
    feats = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 0.0], [0.0, 8.0]])
    # pairs (0,1): 5, (1,2): 5, (2,0): 6
    got = M.diversity(feats, times=3, rng=ScriptedRng([0, 1, 2], [1, 2, 0]))
    assert got == pytest.approx((5 + 5 + 6) / 3)


def test_diversity_expectation_is_mean_over_all_ordered_pairs():
    # Both index sets are uniform marginally, so E[diversity] = mean over all N^2 pairs.
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(40, 3))
    all_pairs = np.linalg.norm(feats[:, None] - feats[None, :], axis=-1).mean()
    runs = [M.diversity(feats, times=30, rng=s) for s in range(400)]
    assert np.mean(runs) == pytest.approx(all_pairs, rel=0.02)


def test_diversity_needs_more_samples_than_pairs():
    with pytest.raises(MosaError):
        M.diversity(np.zeros((300, 4)), times=300)


def test_multimodality_by_hand():
    feats = np.zeros((2, 3, 2))
    feats[0] = [[0, 0], [3, 4], [0, 1]]
    feats[1] = [[1, 1], [1, 1], [4, 5]]
    # repeat pairs (0, 1) and (2, 0): text 0 -> 5, 1; text 1 -> 0, 5
    got = M.multimodality(feats, times=2, rng=ScriptedRng([0, 2], [1, 0]))
    assert got == pytest.approx((5 + 1 + 0 + 5) / 4)


def test_multimodality_needs_more_repeats_than_pairs():
    with pytest.raises(MosaError):
        M.multimodality(np.zeros((4, 10, 3)), times=10)


def test_diversity_is_reproducible_with_a_seed():
    feats = np.random.default_rng(6).normal(size=(50, 4))
    assert M.diversity(feats, 20, rng=7) == M.diversity(feats, 20, rng=7)


# ---------------------------------------------------------------- confidence interval


def test_mean_ci95():
    mean, half = M.mean_ci95([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert half == pytest.approx(1.96 * np.sqrt(1.25) / 2)  # population std sqrt(1.25), 4 reps
    mean, half = M.mean_ci95([[1.0, 10.0], [3.0, 10.0]])
    np.testing.assert_allclose(mean, [2.0, 10.0])
    np.testing.assert_allclose(half, [1.96 * 1.0 / np.sqrt(2), 0.0])
