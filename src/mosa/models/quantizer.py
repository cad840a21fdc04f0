"""Vector quantizers for the motion tokenizer.

``MultiScaleQuantizer`` is MoSa's MTPS quantizer (VAR-style next-scale residual quantization over
time): a latent of ``n`` tokens is quantized at ``K`` growing temporal resolutions
``1 = n_0 < n_1 < ... < n_{K-1} = n``. At scale ``k`` the residual is area-downsampled to
``n_k`` tokens, quantized, linearly upsampled back to ``n``, refined by a small learnable
convolution ``phi_k`` and added to the running reconstruction ``f_hat``. The tokens of every
scale are kept, so a generator can predict a whole scale at a time (coarse to fine).

``ResidualQuantizer`` is the plain MoMask-style residual VQ (all layers at full resolution),
kept for the ablation. Both share ``Codebook`` (EMA updates, dead-code restarts).

Variable lengths in one batch: every sample keeps its own latent length ``n_i`` and its own
scale lengths ``scale_lengths(n_i)``. Resampling is a per-sample linear map (a matrix built by
``F.interpolate`` on an identity), zero-padded to the longest sample and applied with one
batched matmul, so padded rows/columns contribute exactly nothing: a batch gives the same
tokens as quantizing each sample alone. Token tensors are padded with ``PAD_TOKEN`` (-1) where
a sample's scale is shorter than the longest one in the batch.

Layout: latents are channels-last, ``(B, n, C)``, with a bool ``mask (B, n)`` (True = valid).
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from mosa.errors import MosaError

PAD_TOKEN = -1
PLAN_CACHE_SIZE = 8  # ScalePlans an eval-mode quantizer keeps (the most recently used)
Lengths = int | Sequence[int] | torch.Tensor


# --------------------------------------------------------------------------------------------
# scale bookkeeping


@functools.lru_cache(maxsize=4096)
def _scale_lengths(n: int, num_scales: int) -> tuple[int, ...]:
    if num_scales == 1:
        return (n,)
    out: list[int] = []
    for k in range(num_scales):
        # geometric growth 1 -> n (like VAR's 1,2,3,4,5,6,8,10,13,16), rounded half up
        target = math.floor(n ** (k / (num_scales - 1)) + 0.5)
        if n >= num_scales:
            lo = out[-1] + 1 if out else 1  # strictly increasing ...
            hi = n - (num_scales - 1 - k)  # ... while leaving room for the remaining scales
            target = min(max(target, lo), hi)
        else:  # too short for K distinct sizes: repeat size 1, then every size up to n
            target = max(1, n - (num_scales - 1 - k))
        out.append(target)
    return tuple(out)


def scale_lengths(n: int, num_scales: int = 10) -> list[int]:
    """Token count of each scale for a latent of ``n`` tokens: starts at 1, ends at ``n``.

    Strictly increasing when ``n >= num_scales``; otherwise ``1, ..., 1, 2, 3, ..., n``.
    """
    n = int(n)
    if n < 1:
        raise MosaError(f"latent length must be >= 1, got {n}", "pass a motion of >= 4 frames")
    if num_scales < 1:
        raise MosaError(f"num_scales must be >= 1, got {num_scales}", "fix the model config")
    return list(_scale_lengths(n, num_scales))


@functools.lru_cache(maxsize=8192)
def _resample_matrix(n_in: int, n_out: int, mode: str) -> torch.Tensor:
    """``(n_out, n_in)`` matrix M with ``M @ x == interpolate(x)`` along time (float64, CPU)."""
    eye = torch.eye(n_in, dtype=torch.float64).unsqueeze(1)  # (n_in, 1, n_in): one impulse each
    if mode == "area":
        out = F.adaptive_avg_pool1d(eye, n_out)
    else:
        out = F.interpolate(eye, size=n_out, mode=mode, align_corners=False)
    return out.squeeze(1).T.contiguous()


def lengths_tensor(n: Lengths, batch: int) -> torch.Tensor:
    """Per-sample latent lengths as a CPU ``LongTensor (B,)`` from an int, list or tensor."""
    if isinstance(n, int):
        return torch.full((batch,), n, dtype=torch.long)
    t = torch.as_tensor(n, dtype=torch.long).flatten().cpu()
    if t.numel() == 1 and batch != 1:
        t = t.expand(batch).clone()
    if t.numel() != batch:
        raise MosaError(f"got {t.numel()} lengths for a batch of {batch}", "pass one per sample")
    return t


class ScalePlan:
    """Resampling matrices and masks of every scale for one batch of latent lengths.

    ``n``: per-sample latent lengths ``(B,)``; ``width`` (>= max n) is the padded latent width.
    ``down[k]``: ``(B|1, m_k, width)``, ``up[k]``: ``(B|1, width, m_k)``, ``token_mask[k]``:
    ``(B, m_k)``, where ``m_k`` is the longest scale-``k`` length in the batch.
    """

    def __init__(
        self,
        n: torch.Tensor,
        num_scales: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        width: int | None = None,
    ):
        self.n = n
        self.num_scales = num_scales
        self.width = int(n.max()) if width is None else int(width)
        if self.width < int(n.max()):
            raise MosaError(f"latent width {self.width} < length {int(n.max())}", "bad lengths")
        per_sample = [scale_lengths(int(v), num_scales) for v in n.tolist()]
        self.lengths = torch.tensor(per_sample, dtype=torch.long).reshape(len(per_sample), -1)
        self.mask = (torch.arange(self.width)[None] < n[:, None]).to(device)
        self.padded = bool((n < self.width).any())  # False: every latent position is real
        uniq = sorted(set(n.tolist()))
        self.down: list[torch.Tensor] = []
        self.up: list[torch.Tensor] = []
        self.token_mask: list[torch.Tensor] = []
        for k in range(num_scales):
            m_k = self.lengths[:, k]
            m_max = int(m_k.max())
            self.token_mask.append((torch.arange(m_max)[None] < m_k[:, None]).to(device))
            if uniq == [self.width]:  # common case (fixed training window): one matrix
                d = _resample_matrix(self.width, m_max, "area")[None]
                u = _resample_matrix(m_max, self.width, "linear")[None]
            else:  # per-sample matrices, zero-padded, grouped by length
                d = torch.zeros(len(n), m_max, self.width, dtype=torch.float64)
                u = torch.zeros(len(n), self.width, m_max, dtype=torch.float64)
                for v in uniq:
                    rows = (n == v).nonzero().flatten()
                    mv = scale_lengths(v, num_scales)[k]
                    d[rows, :mv, :v] = _resample_matrix(v, mv, "area")
                    u[rows, :v, :mv] = _resample_matrix(mv, v, "linear")
            self.down.append(d.to(device=device, dtype=dtype))
            self.up.append(u.to(device=device, dtype=dtype))

    def max_len(self, k: int) -> int:
        """Longest scale-``k`` token count in the batch."""
        return int(self.lengths[:, k].max())


# --------------------------------------------------------------------------------------------
# codebook


def _dist_ready() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class Codebook(nn.Module):
    """``num_codes`` vectors of size ``dim`` updated by EMA k-means, with dead-code restarts.

    Codes are buffers (no gradients). In training mode ``quantize`` updates them from the
    assigned vectors; under ``torch.distributed`` the statistics are summed over ranks and
    restarts are broadcast from rank 0, so every rank keeps the same codebook.
    """

    def __init__(
        self, num_codes: int, dim: int, decay: float = 0.99, restart_threshold: float = 0.1
    ):
        super().__init__()
        self.num_codes, self.dim, self.decay = num_codes, dim, decay
        # a code is dead when its EMA usage is below this fraction of the uniform share
        self.restart_threshold = restart_threshold
        self.register_buffer("embed", torch.randn(num_codes, dim) * 0.01)
        self.register_buffer("embed_avg", self.embed.clone())
        self.register_buffer("cluster_size", torch.ones(num_codes))
        self.register_buffer("initted", torch.zeros((), dtype=torch.bool))
        self.last_restarts = 0

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the closest code for each row of ``x (N, dim)`` -> ``(N,)``."""
        e = self.embed
        d = x.pow(2).sum(1, keepdim=True) - 2 * x @ e.T + e.pow(2).sum(1)[None]
        return d.argmin(1)

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """Code vectors of ``idx (...)`` -> ``(..., dim)``; ``PAD_TOKEN`` gives zeros."""
        valid = idx >= 0
        out = F.embedding(idx.clamp(min=0), self.embed)
        return out * valid.unsqueeze(-1).to(out.dtype)

    def quantize(
        self, x: torch.Tensor, mask: torch.Tensor, update: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize ``x (B, m, dim)``: tokens ``(B, m)`` (``PAD_TOKEN`` where ``mask`` is False)
        and their code vectors ``(B, m, dim)`` taken before this call's EMA update."""
        flat = x[mask]
        if update:
            self._maybe_init(flat)
        idx = torch.full(mask.shape, PAD_TOKEN, dtype=torch.long, device=x.device)
        if flat.shape[0] > 0:
            codes = self.nearest(flat)
            idx[mask] = codes
        q = self.lookup(idx)
        if update and flat.shape[0] > 0:
            self._ema_update(flat, codes)
        return idx, q

    @torch.no_grad()
    def _maybe_init(self, flat: torch.Tensor) -> None:
        # initialise from data (random latents of the first batch) so no code starts dead
        if bool(self.initted) or flat.shape[0] == 0:
            return
        if flat.shape[0] >= self.num_codes:  # distinct latents
            pick = flat[torch.randperm(flat.shape[0], device=flat.device)[: self.num_codes]]
        else:  # too few (coarse scales): jittered copies, far enough apart to never tie
            pick = flat[torch.randint(0, flat.shape[0], (self.num_codes,), device=flat.device)]
            spread = flat.std(0, keepdim=True) if flat.shape[0] > 1 else flat.abs()
            pick = pick + 0.1 * spread.clamp(min=1e-4) * torch.randn_like(pick)
        if _dist_ready():
            dist.broadcast(pick, 0)
        self.embed.copy_(pick)
        self.embed_avg.copy_(pick)
        self.cluster_size.fill_(1.0)
        self.initted.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        flat = flat.float()
        counts = torch.bincount(codes, minlength=self.num_codes).float()
        sums = torch.zeros_like(self.embed_avg).index_add_(0, codes, flat)
        if _dist_ready():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_avg.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        eps = 1e-5
        smoothed = (self.cluster_size + eps) / (total + self.num_codes * eps) * total  # Laplace
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        self._restart_dead(flat, total)

    @torch.no_grad()
    def _restart_dead(self, flat: torch.Tensor, total: torch.Tensor) -> None:
        share = total / self.num_codes
        dead = self.cluster_size < self.restart_threshold * share
        self.last_restarts = int(dead.sum())
        if self.last_restarts == 0:
            return
        # replace dead codes by random latents of the current batch (rank 0's, broadcast)
        pick = flat[torch.randint(0, flat.shape[0], (self.num_codes,), device=flat.device)]
        if _dist_ready():
            dist.broadcast(pick, 0)
        d = dead[:, None]
        self.embed.copy_(torch.where(d, pick, self.embed))
        self.cluster_size.copy_(torch.where(dead, share, self.cluster_size))
        self.embed_avg.copy_(torch.where(d, pick * share, self.embed_avg))


def usage_stats(counts: torch.Tensor) -> dict[str, float]:
    """Utilisation (fraction of codes used) and perplexity of a usage histogram ``(N,)``."""
    total = counts.sum()
    if total <= 0:
        return {"utilisation": 0.0, "perplexity": 0.0}
    p = counts / total
    ent = -(p[p > 0] * p[p > 0].log()).sum()
    return {"utilisation": float((counts > 0).float().mean()), "perplexity": float(ent.exp())}


# --------------------------------------------------------------------------------------------
# MTPS quantizer


class Phi(nn.Module):
    """Refinement after upsampling: ``phi(x) = (1 - a) x + a conv(x)`` (masked ``(B, n, C)``).

    The conv starts as the identity, so an untrained quantizer is plain multi-scale RVQ.
    """

    def __init__(self, dim: int, kernel: int = 3, ratio: float = 0.5):
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.ratio = nn.Parameter(torch.tensor(float(ratio)))
        with torch.no_grad():  # start as the identity: phi learns a refinement from there
            self.conv.weight.zero_()
            self.conv.weight[:, :, kernel // 2] = torch.eye(dim)
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``mask`` None: every position is real (nothing to zero)."""
        m = None if mask is None else mask.unsqueeze(-1).to(x.dtype)
        if m is not None:
            x = x * m
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)
        out = (1 - self.ratio) * x + self.ratio * y
        return out if m is None else out * m


@dataclass
class QuantizerOutput:
    f_hat: torch.Tensor  # (B, n, C) with a straight-through gradient to the input latent
    tokens: list[torch.Tensor]  # K x (B, n_k) long, PAD_TOKEN where padded
    commit_loss: torch.Tensor  # scalar
    stats: dict[str, float]


def _masked_mse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(a.dtype)
    return ((a - b).pow(2) * m).sum() / (m.sum() * a.shape[-1]).clamp(min=1)


class MultiScaleQuantizer(nn.Module):
    """MTPS: VAR-style multi-scale residual quantization over time with learnable refinement.

    Codebooks are per scale by default (``shared_codebook=False``): the residual shrinks by
    orders of magnitude from the 1-token scale to the full-resolution one, so one shared set
    of codes would spend most entries on one regime; MoSa's ablation also favours scale-wise
    codebooks. ``num_phi`` refinement convs are shared across scales by relative depth
    (``num_phi == num_scales`` gives one per scale).
    """

    def __init__(
        self,
        dim: int,
        num_codes: int = 512,
        num_scales: int = 10,
        *,
        shared_codebook: bool = False,
        num_phi: int = 4,
        phi_kernel: int = 3,
        phi_ratio: float = 0.5,
        decay: float = 0.99,
        restart_threshold: float = 0.1,
    ):
        super().__init__()
        self.dim, self.num_codes, self.num_scales = dim, num_codes, num_scales
        n_books = 1 if shared_codebook else num_scales
        self.codebooks = nn.ModuleList(
            Codebook(num_codes, dim, decay, restart_threshold) for _ in range(n_books)
        )
        self.phis = nn.ModuleList(Phi(dim, phi_kernel, phi_ratio) for _ in range(max(num_phi, 1)))
        # usage since the last reset_usage(), per scale (not saved)
        self.register_buffer("usage", torch.zeros(num_scales, num_codes), persistent=False)
        self._plans: OrderedDict[tuple, ScalePlan] = OrderedDict()  # see plan()

    # -- small helpers ---------------------------------------------------------------------
    def codebook(self, k: int) -> Codebook:
        return self.codebooks[k if len(self.codebooks) > 1 else 0]

    def phi(self, k: int) -> Phi:
        j = 0 if self.num_scales == 1 else round(k / (self.num_scales - 1) * (len(self.phis) - 1))
        return self.phis[j]

    def scale_lengths(self, n: int) -> list[int]:
        return scale_lengths(n, self.num_scales)

    def plan(self, n: Lengths, batch: int, device=None, width: int | None = None) -> ScalePlan:
        """The ``ScalePlan`` of latent lengths ``n``. In eval mode the last few plans are kept:
        generation asks for the same one at every scale (``add_scale``/``next_scale_input``),
        and building it costs more than the resampling it plans."""
        device = torch.device(device if device is not None else self.usage.device)
        lengths = lengths_tensor(n, batch).clone()  # the plan must not alias the caller's tensor
        if self.training:  # training batches rarely repeat their lengths
            return ScalePlan(lengths, self.num_scales, device, width=width)
        key = (tuple(lengths.tolist()), str(device), width)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = ScalePlan(lengths, self.num_scales, device, width=width)
            if len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    def embed_tokens(self, tokens: torch.Tensor, k: int) -> torch.Tensor:
        """Code vectors of scale-``k`` tokens ``(B, n_k)`` -> ``(B, n_k, C)`` (zeros at PAD)."""
        return self.codebook(k).lookup(tokens)

    def reset_usage(self) -> None:
        self.usage.zero_()

    def codebook_stats(self) -> list[dict[str, float]]:
        """Per-scale utilisation and perplexity of the codes used since ``reset_usage()``."""
        return [{"scale": k, **usage_stats(self.usage[k])} for k in range(self.num_scales)]

    # -- core --------------------------------------------------------------------------------
    def _step(self, tokens: torch.Tensor, k: int, plan: ScalePlan) -> torch.Tensor:
        """Scale ``k``'s contribution to ``f_hat``: lookup, upsample to ``n``, refine."""
        return self._refine(self.embed_tokens(tokens[:, : plan.max_len(k)], k), k, plan)

    def _refine(self, q: torch.Tensor, k: int, plan: ScalePlan) -> torch.Tensor:
        up = torch.matmul(plan.up[k], q)  # (B, n_k, C) -> (B, width, C)
        return self.phi(k)(up, plan.mask if plan.padded else None)

    def _run(self, z: torch.Tensor, mask: torch.Tensor, update: bool) -> QuantizerOutput:
        plan = self.plan(mask.sum(1).cpu(), z.shape[0], z.device, width=z.shape[1])
        z = z.float() * plan.mask.unsqueeze(-1)
        z_d = z.detach()
        residual = z_d.clone()
        f_hat = torch.zeros_like(z)
        tokens, stats = [], {}
        for k in range(self.num_scales):
            book = self.codebook(k)
            down = torch.matmul(plan.down[k], residual)  # (B, n_k, C)
            idx, q = book.quantize(down, plan.token_mask[k], update)
            with torch.no_grad():
                counts = torch.bincount(idx[idx >= 0], minlength=self.num_codes).float()
                self.usage[k] += counts
            stats[f"ppl_{k}"] = usage_stats(counts)["perplexity"]
            if update:
                stats[f"restarts_{k}"] = float(book.last_restarts)
            step = self._refine(q, k, plan)
            f_hat = f_hat + step
            residual = residual - step.detach()
            tokens.append(idx)
        commit = _masked_mse(z, f_hat.detach(), plan.mask)
        # straight-through: value f_hat, identity gradient to z; phi gets the decoder's gradient
        out = f_hat + (z - z_d)
        return QuantizerOutput(out, tokens, commit, stats)

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> QuantizerOutput:
        """Quantize ``z (B, n, C)`` with prefix ``mask (B, n)``; updates codes when training."""
        with torch.autocast(z.device.type, enabled=False):  # distances need full precision
            return self._run(z, mask, update=self.training)

    @torch.no_grad()
    def encode(self, z: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Tokens of every scale: K LongTensors ``(B, n_k)`` (``PAD_TOKEN`` past each sample)."""
        with torch.autocast(z.device.type, enabled=False):
            return self._run(z, mask, update=False).tokens

    def add_scale(
        self, f_hat: torch.Tensor | None, tokens: torch.Tensor, k: int, n: Lengths
    ) -> torch.Tensor:
        """``f_hat (B, n_max, C)`` plus scale ``k``'s contribution (None = start from zeros).

        With ``next_scale_input`` this is the generator's incremental decoding loop.
        """
        plan = self.plan(n, tokens.shape[0], tokens.device)
        step = self._step(tokens, k, plan)
        return step if f_hat is None else f_hat[:, : plan.width] + step

    def decode(
        self, tokens: Sequence[torch.Tensor], n: Lengths, width: int | None = None
    ) -> torch.Tensor:
        """``f_hat (B, width or n_max, C)`` from the first ``len(tokens)`` scales.

        Fewer scales give a coarser reconstruction (the coarse-to-fine preview).
        """
        if not 1 <= len(tokens) <= self.num_scales:
            raise MosaError(
                f"got {len(tokens)} token scales, the quantizer has {self.num_scales}",
                "pass between 1 and num_scales token tensors",
            )
        plan = self.plan(n, tokens[0].shape[0], tokens[0].device, width)
        f_hat = torch.zeros(len(plan.n), plan.width, self.dim, device=tokens[0].device)
        for k, tok in enumerate(tokens):
            f_hat = f_hat + self._step(tok, k, plan)
        return f_hat

    def next_scale_input(self, f_hat: torch.Tensor, k: int, n: Lengths) -> torch.Tensor:
        """Cumulative ``f_hat (B, n, C)`` after scales ``0..k`` resampled to scale ``k+1``.

        Returns ``(B, n_{k+1}, C)`` (zeros past each sample's length): the generator's input
        for predicting the tokens of scale ``k + 1``.
        """
        if not 0 <= k < self.num_scales - 1:
            raise MosaError(f"no scale after {k}", f"k must be in 0..{self.num_scales - 2}")
        plan = self.plan(n, f_hat.shape[0], f_hat.device, width=f_hat.shape[1])
        return torch.matmul(plan.down[k + 1], f_hat.float())

    def teacher_forcing_inputs(
        self, tokens: Sequence[torch.Tensor], n: Lengths
    ) -> list[torch.Tensor]:
        """Generator inputs for scales ``1..K-1`` from ground-truth tokens.

        Returns K-1 tensors ``(B, n_k, C)``: entry ``k-1`` is ``next_scale_input`` of the
        reconstruction from scales ``0..k-1``. (Scale 0 is predicted from a start token.)
        """
        plan = self.plan(n, tokens[0].shape[0], tokens[0].device)
        f_hat = torch.zeros(len(plan.n), plan.width, self.dim, device=tokens[0].device)
        inputs = []
        for k in range(self.num_scales - 1):
            f_hat = f_hat + self._step(tokens[k], k, plan)
            inputs.append(torch.matmul(plan.down[k + 1], f_hat))
        return inputs


# --------------------------------------------------------------------------------------------
# plain residual VQ (ablation baseline)


class ResidualQuantizer(nn.Module):
    """MoMask-style residual VQ: ``num_layers`` codebooks, all at the latent's full resolution.

    Same interface as ``MultiScaleQuantizer`` (``encode``/``decode``/``forward``/stats), where a
    "scale" is a residual layer of ``n`` tokens.
    """

    def __init__(
        self,
        dim: int,
        num_codes: int = 512,
        num_layers: int = 6,
        *,
        decay: float = 0.99,
        restart_threshold: float = 0.1,
    ):
        super().__init__()
        self.dim, self.num_codes, self.num_scales = dim, num_codes, num_layers
        self.codebooks = nn.ModuleList(
            Codebook(num_codes, dim, decay, restart_threshold) for _ in range(num_layers)
        )
        self.register_buffer("usage", torch.zeros(num_layers, num_codes), persistent=False)

    def scale_lengths(self, n: int) -> list[int]:
        return [int(n)] * self.num_scales

    def reset_usage(self) -> None:
        self.usage.zero_()

    def codebook_stats(self) -> list[dict[str, float]]:
        return [{"scale": k, **usage_stats(self.usage[k])} for k in range(self.num_scales)]

    def _run(self, z: torch.Tensor, mask: torch.Tensor, update: bool) -> QuantizerOutput:
        z = z.float() * mask.unsqueeze(-1)
        z_d = z.detach()
        residual = z_d.clone()
        f_hat = torch.zeros_like(z_d)
        tokens, stats = [], {}
        for k, book in enumerate(self.codebooks):
            idx, q = book.quantize(residual, mask, update)
            with torch.no_grad():
                counts = torch.bincount(idx[idx >= 0], minlength=self.num_codes).float()
                self.usage[k] += counts
            stats[f"ppl_{k}"] = usage_stats(counts)["perplexity"]
            f_hat = f_hat + q
            residual = residual - q
            tokens.append(idx)
        commit = _masked_mse(z, f_hat, mask)
        return QuantizerOutput(z + (f_hat - z).detach(), tokens, commit, stats)

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> QuantizerOutput:
        with torch.autocast(z.device.type, enabled=False):
            return self._run(z, mask, update=self.training)

    @torch.no_grad()
    def encode(self, z: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        with torch.autocast(z.device.type, enabled=False):
            return self._run(z, mask, update=False).tokens

    def decode(self, tokens: Sequence[torch.Tensor], n: Lengths | None = None) -> torch.Tensor:
        out = torch.zeros(*tokens[0].shape, self.dim, device=tokens[0].device)
        for k, tok in enumerate(tokens):
            out = out + self.codebooks[k].lookup(tok)
        return out
