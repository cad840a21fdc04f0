"""Before/after renders and acceptance figures of motion editing, written to docs/editing/.

One example per editing mode (span regeneration on a Bandai-Namco clip and on a CMU clip,
continuation, lead-in, in-betweening, outpainting). For each: a GIF with the source and the
edit side by side, in sync, the generated frames marked; then one contact sheet of all of
them, ``acceptance.json`` and ``README.md`` with the CLI command of every example and the
acceptance figures of ``benchmarks/edit_acceptance.py``. Re-run it after retraining:

    python scripts/make_edit_examples.py --checkpoint checkpoints --data data/bandai \\
        --cmu ../shared/data/cmu/01_01.bvh --evaluator checkpoints/evaluator --out docs/editing
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageSequence

from mosa import edit as E
from mosa import generate as G
from mosa.errors import MosaError
from mosa.eval import kinematics
from mosa.io import atomic_path, atomic_write_text
from mosa.motion.features import recover_joints
from mosa.motion.io import read_motion
from mosa.motion.render import render_contact_sheet, render_motions

REPO_ROOT = Path(__file__).resolve().parents[1]
ACCEPTANCE_PY = REPO_ROOT / "benchmarks" / "edit_acceptance.py"

GENERATED_COLOUR = (240, 140, 20)  # orange: generated frames
KEPT_COLOUR = (185, 185, 185)  # grey: kept source frames
STRIP = 18  # pixels of timeline strip added under each GIF
MODES = ("span", "extend", "lead_in", "inbetween", "outpaint")
MODE_TITLES = {
    "span": "span regeneration",
    "extend": "continuation (--extend)",
    "lead_in": "lead-in (--lead-in)",
    "inbetween": "in-betweening",
    "outpaint": "outpainting (--lead-in + --extend)",
}


@dataclass(frozen=True)
class Example:
    """One edit: ``sources`` are keys of the source table (a Bandai clip name or ``"cmu"``);
    ``start``/``end`` (span), ``before``/``after`` (lead-in/extend/outpaint) and ``seconds``
    (in-between) are in seconds of the source(s), as on the CLI."""

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
    context: float | None = E.DEFAULT_CONTEXT  # seconds the generator sees; None: all
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
        if self.context != E.DEFAULT_CONTEXT:
            args += ["--context", "all" if self.context is None else f"{self.context:g}"]
        args += ["--text", self.text, *extra, *(["--crop"] if self.crop else []), "-o", output]
        return shlex.join(args)


CMU = "cmu"
EXAMPLES = (
    Example("span_walk", "span", "a person raises both arms above their head",
            ("dataset-2_walk_active_006",), start=1.5, end=3.0),
    Example("span_cmu", "span", "a person waves with the right hand", (CMU,),
            start=3.0, end=5.0,
            note="The CMU clip starts with a T-pose frame (the wrist's 14 m/s step at 0 s) "
                 "and is 23 s long, longer than the generator's 9.8 s: the generator sees the "
                 "span and 4 s either side (`--context`), the rest of the take stays as it is."),
    Example("extend", "extend", "a person waves with the right hand",
            ("dataset-2_walk_active_019",), after=2.0),
    Example("lead_in", "lead_in", "a person waves with the right hand",
            ("dataset-2_walk_normal_006",), before=2.0,
            note="The person waves, then walks off (the source). The text asks for something "
                 "the walk does not do; with \"a person walks forward\" the edit was compared "
                 "with the walk itself. *Other texts tried* below has both, and the lead-ins "
                 "that do not follow their text."),
    Example("inbetween", "inbetween", "a person stops and bows",
            ("dataset-1_walk_happy_002", "dataset-2_wave-right-hand_exhausted_008"),
            seconds=2.0,
            note="The text asks for something neither A nor B does: with \"a person walks "
                 "forward and stops\" the reference, A's walk cut into B's standing wave, "
                 "already shows the text (see *Other texts tried*)."),
    Example("outpaint", "outpaint", "a person walks forward",
            ("dataset-2_walk_youthful_006",), before=1.5, after=1.5, crop=True),
)  # fmt: skip

# Other texts, measured over the seeds only (no renders), to show where an edit follows its
# text and where it does not: the texts the examples had before, and contrasting ones.
_INBETWEEN = next(ex for ex in EXAMPLES if ex.name == "inbetween")
RAISE_AFTER_WALK = Example(
    "extend_raise_after_walk", "extend", "a person raises both arms above their head",
    ("dataset-2_walk_normal_006",), after=2.0,
    note="after a long walk the arms rise above the head less often: the generator "
         "continues the walk it sees",
)  # fmt: skip
PROBES = (
    Example("lead_in_walk_into_walk", "lead_in", "a person walks forward",
            ("dataset-2_walk_normal_006",), before=2.0,
            note="the lead-in example before; its reference is the walk itself"),
    Example("lead_in_walk_into_wave", "lead_in", "a person walks forward",
            ("dataset-2_wave-right-hand_exhausted_008",), before=2.0,
            note="walking into a standing clip: a failed seam is the walk's own last stride "
                 "inside the seam window, faster than 1.5 x the standing source's p95"),
    Example("lead_in_run_into_walk", "lead_in", "a person runs forward",
            ("dataset-2_walk_normal_006",), before=2.0,
            note="the lead-in keeps to the walk's pace"),
    Example("lead_in_bow_into_walk", "lead_in", "a person bows",
            ("dataset-2_walk_normal_006",), before=2.0),
    Example("extend_run_after_walk", "extend", "a person runs forward",
            ("dataset-2_walk_normal_006",), after=3.0,
            note="walk to run: the extension keeps to the walk's pace, like the lead-in"),
    RAISE_AFTER_WALK,
    replace(RAISE_AFTER_WALK, name="extend_raise_context_2s", context=2.0,
            note="the same with `--context 2`: it follows the text more"),
    replace(_INBETWEEN, name="inbetween_context_2s", context=2.0,
            note="the in-between example with `--context 2`: less context is not always better"),
    replace(_INBETWEEN, name="inbetween_walk_and_stop", text="a person walks forward and stops",
            note="the in-between text before; its reference, A's walk cut into B's standing "
                 "wave, already shows it"),
)  # fmt: skip

# text -> what its generated frames must show, on mosa.eval.kinematics.describe's figures
# over each generated part (``s`` seconds long). How the real Bandai-Namco test clips (not
# mirrored) fare: right-hand waves lift the right wrist 0.48-1.11 m above the left (21/21
# pass); walks move forward at 0.66-1.51 m/s (21/21), the 155 clips that neither walk nor
# run < 0.015 m/s; bows lower the head 0.18-0.31 m below its standing height (2/2), walks
# 0.03-0.12 m; raising both hands puts both wrists above the head in 16/28 clips; runs exceed
# 1.8 m/s in 28/32. In an edit the standing height is the kept frames' next to the part.
BOW = "head > 0.15 m below the kept frames'"
CHECKS = {
    "a person raises both arms above their head": (
        "both wrists above the head",
        lambda d, s: min(d["wrist_l_above_head_m"], d["wrist_r_above_head_m"]) > 0,
    ),
    "a person waves with the right hand": (
        "right wrist >= 0.3 m above the left",
        lambda d, s: d["wrist_r_above_head_m"] - d["wrist_l_above_head_m"] >= 0.3,
    ),
    "a person walks forward": ("moves forward >= 0.5 m/s", lambda d, s: d["forward_m"] >= 0.5 * s),
    "a person runs forward": ("mean speed > 1.8 m/s", lambda d, s: d["speed_mps"] > 1.8),
    "a person bows": (BOW, lambda d, s: d["head_below_kept_m"] > 0.15),
    "a person stops and bows": (BOW, lambda d, s: d["head_below_kept_m"] > 0.15),
}


# --------------------------------------------------------------------------------------------
# running the edits


def load_acceptance() -> ModuleType:
    """``benchmarks/edit_acceptance.py`` as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location("edit_acceptance", ACCEPTANCE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_paths(examples: Sequence[Example], data: Path | None, cmu: Path | None) -> dict:
    """Source key -> file: Bandai clips are ``DATA/new_joint_vecs/KEY.npy``, ``cmu`` the BVH."""
    paths = {}
    for key in {k for ex in examples for k in ex.sources}:
        if key == CMU:
            if cmu is None:
                raise MosaError("an example needs the CMU clip", "pass --cmu PATH/01_01.bvh")
            paths[key] = Path(cmu)
        else:
            if data is None:
                raise MosaError(f"example clip {key} needs --data", "pass --data data/bandai")
            paths[key] = Path(data) / "new_joint_vecs" / f"{key}.npy"
        if not paths[key].is_file():
            raise MosaError(f"source motion not found: {paths[key]}", "check --data / --cmu")
    return paths


def run_example(pipe, ex: Example, paths: dict, seed: int) -> tuple[E.EditedMotion, list]:
    """Run one edit; returns it and the ``(F_i, 263)`` features of its sources."""
    motions = [read_motion(paths[k]) for k in ex.sources]
    feats = [E.source_features(m, pipe.fps) for m in motions]
    kw = {"seed": seed, "crop": ex.crop, "context": ex.context}
    if ex.mode == "span":
        m = E.edit_span(pipe, motions[0], ex.text, ex.start, ex.end, **kw)
    elif ex.mode == "inbetween":
        m = E.inbetween(pipe, motions[0], motions[1], ex.text, ex.seconds, **kw)
    elif ex.mode in ("extend", "lead_in", "outpaint"):
        m = E.outpaint(pipe, motions[0], ex.text, ex.before, ex.after, **kw)
    else:
        raise MosaError(f"unknown editing mode '{ex.mode}'", f"use one of {', '.join(MODES)}")
    return m, feats


def generated_window(m: E.EditedMotion) -> tuple[int, int]:
    """Output frames ``[first generated, last generated + 1)``."""
    gen = np.flatnonzero(~m.kept)
    return int(gen[0]), int(gen[-1]) + 1


def reference_features(m: E.EditedMotion, ex: Example, feats: list) -> np.ndarray:
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


def acceptance_row(acc, pipe, m: E.EditedMotion, ex: Example, feats: list, evaluator=None) -> dict:
    """The figures of ``edit_acceptance.measure`` for any mode (its functions, not a copy)."""
    blend = E.DEFAULT_BLEND
    g0, g1 = generated_window(m)
    row = {
        "example": ex.name,
        "mode": ex.mode,
        "text": ex.text,
        "seed": m.seed,
        "frames": len(m.joints),
        "generated_s": float((~m.kept).sum() / m.fps),
        "mpjpe_outside_mm": acc.kept_mpjpe(m, m.features),
        "mpjpe_outside_decoded_mm": acc.kept_mpjpe(m, m.decoded),
        "recon_mpjpe_mm": acc.kept_mpjpe(m, m.reconstruction),
    }
    row["mpjpe_pass"] = row["mpjpe_outside_mm"] <= row["recon_mpjpe_mm"] + acc.MPJPE_SLACK_MM
    row["seam_window"] = blend + pipe.unit
    row.update(acc.seam_speed_ratio(m, feats, row["seam_window"]))
    row["seam_pass"] = row["seam_ratio"] <= acc.SEAM_SPEED_RATIO
    row.update(acc.seam_peaks(m, row["seam_window"]))
    # a text asking for faster motion than the source's (walking into a standing clip)
    # fails the ratio above with no jump at all; a jump makes the seams the fastest part
    row["peak_elsewhere_speed"] = peak_away_from_seams(acc, m, blend + pipe.unit)
    row["seam_over_elsewhere"] = row["seam_peak_speed"] / max(row["peak_elsewhere_speed"], 1e-9)
    if evaluator is not None:
        ref = reference_features(m, ex, feats)
        row.update(acc.text_distances(evaluator, ex.text, m.features[g0:g1], ref))
        row["text_pass"] = row["text_dist_edited"] < row["text_dist_source"]
    row.update(kinematic_check(ex.text, m))
    row.update(describe(m.joints[g0:g1], m.fps))
    return row


def part_figures(joints: np.ndarray, start: int, end: int, fps: float) -> dict:
    """``kinematics.describe`` of output frames ``[start, end)`` of ``joints (T, 22, 3)``, plus
    ``head_below_kept_m``: how far the head gets below the lower of the kept frames next to
    the part (their head height stands in for the standing height a bow starts from)."""
    head = joints[:, kinematics.HEAD, 1]
    beside = [head[i] for i in (start - 1, end) if 0 <= i < len(head)]
    below = float(min(beside) - head[start:end].min())
    return {**kinematics.describe(joints[start:end], fps), "head_below_kept_m": below}


def kinematic_check(text: str, m: E.EditedMotion) -> dict:
    """``CHECKS[text]`` on every generated part of ``m``: the rule, each part's figures, and
    whether every part passes. Empty when the text has no rule."""
    if text not in CHECKS:
        return {}
    rule, ok = CHECKS[text]
    parts = [s for s in m.segments if s.kind == "generated"]
    figures = [part_figures(m.joints, s.start, s.end, m.fps) for s in parts]
    seconds = [(s.end - s.start - 1) / m.fps for s in parts]  # steps between the frames
    passed = all(ok(d, t) for d, t in zip(figures, seconds, strict=True))
    return {"kinematic_rule": rule, "kinematic_parts": figures, "kinematic_pass": passed}


def peak_away_from_seams(acc, m: E.EditedMotion, window: int) -> float:
    """Fastest joint speed (m/s) of the output outside the benchmark's seam windows."""
    speed = acc.joint_speeds(m.joints, m.fps).max(axis=1)  # (T-1,)
    far = ~acc.near_seams(m, window)
    return float(speed[far].max()) if far.any() else 0.0


def describe(joints: np.ndarray, fps: float) -> dict:
    """Crude description of the generated frames ``(L, 22, 3)``: root travel on the floor (m)
    and how far the higher wrist gets above the head (m, negative: below)."""
    d = kinematics.describe(joints, fps)
    wrist = max(d["wrist_l_above_head_m"], d["wrist_r_above_head_m"])
    return {"gen_travel_m": d["travel_m"], "gen_wrist_over_head_m": wrist}


# --------------------------------------------------------------------------------------------
# renders


def before_track(m: E.EditedMotion, feats: list, mode: str) -> np.ndarray:
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
        lo, hi = idx[on].min(), idx[on].max() + 1
        joints = np.asarray(recover_joints(feats[i][lo:hi]), np.float32)
        track[on] = joints[idx[on] - lo]
        if i > 0:  # start where the previous source ended (floor position only)
            first, prev = np.flatnonzero(on)[0], np.flatnonzero(src == i - 1)
            if len(prev):
                shift = track[prev[-1], 0] - track[first, 0]
                track[on] += np.array([shift[0], 0.0, shift[2]], np.float32)
    return track


def resample(joints: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear resampling in time of ``(T, 22, 3)`` to ``fps_out``: ``(round(T fps_out /
    fps_in), 22, 3)``; frame k is at ``k / fps_out`` seconds."""
    n = max(1, round(len(joints) * fps_out / fps_in))
    t = np.minimum(np.arange(n) * fps_in / fps_out, len(joints) - 1)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, len(joints) - 1)
    w = (t - i0)[:, None, None]
    return ((1 - w) * joints[i0] + w * joints[i1]).astype(np.float32)


def frames_at(mask: np.ndarray, fps_in: float, n: int, fps_out: float) -> np.ndarray:
    """``mask (T,)`` sampled at ``n`` frames of ``fps_out`` (nearest source frame)."""
    t = np.minimum(np.round(np.arange(n) * fps_in / fps_out).astype(int), len(mask) - 1)
    return mask[t]


def short_name(path: Path) -> str:
    """A clip's file stem without the Bandai-Namco ``dataset-N_`` prefix (titles are narrow)."""
    return re.sub(r"^dataset-\d+_", "", path.stem)


def span_label(m: E.EditedMotion) -> str:
    """``generated 1.5-3.0 s`` (output seconds, each generated segment)."""
    segs = [s for s in m.segments if s.kind == "generated"]
    return "generated " + ", ".join(f"{s.start / m.fps:.1f}-{s.end / m.fps:.1f} s" for s in segs)


def render_pair(
    before: np.ndarray,
    after: np.ndarray,
    generated: np.ndarray,
    out: Path,
    *,
    fps: float,
    gif_fps: float,
    titles: Sequence[str],
    caption: str,
    width: int,
    dpi: float,
) -> Path:
    """Source and edit side by side (``render_motions``), then a timeline strip under them
    (grey kept, orange generated, a black play head) and an orange frame round the edit's
    panel while generated frames play."""
    b, a = resample(before, fps, gif_fps), resample(after, fps, gif_fps)
    marks = frames_at(generated, fps, len(a), gif_fps)
    tmp_gif = out.with_name(f".{out.stem}.plain.gif")
    try:
        render_motions(
            [b, a], tmp_gif, fps=gif_fps, titles=titles, caption=caption, width=width, dpi=dpi
        )
        mark_gif(tmp_gif, out, marks, (width, 2 * width), gif_fps)
    finally:
        tmp_gif.unlink(missing_ok=True)
    return out


def mark_gif(src: Path, out: Path, generated: np.ndarray, panel: tuple[int, int], fps: float):
    """Add the timeline strip and the generated-frame highlight to every frame of ``src``."""
    font = ImageFont.load_default(size=10)
    frames = []
    with Image.open(src) as im:
        for k, frame in enumerate(ImageSequence.Iterator(im)):
            rgb = frame.convert("RGB")
            W, H = rgb.size
            img = Image.new("RGB", (W, H + STRIP), "white")
            img.paste(rgb, (0, 0))
            draw = ImageDraw.Draw(img)
            now = bool(generated[min(k, len(generated) - 1)])
            if now:
                draw.rectangle(
                    (panel[0] + 1, 1, panel[1] - 2, H - 2), outline=GENERATED_COLOUR, width=3
                )
            _timeline(draw, generated, k, (W, H), font)
            frames.append(img.quantize(colors=128, method=Image.Quantize.FASTOCTREE))
    with atomic_path(out) as tmp:
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            loop=0,
            duration=max(20, round(1000.0 / fps)),
            optimize=False,
            disposal=1,
        )


def _timeline(draw: ImageDraw.ImageDraw, generated: np.ndarray, k: int, size, font) -> None:
    W, H = size
    draw.text((6, H + 3), "generated", fill=GENERATED_COLOUR, font=font)
    draw.text((66, H + 3), "kept", fill=(120, 120, 120), font=font)
    x0, x1, y0, y1 = 96, W - 8, H + 5, H + STRIP - 5
    n = len(generated)
    for i in range(n):  # one cell per frame (runs of equal cells merge visually)
        colour = GENERATED_COLOUR if generated[i] else KEPT_COLOUR
        draw.rectangle((x0 + (x1 - x0) * i / n, y0, x0 + (x1 - x0) * (i + 1) / n, y1), fill=colour)
    x = x0 + (x1 - x0) * (k + 0.5) / n
    draw.rectangle((x - 1, y0 - 3, x + 1, y1 + 3), fill=(0, 0, 0))


# --------------------------------------------------------------------------------------------
# everything


def make_edit_examples(
    pipe,
    examples: Sequence[Example],
    paths: dict,
    out: Path,
    *,
    seed: int = 0,
    evaluator=None,
    gif_fps: float = 12.5,
    width: int = 220,
    dpi: float = 60.0,
    cell: int = 110,
    command: str = "",
    cli_extra: Sequence[str] = (),
    about: str = "",
    more_seeds: int = 0,
    probes: Sequence[Example] = (),
) -> list[dict]:
    """Run, measure and render ``examples``; write ``out/{name}.gif``, ``contact_sheet.png``,
    ``acceptance.json`` and ``README.md``. ``paths``: source key -> file. ``cli_extra``:
    options added to every example's CLI command. ``more_seeds``: also measure (not render)
    seeds ``seed + 1 .. seed + more_seeds`` and write their pass rates
    (``acceptance_seeds.json`` and a README table), and measure ``probes`` (other texts, not
    rendered) on all those seeds (``probes_seeds.json``). Returns the rendered seed's rows."""
    acc = load_acceptance()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, sheet, sheet_titles = [], [], []
    for ex in examples:
        t0 = time.perf_counter()
        m, feats = run_example(pipe, ex, paths, seed)
        row = acceptance_row(acc, pipe, m, ex, feats, evaluator)
        row["label"], row["note"] = span_label(m), ex.note
        extra = [*cli_extra, "--seed", str(seed)]
        row["cli"] = ex.cli([_show(paths[k]) for k in ex.sources], f"{ex.name}.bvh", extra)
        before = before_track(m, feats, ex.mode)
        names = " + ".join(short_name(paths[k]) for k in ex.sources)
        titles = [f"source: {names}", f"edit, {row['label']}: {ex.text}"]
        render_pair(before, m.joints, ~m.kept, out / f"{ex.name}.gif", fps=m.fps,
                    gif_fps=gif_fps, titles=titles, caption=MODE_TITLES[ex.mode], width=width,
                    dpi=dpi)  # fmt: skip
        sheet += [before, m.joints]
        sheet_titles += [f"{ex.name} {titles[0]}", f"{ex.name} {MODE_TITLES[ex.mode]}, {titles[1]}"]
        rows.append(row)
        figures = ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float))
        print(f"{ex.name} ({time.perf_counter() - t0:.1f} s): {row['label']}, {figures}")
    render_contact_sheet(sheet, out / "contact_sheet.png", frames_per_motion=6,
                         titles=sheet_titles, cell=cell, dpi=dpi)  # fmt: skip
    atomic_write_text(out / "acceptance.json", json.dumps(rows, indent=2) + "\n")
    rates, probe_rates = [], []
    if more_seeds > 0:
        seeds = list(range(seed, seed + more_seeds + 1))
        per_seed = [rows] + [measure_seed(acc, pipe, examples, paths, sd, evaluator)
                             for sd in seeds[1:]]  # fmt: skip
        rates = pass_rates(per_seed, seeds)
        atomic_write_text(out / "acceptance_seeds.json", json.dumps(rates, indent=2) + "\n")
        if probes:
            per_seed = [measure_seed(acc, pipe, probes, paths, sd, evaluator) for sd in seeds]
            probe_rates = pass_rates(per_seed, seeds)
            for rate, ex in zip(probe_rates, probes, strict=True):
                rate["note"] = ex.note
            text = json.dumps(probe_rates, indent=2) + "\n"
            atomic_write_text(out / "probes_seeds.json", text)
    text = readme(rows, command, about, evaluator is not None, rates, probe_rates)
    atomic_write_text(out / "README.md", text)
    return rows


