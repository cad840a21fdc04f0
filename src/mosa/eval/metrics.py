"""The T2M text-to-motion metrics (Guo et al. 2022), in numpy float64.

Every function takes embeddings from a text-motion evaluator (``(N, D)`` arrays) and follows the
definitions of the official T2M / MoMask evaluation code:

- FID: Frechet distance between Gaussians fitted to two embedding sets.
- R-Precision: in pools of 32 matched (text, motion) pairs, the fraction of texts whose own
  motion is among the k nearest (Euclidean) of the 32 motions; MM-Dist is the mean distance of
  the matched pairs of those pools.
- Diversity: mean distance between ``times`` random pairs of motions.
- MultiModality: the same, between motions generated for the same text.
- Each metric is reported as mean +- 1.96 * std / sqrt(replications) over replications.
"""

from __future__ import annotations

import numpy as np

from mosa.errors import MosaError

RngLike = np.random.Generator | int | None


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise MosaError(f"{name} must be a (N, D) array, got shape {x.shape}")
    return x


def _rng(rng: RngLike) -> np.random.Generator:
    # Anything with a numpy-like ``choice`` passes through (tests script the draws).
    return rng if hasattr(rng, "choice") else np.random.default_rng(rng)


def _psd_eigvals(w: np.ndarray) -> np.ndarray:
    # Eigenvalues of a PSD matrix: round-off below the matrix_rank tolerance is really 0, and
    # left alone its square root would add up to a visible error over many null directions.
    tol = max(w.max(initial=0.0), 0.0) * len(w) * np.finfo(np.float64).eps
    return np.where(w > tol, w, 0.0)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(_psd_eigvals(w))) @ v.T


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """Frechet distance between N(mu1, s1) and N(mu2, s2).

    d^2 = ||mu1 - mu2||^2 + Tr(s1 + s2 - 2 (s1 s2)^(1/2)).

    Tr((s1 s2)^(1/2)) is computed as Tr((s1^(1/2) s2 s1^(1/2))^(1/2)): the two matrices are
    similar, and the second is symmetric PSD, so its square root comes from an eigen-
    decomposition that stays stable when the covariances are singular (fewer samples than
    dimensions), where the reference code needs an epsilon fallback around scipy's sqrtm.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    s1, s2 = np.atleast_2d(np.asarray(s1, np.float64)), np.atleast_2d(np.asarray(s2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise MosaError(
            f"Frechet distance needs matching shapes, got means {mu1.shape}, {mu2.shape} "
            f"and covariances {s1.shape}, {s2.shape}"
        )
    r1 = _psd_sqrt(s1)
    cross = r1 @ s2 @ r1
    tr_covmean = np.sqrt(_psd_eigvals(np.linalg.eigvalsh((cross + cross.T) / 2))).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``feats`` ``(N, D)``."""
    feats = _as_2d(feats, "features")
    if len(feats) < 2:
        raise MosaError(f"need at least 2 samples for a covariance, got {len(feats)}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """FID between two embedding sets ``(N_a, D)`` and ``(N_b, D)``."""
    return frechet_distance(*gaussian_stats(feats_a), *gaussian_stats(feats_b))


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances ``(N_a, N_b)`` between the rows of ``a`` and ``b``."""
    a, b = _as_2d(a, "a"), _as_2d(b, "b")
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def r_precision(
    text_emb: np.ndarray, motion_emb: np.ndarray, top_k: int = 3, pool: int = 32
) -> dict[str, float]:
    """R-Precision top-1..top-k and MM-Dist over consecutive pools of ``pool`` matched pairs.

    Row i of ``text_emb`` ``(N, D)`` describes row i of ``motion_emb`` ``(N, D)``. The rows are
    cut into ``N // pool`` pools in order (shuffle beforehand; a last incomplete pool is
    dropped, as the protocol's ``drop_last`` loader does). Within a pool, each text ranks the
    pool's motions by distance; it scores top-k when fewer than k motions are strictly closer
    than its own. Returns ``{"top1": ..., "top<k>": ..., "mm_dist": ...}`` averaged over the
    pooled pairs.
    """
    text_emb, motion_emb = _as_2d(text_emb, "text_emb"), _as_2d(motion_emb, "motion_emb")
    if text_emb.shape != motion_emb.shape:
        raise MosaError(
            f"text and motion embeddings differ: {text_emb.shape} vs {motion_emb.shape}"
        )
    n_pools = len(text_emb) // pool
    if n_pools == 0:
        raise MosaError(
            f"R-Precision needs at least {pool} pairs, got {len(text_emb)}",
            "evaluate on a larger split",
        )
    hits = np.zeros(top_k)
    matched = 0.0
    for p in range(n_pools):
        sl = slice(p * pool, (p + 1) * pool)
        dist = pairwise_distances(text_emb[sl], motion_emb[sl])
        own = np.diag(dist)
        rank = (dist < own[:, None]).sum(axis=1)  # motions strictly closer than the right one
        hits += [(rank < k).sum() for k in range(1, top_k + 1)]
        matched += own.sum()
    n = n_pools * pool
    out = {f"top{k}": float(hits[k - 1] / n) for k in range(1, top_k + 1)}
    out["mm_dist"] = float(matched / n)
    return out


def diversity(feats: np.ndarray, times: int = 300, rng: RngLike = None) -> float:
    """Mean distance between ``times`` random pairs of rows of ``feats`` ``(N, D)``.

    As in the protocol, two index sets of size ``times`` are drawn without replacement (each
    on its own) and paired in order; it needs ``N > times``.
    """
    feats = _as_2d(feats, "features")
    if len(feats) <= times:
        raise MosaError(
            f"Diversity with {times} pairs needs more than {times} samples, got {len(feats)}",
            "use fewer pairs (times) or more samples",
        )
    rng = _rng(rng)
    first = rng.choice(len(feats), times, replace=False)
    second = rng.choice(len(feats), times, replace=False)
    return float(np.linalg.norm(feats[first] - feats[second], axis=1).mean())


def multimodality(feats: np.ndarray, times: int = 10, rng: RngLike = None) -> float:
    """Mean distance between motions generated for the same text.

    ``feats`` is ``(N_texts, R_repeats, D)``. As in the protocol, two index sets of size
    ``times`` are drawn over the repeats (shared by all texts) and paired in order; the result
    is the mean over texts and pairs. Needs ``R > times``.
    """
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 3:
        raise MosaError(f"MultiModality needs (N_texts, R_repeats, D) features, got {feats.shape}")
    if feats.shape[1] <= times:
        raise MosaError(
            f"MultiModality with {times} pairs needs more than {times} repeats per text, "
            f"got {feats.shape[1]}",
            "generate more repeats per text or use fewer pairs",
        )
    rng = _rng(rng)
    first = rng.choice(feats.shape[1], times, replace=False)
    second = rng.choice(feats.shape[1], times, replace=False)
    return float(np.linalg.norm(feats[:, first] - feats[:, second], axis=2).mean())


def mean_ci95(values) -> tuple:
    """``(mean, half_width)`` over replications (axis 0), as the protocol reports them.

    half_width = 1.96 * std / sqrt(replications), with the population std (ddof=0) of the
    reference code. Scalars come back for 1-d input, arrays for ``(reps, k)`` input.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 0 or len(v) == 0:
        raise MosaError("mean_ci95 needs at least one replication")
    mean = v.mean(axis=0)
    half = 1.96 * v.std(axis=0) / np.sqrt(len(v))
    if v.ndim == 1:
        return float(mean), float(half)
    return mean, half
