"""Running an edit and its modes: span, extend, lead-in, outpaint, in-between."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from mosa.edit.canvas import (
    Canvas,
    Part,
    Segment,
    generator_window,
    latent_mask,
    layout,
    token_masks,
)
from mosa.edit.seams import DEFAULT_BLEND, Seam, offset_join
from mosa.errors import MosaError
from mosa.motion.features import (
    extract_features,
    recover_joints,
)
from mosa.motion.io import MotionFile
from mosa.motion.skeleton import (
    NUM_JOINTS,
)
from mosa.pipeline import GeneratedMotion, Pipeline
from mosa.requests import DEFAULTS, check_number
from mosa.sampling import ForcedTokens

# seconds of kept source on either side of an edit that the generator sees: less follows the
# text more and the source less (docs/editing measures 2 s against this default)
DEFAULT_CONTEXT = 4.0

Source = np.ndarray | MotionFile


# --------------------------------------------------------------------------------------------
# running an edit


@dataclass
class EditedMotion(GeneratedMotion):
    """A ``GeneratedMotion`` plus how it was made: ``kept (T,)`` frames that came from the
    source, ``weights (T,)`` the share of the seam offsets applied per frame (1 on kept
    frames, 0 where the output is the decode; ``offset_join``), ``decoded (T, 263)`` the raw
    decode, ``reconstruction (T, 263)`` the tokenizer's round trip of the canvas,
    ``canvas (T, 263)`` the source features laid out, ``source_tokens`` and ``token_masks``
    (one per scale), the output ``segments`` and the ``seams`` of the join. ``window``: the
    frames ``[a, b)`` the generator saw; ``tokens``, ``source_tokens`` and ``token_masks``
    are the window's, and outside it ``decoded`` and ``reconstruction`` hold the source (it
    was neither encoded nor decoded there)."""

    kept: np.ndarray | None = field(default=None, repr=False)
    weights: np.ndarray | None = field(default=None, repr=False)
    decoded: np.ndarray | None = field(default=None, repr=False)
    reconstruction: np.ndarray | None = field(default=None, repr=False)
    canvas: np.ndarray | None = field(default=None, repr=False)
    source_tokens: list[np.ndarray] = field(default_factory=list, repr=False)
    token_masks: list[np.ndarray] = field(default_factory=list, repr=False)
    segments: list[Segment] = field(default_factory=list)
    seams: list[Seam] = field(default_factory=list)
    window: tuple[int, int] | None = None


def run_canvas(
    pipe: Pipeline,
    canvas: Canvas,
    text: str,
    *,
    context: float | None = DEFAULT_CONTEXT,
    **kw,
) -> EditedMotion:
    """Generate the non-kept frames of ``canvas`` for ``text``; see the module docstring.

    ``context``: seconds of kept frames on either side of the generated ones that the
    generator sees (``generator_window``; None: the whole canvas). The rest of the canvas is
    kept as it is. A long kept context makes the generator continue the source's action
    rather than the text's. ``kw``: ``_run_window``'s options (seed, blend, keep_source,
    damp_short_bones, sampling).
    """
    frames = None if context is None else _context_frames(context, pipe.fps)
    a, b = generator_window(canvas.kept, frames, pipe.unit, pipe.frame_range)
    m = _run_window(pipe, canvas.slice(a, b), text, **kw)
    return m if (a, b) == (0, canvas.frames) else _widen(m, canvas, a, b)


def parse_context(text: str) -> float | None:
    """``--context`` as text: seconds >= 0, or ``all`` (None: the whole motion); ValueError
    otherwise."""
    if text.strip().lower() == "all":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"expected seconds >= 0 or 'all', got {text!r}")
    return value


def _context_frames(context: float, fps: float) -> int:
    c = float(context)
    if not np.isfinite(c) or c < 0:
        raise MosaError(f"context must be >= 0 seconds, got {context}", "e.g. --context 2")
    return round(c * fps)


def _widen(m: EditedMotion, canvas: Canvas, a: int, b: int) -> EditedMotion:
    """``m``, made on frames ``[a, b)`` of ``canvas``, as the whole canvas: the source's
    features outside (so the joints integrate across the window's edges unchanged)."""
    T = canvas.frames

    def whole(inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
        out = np.array(outside, dtype=inside.dtype, copy=True)
        out[a:b] = inside
        return out

    features = whole(m.features, canvas.features)
    for s in m.seams:
        s.frame += a
    return EditedMotion(
        m.text, m.seed, np.asarray(recover_joints(features), np.float32), features, m.fps,
        m.tokens, kept=canvas.kept, weights=whole(m.weights, np.ones(T, np.float32)),
        decoded=whole(m.decoded, canvas.features),
        reconstruction=whole(m.reconstruction, canvas.features), canvas=canvas.features,
        source_tokens=m.source_tokens, token_masks=m.token_masks, segments=canvas.segments,
        seams=m.seams, window=(a, b),
    )  # fmt: skip


@torch.inference_mode()
def _run_window(
    pipe: Pipeline,
    canvas: Canvas,
    text: str,
    *,
    seed: int | None = None,
    blend: int = DEFAULT_BLEND,
    keep_source: bool = True,
    damp_short_bones: bool = False,
    **sampling,
) -> EditedMotion:
    """Generate the non-kept frames of ``canvas``, all of which the generator sees.

    ``keep_source``: kept frames are the source's own features, joined to the generated ones
    by ``offset_join`` (``blend``: its shortest seam window, frames; ``damp_short_bones``:
    its option of that name); False returns the decoded motion everywhere. ``sampling``:
    cfg, temperature, top_k, top_p; those left out or None take ``pipe.edit_defaults``.
    """
    unit, T = pipe.unit, canvas.frames
    if T % unit:
        raise MosaError(f"canvas of {T} frames is not a multiple of {unit}", "use layout()")
    n = T // unit
    dev = pipe.device
    x = (torch.from_numpy(canvas.features) - pipe.mean) / pipe.std
    src_tokens = pipe.vae.encode(x[None].to(dev), torch.tensor([T], device=dev))
    quantizer = pipe.vae.quantizer
    masks = token_masks(canvas.kept, quantizer.scale_lengths(n))
    strategy = ForcedTokens(
        [t.cpu() for t in src_tokens], [torch.from_numpy(m)[None] for m in masks]
    )
    given = {k: v for k, v in sampling.items() if v is not None}
    sampling = {k: pipe.edit_defaults[k] for k in DEFAULTS} | given
    [gen] = pipe.generate(text, frames=T, seed=seed, strategy=strategy, **sampling)

    lengths = torch.tensor([n])
    f_src = quantizer.decode(src_tokens, lengths)
    f_gen = quantizer.decode([torch.from_numpy(t)[None].to(dev) for t in gen.tokens], lengths)
    paste = torch.from_numpy(latent_mask(canvas.kept, unit)).to(dev)[None, :, None]
    decoded = pipe.decode_latent(torch.where(paste, f_src, f_gen), lengths)[0]
    recon = pipe.decode_latent(f_src, lengths)[0]

    if keep_source:
        features, w, seams = offset_join(
            canvas.features, decoded, canvas.kept, min_window=blend, fps=pipe.fps,
            damp_short_bones=damp_short_bones,
        )  # fmt: skip
    else:
        features, w, seams = decoded.astype(np.float32), np.zeros(T, np.float32), []
    joints = np.asarray(recover_joints(features), dtype=np.float32)
    return EditedMotion(
        gen.text, gen.seed, joints, features, pipe.fps, gen.tokens,
        kept=canvas.kept, weights=w, decoded=decoded, reconstruction=recon,
        canvas=canvas.features, source_tokens=[t[0].cpu().numpy() for t in src_tokens],
        token_masks=masks, segments=canvas.segments, seams=seams, window=(0, T),
    )  # fmt: skip


def source_features(source: Source, fps: float, what: str = "source") -> np.ndarray:
    """``(F, 263)`` de-normalised features of a source: joints ``(T, 22, 3)`` at ``fps`` (F = T
    - 1) or a ``MotionFile`` (its features as stored when it held features)."""
    if isinstance(source, MotionFile):
        if abs(source.fps - fps) > 1e-6:
            raise MosaError(
                f"{what} is at {source.fps:g} fps, the generator at {fps:g} fps",
                f"resample it to {fps:g} fps (BVH files are resampled when read)",
            )
        if source.features is not None:
            return np.asarray(source.features, np.float32)
        source = source.joints
    joints = np.asarray(source, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise MosaError(
            f"{what} has shape {joints.shape}, expected (T, 22, 3) joints",
            "read it with mosa.motion.io.read_motion",
        )
    if len(joints) < 2:
        raise MosaError(f"{what} has {len(joints)} frame(s)", "use a motion of 2 frames or more")
    return extract_features(joints)


def source_rows(source: Source, fps: float, what: str = "source") -> np.ndarray:
    """``(T, 263)`` features of a source, one row per frame it has: a ``(T, 22, 3)`` joint
    source gets a last row for its last frame (its features with that frame held, which
    leaves the other rows as ``source_features`` makes them), so an edit that keeps the
    source's end keeps all of its frames."""
    if isinstance(source, MotionFile) and source.features is not None:
        return source_features(source, fps, what)
    joints = source.joints if isinstance(source, MotionFile) else source
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim == 3 and len(joints) >= 2:
        joints = np.concatenate([joints, joints[-1:]])
    if isinstance(source, MotionFile):
        source = MotionFile(joints, source.fps, source.source_kind, None, source.path)
    else:
        source = joints
    return source_features(source, fps, what)


def check_span(frames: int, start_s: float, end_s: float, fps: float, unit: int) -> tuple[int, int]:
    """Frames ``[a, b)`` of a span ``start_s``-``end_s`` seconds of a ``frames``-frame motion
    (``frames / fps`` seconds long: its end is a valid ``end_s``); ``MosaError`` for an empty,
    outside or shorter-than-a-token span."""
    duration = frames / fps
    start, end = check_number(start_s, "span start"), check_number(end_s, "span end")
    if end <= start:
        raise MosaError(
            f"span {start_s}-{end_s} s is empty or negative",
            f"give start < end inside the motion (0-{duration:g} s)",
        )
    if start < 0 or end > duration + 0.5 / fps:
        raise MosaError(
            f"span {start:g}-{end:g} s lies outside the motion (0-{duration:g} s)",
            f"give start and end between 0 and {duration:g}",
        )
    a, b = round(start * fps), min(round(end * fps), frames)
    if b - a < unit:
        raise MosaError(
            f"span {start:g}-{end:g} s holds {b - a} frames, fewer than one token "
            f"({unit} frames = {unit / fps:g} s)",
            f"make the span at least {unit / fps:g} s long",
        )
    return a, b


def _drop_end(m: EditedMotion, k: int) -> EditedMotion:
    """``m`` without its last ``k`` frames (padding that only the generator needed)."""
    if k <= 0:
        return m
    n = len(m.features) - k
    cut = {
        name: getattr(m, name)[:n]
        for name in ("joints", "features", "kept", "weights", "decoded", "reconstruction", "canvas")
        if getattr(m, name) is not None
    }
    segments = [
        Segment(g.kind, g.start, min(g.end, n), g.source, g.source_start)
        for g in m.segments
        if g.start < n
    ]
    window = None if m.window is None else (m.window[0], min(m.window[1], n))
    return replace(
        m, **cut, segments=segments, seams=[s for s in m.seams if s.frame < n], window=window
    )


def _frames(
    seconds: float,
    fps: float,
    name: str,
    unit: int,
    allow_zero: bool = False,
    most: int | None = None,
) -> int:
    s = float(check_number(seconds, name))
    if s < 0 or (s == 0 and not allow_zero):
        raise MosaError(f"{name} must be a positive number of seconds, got {seconds}", "e.g. 2")
    if most is not None and s * fps > most + 0.5:
        raise MosaError(  # as layout() says it, for lengths too long to lay out
            f"the generated part would be {s:g} s, longer than the generator's maximum "
            f"{most / fps:g} s ({most} frames at {fps:g} fps)",
            f"generate at most {most / fps:g} s",
        )
    f = round(s * fps)
    if f < unit and not (allow_zero and f == 0):
        raise MosaError(
            f"{name} {s:g} s is shorter than one token ({unit} frames = {unit / fps:g} s)",
            f"give at least {unit / fps:g} s",
        )
    return f


# --------------------------------------------------------------------------------------------
# modes


def _edit(pipe: Pipeline, parts: list[Part], text: str, crop: bool, **kw) -> EditedMotion:
    """Lay ``parts`` out and run the edit (``kw``: ``run_canvas``'s options, context too)."""
    windowed = kw.get("context", DEFAULT_CONTEXT) is not None
    canvas = layout(parts, pipe.unit, pipe.frame_range, crop, windowed=windowed)
    return run_canvas(pipe, canvas, text, **kw)


def edit_span(
    pipe: Pipeline,
    source: Source,
    text: str,
    start_s: float,
    end_s: float,
    *,
    crop: bool = False,
    **kw,
) -> EditedMotion:
    """Regenerate ``[start_s, end_s)`` of ``source`` for ``text``, keeping the rest.

    The output has as many frames as ``source`` (``source_rows``), the span exactly its
    frames: the generator's canvas must be a whole number of tokens, so it gets the source's
    last frame held for the missing frames (or the span, at the end, runs over), which the
    output then drops."""
    feats = source_rows(source, pipe.fps)
    T, unit = len(feats), pipe.unit
    a, b = check_span(T, start_s, end_s, pipe.fps, unit)
    pad = (-T) % unit
    if b == T:  # the span is the end: the rounding frames are generated, then dropped
        parts = [Part(feats[:a], source=0), Part(frames=b - a, fill=feats[a:b])]
    else:  # held copies of the last frame, kept, then dropped
        tail = np.concatenate([feats[b:], np.repeat(feats[-1:], pad, axis=0)])
        parts = [Part(feats[:a], source=0), Part(frames=b - a, fill=feats[a:b]),
                 Part(tail, source=0, source_start=b)]  # fmt: skip
    parts = [p for p in parts if not p.kept or len(p)]
    m = _edit(pipe, parts, text, crop, **kw)
    last = m.segments[-1]
    if last.kind == "kept":  # what is left of the held frames after any --crop
        return _drop_end(m, last.source_start + last.end - last.start - T)
    return _drop_end(m, pad)  # the rounding frames at the end of the generated part


def extend(
    pipe: Pipeline, source: Source, text: str, seconds: float, *, crop: bool = False, **kw
) -> EditedMotion:
    """Keep ``source`` and generate ``seconds`` more after it (prefix continuation)."""
    return outpaint(pipe, source, text, 0.0, seconds, crop=crop, **kw)


def lead_in(
    pipe: Pipeline, source: Source, text: str, seconds: float, *, crop: bool = False, **kw
) -> EditedMotion:
    """Generate ``seconds`` that lead into ``source`` (which is kept as the ending)."""
    return outpaint(pipe, source, text, seconds, 0.0, crop=crop, **kw)


def outpaint(
    pipe: Pipeline,
    source: Source,
    text: str,
    before_s: float,
    after_s: float,
    *,
    crop: bool = False,
    **kw,
) -> EditedMotion:
    """Generate ``before_s`` seconds before and ``after_s`` after ``source``."""
    feats = source_features(source, pipe.fps)
    most = pipe.frame_range[1]
    before = _frames(before_s, pipe.fps, "seconds before", pipe.unit, allow_zero=True, most=most)
    after = _frames(after_s, pipe.fps, "seconds after", pipe.unit, allow_zero=True, most=most)
    if before == 0 and after == 0:
        raise MosaError("nothing to generate: 0 s before and after", "give seconds to add")
    parts = [Part(frames=before), Part(feats, source=0), Part(frames=after)]
    parts = [p for p in parts if p.kept or len(p)]
    return _edit(pipe, parts, text, crop, **kw)


def inbetween(
    pipe: Pipeline,
    a: Source,
    b: Source,
    text: str,
    seconds: float,
    *,
    crop: bool = False,
    **kw,
) -> EditedMotion:
    """Keep ``a`` then ``b`` and generate ``seconds`` between the end of A and the start of B.

    B's trajectory is re-anchored: it continues from wherever the generated part ends.
    """
    fa = source_features(a, pipe.fps, "motion A")
    fb = source_features(b, pipe.fps, "motion B")
    gap = _frames(seconds, pipe.fps, "in-between length", pipe.unit, most=pipe.frame_range[1])
    parts = [Part(fa, source=0), Part(frames=gap), Part(fb, source=1)]
    return _edit(pipe, parts, text, crop, **kw)
