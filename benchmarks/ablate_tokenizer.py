"""Tokenizer ablation: the same training budget for three tokenizers, then test-set metrics.

(a) caq  + MTPS : conv + attention encoder/decoder, 10-scale MTPS quantizer (MoSa)
(b) conv + MTPS : conv-only encoder/decoder, same quantizer
(c) conv + RVQ  : conv-only encoder/decoder, plain 6-layer residual VQ at one resolution
                  (MoMask-style)

Each variant trains for ``--minutes`` of wall-clock time (the cosine LR follows the clock, so
each run ends annealed), then its ``last`` checkpoint is evaluated on the test split. Writes a
markdown table and the MPJPE-vs-scales plot into ``--docs``.

    python benchmarks/ablate_tokenizer.py --data data/bandai --minutes 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mosa.errors import MosaError
from mosa.eval.reconstruction import evaluate_tokenizer, plot_scale_curve
from mosa.io import atomic_write_text
from mosa.models.quantizer import scale_lengths
from mosa.models.vae import CAQVAE, VAEConfig, count_parameters_mb
from mosa.train.common import TrainConfig, read_json_config
from mosa.train.vae import train_vae

REPO = Path(__file__).resolve().parents[1]

VARIANTS = {
    "a": ("caq + MTPS", {"encoder": "caq", "decoder": "caq", "quantizer": "mtps"}),
    "b": ("conv + MTPS", {"encoder": "conv", "decoder": "conv", "quantizer": "mtps"}),
    "c": (
        "conv + RVQ-6 (MoMask-style)",
        {"encoder": "conv", "decoder": "conv", "quantizer": "rvq", "num_scales": 6},
    ),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=str(REPO / "data" / "bandai"), help="dataset folder")
    p.add_argument("--minutes", type=float, required=True, help="training minutes per variant")
    p.add_argument("--config", default=str(REPO / "configs" / "vae" / "default.json"))
    p.add_argument("--out", default=str(REPO / "runs" / "ablate_tokenizer"), help="run folders")
    p.add_argument("--docs", default=str(REPO / "docs"), help="where the table and plot go")
    p.add_argument("--variants", default="abc", help="subset of a, b, c (default abc)")
    p.add_argument("--batch-size", type=int, help="override the config's batch size")
    p.add_argument("--window", type=int, help="override the config's crop length")
    p.add_argument("--device", default=None, help="cpu / cuda (default: cuda if available)")
    p.add_argument("--split", default="test", help="evaluation split (default test)")
    p.add_argument("--eval-items", type=int, default=None, help="cap on evaluated motions")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--skip-train", action="store_true", help="only evaluate existing runs")
    return p.parse_args(argv)


def run_variant(key: str, args: argparse.Namespace, base: dict) -> dict:
    label, overrides = VARIANTS[key]
    model_cfg = VAEConfig.from_dict({**base.get("model", {}), **overrides})
    train_cfg = TrainConfig.from_dict(base.get("train", {}))
    changes = {"max_time_s": args.minutes * 60, "max_steps": 10**7}
    if args.batch_size:
        changes["batch_size"] = args.batch_size
    if args.window:
        changes["window"] = args.window
    train_cfg = dataclasses.replace(train_cfg, **changes)
    out = Path(args.out) / key
    if not args.skip_train:
        if (out / "last").exists():
            raise MosaError(f"{out} already holds a run", "remove it or pass --skip-train")
        start = time.time()
        summary = train_vae(args.data, out, model_cfg, train_cfg, device=args.device)
        print(f"[{key}] trained {summary['step']} steps in {time.time() - start:.0f} s")
    res = evaluate_tokenizer(
        out / "last", args.data, args.split, device=args.device, max_items=args.eval_items
    )
    meta = json.loads((out / "last" / "config.json").read_text())["meta"]["trainer"]
    model = CAQVAE(model_cfg)
    res.update(
        label=label,
        params_m=model.num_parameters() / 1e6,
        size_mb=count_parameters_mb(model),
        steps=meta["step"],
        train_s=meta["elapsed_s"],
        tokens_196=sum(model.quantizer.scale_lengths(49)),
    )
    return res


def markdown(results: dict[str, dict], args: argparse.Namespace) -> str:
    lines = [
        "# Tokenizer ablation",
        "",
        f"Same wall-clock budget per variant ({args.minutes:g} min of training on "
        f"`{args.device or ('cuda' if torch.cuda.is_available() else 'cpu')}`), evaluated on "
        f"the `{args.split}` split of `{args.data}` ({next(iter(results.values()))['num_motions']}"
        " motions, whole clips up to 196 frames). Joints are recovered from the features; MPJPE "
        "is root-aligned per frame as MoMask's `calculate_mpjpe`, global MPJPE also counts "
        "root drift; frame-weighted, in mm.",
        "",
        "| variant | params (M) | size (MB) | steps | MPJPE | global MPJPE | feature L1 "
        "| code use | tokens / 196 frames | MPJPE @ 1st scale |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        util = np.mean([c["utilisation"] for c in r["codebook"]])
        lines.append(
            f"| ({key}) {r['label']} | {r['params_m']:.2f} | {r['size_mb']:.1f} | {r['steps']} "
            f"| {r['mpjpe_mm']:.1f} | {r['mpjpe_global_mm']:.1f} | {r['feature_l1']:.4f} "
            f"| {util:.0%} | {r['tokens_196']} | {r['scale_curve']['mpjpe_mm'][0]:.1f} |"
        )
    lines += [
        "",
        "Code use: mean over scales (layers) of the fraction of the codebook used on the split.",
        f"MTPS scales for a 196-frame motion: {scale_lengths(49, 10)}.",
        "",
        "![MPJPE vs scales](tokenizer_scale_curve.png)",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    base = read_json_config(args.config)
    bad = set(args.variants) - set(VARIANTS)
    if bad:
        raise MosaError(f"unknown variants {sorted(bad)}", "use letters from abc")
    results = {k: run_variant(k, args, base) for k in args.variants}
    docs = Path(args.docs)
    plot_scale_curve(
        {f"({k}) {r['label']}": r for k, r in results.items()}, docs / "tokenizer_scale_curve.png"
    )
    atomic_write_text(docs / "tokenizer_ablation.md", markdown(results, args))
    atomic_write_text(
        Path(args.out) / "results.json", json.dumps(results, indent=2, default=float) + "\n"
    )
    print(markdown(results, args))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MosaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
