"""A MoMask-shaped baseline timed against mosa's pipeline in the same run.

MoMask (Guo et al., CVPR 2024) generates with two transformers over a residual VQ tokenizer:
a masked transformer predicts the base-layer tokens in 10 confidence-ordered unmasking
iterations (cosine schedule), then a residual transformer predicts the 5 further quantizer
layers one pass each; both use classifier-free guidance and see the text as one prepended
condition token. Every pass runs over the full token sequence (bidirectional, no KV cache).

This script builds that procedure at MoMask's sizes (384-d, 8 layers, 6 heads, ff 1024,
codebook 512 x 512-d, 6 quantizer layers, conv decoder of width 512) with random weights from
mosa's parts (the same MiniLM text encoder, ``CAQVAE`` with the ``rvq`` quantizer and ``conv``
decoder, the same joint recovery), and times it next to ``mosa.bench`` at the same transformer
size. Conditional and unconditional passes run as one doubled batch in both, as in mosa; both
run under ``torch.inference_mode`` with fused attention (the baseline's encoder layers take
PyTorch's fused inference path), no attention mask where nothing is padded, and the same
threads. The two pipelines' runs are interleaved (A B, B A, ...), so load changes on a shared
machine hit both alike; medians are reported.

    python benchmarks/momask_baseline.py --batch 1 --frames 196 --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from mosa.bench import (
    count,
    environment,
    pipeline_run,
    prompts_for,
    random_pipeline,
    summarize,
    sync,
    time_interleaved,
)
from mosa.generate import _joints
from mosa.models.sar import filter_logits
from mosa.models.text import load_text_encoder
from mosa.models.vae import CAQVAE, VAEConfig


def sinusoidal_positions(n: int, dim: int, device) -> torch.Tensor:
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    freqs = torch.exp(torch.arange(0, dim, 2, device=device).float() * (-math.log(1e4) / dim))
    out = torch.zeros(n, dim, device=device)
    out[:, 0::2], out[:, 1::2] = torch.sin(pos * freqs), torch.cos(pos * freqs)
    return out


class TokenTransformer(nn.Module):
    """Bidirectional encoder over ``[text token, motion tokens]`` (MoMask's backbone)."""

    def __init__(self, text_dim: int, dim: int, layers: int, heads: int, ff: int):
        super().__init__()
        self.dim = dim
        self.cond_proj = nn.Linear(text_dim, dim)
        self.null_cond = nn.Parameter(torch.zeros(dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, ff, dropout=0.2, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def run(self, x: torch.Tensor, pooled: torch.Tensor, pad: torch.Tensor, guided: bool):
        """``x (B, n, D)`` embedded tokens -> hidden ``(B', n, D)`` (B' = 2B when guided)."""
        cond = self.cond_proj(pooled)
        if guided:  # conditional rows, then unconditional rows (null condition token)
            x = torch.cat([x, x])
            cond = torch.cat([cond, self.null_cond.expand_as(cond)])
            pad = torch.cat([pad, pad])
        x = x + sinusoidal_positions(x.shape[1], self.dim, x.device)
        seq = torch.cat([cond[:, None], x], dim=1)
        key_pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)
        key_pad = key_pad if bool(key_pad.any()) else None  # nothing padded: no mask (as mosa)
        return self.encoder(seq, src_key_padding_mask=key_pad)[:, 1:]


def guide(logits: torch.Tensor, scale: float) -> torch.Tensor:
    c, u = logits.chunk(2)
    return u + scale * (c - u)


class MaskedTransformer(nn.Module):
    """Base-layer tokens by iterative unmasking."""

    def __init__(
        self,
        text_dim: int,
        codebook: int,
        code_dim: int,
        dim: int,
        layers: int,
        heads: int,
        ff: int,
    ):
        super().__init__()
        self.codebook, self.mask_id = codebook, codebook
        self.token_emb = nn.Embedding(codebook + 2, code_dim)  # + mask + pad
        self.in_proj = nn.Linear(code_dim, dim)
        self.body = TokenTransformer(text_dim, dim, layers, heads, ff)
        self.out = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim), nn.Linear(dim, codebook)
        )

    @torch.no_grad()
    def generate(self, pooled, n: int, steps: int = 10, cfg: float = 4.0, gen=None):
        B, dev = pooled.shape[0], pooled.device
        pad = torch.zeros(B, n, dtype=torch.bool, device=dev)
        ids = torch.full((B, n), self.mask_id, device=dev)
        scores = torch.zeros(B, n, device=dev)
        for t in torch.linspace(0, 1, steps).tolist():
            n_masked = max(1, round(math.cos(t * math.pi / 2) * n))
            ranks = scores.argsort(dim=1).argsort(dim=1)
            is_mask = ranks < n_masked  # re-mask the least confident tokens
            ids = torch.where(is_mask, self.mask_id, ids)
            h = self.body.run(self.in_proj(self.token_emb(ids)), pooled, pad, guided=True)
            logits = guide(self.out(h), cfg)
            filtered = filter_logits(logits, 1.0, top_k=max(1, int(0.1 * self.codebook)))
            probs = filtered.softmax(-1)
            pred = torch.multinomial(probs.flatten(0, 1), 1, generator=gen).view(B, n)
            ids = torch.where(is_mask, pred, ids)
            conf = logits.softmax(-1).gather(-1, pred[..., None])[..., 0]
            scores = conf.masked_fill(~is_mask, 1e5)
        return ids


