"""``mosa train gen``: train the SAR text-to-motion transformer on a frozen tokenizer.

The frozen VAE encodes every training motion once (several crops per motion for variety) and
the frozen text encoder encodes every caption once; both are cached under ``OUT/cache`` and
reused while the tokenizer, data and encoder are unchanged. Each step draws one caption per
crop, builds the teacher-forcing inputs of all K scales with the tokenizer's quantizer and
trains all scales in one pass (cross-entropy over the codebook), dropping the text of
``cond_drop`` of the samples for classifier-free guidance.

Writes ``OUT/last`` (weights + optimizer/step/RNG state), ``OUT/best`` (lowest validation
loss), ``OUT/metrics.csv`` and ``OUT/config.json``; ``best`` and ``last`` also hold a
``pipeline.json`` naming the tokenizer, so ``mosa generate --checkpoint OUT/best`` works.
Runs under ``torchrun`` (DDP) like ``mosa train vae``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.utils.data import Dataset
from tqdm import tqdm

from mosa.checkpoint import CONFIG_FILE, config_from_dict
from mosa.errors import MosaError
from mosa.io import atomic_path, atomic_write_text
from mosa.models.quantizer import PAD_TOKEN, scale_lengths
from mosa.models.sar import (
    SARConfig,
    SARTransformer,
    ScaleLayout,
    load_sar,
    sar_loss,
    save_sar,
)
from mosa.train.common import (
    TrainConfig,
    Trainer,
    cleanup_distributed,
    init_distributed,
    load_training_checkpoint,
    module_main,
    read_json_config,
    report_done,
)

CACHE_VERSION = 1
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
# caches: tokens of motion crops, features of captions


def crop_windows(
    length: int, max_len: int, min_len: int, unit: int, augment: bool
) -> list[tuple[int, int]]:
    """``(start, frames)`` crops of a motion of ``length`` frames, multiples of ``unit`` long.

    Without ``augment``: the first ``min(length, max_len)`` frames. With it: windows every
    ``max_len // 2`` frames plus the last one, and each also one unit shorter (HumanML3D's
    length jitter), as long as they stay >= ``min_len``.
    """
    full = (min(length, max_len) // unit) * unit
    if full < min_len:
        return []
    if not augment:
        return [(0, full)]
    crops = set()
    for frames in (full, full - unit):
        if frames < min_len:
            continue
        last = length - frames
        starts = set(range(0, last + 1, max(max_len // 2, 1))) | {last}
        crops |= {(s, frames) for s in starts}
    return sorted(crops)


@torch.no_grad()
def encode_crops(
    vae,
    motions: list[np.ndarray],
    crops: list[tuple[int, int, int]],
    device: torch.device,
    batch_size: int = 64,
    progress: bool = True,
) -> list[torch.Tensor]:
    """Tokens of each crop ``(item, start, frames)`` of the normalised ``motions``.

    Returns one flat LongTensor per crop: its K scales concatenated (``sum_k n_k`` tokens).
    Crops are batched by length, so there is no padding.
    """
    out: list[torch.Tensor | None] = [None] * len(crops)
    by_len: dict[int, list[int]] = {}
    for i, (_, _, frames) in enumerate(crops):
        by_len.setdefault(frames, []).append(i)
    groups = [(f, idx[j : j + batch_size]) for f, idx in sorted(by_len.items())
              for j in range(0, len(idx), batch_size)]  # fmt: skip
    for frames, idx in tqdm(groups, desc="encoding motions", disable=not progress, leave=False):
        x = (
            torch.from_numpy(
                np.stack([motions[crops[i][0]][crops[i][1] : crops[i][1] + frames] for i in idx])
            )
            .float()
            .to(device)
        )
        tokens = vae.encode(x, frames)
        flat = torch.cat(tokens, dim=1).cpu()
        for row, i in enumerate(idx):
            out[i] = flat[row]
    return out  # type: ignore[return-value]


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_id(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


@dataclass
class TokenCache:
    """Tokens of motion crops: ``flat`` all crops' tokens, ``offset (C+1,)``, ``n (C,)`` latent
    lengths, ``item (C,)`` index of the dataset item (its captions) of each crop."""

    flat: torch.Tensor
    offset: torch.Tensor
    n: torch.Tensor
    item: torch.Tensor

    def __len__(self) -> int:
        return self.n.shape[0]

    def tokens(self, i: int) -> torch.Tensor:
        return self.flat[self.offset[i] : self.offset[i + 1]].long()


@dataclass
class TextCache:
    """Caption features: ``flat (sum L, D)`` float16, ``offset (N+1,)``, ``pooled (N, D)``."""

    captions: list[str]
    flat: torch.Tensor
    offset: torch.Tensor
    pooled: torch.Tensor

    def __post_init__(self):
        self.index = {c: i for i, c in enumerate(self.captions)}

    def features(self, caption: str) -> tuple[torch.Tensor, torch.Tensor]:
        i = self.index[caption]
        return self.flat[self.offset[i] : self.offset[i + 1]].float(), self.pooled[i].float()


def build_token_cache(
    vae,
    vae_dir: Path,
    dataset,
    *,
    max_len: int,
    augment: bool,
    cache_dir: Path,
    device: torch.device,
    is_main: bool,
) -> TokenCache:
    """Encode (or load from ``cache_dir``) the crops of every item of ``dataset``."""
    unit = vae.config.downsample
    items = dataset.items
    key = _digest({
        "v": CACHE_VERSION, "vae": [_file_id(vae_dir / CONFIG_FILE),
                                    _file_id(vae_dir / "model.safetensors")],
        "data": str(Path(dataset.root).resolve()), "split": dataset.split,
        "items": [(it.name, len(it.motion)) for it in items],
        "max_len": max_len, "min_len": dataset.min_len, "augment": augment,
    })  # fmt: skip
    path = cache_dir / f"tokens_{dataset.split}_{key}.safetensors"
    if is_main and not path.is_file():
        crops = [
            (i, s, f)
            for i, it in enumerate(items)
            for s, f in crop_windows(len(it.motion), max_len, dataset.min_len, unit, augment)
        ]
        # the dataset keeps raw features; normalise with the tokenizer's statistics
        motions = [(it.motion - dataset.mean) / dataset.std for it in items]
        toks = encode_crops(vae, motions, crops, device)
        n = torch.tensor([f // unit for _, _, f in crops], dtype=torch.long)
        offset = torch.zeros(len(toks) + 1, dtype=torch.long)
        offset[1:] = torch.cumsum(torch.tensor([len(t) for t in toks]), 0)
        tensors = {
            "flat": torch.cat(toks).to(torch.int32),
            "offset": offset,
            "n": n,
            "item": torch.tensor([i for i, _, _ in crops], dtype=torch.long),
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp))
    _barrier()
    t = load_file(str(path))
    return TokenCache(t["flat"], t["offset"], t["n"], t["item"])


@torch.no_grad()
def build_text_cache(
    encoder, captions: list[str], *, cache_dir: Path, tag: str, is_main: bool, batch_size: int = 256
) -> TextCache:
    """Encode (or load) every caption with the frozen text encoder."""
    captions = sorted(set(captions))
    key = _digest({"v": CACHE_VERSION, "spec": encoder.spec, "captions": captions})
    path = cache_dir / f"text_{tag}_{key}.safetensors"
    if is_main and not path.is_file():
        feats, pooled = [], []
        chunks = range(0, len(captions), batch_size)
        for j in tqdm(chunks, desc="encoding captions", leave=False):
            f, m, p = encoder.encode_with_pooled(captions[j : j + batch_size])
            f, m = f.cpu(), m.cpu()
            feats.extend(f[i, : int(m[i].sum())] for i in range(f.shape[0]))
            pooled.append(p.cpu())
        offset = torch.zeros(len(feats) + 1, dtype=torch.long)
        offset[1:] = torch.cumsum(torch.tensor([len(f) for f in feats]), 0)
        tensors = {
            "flat": torch.cat(feats).half(),
            "offset": offset,
            "pooled": torch.cat(pooled).float(),
        }
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"captions": json.dumps(captions)})
    _barrier()
    t = load_file(str(path))
    return TextCache(captions, t["flat"], t["offset"], t["pooled"])


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


# --------------------------------------------------------------------------------------------
# dataset of (tokens, caption features)


def resumed_balance(
    out: Path, balance: tuple[str, float, int] | None
) -> tuple[str, float, int] | None:
    """The balance a resumed run continues with: the one recorded in ``OUT/config.json``
    when no ``--balance-by`` is given, so the sampler's order stays the run's."""
    path = Path(out) / "config.json"
    saved = json.loads(path.read_text()).get("balance") if path.is_file() else None
    saved = (saved[0], float(saved[1]), int(saved[2])) if saved else None
    if balance is None or tuple(balance) == saved:
        return saved
    was = f"--balance-by {saved[0]!r}" if saved else "no --balance-by"
    raise MosaError(
        f"{out} was trained with {was}, but --resume was given {balance[0]!r}",
        "resume without the --balance-* options (the run's are used), or start a new --out",
    )


def balance_repeats(names: list[str], pattern: str, power: float, cap: int) -> list[int]:
    """How often each item is repeated per epoch so rare groups are seen more often.

    An item's group is the first capture group of ``pattern`` searched in its name (for
    Bandai-Namco, ``_([a-z-]+)_`` gives the content: walk, walk-back, kick, ...). A group of
    ``n`` items is repeated ``round((typical / n) ** power)`` times, at least 1, at most ``cap``,
    where ``typical`` is the size of the average item's group (sum n^2 / sum n); items the
    pattern does not match form one group of their own.
    """
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise MosaError(
            f"--balance-by {pattern!r} is not a valid regex ({e})", "fix the pattern"
        ) from None
    groups = []
    for name in names:
        m = rx.search(name)
        groups.append(m.group(1) if m and m.groups() else (m.group(0) if m else ""))
    counts = Counter(groups)
    typical = sum(n * n for n in counts.values()) / len(groups)
    rep = {g: int(min(max(round((typical / n) ** power), 1), cap)) for g, n in counts.items()}
    return [rep[g] for g in groups]


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
    from mosa.generate import DEFAULTS, EDIT_DEFAULTS

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


def train_gen(
    vae_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    model_overrides: dict[str, Any],
    train_cfg: TrainConfig,
    *,
    resume: bool = False,
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
    fresh optimizer and schedule; ``resume`` continues ``OUT/last`` exactly.
    """
    from mosa.data.dataset import MotionDataset
    from mosa.generate import check_compatible
    from mosa.models.text import load_text_encoder
    from mosa.models.vae import load_vae

    vae_dir, out = Path(vae_dir), Path(out_dir)
    length_dir = Path(length_dir) if length_dir else None
    if length_dir is not None and not length_dir.is_dir():
        raise MosaError(
            f"length estimator folder {length_dir} does not exist",
            "train one with `mosa train length` or leave --length out",
        )
    last = out / "last"
    has_last = (last / CONFIG_FILE).is_file() or (out / "last.old").is_dir()
    if has_last and not resume:
        raise MosaError(f"{last} already exists", "pass --resume to continue it, or a new --out")
    env, dev = init_distributed(device)
    try:
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
        if resume and has_last:
            balance = resumed_balance(out, balance)
            _, payload = load_training_checkpoint(last)
            model_cfg = config_from_dict(SARConfig, payload["config"])
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
            repeats = balance_repeats([it.name for it in train_set.items], *balance)
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
        resumed = trainer.resume() if resume else False
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


