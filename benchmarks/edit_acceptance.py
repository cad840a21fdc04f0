"""Acceptance numbers of span editing (``mosa edit --start S --end E``) for a checkpoint.

For each source motion, regenerate ``[start, end)`` for ``--text`` and measure:

1. **MPJPE outside the span** (mm): output vs source joints on the kept frames, in the root's
   frame (a kept part after the edit is re-anchored, so global positions differ by design),
   next to the tokenizer's **reconstruction MPJPE** on the same frames.
   Pass: ``outside <= reconstruction + 10 mm``. Also reported for the raw decode (before
   the seam join with the source), which is the model's own contribution.
2. **Peak seam speed** (m/s): the fastest joint within ``blend + 4`` frames of a seam,
   over the 95th percentile of the source's per-step fastest-joint speed, for the source that
   seam joins (each seam of an in-between against its own source). Pass: ratio ``<= 1.5``
   at every seam. The peak is also
   split by where it lies: steps between two kept frames (the source's own motion, which
   the edit keeps as it is) and steps touching a generated frame.
3. **Span follows text** (needs ``--evaluator``): evaluator distance text <-> edited span
   vs text <-> the source's original span. Pass: the edited span is closer.

    python benchmarks/edit_acceptance.py --checkpoint checkpoints walk.bvh run.npy \\
        --text "a person jumps" --start 2 --end 3.5 --evaluator runs/evaluator --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from mosa import edit as E
from mosa import generate as G
from mosa.errors import MosaError
from mosa.io import atomic_write_text
from mosa.motion.features import local_joints, recover_joints
from mosa.motion.io import read_motion

MPJPE_SLACK_MM = 10.0
SEAM_SPEED_RATIO = 1.5


def kept_mpjpe(m: E.EditedMotion, features: np.ndarray) -> float:
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


def joint_speeds(joints: np.ndarray, fps: float) -> np.ndarray:
    """``(T, 22, 3)`` -> ``(T - 1, 22)`` joint speeds in m/s."""
    return np.linalg.norm(np.diff(joints, axis=0), axis=-1) * fps


def seam_frames(m: E.EditedMotion) -> np.ndarray:
    """The first frame after every kept <-> generated change."""
    return np.flatnonzero(np.diff(m.kept.astype(int)) != 0) + 1


def seam_window(steps: int, frame: int, window: int) -> np.ndarray:
    """``(steps,)`` the steps between frames within ``window`` frames of the seam at ``frame``."""
    near = np.zeros(steps, bool)
    near[max(0, frame - window - 1) : frame + window] = True
    return near


def near_seams(m: E.EditedMotion, window: int) -> np.ndarray:
    """``(T-1,)`` steps between frames within ``window`` frames of a seam (kept <-> generated)."""
    near = np.zeros(len(m.kept) - 1, bool)
    for s in seam_frames(m):
        near |= seam_window(len(near), int(s), window)
    return near


def seam_sources(m: E.EditedMotion) -> list[tuple[int, int]]:
    """``(frame, source)`` of every seam (``seam_frames``) and the source of the kept segment
    it borders (in-betweening has two sources)."""
    out = []
    for s in seam_frames(m):
        seg = next(g for g in m.segments if g.kind == "kept" and s in (g.start, g.end))
        out.append((int(s), int(seg.source or 0)))
    return out


def seam_speed_ratio(m: E.EditedMotion, sources: list[np.ndarray], window: int) -> dict:
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


def seam_peaks(m: E.EditedMotion, window: int) -> dict:
    """The fastest joint speed (m/s) within ``window`` frames of a seam, on steps between two
    kept frames and on steps touching a generated one (0 where there are none)."""
    speed = joint_speeds(m.joints, m.fps).max(axis=1)
    near, kept = near_seams(m, window), m.kept[:-1] & m.kept[1:]
    a, b = near & kept, near & ~kept
    return {
        "seam_peak_kept_speed": float(speed[a].max()) if a.any() else 0.0,
        "seam_peak_generated_speed": float(speed[b].max()) if b.any() else 0.0,
    }


def text_distances(evaluator, text: str, edited: np.ndarray, original: np.ndarray) -> dict:
    from mosa.eval.wordvec import tokenize_caption

    t = evaluator.embed_texts([tokenize_caption(text)])
    n = max(len(edited), len(original))
    batch = np.zeros((2, n, edited.shape[1]), np.float32)
    batch[0, : len(edited)], batch[1, : len(original)] = edited, original
    mot = evaluator.embed_motions(torch.from_numpy(batch), [len(edited), len(original)])
    d = np.linalg.norm(mot - t, axis=-1)
    return {"text_dist_edited": float(d[0]), "text_dist_source": float(d[1])}


def measure(pipe, source: Path, args, evaluator=None) -> dict:
    motion = read_motion(source, mapping=args.mapping)
    feats = E.source_features(motion, pipe.fps)
    m = E.edit_span(pipe, motion, args.text, args.start, args.end, seed=args.seed,
                    cfg=args.cfg, blend=args.blend, crop=args.crop,
                    context=args.context)  # fmt: skip
    out = {
        "source": str(source),
        "frames": len(m.joints),
        "seed": m.seed,
        "mpjpe_outside_mm": kept_mpjpe(m, m.features),
        "mpjpe_outside_decoded_mm": kept_mpjpe(m, m.decoded),
        "recon_mpjpe_mm": kept_mpjpe(m, m.reconstruction),
    }
    out["mpjpe_pass"] = out["mpjpe_outside_mm"] <= out["recon_mpjpe_mm"] + MPJPE_SLACK_MM
    out.update(seam_speed_ratio(m, [feats], args.blend + pipe.unit))
    out.update(seam_peaks(m, args.blend + pipe.unit))
    out["seam_pass"] = out["seam_ratio"] <= SEAM_SPEED_RATIO
    if evaluator is not None:
        gen = [s for s in m.segments if s.kind == "generated"][0]
        original = m.canvas[gen.start : gen.end]  # edit_span fills the span with the source
        out.update(text_distances(evaluator, args.text, m.features[gen.start : gen.end], original))
        out["text_pass"] = out["text_dist_edited"] < out["text_dist_source"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sources", nargs="+", type=Path, help="source motions (.bvh or .npy)")
    p.add_argument("--checkpoint", type=Path, default=None, help="pipeline checkpoint folder")
    p.add_argument("--text", required=True, help="what the regenerated span should show")
    p.add_argument("--start", type=float, required=True, help="span start (s)")
    p.add_argument("--end", type=float, required=True, help="span end (s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg", type=float, default=None)
    p.add_argument("--blend", type=int, default=E.DEFAULT_BLEND)
    p.add_argument("--crop", action="store_true", help="crop sources longer than the maximum")
    p.add_argument(
        "--context",
        type=E.context_arg,
        default=E.DEFAULT_CONTEXT,
        help="seconds of the source either side that the generator sees ('all': everything)",
    )
    p.add_argument("--mapping", default=None, help="BVH joint mapping")
    p.add_argument("--evaluator", default=None, help="evaluator DIR or t2m:PATH (metric 3)")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        pipe = G.load(args.checkpoint, args.device)
        evaluator = None
        if args.evaluator:
            from mosa.eval.evaluator import load_evaluator

            evaluator = load_evaluator(args.evaluator)
        rows = [measure(pipe, s, args, evaluator) for s in args.sources]
    except MosaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keys = [k for k in rows[0] if k not in ("source", "frames", "seed")]
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys if not k.endswith("_pass")}
    summary.update({k: all(r[k] for r in rows) for k in keys if k.endswith("_pass")})
    for r in rows:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
    print("summary:", json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                  for k, v in summary.items()}))  # fmt: skip
    if args.json:
        atomic_write_text(args.json, json.dumps({"rows": rows, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
