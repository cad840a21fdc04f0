"""Train/val/test splits by take, stratified over groups (the motion content), and mirror names.

A *take* is one captured clip (one BVH file). Every take lands in exactly one split; its mirrored
copy (HumanML3D's ``M`` + name) follows it, so no motion leaks from train into test through its
mirror image.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from mosa.errors import MosaError
from mosa.io import atomic_write_text

SPLITS = ("train", "val", "test")
MIRROR_PREFIX = "M"  # HumanML3D names a mirrored motion "M" + the original name


def mirror_name(name: str) -> str:
    """Name of the mirrored copy of ``name``."""
    return MIRROR_PREFIX + name


def is_mirror(name: str) -> bool:
    """True for a mirrored copy (originals start with ``dataset-`` or, in HumanML3D, a digit)."""
    return name.startswith(MIRROR_PREFIX)


def original_name(name: str) -> str:
    """The take a (possibly mirrored) clip name comes from."""
    return name[len(MIRROR_PREFIX) :] if is_mirror(name) else name


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from ``parts`` that, unlike ``hash()``, is the same in every process."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def split_counts(n: int, ratios: Sequence[float] = (0.8, 0.1, 0.1)) -> tuple[int, int, int]:
    """How many of ``n`` takes go to (train, val, test).

    Rounded ratios, but a group with at least 3 takes always gives one to val and one to test,
    and train always keeps at least one.
    """
    if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
        raise MosaError(f"bad split ratios {tuple(ratios)}", "give three non-negative numbers")
    total = float(sum(ratios))
    n_val = round(n * ratios[1] / total)
    n_test = round(n * ratios[2] / total)
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    else:
        n_val = n_test = 0
    n_val = min(n_val, max(n - 1 - n_test, 0))
    return n - n_val - n_test, n_val, n_test


def split_by_group(
    names: Iterable[str],
    group_of: Callable[[str], str],
    *,
    seed: int = 0,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
) -> dict[str, str]:
    """Assign each take to "train", "val" or "test", stratified over ``group_of(name)``.

    Within each group the takes are shuffled by a generator seeded from (seed, group), so the
    result depends only on the seed and the set of names, not on their order or on other groups.
    Returns ``{name: split}``.
    """
    groups: dict[str, list[str]] = defaultdict(list)
    for name in sorted(set(names)):
        groups[group_of(name)].append(name)
    assign: dict[str, str] = {}
    for group, members in sorted(groups.items()):
        rng = np.random.default_rng(stable_seed("split", seed, group))
        order = [members[i] for i in rng.permutation(len(members))]
        n_train, n_val, _ = split_counts(len(order), ratios)
        for i, name in enumerate(order):
            assign[name] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return assign


def with_mirrors(assign: Mapping[str, str], mirrored: Iterable[str]) -> dict[str, str]:
    """Put the mirrored copy (``M`` + name) of each take in ``mirrored`` in its take's split."""
    out = dict(assign)
    for name in mirrored:
        if name not in assign:
            raise KeyError(f"{name} has no split to give its mirror")
        out[mirror_name(name)] = assign[name]
    return out


def split_lists(assign: Mapping[str, str]) -> dict[str, list[str]]:
    """``{"train": [...], "val": [...], "test": [...], "all": [...]}``, each sorted."""
    lists: dict[str, list[str]] = {s: [] for s in (*SPLITS, "all")}
    for name, split in assign.items():
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r} for {name}")
        lists[split].append(name)
        lists["all"].append(name)
    return {k: sorted(v) for k, v in lists.items()}


def write_splits(root: str | Path, assign: Mapping[str, str]) -> dict[str, list[str]]:
    """Write train.txt, val.txt, test.txt and all.txt (one name a line) in ``root``."""
    lists = split_lists(assign)
    for split, names in lists.items():
        atomic_write_text(Path(root) / f"{split}.txt", "".join(f"{n}\n" for n in names))
    return lists
