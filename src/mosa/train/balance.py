"""Repeating the items of rare groups in training (``--balance-by``), for every trainer.

An item's group is its rarest action (``actions.json`` of a built dataset) or a regex capture
of its name; a group of ``n`` items is repeated ``(typical / n) ** power`` times per epoch.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset

from mosa.errors import MosaError

BALANCE_BY_ACTIONS = "actions"  # --balance-by actions: group items by their rarest action


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


def action_groups(names: list[str], actions: dict[str, list[str]]) -> list[str]:
    """Each item's rarest action (``actions.json`` of a built dataset: name -> actions);
    ``""`` for items without one. Rarity counts the items given."""
    counts = Counter(a for n in names for a in actions.get(n, []))
    return [min(actions.get(n, []), key=lambda a: (counts[a], a), default="") for n in names]


def balance_repeats(
    names: list[str],
    pattern: str,
    power: float,
    cap: int,
    actions: dict[str, list[str]] | None = None,
) -> list[int]:
    """How often each item is repeated per epoch so rare groups are seen more often.

    An item's group is the first capture group of ``pattern`` searched in its name (for
    Bandai-Namco, ``_([a-z-]+)_`` gives the content: walk, walk-back, kick, ...); with the
    pattern ``actions``, its rarest action in ``actions`` (``action_groups``). A group of
    ``n`` items is repeated ``round((typical / n) ** power)`` times, at least 1, at most ``cap``,
    where ``typical`` is the size of the average item's group (sum n^2 / sum n); items the
    pattern does not match form one group of their own.
    """
    if pattern == BALANCE_BY_ACTIONS:
        if actions is None:
            raise MosaError(
                "--balance-by actions needs the dataset's actions.json",
                "rebuild the dataset with `mosa data build`, or balance by a name regex",
            )
        groups = action_groups(names, actions)
    else:
        groups = _regex_groups(names, pattern)
    counts = Counter(groups)
    typical = sum(n * n for n in counts.values()) / len(groups)
    rep = {g: int(min(max(round((typical / n) ** power), 1), cap)) for g, n in counts.items()}
    return [rep[g] for g in groups]


def _regex_groups(names: list[str], pattern: str) -> list[str]:
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
    return groups


def read_actions(data_dir: str | Path) -> dict[str, list[str]] | None:
    """``actions.json`` of a dataset folder (clip name -> canonical actions), or None."""
    path = Path(data_dir) / "actions.json"
    return json.loads(path.read_text()) if path.is_file() else None


class RepeatedItems(Dataset):
    """``base`` with item ``i`` listed ``repeats[i]`` times per epoch (``len(repeats)`` must be
    ``len(base)``)."""

    def __init__(self, base: Dataset, repeats: Sequence[int]):
        if len(repeats) != len(base):  # type: ignore[arg-type]
            raise ValueError(f"{len(repeats)} repeats for {len(base)} items")  # type: ignore[arg-type]
        self.base = base
        self.index = [i for i, r in enumerate(repeats) for _ in range(int(r))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int):
        return self.base[self.index[i]]
