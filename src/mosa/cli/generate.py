"""``mosa generate``: text -> .bvh / .npy / .mp4 / .gif."""

from __future__ import annotations

import argparse
from pathlib import Path

from mosa import limits
from mosa.cli.common import (
    add_pipeline_arguments,
    add_sampling_arguments,
    check_output,
    check_pipeline_args,
    check_positive_arg,
    check_sampling_args,
    check_seed_arg,
    load_from_args,
    prompt_warnings_to_stderr,
)
from mosa.errors import MosaError
from mosa.io import check_writable
from mosa.motion.io import output_paths, save_generated
from mosa.requests import check_length, check_text, read_prompts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", default=None, help="what the motion shows (quoted)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="out.bvh, out.npy (joints), out.mp4 or out.gif; several motions "
        "are numbered out_000.bvh, out_001.bvh, ...",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=None, help="motion length in seconds")
    length.add_argument("--frames", type=int, default=None, help="motion length in frames (20 fps)")
    parser.add_argument(
        "--prompts",
        type=Path,
        default=None,
        help="text file with one prompt per line (# comments, blank lines skipped)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the first motion")
    parser.add_argument("--num-samples", type=int, default=1, help="motions per prompt (default 1)")
    add_sampling_arguments(parser)
    add_pipeline_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=32, help="motions per forward pass")
    parser.add_argument(
        "--rig",
        default=None,
        metavar="CHARACTER.bvh|smpl",
        help="write the motion on this character's skeleton (a BVH of it: its hierarchy, "
        "names, rest pose, axes, units and frame rate); needs a .bvh output. Default: mosa's "
        "22-joint skeleton",
    )
    parser.add_argument(
        "--rig-mapping",
        default=None,
        help="joint mapping of the --rig skeleton when it is not recognised (preset or JSON)",
    )
    add_foot_lock_argument(parser)


def add_foot_lock_argument(parser: argparse.ArgumentParser) -> None:
    """``--no-foot-lock`` (generate, edit, inbetween)."""
    parser.add_argument(
        "--no-foot-lock",
        action="store_true",
        help="keep generated feet as generated; by default feet the generator puts on the "
        "floor are locked there (no sliding) on export",
    )


def check_rig(rig: str | None, output: Path, mapping=None):
    """The ``--rig`` skeleton, parsed and mapped (None for mosa's own); ``MosaError`` naming
    the fix before any model is loaded."""
    if rig is None or rig.lower() == "smpl":
        return None
    from mosa.motion.rig_out import load_rig, rig_frame

    bvh = load_rig(Path(rig))
    if output.suffix.lower() != ".bvh":
        raise MosaError(
            f"--rig writes the motion on a character's skeleton, as BVH; '{output.name}' is not",
            f"give an output ending in .bvh (e.g. -o {output.with_suffix('.bvh').name})",
        )
    rig_frame(bvh, mapping)  # a rig that cannot be mapped fails here, not after generating
    return bvh


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    check_output(args.output)
    if (args.text is None) == (args.prompts is None):
        raise MosaError(
            "give one prompt or --prompts FILE (not both, not neither)",
            'e.g. mosa generate "a person jumps" -o jump.bvh',
        )
    # everything that can be checked is checked before the seconds the model takes to load
    prompts = read_prompts(args.prompts) if args.prompts else [check_text(args.text)]
    check_positive_arg(args.num_samples, "--num-samples")
    check_positive_arg(args.batch_size, "--batch-size")
    limits.check("MOSA_MAX_BATCH_SIZE", args.batch_size, f"--batch-size {args.batch_size:,}")
    total = len(prompts) * args.num_samples
    limits.check(
        "MOSA_MAX_MOTIONS", total, f"{len(prompts):,} prompt(s) x {args.num_samples:,} samples"
    )
    check_seed_arg(args.seed, total)
    check_sampling_args(args)
    lo, hi, unit, fps = check_pipeline_args(args)
    if args.seconds is not None or args.frames is not None:
        check_length(args.seconds, args.frames, (lo, hi), fps, unit)
    rig = check_rig(args.rig, args.output, args.rig_mapping)
    paths = output_paths(args.output, total)
    check_writable(paths[-1])  # the longest name
    pipe = load_from_args(args)
    per_chunk = max(1, args.batch_size // args.num_samples)
    bar = tqdm(total=len(prompts), unit="prompt", disable=args.prompts is None, leave=False)
    written = 0
    seed = args.seed
    for start in range(0, len(prompts), per_chunk):
        chunk = prompts[start : start + per_chunk]
        with prompt_warnings_to_stderr():
            motions = pipe.generate(
                chunk, seconds=args.seconds, frames=args.frames,
                seed=None if seed is None else seed + written, num_samples=args.num_samples,
                cfg=args.cfg, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                batch_size=args.batch_size,
            )  # fmt: skip
        for m in motions:
            path = save_generated(
                paths[written], m.joints, fps=m.fps, features=m.features, rig=rig,
                mapping=args.rig_mapping, foot_lock=not args.no_foot_lock, caption=m.text,
            )  # fmt: skip
            written += 1
            bar.write(
                f"wrote {path} ({len(m.joints)} frames, {m.seconds:.2f} s, seed {m.seed}): {m.text}"
            )
        bar.update(len(chunk))
    bar.close()
    return 0
