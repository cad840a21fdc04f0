"""Acceptance figures of long takes (``mosa.edit.sequences``) and their cost.

* **Seams**: every seam is the seam of one ``extend``, the continuation that made the part
  after it, and is measured with the edit seam criterion (``edit_acceptance.seam_speed_ratio``):
  the fastest joint within ``blend + unit`` frames of it, over the 95th percentile of the
  per-step fastest-joint speed of that continuation's source, the kept context the generator
  saw (``SequencePart.context`` frames before the part). Pass: ratio ``<= SEAM_SPEED_RATIO``.
  ``seam_over_elsewhere``: the same peak over the take's peak away from every seam (a part
  asking for faster motion than the one before fails the ratio with no jump at all).
* **Parts**: every part whose prompt names actions with a kinematic rule
  (``mosa.data.actions.actions_in``, ``mosa.eval.actions.ACTION_RULES``) is checked with
  each rule on its own frames.
* **Cost**: wall time and resident memory of takes of many parts (``cost_row``).

``benchmarks/sequences.py`` is the command line; ``markdown`` the tables of docs/sequences.md.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mosa.bench import max_rss_mb
from mosa.data.actions import actions_in
from mosa.edit.canvas import Segment
from mosa.edit.modes import EditedMotion
from mosa.edit.seams import DEFAULT_BLEND
from mosa.edit.sequences import SequenceMotion, sequence
from mosa.eval.actions import ACTION_RULES, check_action
from mosa.eval.edit_acceptance import SEAM_SPEED_RATIO, joint_speeds, seam_speed_ratio


@dataclass(frozen=True)
class Shot:
    """A named sequence of ``(prompt, seconds)`` parts, phrased as a user would."""

    name: str
    parts: tuple[tuple[str, float], ...]

    @property
    def texts(self) -> list[str]:
        return [t for t, _ in self.parts]

    @property
    def seconds(self) -> list[float]:
        return [s for _, s in self.parts]


SHOTS = (
    Shot("walk_wave_bow", (("a person walks forward", 3.0),
                           ("a person waves with the right hand", 2.0),
                           ("a person bows", 2.0))),
    Shot("greeting", (("someone walks up to a friend", 3.0),
                      ("they stop and wave hello with their left hand", 2.5),
                      ("then they bow politely", 2.5))),
    Shot("fight", (("a man walks forward slowly", 2.5),
                   ("he punches with his right fist", 2.0),
                   ("he kicks high with his right leg", 2.0),
                   ("he walks backward", 2.5))),
    Shot("celebration", (("a person runs forward", 2.5),
                         ("they raise both hands above their head", 2.0),
                         ("then they dance happily", 3.0))),
    Shot("farewell", (("an old man shuffles forward slowly", 3.0),
                      ("he raises his right hand", 2.0),
                      ("he waves goodbye", 2.5),
                      ("he turns around and walks away", 3.5),
                      ("a person walks forward happily", 3.0))),
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# seams and parts


def seam_view(take: SequenceMotion, i: int) -> tuple[EditedMotion, np.ndarray]:
    """Part ``i`` (>= 1) as the ``extend`` that made it: its kept context then its frames,
    and the features of that source."""
    p = take.parts[i]
    a, b = p.start - p.context, p.end
    kept = np.zeros(b - a, bool)
    kept[: p.context] = True
    segments = [Segment("kept", 0, p.context, 0, a), Segment("generated", p.context, b - a)]
    m = EditedMotion(p.text, p.seed, take.joints[a:b], take.features[a:b], take.fps,
                     kept=kept, segments=segments, canvas=take.features[a:b])  # fmt: skip
    return m, take.features[a : p.start]


def peak_away_from_seams(take: SequenceMotion, window: int) -> float:
    """Fastest joint speed (m/s) of the take more than ``window`` frames from every seam."""
    speed = joint_speeds(take.joints, take.fps).max(axis=1)
    far = np.ones(len(speed), bool)
    for s in take.seams:
        far[max(0, s - window - 1) : s + window] = False
    return float(speed[far].max()) if far.any() else 0.0


def seam_rows(take: SequenceMotion, unit: int, blend: int = DEFAULT_BLEND) -> list[dict]:
    """One row per seam: the edit seam criterion of the continuation after it."""
    window = blend + unit
    elsewhere = peak_away_from_seams(take, window)
    rows = []
    for i in range(1, len(take.parts)):
        m, source = seam_view(take, i)
        r = seam_speed_ratio(m, [source], window)
        rows.append({
            "seam": i, "frame": take.parts[i].start, "context": take.parts[i].context,
            "from": take.parts[i - 1].text, "to": take.parts[i].text,
            "peak_speed": r["seam_peak_speed"], "source_p95_speed": r["source_p95_speed"],
            "ratio": r["seam_ratio"], "pass": r["seam_ratio"] <= SEAM_SPEED_RATIO,
            "seam_over_elsewhere": r["seam_peak_speed"] / max(elsewhere, 1e-9),
        })  # fmt: skip
    return rows


def ruled_actions(text: str) -> list[str]:
    """The actions ``text`` names that have a kinematic rule."""
    return [a for a in actions_in(text) if a in ACTION_RULES]


def part_rows(take: SequenceMotion) -> list[dict]:
    """One row per part: its actions with a rule and whether its frames pass each."""
    rows = []
    for i, p in enumerate(take.parts):
        checks = {a: bool(check_action(a, take.joints[p.start : p.end], take.fps))
                  for a in ruled_actions(p.text)}  # fmt: skip
        ok = all(checks.values()) if checks else None
        rows.append({"part": i + 1, "text": p.text, "start": p.start, "end": p.end,
                     "rules": checks, "pass": ok})  # fmt: skip
    return rows


def measure_shot(pipe, shot: Shot, seed: int, blend: int = DEFAULT_BLEND) -> dict:
    """The take of ``shot`` at ``seed``: its seam rows and part rows."""
    take = sequence(pipe, shot.texts, shot.seconds, seed, blend=blend)
    seams = seam_rows(take, pipe.unit, blend)
    return {"shot": shot.name, "seed": seed, "frames": len(take.joints), "seams": seams,
            "parts": part_rows(take), "seams_pass": all(s["pass"] for s in seams)}  # fmt: skip


def summarise_shot(shot: Shot, rows: Sequence[dict]) -> dict:
    """Over the seeds of one shot: seeds whose every seam passes, per seam and per part."""
    seams = []
    for k in range(len(shot.parts) - 1):
        ratios = [r["seams"][k]["ratio"] for r in rows]
        seams.append({
            "seam": k + 1, "from": shot.parts[k][0], "to": shot.parts[k + 1][0],
            "passed": sum(r["seams"][k]["pass"] for r in rows),
            "median_ratio": statistics.median(ratios), "worst_ratio": max(ratios),
            "median_over_elsewhere": statistics.median(
                r["seams"][k]["seam_over_elsewhere"] for r in rows),
        })  # fmt: skip
    parts = []
    for k, (text, secs) in enumerate(shot.parts):
        rules = ruled_actions(text)
        passed = {a: sum(r["parts"][k]["rules"][a] for r in rows) for a in rules}
        parts.append({"part": k + 1, "text": text, "seconds": secs, "rules": passed})
    return {"shot": shot.name, "seeds": len(rows),
            "seeds_all_seams_pass": sum(r["seams_pass"] for r in rows),
            "seams": seams, "parts": parts}  # fmt: skip


# --------------------------------------------------------------------------------------------
# cost


def _rss_mb() -> float:
    """Resident memory of this process now (MB; Linux), else its peak so far."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return max_rss_mb()


