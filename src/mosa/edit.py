"""Motion editing with the text-to-motion generator, no fine-tuning: span regeneration,
continuation (``extend``), ``lead_in``, ``inbetween`` and ``outpaint``.

Every mode lays out an output canvas of kept source frames and frames to generate, then runs
the normal generation loop with one ``ForcedTokens`` strategy on a window of it: the generated
frames plus ``context`` seconds (``DEFAULT_CONTEXT``) of kept frames on either side
(``generator_window``). The canvas outside the window is the source as it is, so sources may be
longer than the generator's maximum length. In the window:

1. the canvas (source features, generated frames filled by interpolation) is normalised and
   encoded by the tokenizer into its K scales of tokens, in the output's own scale layout;
2. at each scale k, token i covers frames ``[i T / n_k, (i + 1) T / n_k)``; a token whose
   frames are all kept is forced to the source's token, the others are sampled with the text
   and classifier-free guidance as usual (coarse tokens span the gaps, so they are always
   sampled: the text decides the overall motion, the source its details);
3. the latent of the generated tokens is decoded with the source's quantized latent pasted
   over fully kept latent positions, so kept frames decode to (nearly) the source's
   reconstruction and only the seams and the generated frames differ;
4. the output is joined by offset blending (``offset_join``): kept frames are the source's
   own features, generated frames the decode plus, at each seam, the difference between the
   kept source frame and the decode there as the generated frames carry it back
   (``seam_reference``), decaying smoothly (``1 - smoothstep``) to
   zero over a window of generated frames. The window grows with the offset so that the
   correction adds little joint speed (``SPEED_BUDGET`` of the source's 95th percentile
   joint speed), from ``blend`` (``--blend``) to ``MAX_WINDOW`` frames, and stays inside the
   generated run when a kept part follows it (the correction then spreads over the whole run
   and both seams match). Joint positions are corrected by rotating bones, so bone lengths
   stay smooth. The 263-d features hold root *velocities*, which are offset too: the root's
   path and speed carry on across a seam, and a kept part after a generated one follows on
   from where the generated part ends (it is re-anchored, not teleported).

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
    DEFAULTS,
    OUTPUT_EXTENSIONS,
    ForcedTokens,
    GeneratedMotion,
    Pipeline,
    add_pipeline_arguments,
    add_sampling_arguments,
    load_from_args,
)
from mosa.motion.features import (
    extract_features,
    local_joints,
    local_rotations,
    recover_joints,
    recover_root,
)
from mosa.motion.io import MotionFile, read_motion
from mosa.motion.quaternion import qrot, quat_to_cont6d
from mosa.motion.skeleton import (
    FEATURE_DIM,
    NUM_JOINTS,
    PARENTS,
    RIC_SLICE,
    ROT_SLICE,
    VEL_SLICE,
)

DEFAULT_BLEND = 4  # shortest window (frames) over which a seam offset decays (0.2 s at 20 fps)
MAX_WINDOW = 20  # longest one (1 s)
SPEED_BUDGET = 0.5  # most joint speed a seam correction may add, times the source's p95 speed
SMOOTHSTEP_SLOPE = 1.5  # steepest slope of 3 x^2 - 2 x^3 on [0, 1]
# seconds of kept source on either side of an edit that the generator sees: less follows the
# text more and the source less (docs/editing measures 2 s against this default)
DEFAULT_CONTEXT = 4.0

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


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """``3 x^2 - 2 x^3`` on ``[0, 1]`` (clipped outside): 0 -> 1 with zero slope at both ends
    and the steepest slope, ``SMOOTHSTEP_SLOPE``, at ``x = 1/2``."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass
class Seam:
    """One seam of an offset join: the kept ``frame`` next to generated frames on side
    ``step`` (+1: they follow it, -1: they precede it); the offset measured there decays to
    zero over ``window`` generated frames. ``size`` (m) bounds how far the full offset moves
    any joint; ``reach``: frames from ``frame`` to the kept frame across the generated run
    (0: the run is open, it ends the motion)."""

    frame: int
    step: int
    window: int = 1
    size: float = 0.0
    reach: int = 0


def find_seams(kept: np.ndarray) -> list[Seam]:
    """The seams of ``kept (T,)`` bool, in order: for each run of generated frames
    ``[a, b)``, the kept frame ``a - 1`` (step +1) and the kept frame ``b`` (step -1), those
    that exist."""
    T, out = len(kept), []
    gen = np.flatnonzero(~kept)
    if len(gen) == 0:
        return out
    breaks = np.flatnonzero(np.diff(gen) > 1)
    for a, last in zip(gen[np.r_[0, breaks + 1]], gen[np.r_[breaks, len(gen) - 1]], strict=True):
        a, b = int(a), int(last) + 1
        closed = a > 0 and b < T
        if a > 0:
            out.append(Seam(a - 1, +1, reach=b - a + 1 if closed else 0))
        if b < T:
            out.append(Seam(b, -1, reach=b - a + 1 if closed else 0))
    return out


