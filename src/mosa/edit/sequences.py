"""Long takes from a sequence of prompts: walk in, stop, wave, bow as one continuous motion.

    >>> import mosa, mosa.edit as E
    >>> pipe = mosa.load()
    >>> take = E.sequence(pipe, ["a person walks forward", "a person waves with the right hand",
    ...                          "a person bows"], seconds=[3, 2, 2], seed=1)
    >>> take.spans          # [('a person walks forward', 0, 60), (..., 60, 100), (..., 100, 140)]
    >>> take.save("take.bvh")

Part 1 is plain generation (``Pipeline.generate``, the checkpoint's ``defaults``). Every later
part is a continuation of the take so far, the ``extend`` canvas: the last ``context`` seconds
of the take (``DEFAULT_CONTEXT``, at least ``MIN_CONTEXT``, fewer when the part is long: the
window is at most the generator's maximum length) are kept, the part's frames generated after
them (``run_canvas``, the editing defaults ``edit_defaults``), and the seam joined by offset
blending (``offset_join`` with ``damp_short_bones``: a bone the decode makes short at the
seam does not whip the joints below it), so the pose, the root's path and its speed carry
on. The generator
only ever sees one window, so time and memory grow linearly with the number of parts.

The rule for kept frames: a later part never changes an earlier one. The features of part i's
frames in the final take are exactly (bit for bit) the features its own continuation made;
the seam blend lies entirely in the later part's frames. The take's joints integrate the
features once from the start, so they equal the joints of the take so far to float precision.

Every part is generated ``OVERHANG`` seconds longer than it is and cut: the decoder's last
frame is often off, and the next part would start from it. Part i uses seed ``seed + i``;
part lengths are exact (``round(seconds * fps)`` frames; ``seconds=None``: the length
estimator per part, as ``Pipeline.generate`` draws it).
"""

from __future__ import annotations

import numbers
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mosa import limits
from mosa.edit.canvas import Part, layout
from mosa.edit.modes import DEFAULT_CONTEXT, run_canvas
from mosa.edit.seams import DEFAULT_BLEND
from mosa.errors import MosaError
from mosa.motion.features import recover_joints
from mosa.motion.skeleton import FPS
from mosa.pipeline import GeneratedMotion, Pipeline
from mosa.requests import check_number, check_seed, check_text, sampling_options

MIN_CONTEXT = 1.0  # seconds of the take a continuation sees at least (so parts <= max - 1 s)
# seconds every part is generated past its end and then dropped: the decoder's last frame is
# often off (a jerk in the pose, and a velocity pointing at no frame), and the next part would
# keep it and carry it on from its seam
OVERHANG = 0.2
LENGTH_SEED_OFFSET = 7919  # the length draw's generator seed is seed + this (as Pipeline's)
RANDOM_SEEDS = 2**31  # a sequence without a seed draws one below this (short to type back)


@dataclass
class SequencePart:
    """Frames ``[start, end)`` of a take show ``text``; ``seed`` made them, after ``context``
    kept frames of the take before them that the generator saw (0 for the first part)."""

    text: str
    start: int
    end: int
    seed: int
    context: int = 0

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass
class SequenceMotion(GeneratedMotion):
    """A ``GeneratedMotion`` (``joints (T, 22, 3)``, ``features (T, 263)``; ``text``: the
    prompts joined by " / ", ``seed``: the first part's) made of ``parts`` in order."""

    parts: list[SequencePart] = field(default_factory=list)

    @property
    def spans(self) -> list[tuple[str, int, int]]:
        """``(text, start_frame, end_frame)`` of every part."""
        return [(p.text, p.start, p.end) for p in self.parts]

    @property
    def seams(self) -> list[int]:
        """The first frame of every part after the first."""
        return [p.start for p in self.parts[1:]]

    def seconds_of(self, part: SequencePart) -> tuple[float, float]:
        """``(start, end)`` of a part in seconds."""
        return part.start / self.fps, part.end / self.fps


@dataclass
class SequencePlan:
    """Checked inputs of a sequence: ``frames`` per part (None: the length estimator's)."""

    texts: list[str]
    frames: list[int] | None
    seed: int

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(len(self.texts))]


# --------------------------------------------------------------------------------------------
# inputs


def longest_part(frame_range: tuple[int, int], fps: float, first: bool) -> int:
    """Most frames a part may have: the generator's maximum less the ``OVERHANG``; for a
    later part also less ``MIN_CONTEXT`` seconds of the take before it, which the window
    must hold."""
    hi = frame_range[1] - round(OVERHANG * fps)
    return hi if first else hi - round(MIN_CONTEXT * fps)


