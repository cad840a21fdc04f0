"""Acceptance criteria of a motion edit (``mosa.edit``): does it keep the source, join it
without a jump, and do what its text asks?

1. **MPJPE outside** (``mpjpe_figures``, mm): output vs source joints on the kept frames, in
   the root's frame (a kept part after the edit is re-anchored, so global positions differ
   by design), next to the tokenizer's **reconstruction MPJPE** on the same frames.
   Pass: ``outside <= reconstruction + MPJPE_SLACK_MM``. Also given for the raw decode
   (before the seam join with the source), which is the model's own contribution.
2. **Seam** (``seam_speed_ratio``): the fastest joint within a window of a seam over the 95th
   percentile of the source's per-step fastest-joint speed, for the source that seam joins
   (each seam of an in-between against its own source). Pass: ratio ``<= SEAM_SPEED_RATIO``
   at every seam. ``seam_peaks`` splits the peak by where it lies: steps between two kept
   frames (the source's own motion, which the edit keeps as it is) and steps touching a
   generated frame; ``peak_away_from_seams`` is the same peak everywhere else.
3. **Text** (``text_distances``, needs an evaluator): evaluator distance text <-> the edited
   frames vs text <-> a reference that generates nothing. Pass: the edit is closer.
4. **Kinematic** (``kinematic_check``): a rule per text on ``mosa.eval.kinematics.describe``'s
   figures of every generated part (``part_figures``), no learned model needed.

``measure_span`` runs all of them on one span edit (``benchmarks/edit_acceptance.py``);
``mosa.eval.edit_examples`` on every editing mode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from mosa.edit.modes import DEFAULT_CONTEXT, EditedMotion, edit_span, source_features
from mosa.edit.seams import DEFAULT_BLEND
from mosa.eval import kinematics
from mosa.motion.features import local_joints, recover_joints

MPJPE_SLACK_MM = 10.0
SEAM_SPEED_RATIO = 1.5

# text -> (the rule in words, ok(figures of a generated part, its length in seconds))
KinematicChecks = Mapping[str, tuple[str, Callable[[dict, float], bool]]]


# --------------------------------------------------------------------------------------------
# kept frames


def kept_mpjpe(m: EditedMotion, features: np.ndarray) -> float:
    """MPJPE (mm) of ``features`` against the source on ``m``'s kept frames, root-relative.

    Root-relative, because the features integrate root velocities: a kept part after the edit
    is (correctly) re-anchored, and one changed velocity at a seam would rotate everything
    after it; the trajectory's continuity is what the seam speed measures. Only the frames
    inside the generator's window count: outside it the output, the decode and the
    reconstruction are all the source's own features.
    """
    lo, hi = m.window or (0, len(m.kept))
    kept = m.kept.copy()
    kept[:lo], kept[hi:] = False, False
    a, b = local_joints(features[kept]), local_joints(m.canvas[kept])
    return float(np.linalg.norm(a - b, axis=-1).mean() * 1000)


def mpjpe_figures(m: EditedMotion) -> dict:
    """``kept_mpjpe`` of the output, the raw decode and the reconstruction, and the pass."""
    out = {
        "mpjpe_outside_mm": kept_mpjpe(m, m.features),
        "mpjpe_outside_decoded_mm": kept_mpjpe(m, m.decoded),
        "recon_mpjpe_mm": kept_mpjpe(m, m.reconstruction),
    }
    out["mpjpe_pass"] = out["mpjpe_outside_mm"] <= out["recon_mpjpe_mm"] + MPJPE_SLACK_MM
    return out


# --------------------------------------------------------------------------------------------
# seams


def joint_speeds(joints: np.ndarray, fps: float) -> np.ndarray:
    """``(T, 22, 3)`` -> ``(T - 1, 22)`` joint speeds in m/s."""
    return np.linalg.norm(np.diff(joints, axis=0), axis=-1) * fps


def seam_frames(m: EditedMotion) -> np.ndarray:
    """The first frame after every kept <-> generated change."""
    return np.flatnonzero(np.diff(m.kept.astype(int)) != 0) + 1


def seam_window(steps: int, frame: int, window: int) -> np.ndarray:
    """``(steps,)`` the steps between frames within ``window`` frames of the seam at ``frame``."""
    near = np.zeros(steps, bool)
    near[max(0, frame - window - 1) : frame + window] = True
    return near


def near_seams(m: EditedMotion, window: int) -> np.ndarray:
    """``(T-1,)`` steps between frames within ``window`` frames of a seam (kept <-> generated)."""
    near = np.zeros(len(m.kept) - 1, bool)
    for s in seam_frames(m):
        near |= seam_window(len(near), int(s), window)
    return near


def seam_sources(m: EditedMotion) -> list[tuple[int, int]]:
    """``(frame, source)`` of every seam (``seam_frames``) and the source of the kept segment
    it borders (in-betweening has two sources)."""
    out = []
    for s in seam_frames(m):
        seg = next(g for g in m.segments if g.kind == "kept" and s in (g.start, g.end))
        out.append((int(s), int(seg.source or 0)))
    return out


def seam_speed_ratio(m: EditedMotion, sources: list[np.ndarray], window: int) -> dict:
    """Peak joint speed near each seam over the source's 95th-percentile peak joint speed, for
    the source that seam joins (``sources``: feature arrays, in source order); the worst seam
    is reported. Both sides are the same statistic: per step, the fastest joint's speed (a
    p95 over all joints would put a waving hand against resting feet, and a source would fail
    against itself). ``seam_ratio_pooled``: the worst seam's peak over the p95 of all sources
    together."""
    speed = joint_speeds(m.joints, m.fps).max(axis=1)  # (T-1,) fastest joint per step
    peaks = [joint_speeds(recover_joints(f), m.fps).max(axis=1) for f in sources]
    p95 = [float(np.percentile(p, 95)) for p in peaks]  # the same statistic as ``speed``
    seams = []
    for frame, src in seam_sources(m):
        peak = float(speed[seam_window(len(speed), frame, window)].max())
        seams.append({"frame": frame, "source": src, "peak": peak, "p95": p95[src],
                      "ratio": peak / max(p95[src], 1e-9)})  # fmt: skip
    worst = max(seams, key=lambda r: r["ratio"])
    pooled = np.concatenate(peaks)
    return {
        "seam_peak_speed": worst["peak"],
        "source_p95_speed": worst["p95"],
        "seam_ratio": worst["ratio"],
        "seam_ratio_pooled": worst["peak"] / max(float(np.percentile(pooled, 95)), 1e-9),
        "seams": seams,
    }


def seam_peaks(m: EditedMotion, window: int) -> dict:
    """The fastest joint speed (m/s) within ``window`` frames of a seam, on steps between two
    kept frames and on steps touching a generated one (0 where there are none)."""
    speed = joint_speeds(m.joints, m.fps).max(axis=1)
    near, kept = near_seams(m, window), m.kept[:-1] & m.kept[1:]
    a, b = near & kept, near & ~kept
    return {
        "seam_peak_kept_speed": float(speed[a].max()) if a.any() else 0.0,
        "seam_peak_generated_speed": float(speed[b].max()) if b.any() else 0.0,
    }


def peak_away_from_seams(m: EditedMotion, window: int) -> float:
    """Fastest joint speed (m/s) of the output outside the seam windows (``near_seams``)."""
    speed = joint_speeds(m.joints, m.fps).max(axis=1)  # (T-1,)
    far = ~near_seams(m, window)
    return float(speed[far].max()) if far.any() else 0.0


# --------------------------------------------------------------------------------------------
# text


def text_distances(evaluator, text: str, edited: np.ndarray, original: np.ndarray) -> dict:
    """Evaluator distances from ``text`` to the ``edited`` and ``original`` features."""
    from mosa.eval.wordvec import tokenize_caption

    t = evaluator.embed_texts([tokenize_caption(text)])
    n = max(len(edited), len(original))
    batch = np.zeros((2, n, edited.shape[1]), np.float32)
    batch[0, : len(edited)], batch[1, : len(original)] = edited, original
    mot = evaluator.embed_motions(torch.from_numpy(batch), [len(edited), len(original)])
    d = np.linalg.norm(mot - t, axis=-1)
    return {"text_dist_edited": float(d[0]), "text_dist_source": float(d[1])}


# --------------------------------------------------------------------------------------------
# kinematic rules


def part_figures(joints: np.ndarray, start: int, end: int, fps: float) -> dict:
    """``kinematics.describe`` of output frames ``[start, end)`` of ``joints (T, 22, 3)``, plus
    ``head_below_kept_m``: how far the head gets below the lower of the kept frames next to
    the part (their head height stands in for the standing height a bow starts from)."""
    head = joints[:, kinematics.HEAD, 1]
    beside = [head[i] for i in (start - 1, end) if 0 <= i < len(head)]
    below = float(min(beside) - head[start:end].min())
    return {**kinematics.describe(joints[start:end], fps), "head_below_kept_m": below}


def kinematic_check(text: str, m: EditedMotion, checks: KinematicChecks) -> dict:
    """``checks[text]`` on every generated part of ``m``: the rule, each part's figures, and
    whether every part passes. Empty when the text has no rule."""
    if text not in checks:
        return {}
    rule, ok = checks[text]
    parts = [s for s in m.segments if s.kind == "generated"]
    figures = [part_figures(m.joints, s.start, s.end, m.fps) for s in parts]
    seconds = [(s.end - s.start - 1) / m.fps for s in parts]  # steps between the frames
    passed = all(ok(d, t) for d, t in zip(figures, seconds, strict=True))
    return {"kinematic_rule": rule, "kinematic_parts": figures, "kinematic_pass": passed}


# --------------------------------------------------------------------------------------------
# span editing


def measure_span(
    pipe,
    motion,
    text: str,
    start: float,
    end: float,
    *,
    seed: int | None = 0,
    cfg: float | None = None,
    blend: int = DEFAULT_BLEND,
    crop: bool = False,
    context: float | None = DEFAULT_CONTEXT,
    evaluator=None,
) -> dict:
    """Regenerate ``[start, end)`` seconds of ``motion`` for ``text`` (``edit_span``) and
    measure criteria 1-3; the text reference is the source's own span."""
    feats = source_features(motion, pipe.fps)
    m = edit_span(pipe, motion, text, start, end, seed=seed, cfg=cfg, blend=blend, crop=crop,
                  context=context)  # fmt: skip
    out = {"frames": len(m.joints), "seed": m.seed, **mpjpe_figures(m)}
    out.update(seam_speed_ratio(m, [feats], blend + pipe.unit))
    out.update(seam_peaks(m, blend + pipe.unit))
    out["seam_pass"] = out["seam_ratio"] <= SEAM_SPEED_RATIO
    if evaluator is not None:
        gen = [s for s in m.segments if s.kind == "generated"][0]
        original = m.canvas[gen.start : gen.end]  # edit_span fills the span with the source
        out.update(text_distances(evaluator, text, m.features[gen.start : gen.end], original))
        out["text_pass"] = out["text_dist_edited"] < out["text_dist_source"]
    return out


def summarise(rows: Sequence[dict], skip: Sequence[str] = ("source", "frames", "seed")) -> dict:
    """Over ``rows`` of ``measure_span``: the mean of every figure, and whether every row
    passes each ``*_pass`` criterion (keys in ``skip`` and lists, such as ``seams``, are
    left out)."""
    keys = [k for k in rows[0] if k not in skip and not isinstance(rows[0][k], list)]
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys if not k.endswith("_pass")}
    summary.update({k: all(r[k] for r in rows) for k in keys if k.endswith("_pass")})
    return summary