# --------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vae", required=True, help="tokenizer checkpoint folder (e.g. .../best)")
    parser.add_argument("--data", required=True, help="HumanML3D-layout dataset folder")
    parser.add_argument("--out", required=True, help="output folder (last/, best/, metrics.csv)")
    parser.add_argument(
        "--config", help='JSON file {"model": {SARConfig fields}, "train": {TrainConfig fields}}'
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT/last (its model config wins)"
    )
    parser.add_argument(
        "--text-encoder", default="minilm", help="text encoder spec: minilm (default) or clip:PATH"
    )
    parser.add_argument(
        "--length", default=None, help="length estimator folder to name in pipeline.json (optional)"
    )
    parser.add_argument(
        "--init", help="warm-start from this SAR checkpoint folder (fresh optimizer and schedule)"
    )
    parser.add_argument("--max-len", type=int, default=196, help="longest crop in frames")
    parser.add_argument("--max-steps", type=int, help="total optimisation steps")
    parser.add_argument("--batch-size", type=int, help="motions per batch per process")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--val-every", type=int, help="steps between validations")
    parser.add_argument("--max-minutes", type=float, help="stop after this much training time")
    parser.add_argument("--val-items", type=int, default=2048, help="cap on validation motions")
    parser.add_argument(
        "--balance-by",
        metavar="REGEX",
        help="repeat rare groups of training items; the group is the regex's first capture "
        "group in the item name (Bandai-Namco content: '_([a-z-]+)_')",
    )
    parser.add_argument(
        "--balance-power", type=float, default=0.5, help="repeats = (typical / group size) ** this"
    )
    parser.add_argument("--balance-cap", type=int, default=8, help="most repeats of one item")