class ResidualTransformer(nn.Module):
    """Tokens of residual layer q from the summed embeddings of layers < q, one pass each."""

    def __init__(
        self,
        text_dim: int,
        codebook: int,
        code_dim: int,
        num_layers: int,
        dim: int,
        layers: int,
        heads: int,
        ff: int,
    ):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(num_layers - 1, codebook, code_dim) * 0.02)
        self.layer_emb = nn.Embedding(num_layers, dim)
        self.in_proj = nn.Linear(code_dim, dim)
        self.body = TokenTransformer(text_dim, dim, layers, heads, ff)
        self.out = nn.Linear(dim, code_dim)

    @torch.no_grad()
    def generate(self, base: torch.Tensor, pooled, num_layers: int, cfg: float = 5.0, gen=None):
        B, n = base.shape
        pad = torch.zeros(B, n, dtype=torch.bool, device=base.device)
        codes, ids, history = [base], base, 0
        for q in range(1, num_layers):
            history = history + F.embedding(ids, self.embed[q - 1])
            x = self.in_proj(history) + self.layer_emb.weight[q]
            h = self.body.run(x, pooled, pad, guided=True)
            logits = guide(self.out(h) @ self.embed[q - 1].T, cfg)
            filtered = filter_logits(logits, 1.0, top_k=max(1, int(0.1 * logits.shape[-1])))
            probs = filtered.softmax(-1)
            ids = torch.multinomial(probs.flatten(0, 1), 1, generator=gen).view(B, n)
            codes.append(ids)
        return codes


class MoMaskBaseline(nn.Module):
    def __init__(self, text_dim: int, dim=384, layers=8, heads=6, ff=1024):
        super().__init__()
        self.vae_config = VAEConfig(
            encoder="conv",
            decoder="conv",
            width=512,
            depth=3,
            code_dim=512,
            codebook_size=512,
            quantizer="rvq",
            num_scales=6,
        )
        self.vae = CAQVAE(self.vae_config)
        c = self.vae_config
        self.masked = MaskedTransformer(
            text_dim, c.codebook_size, c.code_dim, dim, layers, heads, ff
        )
        self.residual = ResidualTransformer(
            text_dim, c.codebook_size, c.code_dim, c.num_scales, dim, layers, heads, ff
        )


