"""Scale-autoregressive (SAR) transformer: predicts every token of scale k+1 at once.

The sequence is the concatenation of the K scale blocks of the multi-scale tokenizer (VAR's
next-scale prediction over time). Block 0 is the text start token repeated over the first
scale's positions; block k >= 1 holds the cumulative reconstruction after scales 0..k-1
resampled to scale k (``MultiScaleQuantizer.teacher_forcing_inputs`` / ``next_scale_input``),
projected from the code dim to the model dim. Attention is block-causal: a token sees every
token of its own and earlier scales. Text enters twice: the pooled sentence vector (plus the
motion length) forms the start token, and every block cross-attends to the per-token text
features. A learned null text replaces both for classifier-free guidance.

Variable lengths: each sample has its own latent length ``n`` and scale lengths ``n_k``. Scale
block k is padded to the batch's longest ``n_k`` (``ScaleLayout``); padded keys are masked out
of attention and padded targets (``PAD_TOKEN``) out of the loss.

Sampling feeds one scale per step through a KV cache (``start`` / ``step``); text keys and
values are computed once. A guided decode (classifier-free guidance) runs the unconditional
rows in the same batch: their null text is a single token, so their cross-attention output is
a constant per layer, computed once and kept until the weights change.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mosa.checkpoint import load_model, save_checkpoint
from mosa.errors import MosaError
from mosa.models.int8 import Linear, int8_available
from mosa.models.scale_layout import PAD_TOKEN, ScaleLayout, sinusoid


@dataclass
class SARConfig:
    codebook_size: int = 512  # tokens per scale codebook (the tokenizer's num_codes)
    code_dim: int = 512  # the tokenizer's latent/code dim (input of the scale projection)
    num_scales: int = 10  # K
    text_dim: int = 384  # the text encoder's feature dim
    text_encoder: str = "minilm"  # spec for mosa.models.text.load_text_encoder
    dim: int = 384
    layers: int = 8
    heads: int = 6
    ff: int = 1024
    dropout: float = 0.1
    cond_drop: float = 0.1  # probability of training a sample without text (for CFG)
    head_per_scale: bool = True  # one output head per scale: the tokenizer's codebooks differ
    min_tokens: int = 10  # supported latent lengths (motion frames / the VAE's downsampling)
    max_tokens: int = 49


# --------------------------------------------------------------------------------------------
# transformer


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        assert dim % heads == 0, f"dim {dim} not divisible by heads {heads}"
        self.heads, self.dropout = heads, dropout
        self.qkv = Linear(dim, 3 * dim)
        self.proj = Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, cache: KVCache | None = None
    ) -> torch.Tensor:
        """``x (B, S, D)``; ``mask (B, 1, S, S_total)`` or None (every key visible); ``cache``
        holds the keys/values of earlier scales and gets this call's appended."""
        B, S, D = x.shape
        q, k, v = self.qkv(x).view(B, S, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = cache.append(k, v)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(B, S, D))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q = Linear(dim, dim)
        self.kv = Linear(dim, 2 * dim)
        self.proj = Linear(dim, dim)

    def keys_values(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``text (B, L, D)`` -> keys and values ``(B, H, L, D/H)`` each."""
        B, L, D = text.shape
        k, v = self.kv(text).view(B, L, 2, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return k, v

    def forward(
        self,
        x: torch.Tensor,
        kv: tuple[torch.Tensor, torch.Tensor],
        text_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """``x (B, S, D)`` attends to the text keys/values ``(B, H, L, D/H)``; ``text_mask (B, L)``
        or None (every text token real)."""
        B, S, D = x.shape
        q = self.q(x).view(B, S, self.heads, D // self.heads).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        mask = None if text_mask is None else text_mask[:, None, None, :]  # (B, 1, 1, L)
        y = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(B, S, D))

    def single_key_output(self, text: torch.Tensor) -> torch.Tensor:
        """Output ``(D,)`` for a text of one token ``text (D,)``: softmax over a single key is
        exactly 1, so every query gets that key's value (no dropout: eval only)."""
        _, v = self.keys_values(text.view(1, 1, -1))
        return self.proj(v.transpose(1, 2).reshape(-1))


class Block(nn.Module):
    """Pre-norm block: block-causal self-attention, text cross-attention, MLP."""

    def __init__(self, cfg: SARConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.dim)
        self.attn = SelfAttention(cfg.dim, cfg.heads, cfg.dropout)
        self.ln2 = nn.LayerNorm(cfg.dim)
        self.cross = CrossAttention(cfg.dim, cfg.heads, cfg.dropout)
        self.ln3 = nn.LayerNorm(cfg.dim)
        self.mlp = nn.Sequential(
            Linear(cfg.dim, cfg.ff),
            nn.GELU(),
            Linear(cfg.ff, cfg.dim),
            nn.Dropout(cfg.dropout),
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, mask, text_kv, text_mask, cache=None, null_cross=None):
        """``null_cross (D,)``: rows past the text's batch (``text_kv``) have the one-token null
        text and get this constant cross-attention output (``CrossAttention.single_key_output``)
        instead of attending."""
        x = x + self._drop(self.attn(self.ln1(x), mask, cache))
        if null_cross is None:
            x = x + self._drop(self.cross(self.ln2(x), text_kv, text_mask))
        else:
            B = text_kv[0].shape[0]
            c = x[:B] + self._drop(self.cross(self.ln2(x[:B]), text_kv, text_mask))
            x = torch.cat([c, x[B:] + null_cross])
        if self.training:
            return x + self.mlp(self.ln3(x))
        # eval: the same MLP without calling its (identity) dropout; sampling runs ~200 small
        # ops per scale step, so every skipped call shows
        return x + self.mlp[2](F.gelu(self.mlp[0](self.ln3(x))))

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x) if self.training else x


