"""``mosa train gen``: train the SAR text-to-motion transformer on a frozen tokenizer.

The frozen VAE encodes every training motion once (several crops per motion for variety) and
the frozen text encoder encodes every caption once; both are cached under ``OUT/cache`` and
reused while the tokenizer, data and encoder are unchanged (``mosa.train.caches``). Each step
draws one caption per crop, builds the teacher-forcing inputs of all K scales with the
tokenizer's quantizer and trains all scales in one pass (cross-entropy over the codebook),
dropping the text of ``cond_drop`` of the samples for classifier-free guidance.

Writes ``OUT/last`` (weights + optimizer/step/RNG state), ``OUT/best`` (lowest validation
loss), ``OUT/metrics.csv`` and ``OUT/config.json``; ``best`` and ``last`` also hold a
``pipeline.json`` naming the tokenizer, so ``mosa generate --checkpoint OUT/best`` works.
Runs under ``torchrun`` (DDP) like ``mosa train vae``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mosa.checkpoint import config_from_dict
from mosa.errors import MosaError
from mosa.io import atomic_write_text
from mosa.models.quantizer import PAD_TOKEN, scale_lengths
from mosa.models.sar import KIND as SAR_KIND
from mosa.models.sar import (
    SARConfig,
    SARTransformer,
    ScaleLayout,
    load_sar,
    sar_loss,
    save_sar,
)
from mosa.pipeline import check_compatible
from mosa.requests import DEFAULTS, EDIT_DEFAULTS
from mosa.train.balance import (  # noqa: F401  (public here since 0.1)
    BALANCE_BY_ACTIONS,
    action_groups,
    balance_repeats,
    read_actions,
    resumed_balance,
)
from mosa.train.caches import TextCache, TokenCache, build_text_cache, build_token_cache
from mosa.train.common import TrainConfig, Trainer, read_json_config
from mosa.train.distributed import cleanup_distributed, init_distributed
from mosa.train.rundir import open_run
from mosa.train.state import find_resume_point

# generator defaults where they differ from TrainConfig's (which are the tokenizer's)
TRAIN_DEFAULTS: dict[str, Any] = {
    "max_steps": 50000,
    "batch_size": 64,
    "lr": 2e-4,
    "warmup_steps": 2000,
    "weight_decay": 0.01,
    "val_every": 1000,
}


# --------------------------------------------------------------------------------------------
# dataset of (tokens, caption features)


class TokenTextDataset(Dataset):
    """Crops of a ``TokenCache`` paired with one caption of their item.

    ``random_caption``: draw the caption with torch's RNG (the trainer re-seeds it every step);
    otherwise the item's first caption (validation). ``repeats`` (one per item) lists each of
    the item's crops that many times per epoch (class balancing); ``None`` lists each once.
    """

    def __init__(
        self,
        tokens: TokenCache,
        texts: TextCache,
        captions: list[list[str]],
        random_caption: bool = True,
        repeats: list[int] | None = None,
    ):
        self.tokens, self.texts, self.captions = tokens, texts, captions
        self.random_caption = random_caption
        crops = torch.arange(len(tokens))
        if repeats is not None:
            crops = crops.repeat_interleave(torch.tensor(repeats)[tokens.item])
        self.crops = crops

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict:
        i = int(self.crops[i])
        caps = self.captions[int(self.tokens.item[i])]
        j = int(torch.randint(len(caps), ())) if self.random_caption else 0
        feats, pooled = self.texts.features(caps[j])
        return {
            "tokens": self.tokens.tokens(i),
            "n": int(self.tokens.n[i]),
            "text": feats,
            "pooled": pooled,
        }


def make_collate(num_scales: int):
    """Collate for ``TokenTextDataset``: per-scale tokens padded with ``PAD_TOKEN``."""

    def collate(items: list[dict]) -> dict:
        B = len(items)
        lens = torch.tensor([scale_lengths(it["n"], num_scales) for it in items])
        widths = lens.max(0).values.tolist()
        tokens = [torch.full((B, w), PAD_TOKEN, dtype=torch.long) for w in widths]
        for b, it in enumerate(items):
            parts = torch.split(it["tokens"], lens[b].tolist())
            for k, p in enumerate(parts):
                tokens[k][b, : len(p)] = p
        L = max(it["text"].shape[0] for it in items)
        D = items[0]["text"].shape[1]
        text = torch.zeros(B, L, D)
        mask = torch.zeros(B, L, dtype=torch.bool)
        for b, it in enumerate(items):
            text[b, : it["text"].shape[0]] = it["text"]
            mask[b, : it["text"].shape[0]] = True
        return {
            "n": torch.tensor([it["n"] for it in items]),
            "lens": lens,
            "tokens": tokens,
            "text": text,
            "text_mask": mask,
            "pooled": torch.stack([it["pooled"] for it in items]),
        }

    return collate


def gen_step(model, quantizer, batch: dict, cond_drop: float):
    """Loss of one batch: teacher forcing over all scales, condition dropout for CFG."""
    dev = batch["text"].device
    layout = ScaleLayout(batch["lens"].cpu())
    tokens = [t.to(dev) for t in batch["tokens"]]
    with torch.no_grad(), torch.autocast(dev.type, enabled=False):
        inputs = quantizer.teacher_forcing_inputs(tokens, batch["n"].cpu())
    drop = torch.rand(len(tokens[0]), device=dev) < cond_drop
    logits = model(batch["text"], batch["text_mask"], batch["pooled"], layout, inputs, drop)
    return sar_loss(logits, layout, tokens)


# --------------------------------------------------------------------------------------------
# training


def pipeline_spec(folder: Path, vae_dir: Path, text_encoder: str, length_dir: Path | None):
    """``pipeline.json`` content for a checkpoint written to ``folder``."""
    spec: dict[str, Any] = {
        "sar": ".",
        "vae": os.path.relpath(vae_dir.resolve(), folder.resolve()),
        "text_encoder": text_encoder,
        "defaults": DEFAULTS,
        "edit_defaults": EDIT_DEFAULTS,
    }
    if length_dir is not None:
        spec["length"] = os.path.relpath(length_dir.resolve(), folder.resolve())
    return spec


def _build_sar(config: dict[str, Any]) -> SARTransformer:
    cfg = config_from_dict(SARConfig, config)
    if hasattr(cfg, "validate"):
        cfg.validate()
    return SARTransformer(cfg)


def train_gen(
    vae_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    model_overrides: dict[str, Any],
    train_cfg: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    init: str | Path | None = None,
    device: str | None = None,
    text_encoder: str = "minilm",
    length_dir: str | Path | None = None,
    max_len: int = 196,
    val_items: int | None = 2048,
    balance: tuple[str, float, int] | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train a SAR transformer; returns the trainer's summary.

    ``balance = (pattern, power, cap)`` repeats the crops of rare groups of items (see
    ``balance_repeats``); ``None`` samples every crop once per epoch.

    ``init`` warm-starts from a SAR checkpoint folder's weights (and its model config) with a
    fresh optimizer and schedule; ``resume`` continues the run in ``OUT`` exactly (from the
    newest intact copy of its training state), ``force`` deletes it and starts afresh; a
    folder holding a run with neither is refused (``mosa.train.rundir.open_run``).
    """
    from mosa.data.dataset import MotionDataset
    from mosa.models.text import load_text_encoder
    from mosa.models.vae import load_vae

    vae_dir, out = Path(vae_dir), Path(out_dir)
    length_dir = Path(length_dir) if length_dir else None
    if length_dir is not None and not length_dir.is_dir():
        raise MosaError(
            f"length estimator folder {length_dir} does not exist",
            "train one with `mosa train length` or leave --length out",
        )
    env, dev = init_distributed(device)
    run = None
    try:
        run = open_run(out, resume=resume, force=force, is_main=env.is_main)
        notes = list(run.notes)
        point = None
        if resume:
            point = find_resume_point(out, _build_sar, kind=SAR_KIND, is_main=env.is_main)
            if point is None:
                notes.append(f"nothing to resume in {out} (no checkpoint yet): starting at step 0")
            else:
                notes += point.notes
                balance = resumed_balance(out, balance)
        if env.is_main:
            for note in notes:
                print(f"train gen: {note}", file=sys.stderr)
        vae, mean, std = load_vae(vae_dir, dev)
        vae.requires_grad_(False)
        vcfg = vae.config
        unit = vcfg.downsample
        if vcfg.quantizer != "mtps":
            raise MosaError(
                f"{vae_dir} uses the '{vcfg.quantizer}' quantizer",
                "train the generator on a multi-scale (mtps) tokenizer",
            )
        if max_len % unit or train_cfg.min_len > max_len:
            raise MosaError(
                f"--max-len {max_len} must be a multiple of {unit} and >= min_len",
                "use e.g. --max-len 196",
            )
        kw = {
            "min_len": train_cfg.min_len,
            "max_len": max_len,
            "unit": unit,
            "mean": mean,
            "std": std,
        }
        train_set = MotionDataset(data_dir, "train", random_crop=True, **kw)
        val_set = MotionDataset(data_dir, "val", random_crop=False, seed=0, **kw)
        val_set.items = val_set.items[: val_items or None]

        encoder = load_text_encoder(text_encoder, dev)
        cache_dir = out / "cache"
        caps = [[t.caption for t in it.texts] for it in train_set.items]
        val_caps = [[t.caption for t in it.texts] for it in val_set.items]
        texts = build_text_cache(
            encoder,
            [c for cs in caps + val_caps for c in cs],
            cache_dir=cache_dir,
            tag="captions",
            is_main=env.is_main,
        )
        tok_train = build_token_cache(
            vae,
            vae_dir,
            train_set,
            max_len=max_len,
            augment=True,
            cache_dir=cache_dir,
            device=dev,
            is_main=env.is_main,
        )
        tok_val = build_token_cache(
            vae,
            vae_dir,
            val_set,
            max_len=max_len,
            augment=False,
            cache_dir=cache_dir,
            device=dev,
            is_main=env.is_main,
        )

        model = None
        if point is not None:
            model = point.model
            model_cfg = model.config
        elif init is not None:
            model = load_sar(init)  # Trainer.fit switches it to training mode
            model_cfg = model.config
        else:
            fixed = {  # dictated by the tokenizer, text encoder and data, not choices
                "codebook_size": vcfg.codebook_size, "code_dim": vcfg.code_dim,
                "num_scales": vcfg.num_scales, "text_dim": encoder.dim,
                "text_encoder": text_encoder, "min_tokens": -(-train_cfg.min_len // unit),
                "max_tokens": max_len // unit,
            }  # fmt: skip
            model_cfg = config_from_dict(SARConfig, {**model_overrides, **fixed})
        torch.manual_seed(train_cfg.seed)  # same initial weights on every rank
        if model is None:
            model = SARTransformer(model_cfg)
        check_compatible(model, vae, encoder)
        del encoder  # all captions are cached

        def save_fn(path, meta=None, extra_tensors=None):
            path = Path(path)
            meta = {**(meta or {}), "vae": str(vae_dir.resolve()), "data": str(data_dir)}
            save_sar(path, model, meta, extra_tensors=extra_tensors)
            spec = pipeline_spec(path, vae_dir, text_encoder, length_dir)
            atomic_write_text(path / "pipeline.json", json.dumps(spec, indent=2) + "\n")

        repeats = None
        if balance is not None:
            names = [it.name for it in train_set.items]
            repeats = balance_repeats(names, *balance, actions=read_actions(data_dir))
        train_data = TokenTextDataset(tok_train, texts, caps, random_caption=True, repeats=repeats)
        val_data = TokenTextDataset(tok_val, texts, val_caps, random_caption=False)
        collate = make_collate(model_cfg.num_scales)
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
            cfg_text = {"model": dataclasses.asdict(model_cfg),
                        "train": dataclasses.asdict(train_cfg), "vae": str(vae_dir),
                        "data": str(data_dir), "max_len": max_len,
                        "balance": list(balance) if balance else None}  # fmt: skip
            trainer.write_run_config(cfg_text)
            if not quiet:
                print(
                    f"train gen: {len(train_data)} train crops of {len(train_set)} motions, "
                    f"{len(val_data)} val, {len(texts.captions)} captions, "
                    f"{model.num_parameters() / 1e6:.2f}M parameters, device {dev}, "
                    f"{env.world_size} process(es)"
                    + (f", resumed at step {trainer.step}" if resumed else ""),
                    file=sys.stderr,
                )

        quantizer = vae.quantizer

        def step_fn(m, batch):
            return gen_step(m, quantizer, batch, model_cfg.cond_drop)

        def val_fn(m):
            return evaluate(m, quantizer, val_data, collate, dev, train_cfg.batch_size)

        return trainer.fit(step_fn, val_fn)
    finally:
        if run is not None:
            run.close()
        cleanup_distributed()


@torch.no_grad()
def evaluate(model, quantizer, dataset, collate, device, batch_size: int) -> dict[str, float]:
    """Token-weighted validation loss and accuracies (all scales, and the finest scale)."""
    tot = {"loss": 0.0, "acc": 0.0, "acc_last": 0.0}
    weight = last_weight = 0
    for j in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(j, min(j + batch_size, len(dataset)))])
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        loss, stats = gen_step(model, quantizer, batch, cond_drop=0.0)
        w = int(sum((t >= 0).sum() for t in batch["tokens"]))
        wl = int((batch["tokens"][-1] >= 0).sum())
        tot["loss"] += float(loss) * w
        tot["acc"] += stats["acc"] * w
        tot["acc_last"] += stats["acc_last"] * wl
        weight, last_weight = weight + w, last_weight + wl
    return {
        "val_loss": tot["loss"] / max(weight, 1),
        "val_acc": tot["acc"] / max(weight, 1),
        "val_acc_last": tot["acc_last"] / max(last_weight, 1),
    }


def build_configs(
    config: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], TrainConfig]:
    """Model overrides and train config: defaults < ``config`` JSON < ``overrides``.

    ``overrides``: ``TrainConfig`` fields (the command-line flags); ``None`` values are unset.
    """
    data = read_json_config(config)
    model = data.get("model", {})
    if not isinstance(model, dict):
        raise MosaError(f"{config}: 'model' must be an object", "fix the config file")
    unknown = set(model) - {f.name for f in dataclasses.fields(SARConfig)}
    if unknown:
        raise MosaError(
            f"{config}: unknown model settings {sorted(unknown)}",
            "use SARConfig fields (dim, layers, heads, ff, dropout, cond_drop, ...)",
        )
    flags = overrides or {}
    train = {**TRAIN_DEFAULTS, **data.get("train", {}),
             **{k: v for k, v in flags.items() if v is not None}}  # fmt: skip
    cfg = TrainConfig.from_dict(train)
    dim, heads = model.get("dim", SARConfig.dim), model.get("heads", SARConfig.heads)
    if dim % heads:
        raise MosaError(f"model dim {dim} is not divisible by heads {heads}", "fix the config")
    return model, cfg