def seam_weights(T: int, seams: Sequence[Seam]) -> np.ndarray:
    """``(S, T)`` share of each seam's offset per frame: ``1 - smoothstep(d / window)`` on
    the frames ``d = 0 .. window`` steps from the seam frame on its generated side (1 on the
    seam frame itself), 0 elsewhere. With ``window <= reach``, a seam's weight is 0 on the
    kept frame across the run, so both seams of a run can be matched at once; two seams of a
    run never sum to more than 1."""
    w = np.zeros((len(seams), T), np.float64)
    t = np.arange(T)
    for i, s in enumerate(seams):
        d = (t - s.frame) * s.step
        on = (d >= 0) & (d <= (s.reach if s.reach else T))
        w[i, on] = 1.0 - _smoothstep(d[on] / max(s.window, 1))
    return w


def _bones(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions ``(..., 21, 3)`` and lengths ``(..., 21)`` of the bones of joints
    ``(..., 22, 3)`` (parent to joint)."""
    b = joints[..., 1:, :] - joints[..., list(PARENTS[1:]), :]
    length = np.linalg.norm(b, axis=-1)
    return b / np.maximum(length, 1e-8)[..., None], length


def _rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(..., 3)`` (axis times angle) of the shortest arcs taking unit
    vectors ``u`` onto ``v`` (``(..., 3)``); opposite vectors turn by pi about an axis
    perpendicular to ``u``."""
    axis = np.cross(u, v)
    sin, cos = np.linalg.norm(axis, axis=-1), np.sum(u * v, axis=-1)
    angle = np.arctan2(sin, cos)
    flip = sin < 1e-8
    if flip.any():  # parallel (angle 0, any axis) or opposite (angle pi, a perpendicular axis)
        other = np.where(np.abs(u[flip, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        axis[flip] = np.cross(u[flip], other)
        sin = np.where(flip, np.linalg.norm(axis, axis=-1), sin)
    return axis / np.maximum(sin, 1e-12)[..., None] * angle[..., None]


def _rotate(v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v (..., 3)`` by rotation vectors ``r (..., 3)`` (Rodrigues)."""
    angle = np.linalg.norm(r, axis=-1, keepdims=True)
    k = r / np.maximum(angle, 1e-12)
    c, s = np.cos(angle), np.sin(angle)
    return v * c + np.cross(k, v) * s + k * np.sum(k * v, axis=-1, keepdims=True) * (1 - c)


def _chain_sum(per_bone: np.ndarray, root: float) -> np.ndarray:
    """``(22,)``: ``root`` plus ``per_bone (21,)`` summed along each joint's chain."""
    acc = np.zeros(NUM_JOINTS)
    acc[0] = root
    for j in range(1, NUM_JOINTS):
        acc[j] = acc[PARENTS[j]] + per_bone[j - 1]
    return acc


def _turn_bones(
    height: np.ndarray, dirs: np.ndarray, lengths: np.ndarray, rot: np.ndarray, d_len: np.ndarray
) -> np.ndarray:
    """Root-relative joints ``(N, 22, 3)``: the root at ``height (N,)``, each bone the unit
    direction ``dirs (N, 21, 3)`` turned by the rotation vector ``rot (N, 21, 3)``, of length
    ``lengths + d_len (N, 21)``, placed down the kinematic tree."""
    bones = _rotate(dirs, rot) * (lengths + d_len)[..., None]
    pos = np.zeros((len(bones), NUM_JOINTS, 3))
    pos[:, 0, 1] = height
    for j in range(1, NUM_JOINTS):  # parents come before children
        pos[:, j] = pos[:, PARENTS[j]] + bones[:, j - 1]
    return pos


def source_speed(features: np.ndarray, kept: np.ndarray, fps: float) -> float:
    """95th percentile joint speed (m/s, all joints) of ``features (T, 263)`` over the steps
    between two kept frames, as the edit benchmark measures a source (0 without such steps)."""
    both = kept[:-1] & kept[1:]
    if not both.any():
        return 0.0
    joints = np.asarray(recover_joints(features), np.float64)
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1)[both] * fps
    return float(np.percentile(speed, 95))


def _pose_channels(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation ``(T, 126)`` and local velocity ``(T, 66)`` channels that the root and
    joint-position channels of ``features (T, 263)`` imply (HumanML3D's inverse kinematics and
    velocities in the root frame; the last frame's velocity is 0)."""
    rot_q, _ = recover_root(features.astype(np.float64))
    joints = np.asarray(recover_joints(features.astype(np.float64)))
    rot = quat_to_cont6d(local_rotations(joints, rot_q)).reshape(len(features), -1)
    vel = np.zeros((len(features), NUM_JOINTS, 3))
    vel[:-1] = qrot(np.repeat(rot_q[:-1, None], NUM_JOINTS, 1), joints[1:] - joints[:-1])
    return rot, vel.reshape(len(features), -1)


_ROOT = slice(0, 4)  # angular velocity, linear velocity, height: offset additively


def seam_reference(decoded: np.ndarray, kept: np.ndarray, seams: Sequence[Seam]) -> np.ndarray:
    """``(S, 263)``: the decode at each seam's kept frame k as the generated side carries it
    back, ``2 d(k + step) - d(k + 2 step)`` (linear extrapolation; ``d(k + step)`` when the
    generated run is one frame long). The seam offsets are measured against it, not against
    ``d(k)``: the decoder sees the pasted source latent on one side and the generated one on
    the other, and its frames can jump where they meet; an offset measured at ``d(k)`` would
    carry that jump into the output."""
    T, out = len(kept), np.zeros((len(seams), decoded.shape[1]))
    for i, s in enumerate(seams):
        k1, k2 = s.frame + s.step, s.frame + 2 * s.step
        two = 0 <= k2 < T and not kept[k2]
        out[i] = 2 * decoded[k1] - decoded[k2] if two else decoded[k1]
    return out


def offset_join(
    source: np.ndarray,
    decoded: np.ndarray,
    kept: np.ndarray,
    *,
    min_window: int = DEFAULT_BLEND,
    max_window: int = MAX_WINDOW,
    budget: float = SPEED_BUDGET,
    speed: float | None = None,
    fps: float = 20.0,
) -> tuple[np.ndarray, np.ndarray, list[Seam]]:
    """Join kept source frames and decoded frames with decaying seam offsets (inertialization).

    ``source (T, 263)`` holds the source's features on ``kept (T,)`` frames (anything
    elsewhere), ``decoded (T, 263)`` the decode everywhere; both de-normalised. Kept frames
    are the source's, exactly. At each seam (kept frame k next to generated ones,
    ``find_seams``) the offset source(k) - reference(k) (``seam_reference``: the decode
    extrapolated from the generated side) is added to the generated frames with
    weight ``1 - smoothstep(d / window)`` at ``d`` frames from k (``seam_weights``): the first
    generated frame carries on from the kept pose with the decode's own motion, and the
    offset is gone ``window`` frames on. The two seams of a generated run add up, each matched
    exactly. The offset is additive on the root channels (angular and linear velocity,
    height: the root's path and speed carry on across the seam); on the root-relative joint
    positions it turns every bone by the weighted shortest arc from the decode's direction to
    the source's at k and offsets its length, then rebuilds the positions down the kinematic
    tree, so bones keep smooth lengths; the rotation and joint-velocity channels get the
    change that the new positions imply; foot contacts stay the decode's.

    ``window``: the full offset moves a joint by at most ``size`` metres (the height offset
    plus, down its chain, ``angle * length + |length change|`` per bone), and the weight
    changes by at most ``SMOOTHSTEP_SLOPE / window`` per frame, so on top of the motion of the
    decode's bones the correction moves a joint by at most ``SMOOTHSTEP_SLOPE * size /
    window`` per frame. The window keeps that under ``budget * speed / fps`` (``speed``: the
    source's 95th percentile joint speed in m/s, measured on the kept frames when None),
    within ``[min_window, max_window]`` frames and at most the run's ``reach`` when another
    kept part follows the run.

    Returns ``(features (T, 263) float32, weights (T,), seams)``: ``weights`` is the share of
    the seam offsets applied per frame (1 on kept frames, 0 where the decode is untouched).
    """
    source = np.asarray(source, np.float64)
    decoded = np.asarray(decoded, np.float64)
    kept = np.asarray(kept, bool)
    T = len(kept)
    out = decoded.copy()
    out[kept] = source[kept]
    seams = find_seams(kept)
    if not seams:
        return out.astype(np.float32), np.ones(T, np.float32), seams
    if speed is None:
        speed = source_speed(source, kept, fps)
    local_src, local_dec = local_joints(source), local_joints(decoded)
    dirs, lengths = _bones(local_dec)  # (T, 21, 3), (T, 21)
    ref = seam_reference(decoded, kept, seams)  # (S, 263)
    ref_dirs, ref_lengths = _bones(local_joints(ref))
    rot = np.zeros((len(seams), 21, 3))  # per seam: bone rotation vectors
    d_len = np.zeros((len(seams), 21))  # bone length offsets
    d_root = np.zeros((len(seams), 4))  # root channel offsets
    for i, s in enumerate(seams):
        u_src, l_src = _bones(local_src[s.frame])
        rot[i] = _rotation_between(ref_dirs[i], u_src)
        d_len[i] = l_src - ref_lengths[i]
        d_root[i] = source[s.frame, _ROOT] - ref[i, _ROOT]
        per_bone = np.linalg.norm(rot[i], axis=-1) * np.maximum(l_src, ref_lengths[i])
        s.size = float(_chain_sum(per_bone + np.abs(d_len[i]), abs(d_root[i, 3])).max())
        need = SMOOTHSTEP_SLOPE * s.size * fps / max(budget * speed, 1e-6)
        s.window = int(np.clip(np.ceil(need), max(min_window, 1), max(max_window, 1)))
        if s.reach:
            s.window = min(s.window, s.reach)
    w = seam_weights(T, seams)
    w[:, kept] = 0.0
    gen = np.flatnonzero(w.sum(axis=0) > 0)
    if len(gen):
        wg = w[:, gen]  # (S, G)
        out[gen, _ROOT] += wg.T @ d_root
        r = np.einsum("sg,sbc->gbc", wg, rot)
        pos = _turn_bones(out[gen, 3], dirs[gen], lengths[gen], r, wg.T @ d_len)
        out[gen, RIC_SLICE] = pos[:, 1:].reshape(len(gen), -1)
        # rotations and joint velocities: the decode's, plus the change the new positions imply
        # (a frame's velocity runs to the next frame: the frame before a corrected one too)
        new, old = _pose_channels(out), _pose_channels(decoded)
        out[gen, ROT_SLICE] += new[0][gen] - old[0][gen]
        vel = np.union1d(gen, gen - 1)
        vel = vel[(vel >= 0) & ~kept[np.maximum(vel, 0)]]
        out[vel, VEL_SLICE] += new[1][vel] - old[1][vel]
    weights = np.where(kept, 1.0, w.sum(axis=0))
    return out.astype(np.float32), weights.astype(np.float32), seams


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
    sampling).
    """
    frames = None if context is None else _context_frames(context, pipe.fps)
    a, b = generator_window(canvas.kept, frames, pipe.unit, pipe.frame_range)
    m = _run_window(pipe, canvas.slice(a, b), text, **kw)
    return m if (a, b) == (0, canvas.frames) else _widen(m, canvas, a, b)


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
    **sampling,
) -> EditedMotion:
    """Generate the non-kept frames of ``canvas``, all of which the generator sees.

    ``keep_source``: kept frames are the source's own features, joined to the generated ones
    by ``offset_join`` (``blend``: its shortest seam window, frames); False returns the
    decoded motion everywhere. ``sampling``: cfg, temperature, top_k, top_p; those left out
    or None take ``pipe.edit_defaults``.
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
            canvas.features, decoded, canvas.kept, min_window=blend, fps=pipe.fps
        )
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
    return _edit(pipe, parts, text, crop, **kw)


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
    gap = _frames(seconds, pipe.fps, "in-between length", pipe.unit)
    parts = [Part(fa, source=0), Part(frames=gap), Part(fb, source=1)]
    return _edit(pipe, parts, text, crop, **kw)


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
        help="shortest window (frames) over which the generated frames blend into the kept "
        f"pose at a seam; longer for larger differences (default {DEFAULT_BLEND})",
    )
    parser.add_argument(
        "--crop",
        action="store_true",
        help="if what the generator must see is too long for it (outpainting, or "
        "--context all), drop the source frames farthest from the edit",
    )
    parser.add_argument(
        "--context",
        type=context_arg,
        default=DEFAULT_CONTEXT,
        metavar="SECONDS|all",
        help="seconds of the kept motion on either side of the edit that the generator sees "
        f"(default {DEFAULT_CONTEXT:g}); the rest is kept as it is, so sources of any length "
        "work. Less follows the text more and the source less; 'all': the whole motion, "
        "which must then fit the generator's maximum length",
    )
    parser.add_argument("--mapping", default=None, help="BVH joint mapping (preset or JSON file)")
    add_pipeline_arguments(parser)


def context_arg(text: str) -> float | None:
    """argparse type of ``--context``: seconds >= 0, or ``all`` (None: the whole motion)."""
    if text.strip().lower() == "all":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 or 'all', got {text!r}")
    return value


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
        "context": args.context,
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
    pipe = load_from_args(args)
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
    pipe = load_from_args(args)
    m = inbetween(pipe, a, b, args.text, args.seconds, **_options(args))
    _report(m, m.save(args.output))
    return 0