@dataclass
class Condition:
    """Text condition in model space: ``text (B, L, D)``, ``text_mask (B, L)``, ``start (B, D)``
    (pooled text + length embedding) and the latent lengths ``n (B,)``."""

    text: torch.Tensor
    text_mask: torch.Tensor
    start: torch.Tensor
    n: torch.Tensor

    def cat(self, other: Condition) -> Condition:
        L = max(self.text.shape[1], other.text.shape[1])
        a, b = _pad_text(self, L), _pad_text(other, L)
        return Condition(
            torch.cat([a.text, b.text]),
            torch.cat([a.text_mask, b.text_mask]),
            torch.cat([self.start, other.start]),
            torch.cat([self.n, other.n]),
        )


def _pad_text(c: Condition, L: int) -> Condition:
    extra = L - c.text.shape[1]
    if extra == 0:
        return c
    return Condition(F.pad(c.text, (0, 0, 0, extra)), F.pad(c.text_mask, (0, extra)), c.start, c.n)


class KVCache:
    """Self-attention keys/values of the scales decoded so far, in buffers sized for the whole
    sequence once (appending a scale copies only its own keys/values)."""

    def __init__(self, length: int):
        self.length, self.end = length, 0
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add ``k, v (B, H, S, D/H)``; returns all keys and values so far ``(B, H, end, D/H)``."""
        if self.k is None:
            B, H, _, Dh = k.shape
            self.k = k.new_empty(B, H, self.length, Dh)
            self.v = v.new_empty(B, H, self.length, Dh)
        new = slice(self.end, self.end + k.shape[2])
        self.k[:, :, new], self.v[:, :, new] = k, v
        self.end = new.stop
        return self.k[:, :, : self.end], self.v[:, :, : self.end]


@dataclass
class SARCache:
    """State of a cached decode: the layout, text keys/values, self-attention caches, and what
    is the same at every step (position embeddings ``pos (rows, S, D)``, start tokens ``start
    (rows, D)``). ``guided``: rows ``B..2B-1`` repeat the batch without text (``null_cross``
    holds their per-layer cross-attention output); ``pad``: whether any key is padding."""

    layout: ScaleLayout
    cond: Condition
    text_kv: list[tuple[torch.Tensor, torch.Tensor]]
    layers: list[KVCache]
    pos: torch.Tensor
    start: torch.Tensor
    text_mask: torch.Tensor | None
    pad: bool
    guided: bool = False
    null_cross: list[torch.Tensor] | None = None
    next_scale: int = 0


class SARTransformer(nn.Module):
    """Predicts scale k's tokens from the text and scales 0..k-1 (teacher forcing in one pass)."""

    def __init__(self, config: SARConfig):
        super().__init__()
        self.config = cfg = config
        self.text_proj = nn.Sequential(nn.LayerNorm(cfg.text_dim), Linear(cfg.text_dim, cfg.dim))
        self.start_proj = Linear(cfg.text_dim, cfg.dim)
        self.length_proj = Linear(64, cfg.dim)
        self.null_text = nn.Parameter(torch.randn(cfg.text_dim) * 0.02)
        self.null_pooled = nn.Parameter(torch.randn(cfg.text_dim) * 0.02)
        self.in_proj = Linear(cfg.code_dim, cfg.dim)
        self.scale_embed = nn.Embedding(cfg.num_scales, cfg.dim)
        self.pos_proj = Linear(cfg.dim, cfg.dim, bias=False)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.dim)
        n_heads = cfg.num_scales if cfg.head_per_scale else 1
        self.head_weight = nn.Parameter(torch.zeros(n_heads, cfg.dim, cfg.codebook_size))
        self.head_bias = nn.Parameter(torch.zeros(n_heads, cfg.codebook_size))
        self.apply(_init_weights)
        nn.init.normal_(self.head_weight, std=0.02)
        self._null_cross_key: tuple | None = None  # see _null_cross()
        self._null_cross_out: list[torch.Tensor] = []

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_int8(self, enabled: bool = True) -> SARTransformer:
        """Run the transformer blocks' linear layers with int8 weights in CPU inference (see
        ``Linear``); training and other devices are unaffected. Returns ``self``."""
        if enabled and not int8_available():
            raise MosaError(
                "int8 inference needs PyTorch's fbgemm quantized kernels, which this build lacks",
                "drop --int8 (or install the CPU build: pip install torch==2.13.0)",
            )
        for m in self.blocks.modules():
            if isinstance(m, Linear):
                m.int8 = bool(enabled)
        return self

    # -- conditioning ------------------------------------------------------------------------
    def condition(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        pooled: torch.Tensor,
        n: torch.Tensor,
        drop: torch.Tensor | None = None,
    ) -> Condition:
        """Project the text encoder output; rows where ``drop (B,)`` is True get the null text.

        ``text (B, L, text_dim)``, ``text_mask (B, L)``, ``pooled (B, text_dim)``, ``n (B,)``.
        """
        B = text.shape[0]
        # always through torch.where when drop is given: the null parameters then get
        # (possibly zero) gradients every step, which DistributedDataParallel requires
        if drop is not None:
            d = drop.to(text.device).view(B, 1, 1)
            null_tokens = torch.zeros_like(text)
            null_tokens[:, 0] = self.null_text
            text = torch.where(d, null_tokens, text)
            null_mask = torch.zeros_like(text_mask)
            null_mask[:, 0] = True
            text_mask = torch.where(d[:, :, 0], null_mask, text_mask)
            pooled = torch.where(d[:, :, 0], self.null_pooled.expand_as(pooled), pooled)
        n = n.to(text.device)
        start = self.start_proj(pooled) + self.length_proj(sinusoid(n.float(), 64, 0.01, 3.0))
        return Condition(self.text_proj(text), text_mask.bool(), start, n)

    def null_condition(self, n: torch.Tensor) -> Condition:
        """The unconditional (no text) condition for latent lengths ``n (B,)``."""
        dev = self.null_text.device
        B = n.shape[0]
        text = torch.zeros(B, 1, self.config.text_dim, device=dev)
        mask = torch.ones(B, 1, dtype=torch.bool, device=dev)
        pooled = torch.zeros(B, self.config.text_dim, device=dev)
        return self.condition(text, mask, pooled, n, drop=torch.ones(B, dtype=torch.bool))

    # -- embeddings and heads ----------------------------------------------------------------
    def _positions(self, layout: ScaleLayout, device) -> torch.Tensor:
        """Position + scale embeddings of every block at once: ``(B, S, D)``."""
        # relative position in (0, 1): angular frequencies up to 200 resolve steps of 1/49
        pos = self.pos_proj(sinusoid(layout.frac.to(device), self.config.dim, 0.5, 200.0))
        return pos + self.scale_embed.weight[layout.scale_id.to(device)]

    def _embed_block(
        self, start: torch.Tensor, pos: torch.Tensor, k: int, x: torch.Tensor | None
    ) -> torch.Tensor:
        """Input of block ``k``: ``pos (rows, w_k, D)`` plus, for the first scale, the start
        token ``start (rows, D)``, else ``x (B, >= w_k, code_dim)`` projected (B rows shared
        by every group of B rows when ``rows`` is a multiple, as in a guided decode)."""
        if k == 0:  # VAR's class token: the whole first scale starts from the text
            return start[:, None, :] + pos
        h = self.in_proj(x[:, : pos.shape[1]].to(pos.dtype))
        if h.shape[0] != pos.shape[0]:
            h = h.repeat(pos.shape[0] // h.shape[0], 1, 1)
        return h + pos

    def _logits(self, h: torch.Tensor, layout: ScaleLayout, scales: range) -> torch.Tensor:
        h = self.ln_f(h)
        if self.head_weight.shape[0] == 1:
            return h @ self.head_weight[0] + self.head_bias[0]
        out, start = [], 0
        for k in scales:
            w = layout.widths[k]
            out.append(h[:, start : start + w] @ self.head_weight[k] + self.head_bias[k])
            start += w
        return torch.cat(out, dim=1)

    # -- teacher-forced forward --------------------------------------------------------------
    def forward(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        pooled: torch.Tensor,
        layout: ScaleLayout,
        inputs: list[torch.Tensor],
        drop: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Training entry point: condition on raw text features, then ``teacher_forced``.

        ``text (B, L, text_dim)``, ``text_mask (B, L)``, ``pooled (B, text_dim)``; ``drop (B,)``
        marks samples trained without text (classifier-free guidance). Latent lengths are the
        last scale's lengths. Returns logits ``(B, S, V)``.
        """
        n = layout.lens[:, -1]
        return self.teacher_forced(self.condition(text, text_mask, pooled, n, drop), layout, inputs)

    def teacher_forced(
        self, cond: Condition, layout: ScaleLayout, inputs: list[torch.Tensor]
    ) -> torch.Tensor:
        """Logits of all scales at once: ``(B, S, codebook_size)`` in the padded layout.

        ``inputs``: K-1 tensors ``(B, >= w_k, code_dim)``, the inputs of scales 1..K-1.
        """
        K = layout.num_scales
        assert len(inputs) == K - 1, f"expected {K - 1} scale inputs, got {len(inputs)}"
        pos = self._positions(layout, cond.start.device)
        x = torch.cat(
            [
                self._embed_block(
                    cond.start, pos[:, layout.block(k)], k, None if k == 0 else inputs[k - 1]
                )
                for k in range(K)
            ],
            dim=1,
        )
        mask = layout.attn_mask().to(x.device)
        for blk in self.blocks:
            kv = blk.cross.keys_values(cond.text)
            x = blk(x, mask, kv, cond.text_mask)
        return self._logits(x, layout, range(K))

    # -- cached decoding ----------------------------------------------------------------------
    def _null_cross(self) -> list[torch.Tensor]:
        """Each block's cross-attention output ``(D,)`` for the null text; kept until one of
        the weights it depends on changes (in place or replaced) or ``set_int8`` switches the
        layers computing it."""
        params = [self.null_text, *self.text_proj.parameters()]
        for blk in self.blocks:
            params += [*blk.cross.kv.parameters(), *blk.cross.proj.parameters()]
        modes = tuple((blk.cross.kv.int8, blk.cross.proj.int8) for blk in self.blocks)
        key = (modes, *((p._version, p.data_ptr()) for p in params))
        if self._null_cross_key != key:
            with torch.inference_mode(False), torch.no_grad():  # normal tensors, no graph
                text = self.text_proj(self.null_text)
                self._null_cross_out = [blk.cross.single_key_output(text) for blk in self.blocks]
            self._null_cross_key = key
        return self._null_cross_out

    def start(self, cond: Condition, layout: ScaleLayout, *, guided: bool = False) -> SARCache:
        """Begin a cached decode of ``cond`` (B rows) in ``layout``.

        Text keys/values, position embeddings and start tokens are computed once here.
        ``guided``: also decode the B rows without text (classifier-free guidance) in the same
        batch; ``step`` then returns ``2B`` rows, conditional first. In eval mode the null text's
        cross-attention (one key) is a constant per layer and is not recomputed per step.
        """
        pos = self._positions(layout, cond.start.device)
        null_cross, rows = None, 1
        if guided:
            rows = 2
            null = self.null_condition(cond.n)
            start = torch.cat([cond.start, null.start])
            if self.training:  # attention dropout: run the null text like any other text
                cond = cond.cat(null)
            else:
                null_cross = self._null_cross()
        else:
            start = cond.start
        kv = [blk.cross.keys_values(cond.text) for blk in self.blocks]
        text_mask = None if bool(cond.text_mask.all()) else cond.text_mask
        return SARCache(
            layout.repeat(rows) if rows > 1 else layout,
            cond,
            kv,
            [KVCache(layout.length) for _ in self.blocks],
            pos.repeat(rows, 1, 1) if rows > 1 else pos,
            start,
            text_mask,
            pad=not bool(layout.valid.all()),
            guided=guided,
            null_cross=null_cross,
        )

    def step(self, cache: SARCache, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(rows, w_k, V)`` of the next scale k; ``x (B, w_k, code_dim)`` is its input
        (``next_scale_input``; for a guided cache, B rows shared by both halves, or all 2B
        rows), None for the first scale. Only the new tokens run."""
        k, layout = cache.next_scale, cache.layout
        if k >= layout.num_scales:
            raise RuntimeError(f"all {layout.num_scales} scales were already decoded")
        block = layout.block(k)
        h = self._embed_block(cache.start, cache.pos[:, block], k, x)
        mask = None
        if cache.pad:  # block-causal: new queries see all real keys up to their own scale
            keys = layout.valid[:, None, None, : block.stop]
            mask = keys.expand(-1, 1, h.shape[1], -1).to(h.device)
        null = cache.null_cross or [None] * len(self.blocks)
        for blk, kv, lc, nc in zip(self.blocks, cache.text_kv, cache.layers, null, strict=True):
            h = blk(h, mask, kv, cache.text_mask, lc, nc)
        cache.next_scale = k + 1
        return self._logits(h, layout, range(k, k + 1))


def sar_loss(
    logits: torch.Tensor, layout: ScaleLayout, tokens: list[torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy over every real token of every scale, plus accuracy statistics.

    ``logits (B, S, V)`` from ``forward``; ``tokens``: K tensors ``(B, >= w_k)`` of ground-truth
    tokens, ``PAD_TOKEN`` past each sample.
    """
    target = layout.pack([t.to(logits.device) for t in tokens])
    target = target.masked_fill(~layout.valid.to(target.device), PAD_TOKEN)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=PAD_TOKEN)
    with torch.no_grad():
        real = target != PAD_TOKEN
        hit = (logits.argmax(-1) == target) & real
        last = layout.block(layout.num_scales - 1)
        stats = {
            "acc": float(hit.sum()) / max(int(real.sum()), 1),
            "acc_last": float(hit[:, last].sum()) / max(int(real[:, last].sum()), 1),
        }
    return loss, stats


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------------
# checkpoints


KIND = "sar"


def save_sar(
    path: str | os.PathLike, model: SARTransformer, meta: dict[str, Any] | None = None, **kwargs
) -> Path:
    """Write a SAR checkpoint folder (kind "sar"); ``kwargs`` go to ``save_checkpoint``."""
    meta = {"num_parameters": model.num_parameters(), **(meta or {})}
    return save_checkpoint(path, KIND, model.config, model.state_dict(), meta=meta, **kwargs)


def load_sar(path: str | os.PathLike, device: str | torch.device = "cpu") -> SARTransformer:
    """Load a SAR checkpoint folder in eval mode."""
    return load_model(path, SARTransformer, SARConfig, KIND, device)[0]


def __getattr__(name: str):
    # 0.2: token filtering and drawing moved to mosa.sampling, beside the loop that uses them
    if name in ("filter_logits", "sample_tokens"):
        import importlib

        warnings.warn(f"mosa.models.sar.{name} moved to mosa.sampling", DeprecationWarning, 2)
        return getattr(importlib.import_module("mosa.sampling"), name)
    raise AttributeError(f"module 'mosa.models.sar' has no attribute {name!r}")
