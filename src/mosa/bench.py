"""``mosa bench``: how fast text-to-motion generation runs, and how much memory it takes.

Times the whole pipeline per motion: text encoding, the K = 10 SAR steps with classifier-free
guidance (conditional and unconditional in one doubled batch), decoding the latent to features
and recovering joints; reported with and without the text encoding, at batch 1 and 32 by
default, under ``torch.inference_mode``. ``--random-init`` builds a pipeline with random weights
at a chosen transformer size (no checkpoint needed), e.g. MoMask's 384-d, 8 layers, 6 heads.
``time_interleaved`` alternates the runs of several contenders so that load changes on a shared
machine hit them alike (``benchmarks/momask_baseline.py``; see docs/speed.md).
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from mosa.errors import MosaError

PROMPTS = (
    "a person walks forward and then turns around",
    "someone jumps up and down twice",
    "a man waves with his right hand",
    "the person kicks with the left leg, then steps back",
    "a woman dances happily, spinning in a circle",
    "a person crouches down and picks something up from the floor",
    "someone runs in a circle",
    "a person bows politely",
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prompts_for(batch: int, salt: int = 0) -> list[str]:
    """``batch`` distinct prompts (numbered, so a text cache never hits across repeats)."""
    return [f"{PROMPTS[i % len(PROMPTS)]} ({salt}.{i})" for i in range(batch)]


def max_rss_mb() -> float:
    """Peak resident memory of this process so far (MB), or since ``reset_peak_rss``."""
    try:  # Linux: VmHWM, which reset_peak_rss can reset (ru_maxrss cannot be)
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def rss_mb() -> float | None:
    """Resident memory of this process now (MB); None where ``/proc`` is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset the process's peak resident memory to its current one (Linux: writing 5 to
    ``/proc/self/clear_refs``); False where that is not possible (the peak then only grows)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def count(module: torch.nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def random_pipeline(
    dim: int = 384,
    layers: int = 8,
    heads: int = 6,
    ff: int = 1024,
    *,
    text_encoder: str = "minilm",
    vae_config=None,
    device: str | torch.device = "cpu",
    seed: int = 0,
):
    """A ``Pipeline`` with random weights: SAR of the given size, a default-size CAQ-VAE."""
    from mosa.models.sar import SARConfig, SARTransformer
    from mosa.models.text import load_text_encoder
    from mosa.models.vae import CAQVAE, VAEConfig
    from mosa.pipeline import Pipeline

    torch.manual_seed(seed)
    enc = load_text_encoder(text_encoder, device)
    vcfg = vae_config or VAEConfig()
    vae = CAQVAE(vcfg)
    sar = SARTransformer(
        SARConfig(
            codebook_size=vcfg.codebook_size,
            code_dim=vcfg.code_dim,
            num_scales=vcfg.num_scales,
            text_dim=enc.dim,
            text_encoder=text_encoder,
            dim=dim,
            layers=layers,
            heads=heads,
            ff=ff,
        )
    )
    mean, std = torch.zeros(vcfg.feature_dim), torch.ones(vcfg.feature_dim)
    return Pipeline(sar.to(device), vae.to(device), mean.numpy(), std.numpy(), enc)


RunOnce = Callable[[int], dict[str, float]]  # repeat index -> milliseconds per stage


def time_stages(run_once: RunOnce, repeats: int, warmup: int) -> dict[str, float]:
    """Median of each stage's milliseconds over ``repeats`` calls after ``warmup`` calls."""
    return time_interleaved({"": run_once}, repeats, warmup)[""]


def time_interleaved(
    runs: dict[str, RunOnce], repeats: int, warmup: int
) -> dict[str, dict[str, float]]:
    """``time_stages`` of several contenders, their runs interleaved (A B, B A, A B, ...) so
    that a change in machine load hits them alike."""
    names = list(runs)
    for i in range(warmup):
        for name in names:
            runs[name](-1 - i)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(runs[name](r))
    return {
        name: {k: statistics.median(s[k] for s in got) for k in got[0]}
        for name, got in samples.items()
    }


def pipeline_run(pipe, batch: int, frames: int, cfg: float = 3.0, dtype: str = "fp32") -> RunOnce:
    """One timed generation of ``batch`` motions of ``frames`` frames: text encoding, the K
    SAR steps, decoding + joint recovery (ms each, ``text_ms``/``sar_ms``/``decode_ms``).
    ``dtype`` "fp16"/"bf16": under ``torch.autocast`` in that precision (weights stay fp32)."""
    from mosa.pipeline import _joints
    from mosa.sampling import generate_tokens

    dev = pipe.device
    n_tok = pipe.frames_for(frames=frames)
    n = torch.full((batch,), n_tok, dtype=torch.long)

    autocast = torch.autocast(dev.type, dtype=DTYPES[dtype], enabled=dtype != "fp32")

    @torch.inference_mode()
    def once(r: int) -> dict[str, float]:
        with autocast:
            return _once(r)

    def _once(r: int) -> dict[str, float]:
        texts = prompts_for(batch, r)
        pipe.text_encoder.clear_cache()
        sync(dev)
        t0 = time.perf_counter()
        feats, mask, pooled = pipe.text_encoder.encode_with_pooled(texts)
        sync(dev)
        t1 = time.perf_counter()
        cond = pipe.sar.condition(feats, mask, pooled, n.to(dev))
        gens = [torch.Generator(device=dev).manual_seed(i) for i in range(batch)]
        _, f_hat = generate_tokens(
            pipe.sar, pipe.vae.quantizer, cond, cfg=cfg, top_p=0.95, generators=gens
        )
        sync(dev)
        t2 = time.perf_counter()
        features = pipe.decode_latent(f_hat, n)
        for f in features:
            _joints(f)
        sync(dev)
        t3 = time.perf_counter()
        return {"text_ms": 1e3 * (t1 - t0), "sar_ms": 1e3 * (t2 - t1), "decode_ms": 1e3 * (t3 - t2)}

    return once


def summarize(t: dict[str, float], batch: int, frames: int) -> dict[str, Any]:
    """Per-batch stage medians -> the report row (adds per-motion totals)."""
    total = sum(t.values())
    return {
        "batch": batch,
        "frames": frames,
        **{k: round(v, 3) for k, v in t.items()},
        "ms_per_motion": round(total / batch, 3),
        "ms_per_motion_no_text": round((total - t["text_ms"]) / batch, 3),
    }


def bench_pipeline(
    pipe,
    batch: int,
    frames: int,
    *,
    cfg: float = 3.0,
    repeats: int = 5,
    warmup: int = 1,
    dtype: str = "fp32",
) -> dict[str, Any]:
    """Stage timings (ms, medians) of generating ``batch`` motions of ``frames`` frames, and
    the memory it took: ``peak_rss_mb`` (the process's peak resident memory while this batch
    size ran, where the peak can be reset; else None), ``peak_rss_delta_mb`` (how much the
    process's peak grew) and on CUDA ``cuda_peak_mb`` (peak allocation)."""
    dev = pipe.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    rss0 = max_rss_mb()
    resettable = reset_peak_rss()
    t = time_stages(pipeline_run(pipe, batch, frames, cfg, dtype), repeats, warmup)
    peak = max_rss_mb()
    out = {
        **summarize(t, batch, pipe.frames_for(frames=frames) * pipe.unit),
        "cfg": cfg,
        "dtype": dtype,
        "peak_rss_mb": round(peak, 1) if resettable else None,
        "peak_rss_delta_mb": round(max(peak - rss0, 0.0), 1),
    }
    if dev.type == "cuda":
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return out


def parameter_counts(pipe) -> dict[str, int]:
    return {
        "sar": count(pipe.sar),
        "vae": count(pipe.vae),
        "vae_decoder": count(pipe.vae.decoder) + count(pipe.vae.quantizer),
        "text_encoder": count(pipe.text_encoder),
    }


def environment(device: torch.device) -> dict[str, Any]:
    env = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def run_bench(
    *,
    batch: Sequence[int] = (1, 32),
    frames: int = 196,
    cfg: float = 3.0,
    repeats: int = 5,
    warmup: int = 1,
    checkpoint: str | os.PathLike | None = None,
    random_init: bool = False,
    dim: int = 384,
    layers: int = 8,
    heads: int = 6,
    ff: int = 1024,
    device: str | None = None,
    threads: int | None = None,
    int8: bool = False,
    dtype: str = "fp32",
) -> dict[str, Any]:
    """Time generation at each ``batch`` size; returns the report (``format_report`` shows it).

    The pipeline is the checkpoint folder's (``mosa.loading.load``), or with ``random_init``
    one with random weights and a ``dim``/``layers``/``heads``/``ff`` transformer. ``dtype``:
    "fp32", or "fp16"/"bf16" under autocast (meant for GPUs; not with ``int8``).
    """
    from mosa.loading import check_int8_device, load, resolve_device

    if threads:
        torch.set_num_threads(threads)
    if any(b < 1 for b in batch) or repeats < 1:
        raise MosaError("--batch and --repeats must be >= 1", "e.g. --batch 1 32 --repeats 5")
    if dtype not in DTYPES:
        raise MosaError(f"unknown dtype '{dtype}'", f"use one of {', '.join(DTYPES)}")
    if int8 and dtype != "fp32":
        raise MosaError("--int8 and --dtype fp16/bf16 do not go together", "pick one")
    dev = resolve_device(device)
    if random_init:
        if dim % heads:
            raise MosaError(
                f"--dim {dim} is not divisible by --heads {heads}",
                "pick a dim that is a multiple of heads",
            )
        check_int8_device(int8, dev)
        pipe = random_pipeline(dim, layers, heads, ff, device=dev)
        pipe.sar.set_int8(int8)
    else:
        pipe = load(checkpoint, dev, int8=int8)
    results = [
        bench_pipeline(pipe, b, frames, cfg=cfg, repeats=repeats, warmup=warmup, dtype=dtype)
        for b in batch
    ]
    return {
        "model": "random-init" if random_init else "checkpoint",
        "int8": bool(int8),
        "dtype": dtype,
        "sar_config": {k: getattr(pipe.sar.config, k) for k in ("dim", "layers", "heads", "ff")},
        "parameters": parameter_counts(pipe),
        "environment": environment(dev),
        "results": results,
    }


def format_report(report: dict[str, Any]) -> str:
    p, c = report["parameters"], report["sar_config"]
    lines = [
        f"mosa bench ({report['model']}; SAR {c['dim']}-d, {c['layers']} layers, {c['heads']} "
        f"heads, ff {c['ff']}{', int8' if report.get('int8') else ''}"
        f"{', ' + report['dtype'] if report.get('dtype', 'fp32') != 'fp32' else ''}; "
        f"{report['environment']['device']}, "
        f"{report['environment']['threads']} threads)",
        f"parameters: SAR {p['sar'] / 1e6:.2f} M, VAE {p['vae'] / 1e6:.2f} M "
        f"(decoder+quantizer {p['vae_decoder'] / 1e6:.2f} M), text encoder "
        f"{p['text_encoder'] / 1e6:.2f} M",
        f"{'batch':>5} {'frames':>6} {'ms/motion':>10} {'no text':>9} {'text':>8} {'SAR':>9} "
        f"{'decode':>8} {'peak MB':>8}",
    ]
    for r in report["results"]:
        peak = r.get("cuda_peak_mb", r.get("peak_rss_mb") or r["peak_rss_delta_mb"])
        lines.append(
            f"{r['batch']:>5} {r['frames']:>6} {r['ms_per_motion']:>10.2f} "
            f"{r['ms_per_motion_no_text']:>9.2f} {r['text_ms']:>8.1f} {r['sar_ms']:>9.1f} "
            f"{r['decode_ms']:>8.1f} {peak:>8.1f}"
        )
    lines.append(
        "(text/SAR/decode: ms per batch, medians; peak MB: CUDA peak allocation, or on the "
        "CPU the process's peak RSS while that batch size ran)"
    )
    return "\n".join(lines)
