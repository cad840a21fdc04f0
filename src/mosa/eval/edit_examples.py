"""Editing examples: one edit in any mode (``Example``), run on its source(s), measured with
the acceptance criteria of ``mosa.eval.edit_acceptance`` (``acceptance_row``), over many
seeds (``measure_seed``, ``pass_rates``), and laid out next to its source for side-by-side
views (``before_track``). ``mosa.eval.edit_report`` renders them into docs/editing/.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mosa.edit.modes import (
    DEFAULT_CONTEXT,
    EditedMotion,
    edit_span,
    inbetween,
    outpaint,
    source_features,
)
from mosa.edit.seams import DEFAULT_BLEND
from mosa.errors import MosaError
from mosa.eval import edit_acceptance as acc
from mosa.eval import kinematics
from mosa.motion.features import recover_joints
from mosa.motion.io import read_motion

MODES = ("span", "extend", "lead_in", "inbetween", "outpaint")
CRITERIA = ("mpjpe_pass", "seam_pass", "text_pass", "kinematic_pass")


@dataclass(frozen=True)
class Example:
    """One edit: ``sources`` are keys of a source table (key -> file); ``start``/``end``
    (span), ``before``/``after`` (lead-in/extend/outpaint) and ``seconds`` (in-between) are in
    seconds of the source(s), as on the CLI."""

    name: str
    mode: str
    text: str
    sources: tuple[str, ...]
    start: float = 0.0
    end: float = 0.0
    before: float = 0.0
    after: float = 0.0
    seconds: float = 0.0
    crop: bool = False
    context: float | None = DEFAULT_CONTEXT  # seconds the generator sees; None: all
    note: str = ""  # a remark on the source(s) for the README

    def cli(self, paths: Sequence[str], output: str, extra: Sequence[str] = ()) -> str:
        """The equivalent ``mosa edit`` / ``mosa inbetween`` command line."""
        if self.mode == "inbetween":
            args = ["mosa", "inbetween", *paths, "--seconds", f"{self.seconds:g}"]
        else:
            args = ["mosa", "edit", paths[0]]
            if self.mode == "span":
                args += ["--start", f"{self.start:g}", "--end", f"{self.end:g}"]
            if self.before:
                args += ["--lead-in", f"{self.before:g}"]
            if self.after:
                args += ["--extend", f"{self.after:g}"]
        if self.context != DEFAULT_CONTEXT:
            args += ["--context", "all" if self.context is None else f"{self.context:g}"]
        args += ["--text", self.text, *extra, *(["--crop"] if self.crop else []), "-o", output]
        return shlex.join(args)


def run_example(pipe, ex: Example, paths: Mapping[str, Path], seed: int):
    """Run one edit; returns it (``EditedMotion``) and the ``(F_i, 263)`` features of its
    sources. ``paths``: source key -> motion file."""
    motions = [read_motion(paths[k]) for k in ex.sources]
    feats = [source_features(m, pipe.fps) for m in motions]
    kw = {"seed": seed, "crop": ex.crop, "context": ex.context}
    if ex.mode == "span":
        m = edit_span(pipe, motions[0], ex.text, ex.start, ex.end, **kw)
    elif ex.mode == "inbetween":
        m = inbetween(pipe, motions[0], motions[1], ex.text, ex.seconds, **kw)
    elif ex.mode in ("extend", "lead_in", "outpaint"):
        m = outpaint(pipe, motions[0], ex.text, ex.before, ex.after, **kw)
    else:
        raise MosaError(f"unknown editing mode '{ex.mode}'", f"use one of {', '.join(MODES)}")
    return m, feats


def generated_window(m: EditedMotion) -> tuple[int, int]:
    """Output frames ``[first generated, last generated + 1)``."""
    gen = np.flatnonzero(~m.kept)
    return int(gen[0]), int(gen[-1]) + 1


def reference_features(m: EditedMotion, ex: Example, feats: list) -> np.ndarray:
    """What the text is compared against when nothing is generated, ``(L, 263)``: the
    source's own span (span mode, as the benchmark does); the source's last / first ``L``
    frames (extend / lead-in); the hard cut from the end of A to the start of B (in-between);
    the whole kept source (outpaint, whose window is the whole output)."""
    g0, g1 = generated_window(m)
    n = g1 - g0
    if ex.mode == "span":
        return m.canvas[g0:g1]  # edit_span fills the span with the source
    if ex.mode == "outpaint":
        return m.canvas[m.kept]
    if ex.mode == "extend":
        return feats[0][-n:]
    if ex.mode == "lead_in":
        return feats[0][:n]
    t = np.arange(len(m.kept))
    a, b = m.canvas[m.kept & (t < g0)], m.canvas[m.kept & (t >= g1)]
    return np.concatenate([a[len(a) - n // 2 :], b[: n - n // 2]])


def generated_figures(joints: np.ndarray, fps: float) -> dict:
    """Crude description of the generated frames ``(L, 22, 3)``: root travel on the floor (m)
    and how far the higher wrist gets above the head (m, negative: below)."""
    d = kinematics.describe(joints, fps)
    wrist = max(d["wrist_l_above_head_m"], d["wrist_r_above_head_m"])
    return {"gen_travel_m": d["travel_m"], "gen_wrist_over_head_m": wrist}


def acceptance_row(
    pipe,
    m: EditedMotion,
    ex: Example,
    feats: list,
    evaluator=None,
    checks: acc.KinematicChecks | None = None,
) -> dict:
    """The acceptance figures of ``mosa.eval.edit_acceptance`` for an edit in any mode;
    ``checks``: the kinematic rules per text (texts without one have no kinematic figure)."""
    blend = DEFAULT_BLEND
    g0, g1 = generated_window(m)
    row = {
        "example": ex.name,
        "mode": ex.mode,
        "text": ex.text,
        "seed": m.seed,
        "frames": len(m.joints),
        "generated_s": float((~m.kept).sum() / m.fps),
        **acc.mpjpe_figures(m),
    }
    row["seam_window"] = blend + pipe.unit
    row.update(acc.seam_speed_ratio(m, feats, row["seam_window"]))
    row["seam_pass"] = row["seam_ratio"] <= acc.SEAM_SPEED_RATIO
    row.update(acc.seam_peaks(m, row["seam_window"]))
    # a text asking for faster motion than the source's (walking into a standing clip)
    # fails the ratio above with no jump at all; a jump makes the seams the fastest part
    row["peak_elsewhere_speed"] = acc.peak_away_from_seams(m, blend + pipe.unit)
    row["seam_over_elsewhere"] = row["seam_peak_speed"] / max(row["peak_elsewhere_speed"], 1e-9)
    if evaluator is not None:
        ref = reference_features(m, ex, feats)
        row.update(acc.text_distances(evaluator, ex.text, m.features[g0:g1], ref))
        row["text_pass"] = row["text_dist_edited"] < row["text_dist_source"]
    row.update(acc.kinematic_check(ex.text, m, checks or {}))
    row.update(generated_figures(m.joints[g0:g1], m.fps))
    return row


def measure_example(pipe, ex: Example, paths, seed: int, evaluator=None, checks=None) -> dict:
    """The acceptance row of one example at one seed, without rendering."""
    m, feats = run_example(pipe, ex, paths, seed)
    return acceptance_row(pipe, m, ex, feats, evaluator, checks)


def measure_seed(pipe, examples: Sequence[Example], paths, seed: int, evaluator=None, checks=None):
    """``measure_example`` of every example at one seed."""
    return [measure_example(pipe, ex, paths, seed, evaluator, checks) for ex in examples]


def pass_rates(per_seed: list[list[dict]], seeds: list[int]) -> list[dict]:
    """Per example: how many of the seeds pass each criterion, and the median seam ratio.
    ``per_seed[i]``: the acceptance rows of ``seeds[i]``, examples in the same order."""
    out = []
    for j, first in enumerate(per_seed[0]):
        rows = [rs[j] for rs in per_seed]
        rate = {"example": first["example"], "seeds": seeds}
        rate.update({k: first[k] for k in ("text", "kinematic_rule") if k in first})
        for key in CRITERIA:
            if key in first:
                rate[key.removesuffix("_pass") + "_passed"] = sum(bool(r[key]) for r in rows)
        rate["seam_ratio_median"] = float(np.median([r["seam_ratio"] for r in rows]))
        rate["seam_ratio_max"] = float(max(r["seam_ratio"] for r in rows))
        out.append(rate)
    return out


def before_track(m: EditedMotion, feats: list, mode: str) -> np.ndarray:
    """The source(s) laid out on the output's frames, ``(T, 22, 3)``, for side-by-side views.

    Kept frames show the source frame they came from. Generated frames show, in span mode, the
    source frames they replace (time runs on as in the source), else the nearest kept frame's
    pose, held. Each source is recovered from the features it contributes (so it starts where
    the edit starts, like the output); a second source (in-between) is moved to start where
    the first one ends: the sources as a hard cut.
    """
    T = len(m.kept)
    src, idx = np.full(T, -1), np.zeros(T, int)
    for s in m.segments:
        if s.kind == "kept":
            src[s.start : s.end] = s.source
            idx[s.start : s.end] = s.source_start + np.arange(s.end - s.start)
    gen = np.flatnonzero(src < 0)
    kept = np.flatnonzero(src >= 0)
    if mode == "span" or len(kept) == 0:
        first = next((s for s in m.segments if s.kind == "kept"), None)
        off = 0 if first is None else first.source_start - first.start
        src[gen], idx[gen] = 0, np.clip(gen + off, 0, len(feats[0]) - 1)
    else:
        nearest = kept[np.abs(gen[:, None] - kept[None, :]).argmin(axis=1)]
        src[gen], idx[gen] = src[nearest], idx[nearest]
    track = np.zeros((T, 22, 3), np.float32)
    for i in np.unique(src):
        on = src == i
        # a span edit keeps the take's frame count: its last frame may lie one past the
        # source's feature rows (features are velocities), so it shows the last one
        idx[on] = np.minimum(idx[on], len(feats[i]) - 1)
        lo, hi = idx[on].min(), idx[on].max() + 1
        joints = np.asarray(recover_joints(feats[i][lo:hi]), np.float32)
        track[on] = joints[idx[on] - lo]
        if i > 0:  # start where the previous source ended (floor position only)
            first, prev = np.flatnonzero(on)[0], np.flatnonzero(src == i - 1)
            if len(prev):
                shift = track[prev[-1], 0] - track[first, 0]
                track[on] += np.array([shift[0], 0.0, shift[2]], np.float32)
    return track