def build_configs(args: argparse.Namespace) -> tuple[dict[str, Any], TrainConfig]:
    """Model overrides and train config: defaults < --config JSON < command-line flags."""
    data = read_json_config(args.config)
    model = data.get("model", {})
    if not isinstance(model, dict):
        raise MosaError(f"{args.config}: 'model' must be an object", "fix the config file")
    unknown = set(model) - {f.name for f in dataclasses.fields(SARConfig)}
    if unknown:
        raise MosaError(
            f"{args.config}: unknown model settings {sorted(unknown)}",
            "use SARConfig fields (dim, layers, heads, ff, dropout, cond_drop, ...)",
        )
    flags = {
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "val_every": args.val_every,
        "max_time_s": None if args.max_minutes is None else args.max_minutes * 60,
    }
    train = {**TRAIN_DEFAULTS, **data.get("train", {}),
             **{k: v for k, v in flags.items() if v is not None}}  # fmt: skip
    cfg = TrainConfig.from_dict(train)
    dim, heads = model.get("dim", SARConfig.dim), model.get("heads", SARConfig.heads)
    if dim % heads:
        raise MosaError(f"model dim {dim} is not divisible by heads {heads}", "fix the config")
    return model, cfg


def run(args: argparse.Namespace) -> int:
    model_overrides, train_cfg = build_configs(args)
    balance = None
    if args.balance_by:
        balance = (args.balance_by, args.balance_power, args.balance_cap)
    summary = train_gen(
        args.vae, args.data, args.out, model_overrides, train_cfg, resume=args.resume,
        init=args.init, device=args.device, text_encoder=args.text_encoder, length_dir=args.length,
        max_len=args.max_len, val_items=args.val_items, balance=balance,
    )  # fmt: skip
    report_done(summary, args.out, "val loss", "{:.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return module_main("python -m mosa.train.gen", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