def check_sequence(
    texts: str | Sequence[str],
    seconds: float | Sequence[float] | None = None,
    seed: int | None = None,
    *,
    frame_range: tuple[int, int],
    fps: float = FPS,
) -> SequencePlan:
    """``MosaError`` (with a hint) for an empty part, a part shorter than the generator's
    minimum or longer than a continuation can make, a number of ``seconds`` that is not one
    per part, too many parts or too long a take (``MOSA_MAX_MOTIONS``, ``MOSA_MAX_FRAMES``)
    or a bad seed; else the plan (a seed drawn when None). Needs no model: ``frame_range``
    is the generator's (``Pipeline.frame_range``, ``loading.frame_info``)."""
    texts = _texts(texts)
    n = len(texts)
    limits.check("MOSA_MAX_MOTIONS", n, f"{n:,} parts", "use fewer parts")
    frames = None if seconds is None else _part_frames(seconds, n, frame_range, fps)
    if frames is not None:
        total = sum(frames)
        limits.check("MOSA_MAX_FRAMES", total, f"the take would be {total / fps:g} s "
                     f"({total:,} frames at {fps:g} fps)")  # fmt: skip
    if seed is None:
        seed = random.SystemRandom().randrange(RANDOM_SEEDS)
    else:
        seed = check_seed(seed, n, "seed")
    return SequencePlan(texts, frames, seed)


def _texts(texts) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    elif isinstance(texts, bytes | bytearray) or not isinstance(texts, Iterable):
        check_text(texts, "texts")  # says what it is instead
    texts = list(texts)
    if not texts:
        raise MosaError(
            "no parts given",
            "pass one prompt per part, e.g. ['a person walks forward', 'a person bows']",
        )
    return [check_text(t, f"part {i + 1}") for i, t in enumerate(texts)]


def _part_frames(seconds, n: int, frame_range: tuple[int, int], fps: float) -> list[int]:
    """Frames per part from ``seconds`` (one number for all parts, or one per part)."""
    if isinstance(seconds, torch.Tensor | np.ndarray):
        seconds = seconds.tolist()
    if isinstance(seconds, numbers.Real) and not isinstance(seconds, bool):
        seconds = [seconds] * n
    elif isinstance(seconds, str | bytes | bytearray) or not isinstance(seconds, Iterable):
        check_number(seconds, "seconds")  # says what it is instead
    seconds = list(seconds)
    if len(seconds) != n:
        raise MosaError(
            f"{len(seconds)} seconds value(s) for {n} part(s)",
            "give one length per part (CLI: --seconds with as many numbers as prompts), or "
            "none to let the length estimator pick",
        )
    lo = frame_range[0]
    out = []
    for i, value in enumerate(seconds):
        name = f"part {i + 1}"
        s = check_number(value, f"{name}: seconds")
        f = round(s * fps) if s > 0 else 0
        if f < lo:
            raise MosaError(
                f"{name} is {s:g} s, shorter than the generator's minimum {lo / fps:g} s",
                f"make it at least {lo / fps:g} s long, or give its frames to a part next to it",
            )
        most = longest_part(frame_range, fps, first=i == 0)
        if f > most:
            why = f"the generator's {frame_range[1] / fps:g} s less {OVERHANG:g} s of overhang"
            if i > 0:
                why += f" and {MIN_CONTEXT:g} s of the take before it"
            raise MosaError(
                f"{name} is {s:g} s, longer than {most / fps:g} s ({why})",
                "split it into parts with the same prompt",
            )
        out.append(f)
    return out


def check_context(context: float, fps: float = FPS, name: str = "context") -> int:
    """``context`` seconds as frames; ``MosaError`` unless a number >= ``MIN_CONTEXT``."""
    c = check_number(context, name)
    if c < MIN_CONTEXT:
        raise MosaError(
            f"{name} must be at least {MIN_CONTEXT:g} s, got {c:g}",
            f"e.g. context={DEFAULT_CONTEXT:g} (CLI: --context {DEFAULT_CONTEXT:g})",
        )
    return round(c * fps)


# --------------------------------------------------------------------------------------------
# lengths


@torch.inference_mode()
def estimate_frames(pipe: Pipeline, texts: Sequence[str], seeds: Sequence[int]) -> list[int]:
    """The length estimator's frames for each text, drawn as ``Pipeline.generate`` draws a
    motion's length for that seed (its own generator, ``seed + LENGTH_SEED_OFFSET``), each at
    most what its part may have (``longest_part``)."""
    if pipe.length_model is None:
        raise MosaError(
            "no part lengths given and the checkpoint has no length estimator",
            "pass seconds=[...] (CLI: --seconds S [S ...], one per prompt)",
        )
    dev, cfg = pipe.device, pipe.sar.config
    out = []
    for i, (text, seed) in enumerate(zip(texts, seeds, strict=True)):
        _, _, pooled = pipe.text_encoder.encode_with_pooled([text])
        g = torch.Generator(device=dev).manual_seed(seed + LENGTH_SEED_OFFSET)
        n = int(pipe.length_model.predict(pooled.to(dev), generators=[g]).cpu()[0])
        f = max(cfg.min_tokens, min(cfg.max_tokens, n)) * pipe.unit
        out.append(min(f, longest_part(pipe.frame_range, pipe.fps, first=i == 0)))
    return out


