"""Datasets in the HumanML3D folder layout: building ours, reading any (HumanML3D, KIT-ML)."""

from mosa.data.build import build_dataset
from mosa.data.captions import clip_captions, make_captions
from mosa.data.dataset import (
    MotionDataset,
    TextEntry,
    collate_motions,
    load_mean_std,
    read_split,
    read_texts,
)

__all__ = [
    "MotionDataset",
    "TextEntry",
    "build_dataset",
    "clip_captions",
    "collate_motions",
    "load_mean_std",
    "make_captions",
    "read_split",
    "read_texts",
]
