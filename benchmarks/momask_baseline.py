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
size, in two styles timed in the same run:

- ``momask`` (the target's reference): as MoMask's own code runs it. Each guided step is two
  passes, conditional then unconditional (MoMask's ``forward_with_cond_scale``), through
  sequence-first ``nn.TransformerEncoder`` layers (PyTorch's standard path; its fused inference
  path needs batch-first layers) with a key-padding mask on every call.
- ``batched``: a generous variant that hands the baseline mosa's own inference tricks: both
  guidance branches in one doubled batch, batch-first layers on the fused inference path, no
  mask where nothing is padded. It isolates what the scale-wise structure itself buys.

All run under ``torch.inference_mode`` with the same threads. Runs are interleaved (A B C,
C B A, ...), so load changes on a shared machine hit all alike; medians are reported.

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
from mosa.models.text import load_text_encoder
from mosa.models.vae import CAQVAE, VAEConfig
from mosa.pipeline import _joints
from mosa.sampling import filter_logits

KEYS = {"momask": "momask_baseline", "batched": "batched_baseline"}  # style -> report key


def sinusoidal_positions(n: int, dim: int, device) -> torch.Tensor:
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    freqs = torch.exp(torch.arange(0, dim, 2, device=device).float() * (-math.log(1e4) / dim))
    out = torch.zeros(n, dim, device=device)
    out[:, 0::2], out[:, 1::2] = torch.sin(pos * freqs), torch.cos(pos * freqs)
    return out


class TokenTransformer(nn.Module):
    """Bidirectional encoder over ``[text token, motion tokens]`` (MoMask's backbone).

    ``style="momask"`` runs it as MoMask's own code does: sequence-first encoder layers (which
    PyTorch runs on its standard, unfused path), a key-padding mask on every call, and
    classifier-free guidance as two passes, conditional then unconditional
    (``forward_with_cond_scale``). ``style="batched"`` is a generous variant that gives the
    baseline mosa's inference tricks: batch-first layers on PyTorch's fused inference path, no
    mask when nothing is padded, and both guidance branches in one doubled batch.
    """

    def __init__(self, text_dim: int, dim: int, layers: int, heads: int, ff: int, style: str):
        super().__init__()
        self.dim, self.style = dim, style
        self.cond_proj = nn.Linear(text_dim, dim)
        self.null_cond = nn.Parameter(torch.zeros(dim))
        layer = nn.TransformerEncoderLayer(
            dim, heads, ff, dropout=0.2, activation="gelu", batch_first=style == "batched"
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def _pass(self, x: torch.Tensor, cond: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """One encoder pass: ``x (B, n, D)``, ``cond (B, D)``, ``pad (B, n)`` -> ``(B, n, D)``."""
        x = x + sinusoidal_positions(x.shape[1], self.dim, x.device)
        seq = torch.cat([cond[:, None], x], dim=1)
        key_pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], dim=1)
        if self.style == "batched":
            key_pad = key_pad if bool(key_pad.any()) else None  # nothing padded: no mask
            return self.encoder(seq, src_key_padding_mask=key_pad)[:, 1:]
        out = self.encoder(seq.transpose(0, 1), src_key_padding_mask=key_pad)
        return out[1:].transpose(0, 1)

    def run(self, x: torch.Tensor, pooled: torch.Tensor, pad: torch.Tensor, guided: bool):
        """``x (B, n, D)`` embedded tokens -> hidden ``(B', n, D)``: conditional rows, then
        (``guided``) unconditional rows with the null condition token, so B' = 2B."""
        cond = self.cond_proj(pooled)
        if not guided:
            return self._pass(x, cond, pad)
        null = self.null_cond.expand_as(cond)
        if self.style == "batched":
            return self._pass(torch.cat([x, x]), torch.cat([cond, null]), torch.cat([pad, pad]))
        return torch.cat([self._pass(x, cond, pad), self._pass(x, null, pad)])


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
        style: str,
    ):
        super().__init__()
        self.codebook, self.mask_id = codebook, codebook
        self.token_emb = nn.Embedding(codebook + 2, code_dim)  # + mask + pad
        self.in_proj = nn.Linear(code_dim, dim)
        self.body = TokenTransformer(text_dim, dim, layers, heads, ff, style)
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
        style: str,
    ):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(num_layers - 1, codebook, code_dim) * 0.02)
        self.layer_emb = nn.Embedding(num_layers, dim)
        self.in_proj = nn.Linear(code_dim, dim)
        self.body = TokenTransformer(text_dim, dim, layers, heads, ff, style)
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
    def __init__(self, text_dim: int, dim=384, layers=8, heads=6, ff=1024, style="momask"):
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
            text_dim, c.codebook_size, c.code_dim, dim, layers, heads, ff, style
        )
        self.residual = ResidualTransformer(
            text_dim, c.codebook_size, c.code_dim, c.num_scales, dim, layers, heads, ff, style
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
    p.add_argument(
        "--styles",
        nargs="+",
        choices=list(KEYS),
        default=list(KEYS),
        help="momask: as MoMask's code runs (two guidance passes, standard layers); "
        "batched: with mosa's tricks (one doubled batch, fused layers)",
    )
    p.add_argument(
        "--int8",
        action="store_true",
        help="also time mosa with int8 generator weights (CPU; SARTransformer.set_int8)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    mosa_pipe = random_pipeline(args.dim, args.layers, args.heads, args.ff, device=dev)
    mosa_int8 = None
    if args.int8:  # the same weights (same seed), sampled with int8 linear layers
        mosa_int8 = random_pipeline(args.dim, args.layers, args.heads, args.ff, device=dev)
        mosa_int8.sar.set_int8(True)
    text_encoder = load_text_encoder("minilm", dev)
    baselines = {}
    for style in args.styles:
        torch.manual_seed(0)  # the same weights in every style
        model = MoMaskBaseline(text_encoder.dim, args.dim, args.layers, args.heads, args.ff, style)
        baselines[style] = model.to(dev).eval()
    rows = [_compare(mosa_pipe, mosa_int8, baselines, text_encoder, b, args) for b in args.batch]
    any_base = next(iter(baselines.values()))
    report = {
        "environment": environment(dev),
        "parameters": {
            "mosa_sar": count(mosa_pipe.sar),
            "mosa_vae": count(mosa_pipe.vae),
            "baseline_masked": count(any_base.masked),
            "baseline_residual": count(any_base.residual),
            "baseline_vae": count(any_base.vae),
        },
        "results": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return 0


def _compare(mosa_pipe, mosa_int8, baselines: dict, text_encoder, batch: int, args) -> dict:
    """Time mosa (fp32, and int8 when given) and every baseline style interleaved in one run;
    ratios baseline / mosa."""
    runs = {"mosa": pipeline_run(mosa_pipe, batch, args.frames, cfg=args.cfg)}
    if mosa_int8 is not None:
        runs["mosa_int8"] = pipeline_run(mosa_int8, batch, args.frames, cfg=args.cfg)
    for style, model in baselines.items():
        runs[style] = baseline_run(model, text_encoder, batch, args.frames)
    t = time_interleaved(runs, args.repeats, args.warmup)
    unit = next(iter(baselines.values())).vae_config.downsample
    frames = mosa_pipe.frames_for(frames=args.frames) * mosa_pipe.unit
    ours = {k: summarize(t[k], batch, frames) for k in ("mosa", "mosa_int8") if k in t}
    row: dict = {"batch": batch, **ours}
    for style in baselines:
        theirs = summarize(t[style], batch, args.frames // unit * unit)
        for name, o in ours.items():
            suffix = name.removeprefix("mosa")  # "" or "_int8"
            theirs[f"ratio_over_mosa{suffix}"] = round(
                theirs["ms_per_motion"] / o["ms_per_motion"], 3
            )
            theirs[f"ratio_no_text{suffix}"] = round(
                theirs["ms_per_motion_no_text"] / o["ms_per_motion_no_text"], 3
            )
        row[KEYS[style]] = theirs
    return row


def _print_report(report: dict) -> None:
    env, prm = report["environment"], report["parameters"]
    print(f"device {env['device']}, {env['threads']} threads, torch {env['torch']}")
    print(
        f"parameters: mosa SAR {prm['mosa_sar'] / 1e6:.2f} M | baseline masked "
        f"{prm['baseline_masked'] / 1e6:.2f} M + residual {prm['baseline_residual'] / 1e6:.2f} M"
    )
    for r in report["results"]:
        for name in ("mosa", "mosa_int8"):
            if name in r:
                o = r[name]
                print(
                    f"batch {r['batch']}, {o['frames']} frames: {name} {o['ms_per_motion']:.1f} "
                    f"ms/motion (no text {o['ms_per_motion_no_text']:.1f}; SAR {o['sar_ms']:.1f}, "
                    f"decode {o['decode_ms']:.1f})"
                )
        for style, key in KEYS.items():
            if key not in r:
                continue
            t = r[key]
            ratios = ", ".join(
                f"over {name} {t['ratio_over_mosa' + name[4:]]:.2f} (no text "
                f"{t['ratio_no_text' + name[4:]]:.2f})"
                for name in ("mosa", "mosa_int8")
                if name in r
            )
            print(
                f"  baseline ({style}) {t['ms_per_motion']:.1f} ms/motion (no text "
                f"{t['ms_per_motion_no_text']:.1f}; transformers {t['gen_ms']:.1f}, decode "
                f"{t['decode_ms']:.1f}) | ratio {ratios}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
