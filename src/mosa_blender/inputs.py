"""Checks of what an animator types (prompts, seeds, frame ranges, prompt lists) and the
frame <-> seconds arithmetic, in plain Python (no bpy). Every mistake is an ``InputError``
whose message names the fix; the operators report it.

Frames: an action whose keys run from frame ``first`` to ``last`` holds ``last - first + 1``
frames and lasts that many frames / fps seconds; frame ``f`` starts at ``(f - first) / fps`` s
(the server's convention: a span ``[start, end)`` in seconds).
"""

from __future__ import annotations

import math
import re

MAX_TEXT_CHARS = 300  # the server's limit (mosa.requests)
MAX_SEED = 2**31 - 1
SEPARATOR = "|"  # between the prompts (and the lengths) of a sequence


class InputError(ValueError):
    """Something the user typed cannot be used; ``str()`` says why and what to do."""


def check_text(text: str, what: str = "prompt") -> str:
    text = " ".join((text or "").split())
    if not text:
        raise InputError(f"the {what} is empty: type what the motion shows, e.g. 'a person walks'")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(
            f"the {what} has {len(text)} characters; the limit is {MAX_TEXT_CHARS}: shorten it"
        )
    return text


def check_seconds(seconds: float, what: str = "seconds") -> float | None:
    """``None`` (the model chooses) for 0 or less, else ``seconds``."""
    seconds = float(seconds)
    if not math.isfinite(seconds):
        raise InputError(f"{what} must be a number, got {seconds}")
    return None if seconds <= 0 else seconds


def check_seed(seed: int) -> int | None:
    """``None`` (a random seed) for a negative ``seed``."""
    seed = int(seed)
    if seed > MAX_SEED:
        raise InputError(f"the seed must be 0-{MAX_SEED} (or -1 for a random one), got {seed}")
    return None if seed < 0 else seed


def span_seconds(
    first: int, last: int, frame_start: int, frame_end: int, fps: float
) -> tuple[float, float]:
    """``(start, end)`` seconds into the action (keys ``first``-``last``) of the frames
    ``frame_start``-``frame_end`` (both included); ``InputError`` unless inside the action."""
    if frame_end < frame_start:
        raise InputError(
            f"the frame range {frame_start}-{frame_end} is empty: give a start frame <= the end "
            "frame"
        )
    if frame_start < first or frame_end > last:
        raise InputError(
            f"the frame range {frame_start}-{frame_end} lies outside the action (frames "
            f"{first}-{last}): pick frames inside it"
        )
    return (frame_start - first) / fps, (frame_end - first + 1) / fps


def split_texts(texts: str) -> list[str]:
    """The prompts of ``"walk forward | turn around | wave"`` (or one per line)."""
    parts = [p for line in (texts or "").splitlines() for p in line.split(SEPARATOR)]
    prompts = [" ".join(p.split()) for p in parts]
    prompts = [p for p in prompts if p]
    if len(prompts) < 1:
        raise InputError(
            "the sequence has no prompts: give them separated by '|', e.g. "
            "'walk forward | turn around | wave'"
        )
    return [check_text(p, f"prompt {i + 1}") for i, p in enumerate(prompts)]


def split_seconds(seconds: str, count: int) -> list[float] | None:
    """Lengths of a sequence's ``count`` prompts from ``"3 | 2 | 2.5"``; ``None`` (the model
    chooses every length) for an empty text."""
    parts = [p.strip() for p in (seconds or "").replace(",", SEPARATOR).split(SEPARATOR)]
    parts = [p for p in parts if p]
    if not parts:
        return None
    if len(parts) != count:
        raise InputError(
            f"{len(parts)} lengths for {count} prompts: give one length per prompt, separated "
            "by '|' (or none, to let the model choose)"
        )
    out = []
    for p in parts:
        try:
            value = float(p)
        except ValueError:
            raise InputError(f"the length {p!r} is not a number of seconds") from None
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"the length {p!r} must be more than 0 seconds")
        out.append(value)
    return out


def frames_at(fps: float, seconds: float) -> int:
    """Whole frames at ``fps`` in ``seconds`` (rounded)."""
    return int(round(seconds * fps))


def next_action_name(name: str, taken) -> str:
    """``<name>.mosa.001`` (or the next number free in ``taken``) for an edit of action
    ``name``; an edit of an edit counts on from its base: ``walk.mosa.001`` -> ``walk.mosa.002``."""
    base = re.sub(r"\.mosa\.\d{3,}$", "", name)[:50]
    for i in range(1, 100_000):
        candidate = f"{base}.mosa.{i:03d}"
        if candidate not in taken:
            return candidate
    raise InputError(f"too many edits of {name!r}: rename some actions")
