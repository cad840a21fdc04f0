"""``mosa train evaluator``: fit the text-motion evaluator on a HumanML3D-layout folder.

Trains on the train split with the InfoNCE objective of :mod:`mosa.eval.evaluator`, scores the
val split after every epoch (R-Precision in pools of 32) and keeps the best epoch (val top-3)
as the checkpoint ``OUT/best``. ``OUT/log.csv`` logs every epoch. At the end the best model is
scored on the test split against matched and shuffled captions (``OUT/test_metrics.json``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from mosa.errors import MosaError
from mosa.eval.evaluator import (
    Evaluator,
    EvaluatorConfig,
    TextMotionEvaluator,
    contrastive_loss,
    load_evaluator_checkpoint,
    save_evaluator,
)
from mosa.eval.run import REAL, SHUFFLED, EvalSettings, evaluate, markdown_table, summarise
from mosa.eval.wordvec import SpacyWordVectors, WordVectors, encode_token_batch
from mosa.io import atomic_write_text

LOG_FIELDS = (
    "epoch", "step", "train_loss", "val_loss", "val_top1", "val_top2", "val_top3",
    "val_mm_dist", "lr", "seconds",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="HumanML3D-layout dataset folder")
    parser.add_argument(
        "--out", required=True, help="run folder (best/, log.csv, test_metrics.json)"
    )
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default: 20)")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per batch (default: 64)")
    parser.add_argument(
        "--lr", type=float, default=4e-4, help="AdamW learning rate (default: 4e-4)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--width", type=int, default=128,
        help="movement/text GRU width, the motion GRU gets twice (default: 128, about 18 min "
        "on one CPU core for Bandai-Namco; 512 = the official sizes)",
    )  # fmt: skip
    parser.add_argument("--max-minutes", type=float, help="stop after this much training time")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _batch_inputs(batch: dict, vectors: WordVectors, config: EvaluatorConfig, device):
    words, pos, text_len = encode_token_batch(vectors, batch["tokens"], config.max_text_len)
    # identical captions in a batch are not negatives of each other
    keys = [" ".join(t) for t in batch["tokens"]]
    groups = torch.tensor([keys.index(k) for k in keys], device=device)
    return (
        batch["motion"].to(device), batch["lengths"].to(device),
        words.to(device), pos.to(device), text_len, groups,
    )  # fmt: skip


def _loss(model: TextMotionEvaluator, inputs) -> torch.Tensor:
    motion, lengths, words, pos, text_len, groups = inputs
    c = model.config
    return contrastive_loss(
        model.encode_text(words, pos, text_len), model.encode_motion(motion, lengths),
        c.temperature, c.embed_norm, groups,
    )  # fmt: skip


@torch.no_grad()
def _val_loss(model, loader, vectors) -> float:
    model.eval()
    dev = next(model.parameters()).device
    losses = [_loss(model, _batch_inputs(b, vectors, model.config, dev)).item() for b in loader]
    return float(np.mean(losses)) if losses else math.nan


def _write_log(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def run(args: argparse.Namespace) -> int:
    train(args)
    return 0


def train(args: argparse.Namespace) -> dict:
    """Train, keep the best epoch in ``OUT/best``; returns the test report."""
    from mosa.data.dataset import MotionDataset, collate_motions

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.epochs < 1 or args.batch_size < 2:
        raise MosaError("need --epochs >= 1 and --batch-size >= 2")
    torch.manual_seed(args.seed)
    out = Path(args.out)
    progress = not args.no_progress

    train_set = MotionDataset(args.data, "train", random_crop=True)  # torch-seeded crops
    val = MotionDataset(args.data, "val", random_crop=True, seed=args.seed)
    test = MotionDataset(args.data, "test", random_crop=True, seed=args.seed)
    if len(train_set) < args.batch_size:
        raise MosaError(
            f"the train split has {len(train_set)} motions, less than a batch ({args.batch_size})",
            "lower --batch-size",
        )
    w = args.width
    config = EvaluatorConfig(
        motion_dim=train_set.feature_dim, movement_hidden=w, movement_dim=w, motion_hidden=2 * w,
        text_hidden=w, max_motion_length=train_set.max_len,
    )  # fmt: skip
    model = TextMotionEvaluator(config).to(args.device)
    vectors = SpacyWordVectors()
    evaluator = Evaluator(model, train_set.mean, train_set.std, vectors, name=str(out / "best"))
    loader = DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, drop_last=True,
        collate_fn=collate_motions, generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip
    val_loader = DataLoader(val, batch_size=args.batch_size, collate_fn=collate_motions)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * len(loader))
    val_settings = EvalSettings(replications=3, seed=args.seed)
    print(
        f"evaluator: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; "
        f"train {len(train_set)}, val {len(val)}, test {len(test)} motions"
    )

    log: list[dict] = []
    best, step, start = -1.0, 0, time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = []
        bar = tqdm(loader, desc=f"epoch {epoch}/{args.epochs}", disable=not progress, leave=False)
        for batch in bar:
            loss = _loss(model, _batch_inputs(batch, vectors, config, args.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        scores = summarise(
            evaluate(evaluator, val, settings=val_settings, reference=False, progress=False)
        )
        real = {k: v["mean"] for k, v in scores[REAL].items()}
        row = {
            "epoch": epoch, "step": step, "train_loss": float(np.mean(losses)),
            "val_loss": _val_loss(model, val_loader, vectors), "val_top1": real["top1"],
            "val_top2": real["top2"], "val_top3": real["top3"], "val_mm_dist": real["mm_dist"],
            "lr": sched.get_last_lr()[0], "seconds": round(time.time() - start, 1),
        }  # fmt: skip
        log.append(row)
        _write_log(out / "log.csv", log)
        improved = real["top3"] > best
        if improved:
            best = real["top3"]
            meta = {
                "epoch": epoch,
                "step": step,
                "val": real,
                "data": str(args.data),
                "seed": args.seed,
            }
            save_evaluator(out / "best", model, train_set.mean, train_set.std, meta=meta)
        print(
            f"epoch {epoch}: loss {row['train_loss']:.3f} val loss {row['val_loss']:.3f} "
            f"R@1/2/3 {real['top1']:.3f}/{real['top2']:.3f}/{real['top3']:.3f} "
            f"MM-Dist {real['mm_dist']:.3f}" + ("  * best" if improved else "")
        )
        if args.max_minutes and time.time() - start > 60 * args.max_minutes:
            print(f"time budget of {args.max_minutes} min reached after epoch {epoch}")
            break

    # final report: the best checkpoint on the test split, matched vs shuffled captions
    best_eval = load_evaluator_checkpoint(out / "best")
    best_eval.model.to(args.device)
    test_settings = EvalSettings(replications=10, seed=args.seed)
    summary = summarise(evaluate(best_eval, test, settings=test_settings, progress=progress))
    print(f"\ntest split ({len(test)} motions, {test_settings.replications} replications):")
    print(markdown_table(summary))
    report = {
        "best_epoch": json.loads((out / "best" / "config.json").read_text())["meta"]["epoch"],
        "test": {row: summary[row] for row in (REAL, SHUFFLED)},
    }
    atomic_write_text(out / "test_metrics.json", json.dumps(report, indent=2) + "\n")
    return report
