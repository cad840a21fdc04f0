"""A torch Dataset over any HumanML3D-layout folder (ours, HumanML3D itself, KIT-ML).

Layout::

    root/new_joint_vecs/NAME.npy   (T, D) features; D = 263 (HumanML3D) or 251 (KIT-ML)
    root/texts/NAME.txt            caption#word/POS ...#start#end, one caption a line
    root/Mean.npy, root/Std.npy    (D,)
    root/train.txt, val.txt, test.txt

The rules follow HumanML3D's text-to-motion dataset: motions shorter than ``min_len`` are
dropped; a caption with a time span (start, end != 0) makes its own item from frames
``start*fps : end*fps``; each ``__getitem__`` draws one caption of the item at random; lengths
are rounded down to a multiple of ``unit`` (a third of the time one unit less, as HumanML3D's
coin toss); unlike HumanML3D, motions longer than ``max_len`` are cropped, not dropped.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mosa.errors import MosaError
from mosa.motion.skeleton import FPS

LAYOUT_HINT = (
    "expected a HumanML3D-layout folder: new_joint_vecs/NAME.npy, texts/NAME.txt, Mean.npy, "
    "Std.npy and train.txt/val.txt/test.txt; build one with `mosa data build`"
)


@dataclass(frozen=True)
class TextEntry:
    """One caption line; ``start == end == 0`` means it describes the whole motion."""

    caption: str
    tokens: tuple[str, ...]
    start: float = 0.0
    end: float = 0.0

    @property
    def whole(self) -> bool:
        return self.start == 0.0 and self.end == 0.0


def _tag(value: str) -> float:
    x = float(value)
    return 0.0 if math.isnan(x) else x  # HumanML3D stores a few NaN tags meaning "whole clip"


def read_texts(path: str | os.PathLike) -> list[TextEntry]:
    """Parse a HumanML3D text file (``caption#tokens#start#end`` lines; blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise MosaError(f"caption file {path} does not exist", LAYOUT_HINT)
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split("#")
        try:
            if len(parts) != 4:
                raise ValueError(f"{len(parts)} '#'-separated fields instead of 4")
            start, end = _tag(parts[2]), _tag(parts[3])
        except ValueError as exc:
            raise MosaError(
                f"{path}:{lineno}: bad caption line ({exc}): {line.strip()[:80]!r}",
                "each line must read caption#word/POS word/POS ...#start#end",
            ) from exc
        tokens = tuple(t for t in parts[1].split(" ") if t)
        entries.append(TextEntry(parts[0], tokens, start, end))
    return entries


def read_split(root: str | os.PathLike, split: str) -> list[str]:
    """Motion names listed in ``root/{split}.txt``."""
    root = Path(root)
    if not root.is_dir():
        raise MosaError(f"dataset folder {root} does not exist", LAYOUT_HINT)
    path = root / f"{split}.txt"
    if not path.is_file():
        found = sorted(p.name for p in root.glob("*.txt"))
        raise MosaError(
            f"split file {path} does not exist (split files here: {found or 'none'})",
            LAYOUT_HINT,
        )
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def load_mean_std(root: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``root/Mean.npy`` and ``root/Std.npy`` as float32 (D,) arrays."""
    root = Path(root)
    arrays = []
    for name in ("Mean.npy", "Std.npy"):
        path = root / name
        if not path.is_file():
            raise MosaError(f"{path} does not exist", LAYOUT_HINT)
        arrays.append(np.load(path).astype(np.float32).reshape(-1))
    mean, std = arrays
    if mean.shape != std.shape:
        raise MosaError(
            f"Mean.npy {mean.shape} and Std.npy {std.shape} in {root} differ in size",
            "rebuild the dataset so both come from the same features",
        )
    if not (np.isfinite(std).all() and (std > 0).all()):
        raise MosaError(f"{root / 'Std.npy'} has zero or non-finite entries", "rebuild Std.npy")
    return mean, std


@dataclass
class _Item:
    name: str
    motion: np.ndarray  # (T, D) raw features
    texts: list[TextEntry]


class MotionDataset(Dataset):
    """(motion, caption) pairs from a HumanML3D-layout folder.

    Item: ``dict(motion=(T, D) float tensor normalised, length=T, caption=str,
    tokens=list[str] "word/POS", name=str)``. With ``seed`` given every item is a fixed function
    of (seed, index); with ``random_crop=False`` crops start at frame 0 and lengths are simply
    rounded down (use both for evaluation). Without a seed the randomness comes from torch's
    generator, so ``torch.manual_seed`` and DataLoader worker seeding control it.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        *,
        min_len: int = 40,
        max_len: int = 196,
        unit: int = 4,
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
        random_crop: bool = True,
        seed: int | None = None,
        fps: float = FPS,
    ):
        if not 0 < unit <= min_len <= max_len:
            raise MosaError(
                f"need 0 < unit <= min_len <= max_len, got {unit}, {min_len}, {max_len}",
                "choose e.g. unit=4, min_len=40, max_len=196",
            )
        self.root = Path(root)
        self.split = split
        self.min_len, self.max_len, self.unit = min_len, max_len, unit
        self.random_crop, self.seed, self.fps = random_crop, seed, fps
        names = read_split(self.root, split)
        for folder in ("new_joint_vecs", "texts"):
            if not (self.root / folder).is_dir():
                raise MosaError(f"{self.root / folder} does not exist", LAYOUT_HINT)
        if mean is None or std is None:
            file_mean, file_std = load_mean_std(self.root)
            mean = file_mean if mean is None else mean
            std = file_std if std is None else std
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        self.items: list[_Item] = []
        self.missing: list[str] = []  # names in the split without a motion or caption file
        for name in names:
            self._add(name)
        if not self.items:
            raise MosaError(
                f"split {split!r} of {self.root} has no motion of at least {min_len} frames "
                f"with a caption ({len(names)} names, {len(self.missing)} without files)",
                LAYOUT_HINT,
            )

    def _add(self, name: str) -> None:
        vec_path = self.root / "new_joint_vecs" / f"{name}.npy"
        text_path = self.root / "texts" / f"{name}.txt"
        if not vec_path.is_file() or not text_path.is_file():
            self.missing.append(name)  # HumanML3D's loader skips these too
            return
        motion = np.load(vec_path).astype(np.float32)
        if motion.ndim != 2 or motion.shape[1] != self.mean.shape[0]:
            raise MosaError(
                f"{vec_path} has shape {motion.shape}, expected (T, {self.mean.shape[0]}) "
                "to match Mean.npy",
                "all features and Mean/Std must come from the same representation",
            )
        whole = []
        for k, text in enumerate(read_texts(text_path)):
            if text.whole:
                whole.append(text)
                continue
            part = motion[int(text.start * self.fps) : int(text.end * self.fps)]
            if len(part) >= self.min_len:
                self.items.append(_Item(f"{name}@{k}", part, [text]))
        if whole and len(motion) >= self.min_len:
            self.items.append(_Item(name, motion, whole))

    @property
    def feature_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def lengths(self) -> list[int]:
        """Frame count of each item before cropping."""
        return [len(item.motion) for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def _rng(self, index: int) -> np.random.Generator:
        if self.seed is not None:
            return np.random.default_rng([self.seed, index])
        return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))

    def crop_length(self, n: int, rng: np.random.Generator) -> int:
        """Length used for a motion of ``n`` frames: at most max_len, a multiple of unit."""
        n = min(n, self.max_len)
        length = (n // self.unit) * self.unit
        # HumanML3D's coin toss: one unit shorter a third of the time, for length variety
        if self.random_crop and self.unit < 10 and rng.random() < 1 / 3:
            length = max(length - self.unit, self.unit)
            if length < self.min_len:
                length += self.unit
        return length

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        rng = self._rng(index)
        text = item.texts[int(rng.integers(len(item.texts)))]
        length = self.crop_length(len(item.motion), rng)
        start = int(rng.integers(len(item.motion) - length + 1)) if self.random_crop else 0
        motion = (item.motion[start : start + length] - self.mean) / self.std
        return {
            "motion": torch.from_numpy(np.ascontiguousarray(motion, dtype=np.float32)),
            "length": length,
            "caption": text.caption,
            "tokens": list(text.tokens),
            "name": item.name,
        }


def collate_motions(batch: list[dict]) -> dict:
    """Stack items: motion (B, T_max, D) zero-padded, mask (B, T_max) True on real frames."""
    lengths = torch.tensor([item["length"] for item in batch], dtype=torch.long)
    t_max = int(lengths.max())
    dim = batch[0]["motion"].shape[-1]
    motion = torch.zeros(len(batch), t_max, dim, dtype=batch[0]["motion"].dtype)
    for i, item in enumerate(batch):
        motion[i, : item["length"]] = item["motion"]
    mask = torch.arange(t_max)[None, :] < lengths[:, None]
    return {
        "motion": motion,
        "mask": mask,
        "lengths": lengths,
        "caption": [item["caption"] for item in batch],
        "tokens": [item["tokens"] for item in batch],
        "name": [item["name"] for item in batch],
    }
