"""The generation loop: K scales of tokens, one transformer call per scale.

``generate_tokens`` runs the SAR transformer on the new scale only (KV cache), applies
classifier-free guidance, filters and samples the logits with one ``torch.Generator`` per
sample, and lets a ``TokenStrategy`` decide the final tokens: plain sampling keeps the draws;
editing and sequences force the tokens of a kept region (``ForcedTokens``). The tokenizer's
quantizer turns the tokens into the next scale's input.

Everything that samples tokens (``Pipeline``, editing, sequences, the server, the benchmarks)
goes through this one loop; a new way of choosing tokens is a new ``TokenStrategy``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import numpy as np
import torch

from mosa.errors import MosaError
from mosa.models.quantizer import PAD_TOKEN, MultiScaleQuantizer
from mosa.models.sar import Condition, SARTransformer, ScaleLayout

OnScale = Callable[[int, list[torch.Tensor]], None]


# --------------------------------------------------------------------------------------------
# token strategies (the editing hook)


class TokenStrategy:
    """Decides the tokens of each scale. The base class keeps the sampled tokens.

    ``begin(rows, layout)`` is called before each batch with the indices (into the whole
    ``generate`` call's list of motions) of the batch's rows; ``apply(k, logits, sampled)``
    returns the tokens ``(B, w_k)`` of scale ``k`` given the guided logits ``(B, w_k, V)`` and
    the sampled tokens ``(B, w_k)``. Padded positions are reset to ``PAD_TOKEN`` afterwards.
    """

    def begin(self, rows: list[int], layout: ScaleLayout) -> None:
        pass

    def apply(self, k: int, logits: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
        return sampled


class ForcedTokens(TokenStrategy):
    """Force given tokens where a mask is True, sample elsewhere (in-betweening, continuation,
    span regeneration all reduce to this).

    ``tokens[k]``: ``(N, >= w_k)`` LongTensor and ``masks[k]``: ``(N, >= w_k)`` bool, for the N
    motions of the ``generate`` call, one pair per scale.
    """

    def __init__(self, tokens: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]):
        if len(tokens) != len(masks):
            raise MosaError(
                f"{len(tokens)} token scales but {len(masks)} masks", "pass one per scale"
            )
        self.tokens, self.masks = list(tokens), list(masks)
        self._rows: list[int] = []

    def begin(self, rows: list[int], layout: ScaleLayout) -> None:
        if len(self.tokens) != layout.num_scales:
            raise MosaError(
                f"forced tokens have {len(self.tokens)} scales, the model {layout.num_scales}",
                "encode the kept motion with the same tokenizer",
            )
        self._rows = rows

    def apply(self, k: int, logits: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
        w = sampled.shape[1]
        rows = torch.as_tensor(self._rows, dtype=torch.long)
        tok = _fit(self.tokens[k][rows], w, PAD_TOKEN).to(sampled.device)
        mask = _fit(self.masks[k][rows].bool(), w, False).to(sampled.device)
        return torch.where(mask & (tok >= 0), tok, sampled)


def _fit(t: torch.Tensor, w: int, fill) -> torch.Tensor:
    """Crop or pad ``(B, n)`` to ``(B, w)``."""
    if t.shape[1] >= w:
        return t[:, :w]
    return torch.cat([t, t.new_full((t.shape[0], w - t.shape[1]), fill)], dim=1)


# --------------------------------------------------------------------------------------------
# the loop over scales


@torch.no_grad()
def generate_tokens(
    model: SARTransformer,
    quantizer: MultiScaleQuantizer,
    cond: Condition,
    *,
    cfg: float | Sequence[float] = 1.0,
    temperature: float | Sequence[float] = 1.0,
    top_k: int | None | Sequence[int | None] = None,
    top_p: float | None | Sequence[float | None] = None,
    generators: Sequence[torch.Generator] | None = None,
    strategy: TokenStrategy | None = None,
    rows: list[int] | None = None,
    on_scale: OnScale | None = None,
    guidance: bool | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Sample the K scales of tokens for ``cond`` (B samples with latent lengths ``cond.n``).

    Exactly K transformer calls, each on the new scale only. ``guidance`` (default: some
    ``cfg != 1``) runs the conditional and unconditional passes as one doubled batch and mixes
    the logits as ``u + cfg * (c - u)``. ``temperature <= 0`` takes the argmax. The sampling
    options take one value for all samples or one per sample. Returns the tokens (K tensors
    ``(B, w_k)``, ``PAD_TOKEN`` past each sample) and the latent ``f_hat (B, n_max, C)`` for
    the tokenizer's decoder.
    """
    B = cond.start.shape[0]
    n = cond.n.cpu()
    K = model.config.num_scales
    layout = ScaleLayout(torch.tensor([quantizer.scale_lengths(int(v)) for v in n]))
    cfgs = broadcast(cfg, B, "cfg", "samples")
    guided = any(c != 1.0 for c in cfgs) if guidance is None else guidance
    mix = _cfg_mix(cfgs, cond.start.device)
    samplers = _sampling_groups(temperature, top_k, top_p, B)
    cache = model.start(cond, layout, guided=guided)
    strategy = strategy or TokenStrategy()
    strategy.begin(list(range(B)) if rows is None else rows, layout)
    if generators is None:
        generators = [torch.Generator().manual_seed(random.randrange(2**31)) for _ in range(B)]
    generators = list(generators)
    tokens: list[torch.Tensor] = []
    f_hat, x = None, None
    for k in range(K):
        logits = model.step(cache, x).float()
        if guided:
            logits = mix(*logits.chunk(2))
        valid = layout.valid[:, layout.block(k)]
        sampled = _sample(logits, valid, generators, samplers)
        tok = strategy.apply(k, logits, sampled).long()
        tok = tok.masked_fill(~valid.to(tok.device), PAD_TOKEN)
        tokens.append(tok)
        f_hat = quantizer.add_scale(f_hat, tok, k, n)
        if on_scale is not None:
            on_scale(k, tokens)
        if k < K - 1:
            x = quantizer.next_scale_input(f_hat, k, n)  # shared by both halves when guided
    return tokens, f_hat


def _cfg_mix(cfgs: list[float], device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Guidance ``(c, u) -> u + cfg * (c - u)`` for ``(B, w, V)`` logits; with one scale per
    sample, rows with ``cfg == 1`` keep ``c`` exactly (as they would unguided)."""
    if len(set(cfgs)) <= 1:
        scale = float(cfgs[0]) if cfgs else 1.0
        return lambda c, u: u + scale * (c - u)
    w = torch.tensor(cfgs, dtype=torch.float32, device=device).view(-1, 1, 1)
    return lambda c, u: torch.where(w == 1.0, c, u + w * (c - u))


def _sampling_groups(temperature, top_k, top_p, B: int) -> dict[tuple, list[int]]:
    """Rows grouped by their ``(temperature, top_k, top_p)``: one filtering call per group."""
    groups: dict[tuple, list[int]] = {}
    opts = zip(
        broadcast(temperature, B, "temperature", "samples"),
        broadcast(top_k, B, "top_k", "samples"),
        broadcast(top_p, B, "top_p", "samples"),
        strict=True,
    )
    for b, key in enumerate(opts):
        groups.setdefault(key, []).append(b)
    return groups


def _sample(
    logits: torch.Tensor,
    valid: torch.Tensor,
    generators: list[torch.Generator],
    groups: dict[tuple, list[int]],
) -> torch.Tensor:
    """Filter and sample ``(B, w, V)`` logits, each row with its own options and generator."""
    if len(groups) == 1:
        [((temperature, top_k, top_p), _)] = groups.items()
        filtered = filter_logits(logits, temperature, top_k, top_p)
        return sample_tokens(filtered, generators, valid, greedy=temperature <= 0)
    out = torch.empty(logits.shape[:2], dtype=torch.long, device=logits.device)
    for (temperature, top_k, top_p), rows in groups.items():
        idx = torch.as_tensor(rows, device=logits.device)
        filtered = filter_logits(logits[idx], temperature, top_k, top_p)
        gens = [generators[b] for b in rows]
        out[idx] = sample_tokens(filtered, gens, valid[rows], greedy=temperature <= 0)
    return out


def broadcast(value, count: int, name: str, items: str = "prompts") -> list:
    """``value`` once per item: a single value (or None) repeated ``count`` times, or a
    sequence (list, tuple, tensor, array) that must hold exactly ``count`` values."""
    if isinstance(value, torch.Tensor | np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, int | float | np.integer | np.floating):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise MosaError(
            f"got {len(values)} {name} values for {count} {items}",
            f"give one {name} value, or one per {items.rstrip('s')}",
        )
    return values


# --------------------------------------------------------------------------------------------
# filtering and drawing tokens


def filter_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Temperature, top-k and nucleus (top-p) filtering of ``(..., V)`` logits (-inf = removed)."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / max(temperature, 1e-6)
    V = logits.shape[-1]
    if top_k is not None and 0 < top_k < V:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        # drop a token once the mass before it already reaches top_p (the top one always stays)
        drop_sorted = (probs.cumsum(-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_tokens(
    logits: torch.Tensor,
    generators: list[torch.Generator],
    valid: torch.Tensor,
    greedy: bool = False,
) -> torch.Tensor:
    """Draw one token per position from filtered ``logits (B, w, V)``.

    Sample b uses only ``generators[b]`` and draws exactly ``valid[b].sum()`` uniforms, so its
    tokens do not depend on the rest of the batch. Padded positions get ``PAD_TOKEN``.
    """
    B, w, V = logits.shape
    valid = valid.to(logits.device)
    if greedy:
        return logits.argmax(-1).masked_fill(~valid, PAD_TOKEN)
    # per-sample uniforms from per-sample generators, then one batched inverse-CDF lookup
    u = torch.zeros(B, w, device=logits.device)
    for b in range(B):
        n = int(valid[b].sum())
        g = generators[b]
        u[b, :n] = torch.rand(n, generator=g, device=g.device).to(logits.device)
    cdf = logits.softmax(-1).cumsum(-1)
    idx = torch.searchsorted(cdf, (u * cdf[..., -1]).unsqueeze(-1), right=True)
    return idx.squeeze(-1).clamp_(max=V - 1).masked_fill(~valid, PAD_TOKEN)