class RssPeak:
    """The highest resident memory seen (sampled every ``every`` s) while the block runs."""

    def __init__(self, every: float = 0.005):
        self.every, self.peak, self.before = every, 0.0, 0.0
        self._stop = threading.Event()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            self._stop.wait(self.every)

    def __enter__(self) -> RssPeak:
        self.before = self.peak = _rss_mb()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def warm_up(pipe) -> None:
    """One short take, so the first timed one does not pay for first-call set-up (allocator
    pools, lazily built modules)."""
    sequence(pipe, SHOTS[0].texts[:2], [2.0, 2.0], 0)


def cost_row(pipe, parts: int, seconds: float = 3.0, seed: int = 0) -> dict:
    """Time and memory of a take of ``parts`` parts of ``seconds`` each (the example shot's
    prompts in turn)."""
    texts = [SHOTS[0].texts[i % len(SHOTS[0].texts)] for i in range(parts)]
    with RssPeak() as rss:
        start = time.perf_counter()
        take = sequence(pipe, texts, [seconds] * parts, seed)
        wall = time.perf_counter() - start
    return {"parts": parts, "take_s": take.seconds, "frames": len(take.joints),
            "time_s": wall, "time_per_part_s": wall / parts, "rss_before_mb": rss.before,
            "rss_peak_mb": rss.peak, "rss_growth_mb": rss.peak - rss.before,
            "process_peak_mb": max_rss_mb()}  # fmt: skip


# --------------------------------------------------------------------------------------------
# tables


def markdown(cost: Sequence[dict], summaries: Sequence[dict]) -> str:
    """The tables of docs/sequences.md: cost, seams per shot, kinematic rules per part."""
    out = ["| parts | take | frames | time | per part | RSS before | RSS peak | growth |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for c in cost:
        out.append(
            f"| {c['parts']} | {c['take_s']:.0f} s | {c['frames']} | {c['time_s']:.1f} s | "
            f"{c['time_per_part_s'] * 1000:.0f} ms | {c['rss_before_mb']:.0f} MB | "
            f"{c['rss_peak_mb']:.0f} MB | {c['rss_growth_mb']:.0f} MB |"
        )
    out += ["", "| shot | seeds with every seam passing | seam | passed | median ratio | "
            "worst ratio | median seam / elsewhere |",
            "|---|---:|---|---:|---:|---:|---:|"]  # fmt: skip
    for s in summaries:
        n = s["seeds"]
        for k, seam in enumerate(s["seams"]):
            head = f"{s['shot']} | {s['seeds_all_seams_pass']}/{n}" if k == 0 else " | "
            out.append(
                f"| {head} | {seam['seam']}: {seam['from']} → {seam['to']} | "
                f"{seam['passed']}/{n} | {seam['median_ratio']:.2f} | {seam['worst_ratio']:.2f} "
                f"| {seam['median_over_elsewhere']:.2f} |"
            )
    out += ["", "| shot | part | prompt | seconds | kinematic rule: seeds passing |",
            "|---|---:|---|---:|---|"]  # fmt: skip
    for s in summaries:
        for p in s["parts"]:
            rules = ", ".join(f"{a} {k}/{s['seeds']}" for a, k in p["rules"].items()) or "none"
            out.append(f"| {s['shot']} | {p['part']} | {p['text']} | {p['seconds']:g} | {rules} |")
    return "\n".join(out) + "\n"
