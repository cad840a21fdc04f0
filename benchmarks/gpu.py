"""One command for mosa's GPU figures: generation speed and memory, and training throughput.

    python benchmarks/gpu.py --out gpu.json                      # a CUDA GPU (default)
    python benchmarks/gpu.py --device cpu --tiny --out cpu.json  # a quick check anywhere

1. ``mosa bench`` (``mosa.bench.run_bench``) of the shipped pipeline at batch 1, 32 and 256 in
   each of ``--dtypes`` (fp32; fp16 and bf16 under autocast): ms per motion and peak memory
   (CUDA's peak allocation; the process's peak RSS on the CPU).
2. Training throughput of the step ``mosa train gen`` runs (``mosa.train.gen.gen_step``:
   teacher forcing over the 10 scales with condition dropout, then backward and AdamW), on
   synthetic batches of random tokens and text features at the shipped generator's size:
   steps/s and tokens/s (tokens = the valid tokens of all scales), per precision. The data
   loader is not part of it (``mosa train gen`` reads cached tokens and text features).

Writes one JSON (``--out``) and prints a table. ``--tiny``: batch sizes 1 and 2, 48 frames,
one timed repeat, a few training steps: checks that everything runs (tests/test_bench.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from mosa.bench import DTYPES, environment, run_bench, sync
from mosa.errors import MosaError
from mosa.io import atomic_write_text
from mosa.loading import default_checkpoint_dir, read_pipeline_spec, resolve_device
from mosa.models.quantizer import scale_lengths
from mosa.models.sar import SARTransformer, load_sar
from mosa.models.vae import load_vae
from mosa.train.gen import gen_step


def train_throughput(
    checkpoint: Path,
    device: torch.device,
    dtype: str,
    *,
    batch: int = 64,
    frames: int = 196,
    steps: int = 20,
    warmup: int = 3,
    text_len: int = 16,
) -> dict:
    """Steps/s and tokens/s of ``gen_step`` + backward + AdamW on synthetic batches."""
    spec = read_pipeline_spec(checkpoint)
    sar_cfg = load_sar(checkpoint / spec["sar"]).config
    quantizer = load_vae(checkpoint / spec["vae"], device)[0].quantizer.eval()
    torch.manual_seed(0)
    model = SARTransformer(sar_cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.01)
    unit = load_vae(checkpoint / spec["vae"])[0].config.downsample
    n_tok = max(sar_cfg.min_tokens, min(sar_cfg.max_tokens, frames // unit))
    g = torch.Generator().manual_seed(0)
    n = torch.randint(max(sar_cfg.min_tokens, n_tok // 2), n_tok + 1, (batch,), generator=g)
    lens = torch.tensor([scale_lengths(int(k), sar_cfg.num_scales) for k in n])
    widths = lens.max(0).values.tolist()
    tokens = []
    for k, w in enumerate(widths):
        t = torch.randint(0, sar_cfg.codebook_size, (batch, w), generator=g)
        t[torch.arange(w)[None, :] >= lens[:, k : k + 1]] = -1  # PAD_TOKEN
        tokens.append(t)
    text_mask = torch.arange(text_len)[None, :] < torch.randint(4, text_len + 1, (batch, 1))
    data = {
        "n": n,
        "lens": lens,
        "tokens": tokens,
        "text": torch.randn(batch, text_len, sar_cfg.text_dim, generator=g).to(device),
        "text_mask": text_mask.to(device),
        "pooled": torch.randn(batch, sar_cfg.text_dim, generator=g).to(device),
    }
    use_autocast = dtype != "fp32"
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16")
    times = []
    for step in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=DTYPES[dtype], enabled=use_autocast):
            loss = gen_step(model, quantizer, data, cond_drop=0.1)
            loss = loss[0] if isinstance(loss, tuple) else loss
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    valid = int(lens.sum())
    out = {
        "dtype": dtype,
        "batch": batch,
        "valid_tokens_per_batch": valid,
        "steps_per_s": round(1.0 / step_s, 3),
        "tokens_per_s": round(valid / step_s, 1),
        "ms_per_step": round(1e3 * step_s, 2),
    }
    if device.type == "cuda":
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: checkpoints/")
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "fp16", "bf16"],
                    choices=list(DTYPES))  # fmt: skip
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 32, 256])
    ap.add_argument("--frames", type=int, default=196)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--tiny", action="store_true", help="quick settings: checks that it runs")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = ap.parse_args(argv)
    if args.tiny:
        args.batch, args.frames, args.repeats = [1, 2], 48, 1
        args.train_batch, args.train_steps = 2, 2
    try:
        dev = resolve_device(args.device)
        if args.threads:
            torch.set_num_threads(args.threads)
        ckpt = Path(args.checkpoint or default_checkpoint_dir())
        report = {"environment": environment(dev), "generation": [], "training": []}
        for dtype in args.dtypes:
            bench = run_bench(batch=args.batch, frames=args.frames, repeats=args.repeats,
                              warmup=1, checkpoint=ckpt, device=str(dev), dtype=dtype)  # fmt: skip
            report["generation"].append({"dtype": dtype, "results": bench["results"]})
            report["training"].append(
                train_throughput(
                    ckpt,
                    dev,
                    dtype,
                    batch=args.train_batch,
                    frames=args.frames,
                    steps=args.train_steps,
                    warmup=1 if args.tiny else 3,
                )  # fmt: skip
            )
    except MosaError as exc:
        print(f"gpu.py: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    print(format_table(report))
    return 0


def format_table(report: dict) -> str:
    env = report["environment"]
    lines = [
        f"device {env['device']} ({env.get('gpu', env['cpu'])})",
        "| dtype | batch | ms/motion | no text | peak MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for g in report["generation"]:
        for r in g["results"]:
            peak = r.get("cuda_peak_mb", r.get("peak_rss_mb") or r["peak_rss_delta_mb"])
            lines.append(f"| {g['dtype']} | {r['batch']} | {r['ms_per_motion']:.2f} | "
                         f"{r['ms_per_motion_no_text']:.2f} | {peak} |")  # fmt: skip
    lines += ["", "| training dtype | batch | steps/s | tokens/s |", "|---|---:|---:|---:|"]
    for t in report["training"]:
        lines.append(f"| {t['dtype']} | {t['batch']} | {t['steps_per_s']} | {t['tokens_per_s']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
