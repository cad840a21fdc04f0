"""Motion editing with the text-to-motion generator, no fine-tuning: span regeneration,
continuation (``extend``), ``lead_in``, ``inbetween`` and ``outpaint``.

Every mode lays out an output canvas of kept source frames and frames to generate, then runs
the normal generation loop with one ``ForcedTokens`` strategy:

1. the canvas (source features, generated frames filled by interpolation) is normalised and
   encoded by the tokenizer into its K scales of tokens, in the output's own scale layout;
2. at each scale k, token i covers frames ``[i T / n_k, (i + 1) T / n_k)``; a token whose
   frames are all kept is forced to the source's token, the others are sampled with the text
   and classifier-free guidance as usual (coarse tokens span the gaps, so they are always
   sampled: the text decides the overall motion, the source its details);
3. the latent of the generated tokens is decoded with the source's quantized latent pasted
   over fully kept latent positions, so kept frames decode to (nearly) the source's
   reconstruction and only the seams and the generated frames differ;
4. the output features are a per-frame cross-fade ``w * source + (1 - w) * decoded``: ``w`` is
   1 on kept frames more than ``blend`` frames from a generated one, ramps down towards each
   seam, 0 on generated frames. The 263-d features hold root *velocities*, so recovering the
   joints of the blended features gives a continuous root, and a kept part after a generated
   one follows on from where the generated part ends (it is re-anchored, not teleported).

    >>> import mosa.generate as G, mosa.edit as E
    >>> from mosa.motion.io import read_motion
    >>> pipe = G.load()
    >>> src = read_motion("walk.bvh").joints                      # (T, 22, 3) at 20 fps
    >>> m = E.edit_span(pipe, src, "a person jumps", 2.0, 3.5, seed=1)
    >>> m.save("walk_jump.bvh")

Frames: a source of T joint frames gives T - 1 feature frames (features are velocities), so
outputs have one frame less than their sources; frame t is at time t / fps. Output lengths are
multiples of the tokenizer's 4-frame unit: the extra (< 4) frames go to the generated part.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mosa.errors import MosaError
from mosa.generate import (
    OUTPUT_EXTENSIONS,
    ForcedTokens,
    GeneratedMotion,
    Pipeline,
    add_pipeline_arguments,
    add_sampling_arguments,
    load,
)
from mosa.motion.features import extract_features, local_joints, recover_joints
from mosa.motion.io import MotionFile, read_motion
from mosa.motion.skeleton import FEATURE_DIM, NUM_JOINTS, PARENTS, RIC_SLICE

DEFAULT_BLEND = 4  # frames of cross-fade on the kept side of each seam (0.2 s at 20 fps)

Source = np.ndarray | MotionFile


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


def layout(
    parts: Sequence[Part], unit: int, frame_range: tuple[int, int], crop: bool = False
) -> Canvas:
    """Lay out ``parts`` on a canvas whose length is a multiple of ``unit`` frames and inside
    ``frame_range`` (frames). The rounding frames go to the first generated part. Too long:
    ``MosaError``, or with ``crop`` the outermost kept frames (farthest from anything
    generated) are dropped until it fits."""
    parts = [Part(p.features, p.frames, p.fill, p.source, p.source_start) for p in parts]
    gen = [p for p in parts if not p.kept]
    if not gen:
        raise MosaError("nothing to generate", "give a span, or seconds to add")
    total = sum(len(p) for p in parts)
    gen[0].frames += (-total) % unit
    total = sum(len(p) for p in parts)
    lo, hi = frame_range
    if total > hi:
        if not crop:
            raise MosaError(
                f"the edited motion would be {_secs(total)} ({total} frames), longer than the "
                f"generator's maximum {_secs(hi)} ({hi} frames at 20 fps)",
                "use a shorter source or fewer seconds (CLI: --crop drops the source frames "
                "farthest from the edit)",
            )
        _crop_ends(parts, total - hi)
        total = hi
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


def latent_mask(kept: np.ndarray, unit: int) -> np.ndarray:
    """``(T / unit,)`` bool: latent positions whose ``unit`` frames are all kept."""
    return kept.reshape(-1, unit).all(axis=1)


def blend_weights(kept: np.ndarray, blend: int = DEFAULT_BLEND) -> np.ndarray:
    """``(T,)`` weight of the source per frame: 0 on generated frames, ``d / (blend + 1)`` on a
    kept frame ``d <= blend`` frames from the nearest generated one, 1 beyond."""
    T = len(kept)
    gen = np.flatnonzero(~kept)
    if len(gen) == 0:
        return np.ones(T, np.float32)
    dist = np.abs(np.arange(T)[:, None] - gen[None, :]).min(axis=1)
    return np.clip(dist / (max(int(blend), 0) + 1), 0.0, 1.0).astype(np.float32)


def _bone_lengths(joints: np.ndarray) -> np.ndarray:
    """``(T, 21)`` length of each joint's bone to its parent, joints ``(T, 22, 3)``."""
    return np.linalg.norm(joints[:, 1:] - joints[:, list(PARENTS[1:])], axis=-1)