CRITERIA = ("mpjpe_pass", "seam_pass", "text_pass", "kinematic_pass")


def measure_example(acc, pipe, ex: Example, paths: dict, seed: int, evaluator=None) -> dict:
    """The acceptance row of one example at one seed, without rendering."""
    m, feats = run_example(pipe, ex, paths, seed)
    return acceptance_row(acc, pipe, m, ex, feats, evaluator)


def measure_seed(acc, pipe, examples: Sequence[Example], paths: dict, seed: int, evaluator=None):
    """``measure_example`` of every example at one seed."""
    return [measure_example(acc, pipe, ex, paths, seed, evaluator) for ex in examples]


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


RATE_NAMES = {"mpjpe_passed": "MPJPE", "seam_passed": "seam", "text_passed": "text",
              "kinematic_passed": "kinematic"}  # fmt: skip


def rates_table(rates: list[dict], with_text: bool = False) -> str:
    """Markdown table of ``pass_rates``; ``with_text`` adds the text and kinematic rule, and
    a note column when a rate has a note."""
    n = len(rates[0]["seeds"])
    keys = [k for k in RATE_NAMES if any(k in r for r in rates)]
    notes = with_text and any(r.get("note") for r in rates)
    extra = ["text", "kinematic rule"] if with_text else []
    head = ["example", *extra, *(f"{RATE_NAMES[k]} passed" for k in keys),
            "seam ratio median", "max", *(["note"] if notes else [])]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rates:
        texts = [r.get("text", ""), r.get("kinematic_rule", "")] if with_text else []
        cells = [r["example"], *texts, *(f"{r[k]}/{n}" if k in r else "" for k in keys),
                 f"{r['seam_ratio_median']:.2f}", f"{r['seam_ratio_max']:.2f}",
                 *([r.get("note", "")] if notes else [])]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _show(path: Path) -> str:
    """A path as typed from the current folder (relative when possible)."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)


COLUMNS = (
    ("example", "example", "{}"),
    ("mode", "mode", "{}"),
    ("frames", "frames", "{}"),
    ("generated_s", "generated (s)", "{:.2f}"),
    ("mpjpe_outside_mm", "MPJPE outside (mm)", "{:.1f}"),
    ("mpjpe_outside_decoded_mm", "raw decode (mm)", "{:.1f}"),
    ("recon_mpjpe_mm", "recon. (mm)", "{:.1f}"),
    ("mpjpe_pass", "MPJPE pass", "{}"),
    ("seam_peak_speed", "seam peak (m/s)", "{:.2f}"),
    ("source_p95_speed", "source p95 (m/s)", "{:.2f}"),
    ("seam_ratio", "seam ratio", "{:.2f}"),
    ("seam_pass", "seam pass", "{}"),
    ("seam_over_elsewhere", "seam / peak elsewhere", "{:.2f}"),
    ("text_dist_edited", "text dist. edit", "{:.2f}"),
    ("text_dist_source", "text dist. ref.", "{:.2f}"),
    ("text_pass", "text pass", "{}"),
    ("kinematic_pass", "kinematic pass", "{}"),
    ("gen_travel_m", "gen. travel (m)", "{:.2f}"),
    ("gen_wrist_over_head_m", "wrist over head (m)", "{:+.2f}"),
)


def table(rows: list[dict]) -> str:
    """Markdown table of the acceptance figures (text columns only when measured)."""
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append(
                "" if v is None else ("yes" if v is True else "no" if v is False else fmt.format(v))
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def readme(
    rows: list[dict],
    command: str,
    about: str,
    with_text: bool,
    rates: Sequence[dict] = (),
    probe_rates: Sequence[dict] = (),
) -> str:
    parts = [
        "# Motion editing: before and after\n",
        "Written by `scripts/make_edit_examples.py`; do not edit by hand. Re-create everything "
        "here (GIFs, contact sheet, `acceptance.json`, this page) from the repository root "
        "with\n",
        f"```bash\n{command}\n```\n" if command else "",
        f"{about}\n" if about else "",
        "Each GIF shows the source on the left and the edit on the right, in sync. The bar "
        "under it is the output's timeline: orange frames are generated, grey ones kept from "
        "the source, the black mark is the current frame; the edit's panel gets an orange "
        "frame while generated frames play. On the left, generated stretches show the source "
        "frames they replace (span regeneration) or hold the nearest kept source pose (the "
        "other modes); in-betweening shows A then B as a hard cut. Outputs have one frame less "
        "than a joint source (features are velocities) and lengths are multiples of 4 frames. "
        "The generator sees the generated frames and up to `--context` seconds (default "
        f"{E.DEFAULT_CONTEXT:g}) of kept frames on either side; the rest of a source is kept "
        "as it is, so sources longer than the generator's 9.8 s keep their full length "
        "(outpainting generates at both ends, so it sees everything; `--crop` drops the "
        "source frames farthest from the edit when that exceeds 9.8 s).\n",
        "Kept frames are the source's own. At each seam the generated frames start from the "
        "kept pose: the difference between the kept frame and the decode there, as the "
        "generated frames carry it back (pose, root height and velocity), is added to the "
        "generated frames and fades out smoothly over a "
        "window that grows with the difference, so the correction adds little joint speed "
        "(offset blending, `mosa.edit.offset_join`; `--blend` sets the shortest window).\n",
        "![contact sheet: source and edit rows per example](contact_sheet.png)\n",
        "## Examples\n",
    ]
    for r in rows:
        parts += [
            f"### {r['example']}: {MODE_TITLES[r['mode']]}\n",
            " ".join(x for x in (f"*{r['text']}*, {r['label']}.", r["note"], seam_remark(r)) if x)
            + "\n",
            f"```bash\n{r['cli']}\n```\n",
            f"![{r['example']}]({r['example']}.gif)\n",
        ]
    parts += [
        "## Acceptance figures\n",
        "Computed with the functions of `benchmarks/edit_acceptance.py` (also in "
        "`acceptance.json`):\n",
        "- **MPJPE outside**: output vs source joints on the kept frames, root-relative, next "
        "to the raw decode (before the seam join) and the tokenizer's reconstruction "
        "of the same frames. Pass: MPJPE outside <= reconstruction + 10 mm.\n",
        f"- **Seam**: fastest joint within {rows[0]['seam_window']} frames of a seam over the "
        "95th percentile of the source's per-frame fastest-joint speed (the same statistic on "
        "both sides), for the source that seam joins: an in-between's seams are judged "
        "against A and B respectively (`acceptance.json` lists every seam, and "
        "`seam_ratio_pooled` against both sources together). Pass: ratio <= 1.5 at every "
        "seam. Next to it (a diagnostic, "
        "no pass/fail) the same peak "
        "over the fastest joint speed of the output away from the seams: when the text asks "
        "for faster motion than the source's (walking into a standing clip) the ratio above "
        "fails with no jump at the seam; above 1 here, the seams are the fastest part. "
        "`acceptance.json` also splits the seam peak into steps between two kept frames "
        "(`seam_peak_kept_speed`: the source's own motion, which the edit leaves as it is) "
        "and steps touching a generated frame (`seam_peak_generated_speed`).\n",
    ]
    if with_text:
        parts.append(
            "- **Text**: evaluator distance from the text to the generated frames (first to "
            "last generated frame; outpainting: the whole output) vs to a reference that "
            "generates nothing: the source's own span (span), the source's last / first "
            "frames of the same length (extend / lead-in), the hard cut from A to B "
            "(in-between), the whole source (outpainting). Pass: the edit is closer.\n"
        )
    parts.append(
        "- **Kinematic**: texts with a rule (`CHECKS` in the script, thresholds from the real "
        "test clips) are also checked without a learned model, on what every generated part "
        "does (`mosa.eval.kinematics.describe`): e.g. a wave lifts the right wrist >= 0.3 m "
        "above the left, a walk moves forward >= 0.5 m/s, a bow lowers the head > 0.15 m "
        "below its height on the kept frames next to the generated part. "
        "Pass: every generated part follows the rule (`kinematic_parts` in "
        "`acceptance.json` has the figures).\n"
    )
    parts += [
        "- **gen. travel / wrist over head**: what the generated frames do (root travel on "
        "the floor; highest wrist minus head height), to read the text's effect.\n",
        table(rows) + "\n",
    ]
    if rates:
        seeds = rates[0]["seeds"]
        parts += [
            f"### Over {len(seeds)} seeds ({seeds[0]}-{seeds[-1]})\n",
            "The renders above are one seed. The same edits with every seed, measured the "
            "same way (`acceptance_seeds.json`): how many seeds pass each criterion.\n",
            rates_table(list(rates), with_text=True) + "\n",
        ]
    if probe_rates:
        parts += [
            "### Other texts tried\n",
            "Measured the same way on the same seeds, not rendered (`probes_seeds.json`): "
            "the texts the examples used before, and texts that contrast with the source. "
            "An edit whose text describes what the kept source already does (a walk leading "
            "into a walk) is compared with that source itself, so its text check is a coin "
            "flip; contrasting texts show whether the edit follows the text.\n",
            rates_table(list(probe_rates), with_text=True) + "\n",
        ]
    return "\n".join(p for p in parts if p)


def seam_remark(r: dict) -> str:
    """For a failed seam figure: where its peak lies (kept source frames or generated ones)."""
    if r.get("seam_pass", True) or "seam_peak_kept_speed" not in r:
        return ""
    kept, gen = r["seam_peak_kept_speed"], r["seam_peak_generated_speed"]
    p95 = r["source_p95_speed"]
    if kept < gen:
        return f"The seam peak ({gen:.2f} m/s) is on steps touching generated frames."
    return (
        f"The seam peak ({kept:.2f} m/s, {kept / p95:.2f} x the source p95) is on kept frames, "
        "the source's own motion, which the edit leaves as it is; steps touching generated "
        f"frames peak at {gen:.2f} m/s ({gen / p95:.2f} x)."
    )


def sampling_about(pipe) -> str:
    """One sentence on the sampling the edits use (``pipe.edit_defaults``)."""
    e, g = pipe.edit_defaults, pipe.defaults
    return (
        f" Edits sample with guidance {e['cfg']:g} (plain generation: {g['cfg']:g}), "
        f"top-p {e['top_p']}, temperature {e['temperature']:g}: `edit_defaults` in "
        "`pipeline.json`, or `--cfg` on the command line."
    )


def checkpoint_about(folder: Path, device: str, threads: int) -> str:
    """One line naming the generator (its training step when recorded) and the device."""
    step = None
    try:
        spec = G.read_pipeline_spec(folder)
        cfg = json.loads((folder / spec["sar"] / "config.json").read_text())
        step = cfg.get("meta", {}).get("step")
    except (OSError, ValueError, MosaError):
        pass
    where = f"`{_show(folder)}`" + (f" (generator step {step})" if step is not None else "")
    return f"Checkpoint: {where}; device {device}, {threads} CPU thread(s)."


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="pipeline folder (default: $MOSA_CHECKPOINTS or checkpoints/)",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=Path("data/bandai"),
        help="processed Bandai-Namco data (HumanML3D layout)",
    )
    p.add_argument("--cmu", type=Path, default=None, help="the CMU clip 01_01.bvh")
    p.add_argument("--out", type=Path, default=Path("docs/editing"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--more-seeds",
        type=int,
        default=0,
        help="also measure the next N seeds (no renders) and report pass rates",
    )
    p.add_argument(
        "--evaluator",
        default=None,
        help="evaluator DIR or t2m:PATH (default: CHECKPOINT/evaluator if there; "
        "'none' skips the text figures)",
    )
    p.add_argument(
        "--examples",
        nargs="+",
        default=None,
        choices=[e.name for e in EXAMPLES],
        help="only these examples",
    )
    p.add_argument("--gif-fps", type=float, default=12.5)
    p.add_argument("--width", type=int, default=220, help="pixels per GIF panel")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    examples = [e for e in EXAMPLES if args.examples is None or e.name in args.examples]
    folder = args.checkpoint or G.default_checkpoint_dir()
    try:
        probes = PROBES if args.examples is None and args.more_seeds > 0 else ()
        paths = source_paths([*examples, *probes], args.data, args.cmu)
        pipe = G.load(folder, args.device)
        evaluator = None
        ev = args.evaluator if args.evaluator is not None else folder / "evaluator"
        if str(ev).lower() != "none" and (args.evaluator is not None or Path(ev).is_dir()):
            from mosa.eval.evaluator import load_evaluator

            evaluator = load_evaluator(ev)
        extra = ["--checkpoint", _show(Path(args.checkpoint))] if args.checkpoint else []
        make_edit_examples(
            pipe,
            examples,
            paths,
            args.out,
            seed=args.seed,
            evaluator=evaluator,
            gif_fps=args.gif_fps,
            width=args.width,
            command=_command(argv),
            cli_extra=extra,
            about=checkpoint_about(Path(folder), args.device, args.threads) + sampling_about(pipe),
            more_seeds=args.more_seeds,
            probes=probes,
        )
    except MosaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _command(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "scripts/make_edit_examples.py", *args])


if __name__ == "__main__":
    sys.exit(main())
