"""Before/after renders and acceptance figures of motion editing, written to docs/editing/.

One example per editing mode (span regeneration on a Bandai-Namco clip and on a CMU clip,
continuation, lead-in, in-betweening, outpainting). For each: a GIF with the source and the
edit side by side, in sync, the generated frames marked; then one contact sheet of all of
them, ``acceptance.json`` and ``README.md`` with the CLI command of every example and the
acceptance figures of ``mosa.eval.edit_acceptance`` (as ``benchmarks/edit_acceptance.py``).
This script holds what the docs show (the examples, the other texts tried and the kinematic
rule of each text); running, measuring and rendering them is ``mosa.eval.edit_report``.
Re-run it after retraining:

    python scripts/make_edit_examples.py --checkpoint checkpoints --data data/bandai \\
        --cmu ../shared/data/cmu/01_01.bvh --evaluator checkpoints/evaluator --out docs/editing
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from mosa.errors import MosaError
from mosa.eval.edit_examples import Example
from mosa.eval.edit_report import (
    checkpoint_about,
    make_edit_examples,
    sampling_about,
    shown_path,
)
from mosa.loading import default_checkpoint_dir, load

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
    folder = args.checkpoint or default_checkpoint_dir()
    try:
        probes = PROBES if args.examples is None and args.more_seeds > 0 else ()
        paths = source_paths([*examples, *probes], args.data, args.cmu)
        pipe = load(folder, args.device)
        evaluator = None
        ev = args.evaluator if args.evaluator is not None else folder / "evaluator"
        if str(ev).lower() != "none" and (args.evaluator is not None or Path(ev).is_dir()):
            from mosa.eval.loading import load_evaluator

            evaluator = load_evaluator(ev)
        extra = ["--checkpoint", shown_path(Path(args.checkpoint))] if args.checkpoint else []
        make_edit_examples(
            pipe,
            examples,
            paths,
            args.out,
            seed=args.seed,
            evaluator=evaluator,
            checks=CHECKS,
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
