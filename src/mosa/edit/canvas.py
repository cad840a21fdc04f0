"""The canvas of an edit: kept source frames and frames to generate, laid out in order, and
the window and token masks the generator works on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mosa.errors import MosaError
from mosa.motion.skeleton import (
    FEATURE_DIM,
)

# --------------------------------------------------------------------------------------------
# the canvas: kept source frames and frames to generate


@dataclass
class Part:
    """One piece of an output, in order: ``features (F, 263)`` to keep, or ``frames`` to
    generate (``fill``: optional features standing in for them when encoding the canvas)."""

    features: np.ndarray | None = None
    frames: int = 0
    fill: np.ndarray | None = None
    source: int | None = None  # which source the kept features come from
    source_start: int = 0  # their first frame in that source's features

    @property
    def kept(self) -> bool:
        return self.features is not None

    def __len__(self) -> int:
        return len(self.features) if self.kept else self.frames


@dataclass
class Segment:
    """Frames ``[start, end)`` of the output; kept ones came from ``source`` at
    ``[source_start, source_start + end - start)`` of its feature frames."""

    kind: str  # "kept" or "generated"
    start: int
    end: int
    source: int | None = None
    source_start: int | None = None


@dataclass
class Canvas:
    """The layout of an edit: ``features (T, 263)`` de-normalised (sources on kept frames,
    interpolated or given fill on generated ones), ``kept (T,)`` bool, and the segments."""

    features: np.ndarray
    kept: np.ndarray
    segments: list[Segment]

    @property
    def frames(self) -> int:
        return len(self.kept)

    def slice(self, a: int, b: int) -> Canvas:
        """Frames ``[a, b)`` as a canvas of their own (segments clipped and shifted)."""
        segments = []
        for g in self.segments:
            lo, hi = max(g.start, a), min(g.end, b)
            if lo < hi:
                start = None if g.source_start is None else g.source_start + lo - g.start
                segments.append(Segment(g.kind, lo - a, hi - a, g.source, start))
        return Canvas(self.features[a:b], self.kept[a:b], segments)


def layout(
    parts: Sequence[Part],
    unit: int,
    frame_range: tuple[int, int],
    crop: bool = False,
    windowed: bool = False,
) -> Canvas:
    """Lay out ``parts`` on a canvas whose length is a multiple of ``unit`` frames and inside
    ``frame_range`` (frames). The rounding frames go to the first generated part. Too long:
    ``MosaError``, or with ``crop`` the outermost kept frames (farthest from anything
    generated) are dropped until it fits. ``windowed``: the generator will see only a window
    around the generated frames (``generator_window``), so only the stretch from the first
    to the last generated frame must fit (outpainting's is the whole canvas)."""
    parts = [Part(p.features, p.frames, p.fill, p.source, p.source_start) for p in parts]
    gen = [p for p in parts if not p.kept]
    if not gen:
        raise MosaError("nothing to generate", "give a span, or seconds to add")
    total = sum(len(p) for p in parts)
    gen[0].frames += (-total) % unit
    total = sum(len(p) for p in parts)
    lo, hi = frame_range
    at = [i for i, p in enumerate(parts) if not p.kept]
    first, last = at[0], at[-1]
    span = sum(len(p) for p in parts[first : last + 1]) if windowed else total
    if span > hi:
        if not crop or (windowed and first == last):
            what = "the generated part" if windowed else "the edited motion"
            hint = (
                f"generate at most {_secs(hi)}"
                if windowed
                else "use a shorter source or fewer seconds (CLI: --crop drops the source "
                "frames farthest from the edit; --context SECONDS shows the generator only "
                "that much of the source either side)"
            )
            raise MosaError(
                f"{what} would be {_secs(span)} ({span} frames), longer than the "
                f"generator's maximum {_secs(hi)} ({hi} frames at 20 fps)",
                hint,
            )
        _crop_ends(parts, span - hi)
        total -= span - hi
    if total < lo:
        raise MosaError(
            f"the edited motion would be {_secs(total)} ({total} frames), shorter than the "
            f"generator's minimum {_secs(lo)} ({lo} frames at 20 fps)",
            "use a longer source or generate more seconds",
        )
    return _paint(parts)


def _secs(frames: int, fps: float = 20.0) -> str:
    return f"{frames / fps:g} s"


def _crop_ends(parts: list[Part], excess: int) -> None:
    """Drop ``excess`` frames from the kept parts at both ends, longer end first."""
    left = parts[0] if parts[0].kept else None
    right = parts[-1] if parts[-1].kept and len(parts) > 1 else None
    if left is None and right is None:
        _crop_middle(parts, excess)
        return
    nl, nr = (len(left) if left else 0), (len(right) if right else 0)
    if nl + nr - excess < 0:
        raise MosaError(
            f"cannot crop {excess} frames: only {nl + nr} source frames lie outside the edit",
            "use fewer seconds of generated motion",
        )
    cut_l = cut_r = 0
    for _ in range(excess):  # one frame at a time from the longer side keeps them balanced
        if nl - cut_l >= nr - cut_r:
            cut_l += 1
        else:
            cut_r += 1
    if left is not None and cut_l:
        left.features, left.source_start = left.features[cut_l:], left.source_start + cut_l
    if right is not None and cut_r:
        right.features = right.features[: len(right) - cut_r]
    if any(p.kept and len(p) == 0 for p in parts):
        parts[:] = [p for p in parts if not p.kept or len(p) > 0]


def _crop_middle(parts: list[Part], excess: int) -> None:
    """Outpainting: both ends are generated, so trim the one kept source part on both sides."""
    kept = [p for p in parts if p.kept]
    if len(kept) != 1 or len(kept[0]) <= excess:
        have = sum(len(p) for p in kept)
        raise MosaError(
            f"cannot crop {excess} frames: only {have} source frames are kept",
            "use fewer seconds of generated motion or a shorter source",
        )
    p, cut_l = kept[0], (excess + 1) // 2
    p.features = p.features[cut_l : len(p) - (excess - cut_l)]
    p.source_start += cut_l


def _paint(parts: Sequence[Part]) -> Canvas:
    total = sum(len(p) for p in parts)
    feats = np.zeros((total, FEATURE_DIM), np.float32)
    known = np.zeros(total, bool)
    kept = np.zeros(total, bool)
    segments, t = [], 0
    for p in parts:
        n = len(p)
        if p.kept:
            feats[t : t + n], known[t : t + n], kept[t : t + n] = p.features, True, True
            segments.append(Segment("kept", t, t + n, p.source, p.source_start))
        else:
            if p.fill is not None:
                m = min(n, len(p.fill))
                feats[t : t + m], known[t : t + m] = p.fill[:m], True
            segments.append(Segment("generated", t, t + n))
        t += n
    return Canvas(_interpolate(feats, known), kept, segments)


def _interpolate(feats: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill unknown frames linearly between the nearest known ones (held at the ends)."""
    if known.all() or not known.any():
        return feats
    t = np.arange(len(feats))
    out = feats.copy()
    for c in range(feats.shape[1]):
        out[~known, c] = np.interp(t[~known], t[known], feats[known, c])
    return out


# --------------------------------------------------------------------------------------------
# masks and weights


def token_masks(kept: np.ndarray, scale_lengths: Sequence[int]) -> list[np.ndarray]:
    """Which tokens of each scale lie entirely on kept frames.

    kept ``(T,)`` bool; token i of a scale with ``n_k`` tokens covers frames
    ``[floor(i T / n_k), ceil((i + 1) T / n_k))``. Returns one ``(n_k,)`` bool array per scale.
    """
    T = len(kept)
    out = []
    for n_k in scale_lengths:
        i = np.arange(n_k)
        starts, ends = (i * T) // n_k, -((-(i + 1) * T) // n_k)
        out.append(np.array([kept[s:e].all() for s, e in zip(starts, ends, strict=True)]))
    return out


def generator_window(
    kept: np.ndarray, context: int | None, unit: int, frame_range: tuple[int, int]
) -> tuple[int, int]:
    """Frames ``[a, b)`` of a canvas that the generator sees: every generated frame plus up
    to ``context`` kept frames on either side (None: the whole canvas), widened to the
    generator's minimum length where the canvas allows, with ``a`` and ``b - a`` multiples
    of ``unit`` (``len(kept)`` is one). Too long for the generator: the context shrinks."""
    T = len(kept)
    gen = np.flatnonzero(~kept)
    if context is None or not len(gen):
        return 0, T
    lo, hi = frame_range
    g0, g1 = int(gen[0]), int(gen[-1]) + 1
    if g1 - g0 > hi:
        raise MosaError(
            f"the generated frames span {_secs(g1 - g0)}, more than the generator's maximum "
            f"{_secs(hi)}",
            "generate fewer seconds",
        )
    context = max(0, min(int(context), (hi - (g1 - g0)) // 2))
    a, b = max(0, g0 - context), min(T, g1 + context)
    short = lo - (b - a)
    if short > 0:  # grow both ways, then the other way where a side hits the canvas' end
        a, b = a - (short + 1) // 2, b + short // 2
        a, b = (0, b - a) if a < 0 else (a, b)
        a, b = (max(0, a - (b - T)), T) if b > T else (a, b)
    a, b = a // unit * unit, min(T, -(-b // unit) * unit)
    while b - a > hi:  # rounding to whole tokens went over: give back a token of context
        if g0 - a >= unit and (g0 - a >= b - g1 or b - g1 < unit):
            a += unit
        elif b - g1 >= unit:
            b -= unit
        else:
            raise MosaError(
                f"the generated frames and their rounding span {_secs(b - a)}, more than "
                f"the generator's maximum {_secs(hi)}",
                "generate fewer seconds",
            )
    return a, b


def latent_mask(kept: np.ndarray, unit: int) -> np.ndarray:
    """``(T / unit,)`` bool: latent positions whose ``unit`` frames are all kept."""
    return kept.reshape(-1, unit).all(axis=1)
