"""Bounds on what any one input may cost: one home for them, each overridable.

Every limit is far above what real data needs (the longest takes of the corpora mosa reads are
minutes; a prompt file of a whole evaluation split is a few thousand lines), so it is only ever
hit by a broken or hostile input, which then gets a clear ``MosaError`` naming the limit and the
environment variable that raises it, instead of minutes of work and gigabytes of memory.

    MOSA_MAX_FRAMES=200000 mosa convert long_take.bvh long_take.npy

``get(name)`` reads the variable on every call, so a test or a server can change it at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mosa.errors import MosaError


@dataclass(frozen=True)
class Limit:
    name: str  # the environment variable that overrides it
    default: float
    unit: str  # what it counts, for messages
    about: str

    def value(self) -> float:
        raw = os.environ.get(self.name)
        if raw is None or not raw.strip():
            return self.default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not value > 0:  # also nan
            raise MosaError(
                f"{self.name}={raw!r} is not a positive number",
                f"unset it or set it to a number (default {self.default:g})",
            )
        return value


LIMITS = {
    limit.name: limit
    for limit in (
        Limit("MOSA_MAX_FRAMES", 72_000, "frames", "frames of one motion at 20 fps, 1 hour"),
        Limit("MOSA_MAX_FILE_MB", 100, "MB", "size of one input file"),
        Limit("MOSA_MAX_JOINTS", 1_000, "joints", "joints of one BVH skeleton"),
        Limit(
            "MOSA_MAX_JOINT_FRAMES",
            6_000_000,
            "joint-frames",
            "joints x frames of one BVH file, about 600 MB to pose",
        ),
        Limit("MOSA_MAX_PROMPTS", 10_000, "prompts", "prompts of one prompt file"),
        Limit("MOSA_MAX_MOTIONS", 10_000, "motions", "motions of one command or generate call"),
        Limit("MOSA_MAX_BATCH_SIZE", 256, "motions", "motions per generator pass"),
        Limit("MOSA_MAX_PANELS", 32, "motions", "motions rendered side by side"),
        Limit("MOSA_MAX_GIF_MB", 1_000, "MB", "memory held by the frames of one GIF"),
        Limit("MOSA_MAX_REQUEST_KB", 4_096, "KB", "body of one HTTP request to mosa serve"),
    )
}


def get(name: str) -> float:
    """The current value of limit ``name`` (e.g. ``"MOSA_MAX_FRAMES"``)."""
    return LIMITS[name].value()


def check(name: str, amount: float, what: str, hint: str | None = None) -> None:
    """``MosaError`` when ``amount`` is over limit ``name``; ``what`` names what was counted,
    e.g. ``"'take.bvh' lasts 199000 s: 3,980,001 frames at 20 fps"``."""
    limit = LIMITS[name]
    value = limit.value()
    if amount > value:
        raise MosaError(
            f"{what}; the limit is {value:,.6g} {limit.unit} ({name})",
            hint or f"if the input is right, raise the limit: {name}={round_up(amount)}",
        )


def check_file_size(path: str | os.PathLike) -> None:
    """``MosaError`` when the file at ``path`` is larger than ``MOSA_MAX_FILE_MB``."""
    size = os.stat(path).st_size
    check("MOSA_MAX_FILE_MB", size / 1e6, f"'{path}' is {size / 1e6:,.1f} MB")


def round_up(amount: float) -> int:
    """The next 1, 2 or 5 times a power of ten at or above ``amount``."""
    p = 1
    while p * 10 <= amount:
        p *= 10
    return next(m * p for m in (1, 2, 5, 10) if m * p >= amount)