def baseline_run(model: MoMaskBaseline, text_encoder, batch: int, frames: int):
    """One timed generation of ``batch`` motions (``mosa.bench.RunOnce``): text encoding, the
    two transformers (``gen_ms``), decoding + joint recovery."""
    dev = next(model.parameters()).device
    unit = model.vae_config.downsample
    n = frames // unit
    gen = torch.Generator(device=dev).manual_seed(0)

    @torch.inference_mode()
    def once(r: int) -> dict[str, float]:
        text_encoder.clear_cache()
        sync(dev)
        t0 = time.perf_counter()
        pooled = text_encoder.pooled(prompts_for(batch, r))
        sync(dev)
        t1 = time.perf_counter()
        base = model.masked.generate(pooled, n, gen=gen)
        codes = model.residual.generate(base, pooled, model.vae_config.num_scales, gen=gen)
        sync(dev)
        t2 = time.perf_counter()
        feats = model.vae.decode(codes, torch.full((batch,), n * unit)).float().cpu()
        for f in feats:
            _joints(f.numpy())
        sync(dev)
        t3 = time.perf_counter()
        return {"text_ms": 1e3 * (t1 - t0), "gen_ms": 1e3 * (t2 - t1), "decode_ms": 1e3 * (t3 - t2)}

    return once


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[1])
    p.add_argument("--frames", type=int, default=196)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--ff", type=int, default=1024)
    p.add_argument("--cfg", type=float, default=4.0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    mosa_pipe = random_pipeline(args.dim, args.layers, args.heads, args.ff, device=dev)
    text_encoder = load_text_encoder("minilm", dev)
    torch.manual_seed(0)
    base = MoMaskBaseline(text_encoder.dim, args.dim, args.layers, args.heads, args.ff)
    base = base.to(dev).eval()
    rows = []
    for b in args.batch:
        t = time_interleaved(
            {
                "mosa": pipeline_run(mosa_pipe, b, args.frames, cfg=args.cfg),
                "baseline": baseline_run(base, text_encoder, b, args.frames),
            },
            args.repeats,
            args.warmup,
        )
        unit = base.vae_config.downsample
        ours = summarize(t["mosa"], b, mosa_pipe.frames_for(frames=args.frames) * mosa_pipe.unit)
        theirs = summarize(t["baseline"], b, args.frames // unit * unit)
        rows.append({
            "batch": b,
            "mosa": ours,
            "momask_baseline": theirs,
            "ratio_baseline_over_mosa": round(theirs["ms_per_motion"] / ours["ms_per_motion"], 3),
            "ratio_no_text": round(
                theirs["ms_per_motion_no_text"] / ours["ms_per_motion_no_text"], 3
            ),
        })  # fmt: skip
    report = {
        "environment": environment(dev),
        "parameters": {
            "mosa_sar": count(mosa_pipe.sar),
            "mosa_vae": count(mosa_pipe.vae),
            "baseline_masked": count(base.masked),
            "baseline_residual": count(base.residual),
            "baseline_vae": count(base.vae),
        },
        "results": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    env, prm = report["environment"], report["parameters"]
    print(f"device {env['device']}, {env['threads']} threads, torch {env['torch']}")
    print(
        f"parameters: mosa SAR {prm['mosa_sar'] / 1e6:.2f} M | baseline masked "
        f"{prm['baseline_masked'] / 1e6:.2f} M + residual {prm['baseline_residual'] / 1e6:.2f} M"
    )
    for r in rows:
        o, t = r["mosa"], r["momask_baseline"]
        print(
            f"batch {r['batch']}, {o['frames']} frames: mosa {o['ms_per_motion']:.1f} ms/motion "
            f"(no text {o['ms_per_motion_no_text']:.1f}; SAR {o['sar_ms']:.1f}, decode "
            f"{o['decode_ms']:.1f}) | baseline {t['ms_per_motion']:.1f} ms/motion (no text "
            f"{t['ms_per_motion_no_text']:.1f}; transformers {t['gen_ms']:.1f}, decode "
            f"{t['decode_ms']:.1f}) | ratio baseline/mosa {r['ratio_baseline_over_mosa']:.2f} "
            f"(no text {r['ratio_no_text']:.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
