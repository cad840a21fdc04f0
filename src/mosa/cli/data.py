"""``mosa data build``: corpora -> one HumanML3D-layout folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_subparsers(dest="data_command", required=True, metavar="{build}")
    p = data.add_parser(
        "build",
        help="convert motion corpora into one HumanML3D-layout folder",
        description="Convert one or more corpora into one HumanML3D-layout folder: "
        "new_joints/, new_joint_vecs/, texts/, Mean.npy, Std.npy, splits, actions.json. A "
        "source is the Bandai-Namco tarball or folder, the extra-mocap tarball or folder (or "
        "one of its cmu-daz/, deepmimic/, animated-drawings/ folders), or your own folder of "
        "BVH files with captions.csv (file,caption) or captions.json ({file: caption(s)}), "
        "or labels in the file names.",
    )
    p.add_argument(
        "--source",
        required=True,
        type=Path,
        action="append",
        help="a corpus (tar.xz or folder); repeat for several",
    )
    p.add_argument(
        "--cmu-rates",
        type=Path,
        default=None,
        help="CMU_data.csv with every CMU trial's true frame rate (e.g. "
        "../shared/data/cmu-iclone/CMU_data.csv)",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder, e.g. data/bandai")
    p.add_argument("--seed", type=int, default=0, help="seed for captions and splits (default 0)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")


def run(args: argparse.Namespace) -> int:
    from mosa.data.build import build_dataset

    manifest = build_dataset(
        args.source,
        args.out,
        seed=args.seed,
        workers=args.workers,
        force=args.force,
        cmu_rates=args.cmu_rates,
    )
    skipped = manifest.get("skipped") or {}
    for name, why in list(skipped.items())[:20]:
        print(f"skipped {name}: {why}")
    if len(skipped) > 20:
        print(f"... and {len(skipped) - 20} more skipped files (manifest.json lists them)")
    counts = manifest.get("counts", {})
    print(
        f"dataset in {args.out}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items() if not isinstance(v, dict))
    )
    return 0
