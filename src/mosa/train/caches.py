"""What ``mosa train gen`` and ``mosa train length`` encode once and reuse: the frozen
tokenizer's tokens of motion crops and the frozen text encoder's caption features, cached as
safetensors under ``OUT/cache`` and keyed by the tokenizer files, the data and the encoder, so
a changed input is encoded afresh."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from mosa.checkpoint import CONFIG_FILE
from mosa.io import atomic_path

CACHE_VERSION = 1


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