def cross_fade(source: np.ndarray, decoded: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``w * source + (1 - w) * decoded`` per frame, features ``(T, 263)``, ``w (T,)``.

    A linear blend of two different poses shortens the bones (the chord of an arc), so on
    blended frames (0 < w < 1) the root-relative joint positions are rebuilt down the
    kinematic tree: each bone keeps its blended direction and gets the blended length.
    """
    out = (w[:, None] * source + (1 - w[:, None]) * decoded).astype(np.float32)
    mid = (w > 0) & (w < 1)
    if not mid.any():
        return out
    wm = w[mid, None]
    length = wm * _bone_lengths(local_joints(source[mid])) + (1 - wm) * _bone_lengths(
        local_joints(decoded[mid])
    )
    blended = local_joints(out[mid])
    fixed = blended.copy()
    for j in range(1, len(PARENTS)):  # parents come before children
        bone = blended[:, j] - blended[:, PARENTS[j]]
        norm = np.maximum(np.linalg.norm(bone, axis=-1, keepdims=True), 1e-8)
        fixed[:, j] = fixed[:, PARENTS[j]] + bone / norm * length[:, j - 1 : j]
    out[np.flatnonzero(mid), RIC_SLICE] = fixed[:, 1:].reshape(int(mid.sum()), -1)
    return out


# --------------------------------------------------------------------------------------------
# running an edit


@dataclass
class EditedMotion(GeneratedMotion):
    """A ``GeneratedMotion`` plus how it was made: ``kept (T,)`` frames that came from the
    source, ``weights (T,)`` of the source in the cross-fade, ``decoded (T, 263)`` the raw
    decode, ``reconstruction (T, 263)`` the tokenizer's round trip of the canvas,
    ``canvas (T, 263)`` the source features laid out, ``source_tokens`` and ``token_masks``
    (one per scale) and the output ``segments``."""

    kept: np.ndarray | None = field(default=None, repr=False)
    weights: np.ndarray | None = field(default=None, repr=False)
    decoded: np.ndarray | None = field(default=None, repr=False)
    reconstruction: np.ndarray | None = field(default=None, repr=False)
    canvas: np.ndarray | None = field(default=None, repr=False)
    source_tokens: list[np.ndarray] = field(default_factory=list, repr=False)
    token_masks: list[np.ndarray] = field(default_factory=list, repr=False)
    segments: list[Segment] = field(default_factory=list)


@torch.inference_mode()
def run_canvas(
    pipe: Pipeline,
    canvas: Canvas,
    text: str,
    *,
    seed: int | None = None,
    blend: int = DEFAULT_BLEND,
    keep_source: bool = True,
    **sampling,
) -> EditedMotion:
    """Generate the non-kept frames of ``canvas`` for ``text``; see the module docstring.

    ``keep_source``: kept frames are the source's own features (cross-faded at the seams);
    False returns the decoded motion everywhere. ``sampling``: cfg, temperature, top_k, top_p.
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
    [gen] = pipe.generate(text, frames=T, seed=seed, strategy=strategy, **sampling)

    lengths = torch.tensor([n])
    f_src = quantizer.decode(src_tokens, lengths)
    f_gen = quantizer.decode([torch.from_numpy(t)[None].to(dev) for t in gen.tokens], lengths)
    paste = torch.from_numpy(latent_mask(canvas.kept, unit)).to(dev)[None, :, None]
    decoded = pipe.decode_latent(torch.where(paste, f_src, f_gen), lengths)[0]
    recon = pipe.decode_latent(f_src, lengths)[0]

    w = blend_weights(canvas.kept, blend) if keep_source else np.zeros(T, np.float32)
    features = cross_fade(canvas.features, decoded, w)
    joints = np.asarray(recover_joints(features), dtype=np.float32)
    return EditedMotion(
        gen.text, gen.seed, joints, features, pipe.fps, gen.tokens,
        kept=canvas.kept, weights=w, decoded=decoded, reconstruction=recon,
        canvas=canvas.features, source_tokens=[t[0].cpu().numpy() for t in src_tokens],
        token_masks=masks, segments=canvas.segments,
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


def _frames(seconds: float, fps: float, name: str, unit: int, allow_zero: bool = False) -> int:
    s = float(seconds)
    if not np.isfinite(s) or s < 0 or (s == 0 and not allow_zero):
        raise MosaError(f"{name} must be a positive number of seconds, got {seconds}", "e.g. 2")
    f = round(s * fps)
    if f < unit and not (allow_zero and f == 0):
        raise MosaError(
            f"{name} {s:g} s is shorter than one token ({unit} frames = {unit / fps:g} s)",
            f"give at least {unit / fps:g} s",
        )
    return f


# --------------------------------------------------------------------------------------------
# modes


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
    """Regenerate ``[start_s, end_s)`` of ``source`` for ``text``, keeping the rest."""
    feats = source_features(source, pipe.fps)
    F, fps, unit = len(feats), pipe.fps, pipe.unit
    duration = F / fps
    start, end = float(start_s), float(end_s)
    if not (np.isfinite(start) and np.isfinite(end)) or end <= start:
        raise MosaError(
            f"span {start_s}-{end_s} s is empty or negative",
            f"give start < end inside the motion (0-{duration:g} s)",
        )
    if start < 0 or end > duration + 0.5 / fps:
        raise MosaError(
            f"span {start:g}-{end:g} s lies outside the motion (0-{duration:g} s)",
            f"give start and end between 0 and {duration:g}",
        )
    a, b = round(start * fps), min(round(end * fps), F)
    if b - a < unit:
        raise MosaError(
            f"span {start:g}-{end:g} s holds {b - a} frames, fewer than one token "
            f"({unit} frames = {unit / fps:g} s)",
            f"make the span at least {unit / fps:g} s long",
        )
    parts = [Part(feats[:a], source=0), Part(frames=b - a, fill=feats[a:b]),
             Part(feats[b:], source=0, source_start=b)]  # fmt: skip
    parts = [p for p in parts if not p.kept or len(p)]
    return run_canvas(pipe, layout(parts, unit, pipe.frame_range, crop), text, **kw)


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
    before = _frames(before_s, pipe.fps, "seconds before", pipe.unit, allow_zero=True)
    after = _frames(after_s, pipe.fps, "seconds after", pipe.unit, allow_zero=True)
    if before == 0 and after == 0:
        raise MosaError("nothing to generate: 0 s before and after", "give seconds to add")
    parts = [Part(frames=before), Part(feats, source=0), Part(frames=after)]
    parts = [p for p in parts if p.kept or len(p)]
    return run_canvas(pipe, layout(parts, pipe.unit, pipe.frame_range, crop), text, **kw)


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
    gap = _frames(seconds, pipe.fps, "in-between length", pipe.unit)
    parts = [Part(fa, source=0), Part(frames=gap), Part(fb, source=1)]
    return run_canvas(pipe, layout(parts, pipe.unit, pipe.frame_range, crop), text, **kw)


# --------------------------------------------------------------------------------------------
# CLI: mosa edit, mosa inbetween


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", required=True, help="what the generated part shows (quoted)")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="out.bvh, out.npy, out.mp4 or out.gif"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    add_sampling_arguments(parser)
    parser.add_argument(
        "--blend",
        type=int,
        default=DEFAULT_BLEND,
        help=f"cross-fade frames at each seam (default {DEFAULT_BLEND})",
    )
    parser.add_argument(
        "--crop",
        action="store_true",
        help="if the result is too long, drop the source frames farthest from the edit",
    )
    parser.add_argument("--mapping", default=None, help="BVH joint mapping (preset or JSON file)")
    add_pipeline_arguments(parser)


def add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    """``mosa edit SOURCE --text ... (--start S --end E | --extend SEC | --lead-in SEC) -o OUT``;
    ``--extend`` and ``--lead-in`` together generate on both sides (outpainting)."""
    parser.add_argument("source", type=Path, help="motion to edit (.bvh or .npy)")
    parser.add_argument("--start", type=float, default=None, help="span start (seconds)")
    parser.add_argument("--end", type=float, default=None, help="span end (seconds)")
    parser.add_argument(
        "--extend", type=float, default=None, help="generate this many seconds after the source"
    )
    parser.add_argument(
        "--lead-in",
        type=float,
        default=None,
        help="generate this many seconds before the source (with --extend: both sides)",
    )
    _add_common(parser)


def add_inbetween_arguments(parser: argparse.ArgumentParser) -> None:
    """``mosa inbetween A B --text ... --seconds S -o OUT``."""
    parser.add_argument("a", type=Path, help="first motion (.bvh or .npy); its end is kept")
    parser.add_argument("b", type=Path, help="second motion (.bvh or .npy); its start is kept")
    parser.add_argument("--seconds", type=float, required=True, help="length of the transition")
    _add_common(parser)


def _check_output(path: Path) -> None:
    if path.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise MosaError(
            f"cannot write '{path}': unknown extension '{path.suffix}'",
            f"end the output name with one of {', '.join(OUTPUT_EXTENSIONS)}",
        )


def _options(args: argparse.Namespace) -> dict:
    return {
        "seed": args.seed, "cfg": args.cfg, "temperature": args.temperature,
        "top_k": args.top_k, "top_p": args.top_p, "blend": args.blend, "crop": args.crop,
    }  # fmt: skip


def _report(m: EditedMotion, path: Path) -> None:
    gen = sum(s.end - s.start for s in m.segments if s.kind == "generated")
    print(
        f"wrote {path} ({len(m.joints)} frames, {m.seconds:.2f} s, {gen / m.fps:.2f} s "
        f"generated, seed {m.seed}): {m.text}"
    )


def run_edit(args: argparse.Namespace) -> int:
    _check_output(args.output)
    span = args.start is not None or args.end is not None
    grow = args.extend is not None or args.lead_in is not None
    if span == grow:
        raise MosaError(
            "give either a span (--start S --end E) or --extend/--lead-in SECONDS",
            'e.g. mosa edit walk.bvh --text "a person jumps" --start 2 --end 3.5 -o out.bvh',
        )
    if span and (args.start is None or args.end is None):
        raise MosaError("a span needs both --start and --end", "e.g. --start 2 --end 3.5")
    source = read_motion(args.source, mapping=args.mapping)
    pipe = load(args.checkpoint, args.device)
    opts = _options(args)
    if span:
        m = edit_span(pipe, source, args.text, args.start, args.end, **opts)
    else:
        m = outpaint(pipe, source, args.text, args.lead_in or 0.0, args.extend or 0.0, **opts)
    _report(m, m.save(args.output))
    return 0


def run_inbetween(args: argparse.Namespace) -> int:
    _check_output(args.output)
    a = read_motion(args.a, mapping=args.mapping)
    b = read_motion(args.b, mapping=args.mapping)
    pipe = load(args.checkpoint, args.device)
    m = inbetween(pipe, a, b, args.text, args.seconds, **_options(args))
    _report(m, m.save(args.output))
    return 0
