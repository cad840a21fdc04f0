"""``mosa train evaluator``: fit the text-motion evaluator on a HumanML3D-layout folder.

Trains on the train split with the InfoNCE objective of :mod:`mosa.eval.evaluator`, scores the
val split after every epoch (R-Precision in pools of 32) and keeps the best epoch (val top-3)
as the checkpoint ``OUT/best``. ``OUT/log.csv`` logs every epoch. At the end the best model is
scored on the test split against matched and shuffled captions (``OUT/test_metrics.json``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
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
from mosa.train.rundir import open_run

# what a run writes into OUT (what --force deletes)
RUN_FILES = ("best", "best.old", "log.csv", "test_metrics.json")
LOG_FIELDS = (
    "epoch", "step", "train_loss", "val_loss", "val_top1", "val_top2", "val_top3",
    "val_mm_dist", "lr", "seconds",
)  # fmt: skip


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


def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 4e-4,
    seed: int = 0,
    width: int = 128,
    max_minutes: float | None = None,
    threads: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    force: bool = False,
) -> dict:
    """Train, keep the best epoch in ``OUT/best``; returns the test report.

    ``width``: the movement/text GRU width (the motion GRU gets twice); ``max_minutes``: stop
    after the epoch that passes this much training time; ``threads``: torch CPU threads.
    A folder that already holds a run is refused unless ``force`` (delete it, train afresh).
    """
    if epochs < 1 or batch_size < 2:
        raise MosaError("need --epochs >= 1 and --batch-size >= 2")
    with open_run(out, resume=False, force=force, files=RUN_FILES, can_resume=False) as run:
        for note in run.notes:
            print(f"train evaluator: {note}")
        return _train(
            data, Path(out), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
            width=width, max_minutes=max_minutes, threads=threads, device=device,
            progress=progress,
        )  # fmt: skip


def _train(
    data: str | os.PathLike,
    out: Path,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    width: int,
    max_minutes: float | None,
    threads: int | None,
    device: str,
    progress: bool,
) -> dict:
    from mosa.data.dataset import MotionDataset, collate_motions

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)

    train_set = MotionDataset(data, "train", random_crop=True)  # torch-seeded crops
    val = MotionDataset(data, "val", random_crop=True, seed=seed)
    test = MotionDataset(data, "test", random_crop=True, seed=seed)
    if len(train_set) < batch_size:
        raise MosaError(
            f"the train split has {len(train_set)} motions, less than a batch ({batch_size})",
            "lower --batch-size",
        )
    w = width
    config = EvaluatorConfig(
        motion_dim=train_set.feature_dim, movement_hidden=w, movement_dim=w, motion_hidden=2 * w,
        text_hidden=w, max_motion_length=train_set.max_len,
    )  # fmt: skip
    model = TextMotionEvaluator(config).to(device)
    vectors = SpacyWordVectors()
    evaluator = Evaluator(model, train_set.mean, train_set.std, vectors, name=str(out / "best"))
    loader = DataLoader(
        train_set, batch_size=batch_size, shuffle=True, drop_last=True,
        collate_fn=collate_motions, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    val_loader = DataLoader(val, batch_size=batch_size, collate_fn=collate_motions)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
    val_settings = EvalSettings(replications=3, seed=seed)
    print(
        f"evaluator: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; "
        f"train {len(train_set)}, val {len(val)}, test {len(test)} motions"
    )

    log: list[dict] = []
    best, step, start = -1.0, 0, time.time()
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False)
        for batch in bar:
            loss = _loss(model, _batch_inputs(batch, vectors, config, device))
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
                "data": str(data),
                "seed": seed,
            }
            save_evaluator(out / "best", model, train_set.mean, train_set.std, meta=meta)
        print(
            f"epoch {epoch}: loss {row['train_loss']:.3f} val loss {row['val_loss']:.3f} "
            f"R@1/2/3 {real['top1']:.3f}/{real['top2']:.3f}/{real['top3']:.3f} "
            f"MM-Dist {real['mm_dist']:.3f}" + ("  * best" if improved else "")
        )
        if max_minutes and time.time() - start > 60 * max_minutes:
            print(f"time budget of {max_minutes} min reached after epoch {epoch}")
            break

    # final report: the best checkpoint on the test split, matched vs shuffled captions
    best_eval = load_evaluator_checkpoint(out / "best")
    best_eval.model.to(device)
    test_settings = EvalSettings(replications=10, seed=seed)
    summary = summarise(evaluate(best_eval, test, settings=test_settings, progress=progress))
    print(f"\ntest split ({len(test)} motions, {test_settings.replications} replications):")
    print(markdown_table(summary))
    report = {
        "best_epoch": json.loads((out / "best" / "config.json").read_text())["meta"]["epoch"],
        "test": {row: summary[row] for row in (REAL, SHUFFLED)},
    }
    atomic_write_text(out / "test_metrics.json", json.dumps(report, indent=2) + "\n")
    return report
