"""``mosa train length``: train the motion length estimator (text -> token count).

The frozen text encoder's pooled caption vectors (cached under ``OUT/cache``) feed a small MLP
that classifies the motion length in tokenizer units (frames / 4). Writes ``OUT/last``,
``OUT/best`` (lowest validation cross-entropy) and ``OUT/metrics.csv``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mosa.checkpoint import config_from_dict
from mosa.models.length import KIND, LengthConfig, LengthEstimator
from mosa.train.caches import TextCache, build_text_cache
from mosa.train.common import TrainConfig, Trainer, read_json_config
from mosa.train.distributed import cleanup_distributed, init_distributed
from mosa.train.rundir import open_run
from mosa.train.state import find_resume_point

TRAIN_DEFAULTS: dict[str, Any] = {
    "max_steps": 4000,
    "batch_size": 64,
    "lr": 3e-4,
    "warmup_steps": 100,
    "weight_decay": 0.01,
    "val_every": 250,
}


class LengthDataset(Dataset):
    """Items ``(pooled caption vector, token count)``; one random caption per motion in
    training (torch RNG, re-seeded by the trainer), the first one for validation."""

    def __init__(
        self,
        texts: TextCache,
        captions: list[list[str]],
        tokens: list[int],
        random_caption: bool = True,
    ):
        self.texts, self.captions, self.tokens = texts, captions, tokens
        self.random_caption = random_caption

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict:
        caps = self.captions[i]
        j = int(torch.randint(len(caps), ())) if self.random_caption else 0
        return {
            "pooled": self.texts.pooled[self.texts.index[caps[j]]].float(),
            "tokens": self.tokens[i],
        }


def collate(items: list[dict]) -> dict:
    return {
        "pooled": torch.stack([it["pooled"] for it in items]),
        "tokens": torch.tensor([it["tokens"] for it in items]),
    }


@torch.no_grad()
def evaluate(model: LengthEstimator, data: LengthDataset, device) -> dict[str, float]:
    batch = collate([data[i] for i in range(len(data))])
    pooled, tokens = batch["pooled"].to(device), batch["tokens"].to(device)
    loss = model.loss(pooled, tokens)
    mode = model.predict(pooled, sample=False)
    unit = model.config.unit
    return {
        "val_loss": float(loss),
        "val_acc": float((mode == tokens).float().mean()),
        "val_mae_frames": float((mode - tokens).abs().float().mean() * unit),
    }


def train_length(
    data_dir: str | Path,
    out_dir: str | Path,
    model_overrides: dict[str, Any],
    train_cfg: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    text_encoder: str = "minilm",
    unit: int = 4,
    max_len: int = 196,
    quiet: bool = False,
) -> dict[str, Any]:
    from mosa.data.dataset import MotionDataset
    from mosa.models.text import load_text_encoder

    out, run = Path(out_dir), None
    env, dev = init_distributed(device)
    try:
        run = open_run(out, resume=resume, force=force, is_main=env.is_main)
        notes = list(run.notes)
        point = None
        if resume:
            point = find_resume_point(
                out,
                lambda c: LengthEstimator(config_from_dict(LengthConfig, c)),
                kind=KIND,
                is_main=env.is_main,
            )
            if point is None:
                notes.append(f"nothing to resume in {out} (no checkpoint yet): starting at step 0")
            else:
                notes += point.notes
        if env.is_main:
            for note in notes:
                print(f"train length: {note}", file=sys.stderr)
        kw = {"min_len": train_cfg.min_len, "max_len": max_len, "unit": unit}
        train_set = MotionDataset(data_dir, "train", **kw)
        val_set = MotionDataset(data_dir, "val", random_crop=False, seed=0, **kw)

        def pairs(ds):
            caps = [[t.caption for t in it.texts] for it in ds.items]
            toks = [min(len(it.motion), max_len) // unit for it in ds.items]
            return caps, toks

        caps, toks = pairs(train_set)
        val_caps, val_toks = pairs(val_set)
        encoder = load_text_encoder(text_encoder, dev)
        texts = build_text_cache(
            encoder,
            [c for cs in caps + val_caps for c in cs],
            cache_dir=out / "cache",
            tag="captions",
            is_main=env.is_main,
        )
        if point is not None:
            cfg = point.model.config
        else:
            fixed = {
                "text_dim": encoder.dim,
                "text_encoder": text_encoder,
                "unit": unit,
                "min_tokens": -(-train_cfg.min_len // unit),
                "max_tokens": max_len // unit,
            }
            cfg = config_from_dict(LengthConfig, {**model_overrides, **fixed})
        del encoder
        torch.manual_seed(train_cfg.seed)
        model = LengthEstimator(cfg) if point is None else point.model

        def save_fn(path, meta=None, extra_tensors=None):
            model.save(path, {**(meta or {}), "data": str(data_dir)}, extra_tensors)

        train_data = LengthDataset(texts, caps, toks, random_caption=True)
        val_data = LengthDataset(texts, val_caps, val_toks, random_caption=False)
        trainer = Trainer(
            model,
            train_cfg,
            out,
            dataset=train_data,
            collate_fn=collate,
            save_fn=save_fn,
            env=env,
            device=dev,
            best_metric="val_loss",
        )
        resumed = trainer.resume(point) if resume else False
        if env.is_main:
            cfg_text = {
                "model": dataclasses.asdict(cfg),
                "train": dataclasses.asdict(train_cfg),
                "data": str(data_dir),
            }
            trainer.write_run_config(cfg_text)
            if not quiet:
                print(
                    f"train length: {len(train_data)} train / {len(val_data)} val motions, "
                    f"classes {cfg.min_tokens}..{cfg.max_tokens} tokens (x{unit} frames), "
                    f"device {dev}" + (f", resumed at step {trainer.step}" if resumed else ""),
                    file=sys.stderr,
                )

        def step_fn(m, batch):
            # through the (possibly DDP-wrapped) module's forward, so gradients are synced
            logits = m(batch["pooled"])
            loss = torch.nn.functional.cross_entropy(logits.float(), model.targets(batch["tokens"]))
            acc = (logits.argmax(-1) == model.targets(batch["tokens"])).float().mean()
            return loss, {"acc": float(acc)}

        return trainer.fit(step_fn, lambda m: evaluate(m, val_data, dev))
    finally:
        if run is not None:
            run.close()
        cleanup_distributed()


def build_configs(
    config: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], TrainConfig]:
    """Model overrides and train config: defaults < ``config`` JSON < ``overrides``.

    ``overrides``: ``TrainConfig`` fields (the command-line flags); ``None`` values are unset.
    """
    data = read_json_config(config)
    flags = overrides or {}
    train = TrainConfig.from_dict(
        {
            **TRAIN_DEFAULTS,
            **data.get("train", {}),
            **{k: v for k, v in flags.items() if v is not None},
        }
    )
    return data.get("model", {}), train