# --------------------------------------------------------------------------------------------
# the take


def sequence(
    pipe: Pipeline,
    texts: str | Sequence[str],
    seconds: float | Sequence[float] | None = None,
    seed: int | None = None,
    *,
    context: float = DEFAULT_CONTEXT,
    blend: int = DEFAULT_BLEND,
    cfg: float | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    on_part: Callable[[int, SequencePart], None] | None = None,
) -> SequenceMotion:
    """One continuous take showing ``texts`` in order; see the module docstring.

    ``seconds``: one length per part (or one for all; None: the length estimator's).
    ``seed``: part i uses ``seed + i`` (drawn when None). ``context``: seconds of the take
    before a part that its generator sees (>= ``MIN_CONTEXT``). ``blend``: the shortest seam
    window (frames, ``offset_join``). The sampling options left None take the checkpoint's
    ``defaults`` for part 1 and its ``edit_defaults`` for the continuations. ``on_part(i,
    part)`` is called after each part (progress)."""
    plan = check_sequence(texts, seconds, seed, frame_range=pipe.frame_range, fps=pipe.fps)
    ctx = check_context(context, pipe.fps)
    sampling = {"cfg": cfg, "temperature": temperature, "top_k": top_k, "top_p": top_p}
    sampling_options(pipe.defaults, **sampling)  # bad values fail before any generating
    frames = plan.frames or estimate_frames(pipe, plan.texts, plan.seeds)
    limits.check("MOSA_MAX_FRAMES", sum(frames), f"the take would be {sum(frames):,} frames")
    chunks: list[np.ndarray] = []
    parts: list[SequencePart] = []
    start = 0
    for i, (text, n, s) in enumerate(zip(plan.texts, frames, plan.seeds, strict=True)):
        if i == 0:
            feats, kept = first_part(pipe, text, n, s, **sampling), 0
        else:
            feats, kept = continue_take(pipe, chunks, text, n, s, ctx, blend=blend, **sampling)
        chunks.append(feats)
        parts.append(SequencePart(text, start, start + n, s, kept))
        start += n
        if on_part is not None:
            on_part(i, parts[-1])
    features = np.concatenate(chunks).astype(np.float32)
    joints = np.asarray(recover_joints(features), np.float32)
    text = " / ".join(plan.texts)
    return SequenceMotion(text, plan.seed, joints, features, pipe.fps, [], parts=parts)


def first_part(pipe: Pipeline, text: str, frames: int, seed: int, **sampling) -> np.ndarray:
    """``(frames, 263)`` features of the first part: ``Pipeline.generate`` of ``frames`` plus
    the ``OVERHANG`` in whole tokens (rounded up), cut to ``frames``."""
    unit, more = pipe.unit, frames + _overhang(pipe.fps)
    [m] = pipe.generate(text, frames=-(-more // unit) * unit, seed=seed, **sampling)
    return np.asarray(m.features[:frames], np.float32)


def _overhang(fps: float) -> int:
    return round(OVERHANG * fps)


def continue_take(
    pipe: Pipeline,
    take: Sequence[np.ndarray],
    text: str,
    frames: int,
    seed: int,
    context: int,
    **kw,
) -> tuple[np.ndarray, int]:
    """``frames`` new frames after the take (its features, in chunks ``take``) for ``text``:
    the ``extend`` canvas over the take's last frames, which the generator sees whole.

    The generated run is the part plus the ``OVERHANG`` (dropped). The kept tail is at most
    ``context`` frames and leaves room for the run in the generator's window; it is
    shortened by up to ``unit - 1`` frames so the window is whole tokens. Returns
    ``(features (frames, 263), kept)``: ``kept`` frames of the take were the context. ``kw``:
    ``run_canvas``'s (blend, sampling).
    """
    unit, hi = pipe.unit, pipe.frame_range[1]
    have = sum(len(c) for c in take)
    run = frames + _overhang(pipe.fps)
    kept = min(context, have, hi - run)
    kept -= (kept + run) % unit
    if kept < 1:
        raise MosaError(
            f"a {frames / pipe.fps:g} s part leaves no room for the take before it in the "
            f"generator's {hi / pipe.fps:g} s window",
            "make the part shorter",
        )
    tail = _last(take, kept)
    canvas = layout([Part(tail, source=0), Part(frames=run)], unit, pipe.frame_range)
    m = run_canvas(pipe, canvas, text, context=None, seed=seed, damp_short_bones=True, **kw)
    return np.asarray(m.features[kept : kept + frames], np.float32), kept


def _last(chunks: Sequence[np.ndarray], k: int) -> np.ndarray:
    """The last ``k`` frames of the chunks joined (joining only the chunks they lie in)."""
    picked, have = [], 0
    for c in reversed(chunks):
        picked.append(c)
        have += len(c)
        if have >= k:
            break
    return np.concatenate(picked[::-1])[-k:]
