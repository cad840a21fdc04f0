"""The docs/editing/ report: every editing example run, measured and rendered
(``make_edit_examples``: a GIF of the source and the edit side by side with the generated
frames marked, a contact sheet, ``acceptance.json``, pass rates over seeds), and its
``README.md`` (``readme``: the examples' commands and the acceptance tables).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mosa.edit.modes import DEFAULT_CONTEXT, EditedMotion
from mosa.errors import MosaError
from mosa.eval.edit_acceptance import KinematicChecks
from mosa.eval.edit_examples import (
    Example,
    acceptance_row,
    before_track,
    measure_seed,
    pass_rates,
    run_example,
)
from mosa.io import atomic_write_text
from mosa.loading import read_pipeline_spec
from mosa.motion.marks import render_pair
from mosa.motion.render import render_contact_sheet

MODE_TITLES = {
    "span": "span regeneration",
    "extend": "continuation (--extend)",
    "lead_in": "lead-in (--lead-in)",
    "inbetween": "in-betweening",
    "outpaint": "outpainting (--lead-in + --extend)",
}


def shown_path(path: Path) -> str:
    """A path as typed from the current folder (relative when possible)."""
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)


def short_name(path: Path) -> str:
    """A clip's file stem without the Bandai-Namco ``dataset-N_`` prefix (titles are narrow)."""
    return re.sub(r"^dataset-\d+_", "", path.stem)


def span_label(m: EditedMotion) -> str:
    """``generated 1.5-3.0 s`` (output seconds, each generated segment)."""
    segs = [s for s in m.segments if s.kind == "generated"]
    return "generated " + ", ".join(f"{s.start / m.fps:.1f}-{s.end / m.fps:.1f} s" for s in segs)


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
    checks: KinematicChecks | None = None,
    gif_fps: float = 12.5,
    width: int = 220,
    dpi: float = 60.0,
    cell: int = 110,
    command: str = "",
    cli_extra: Sequence[str] = (),
    about: str = "",
    more_seeds: int = 0,
    probes: Sequence[Example] = (),
    log: Callable[[str], object] = print,
) -> list[dict]:
    """Run, measure and render ``examples``; write ``out/{name}.gif``, ``contact_sheet.png``,
    ``acceptance.json`` and ``README.md``. ``paths``: source key -> file. ``checks``: the
    kinematic rules per text (``mosa.eval.edit_acceptance.kinematic_check``). ``cli_extra``:
    options added to every example's CLI command. ``more_seeds``: also measure (not render)
    seeds ``seed + 1 .. seed + more_seeds`` and write their pass rates
    (``acceptance_seeds.json`` and a README table), and measure ``probes`` (other texts, not
    rendered) on all those seeds (``probes_seeds.json``). ``log`` gets a line per rendered
    example. Returns the rendered seed's rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, sheet, sheet_titles = [], [], []
    for ex in examples:
        t0 = time.perf_counter()
        m, feats = run_example(pipe, ex, paths, seed)
        row = acceptance_row(pipe, m, ex, feats, evaluator, checks)
        row["label"], row["note"] = span_label(m), ex.note
        extra = [*cli_extra, "--seed", str(seed)]
        row["cli"] = ex.cli([shown_path(paths[k]) for k in ex.sources], f"{ex.name}.bvh", extra)
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
        log(f"{ex.name} ({time.perf_counter() - t0:.1f} s): {row['label']}, {figures}")
    render_contact_sheet(sheet, out / "contact_sheet.png", frames_per_motion=6,
                         titles=sheet_titles, cell=cell, dpi=dpi)  # fmt: skip
    atomic_write_text(out / "acceptance.json", json.dumps(rows, indent=2) + "\n")
    rates, probe_rates = [], []
    if more_seeds > 0:
        seeds = list(range(seed, seed + more_seeds + 1))
        measure = dict(pipe=pipe, paths=paths, evaluator=evaluator, checks=checks)
        per_seed = [rows] + [measure_seed(examples=examples, seed=sd, **measure)
                             for sd in seeds[1:]]  # fmt: skip
        rates = pass_rates(per_seed, seeds)
        atomic_write_text(out / "acceptance_seeds.json", json.dumps(rates, indent=2) + "\n")
        if probes:
            per_seed = [measure_seed(examples=probes, seed=sd, **measure) for sd in seeds]
            probe_rates = pass_rates(per_seed, seeds)
            for rate, ex in zip(probe_rates, probes, strict=True):
                rate["note"] = ex.note
            text = json.dumps(probe_rates, indent=2) + "\n"
            atomic_write_text(out / "probes_seeds.json", text)
    text = readme(rows, command, about, evaluator is not None, rates, probe_rates)
    atomic_write_text(out / "README.md", text)
    return rows


# --------------------------------------------------------------------------------------------
# README


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
    """docs/editing/README.md: the ``command`` that wrote it, ``about`` (checkpoint and
    sampling), every example of ``rows`` (``acceptance_row`` plus ``label``, ``note`` and
    ``cli``), the acceptance table (text figures when ``with_text``) and the ``rates`` and
    ``probe_rates`` over seeds (``pass_rates``) when given."""
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
        f"{DEFAULT_CONTEXT:g}) of kept frames on either side; the rest of a source is kept "
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
        spec = read_pipeline_spec(folder)
        cfg = json.loads((folder / spec["sar"] / "config.json").read_text())
        step = cfg.get("meta", {}).get("step")
    except (OSError, ValueError, MosaError):
        pass
    where = f"`{shown_path(folder)}`" + (f" (generator step {step})" if step is not None else "")
    return f"Checkpoint: {where}; device {device}, {threads} CPU thread(s)."
