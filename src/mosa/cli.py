"""The `mosa` command line.

Every subcommand is a thin layer over the library: parse flags, call one function, print what
happened. User mistakes surface as ``MosaError`` and end as a one-line message with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mosa import __version__
from mosa.errors import MosaError

EXIT_USER_ERROR = 2


# -- data -------------------------------------------------------------------------------------
def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="build training data").add_subparsers(
        dest="data_command", required=True, metavar="{build}"
    )
    p = data.add_parser(
        "build",
        help="convert the Bandai-Namco corpus into the HumanML3D folder layout",
        description="Convert the Bandai-Namco corpus (tar.xz or extracted folder) into the "
        "HumanML3D layout: new_joints/, new_joint_vecs/, texts/, Mean.npy, Std.npy, splits.",
    )
    p.add_argument(
        "--source", required=True, type=Path, help="bandai-namco-motion.tar.xz or folder"
    )
    p.add_argument("--out", required=True, type=Path, help="output folder, e.g. data/bandai")
    p.add_argument("--seed", type=int, default=0, help="seed for captions and splits (default 0)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    p.set_defaults(func=_run_data_build)


def _run_data_build(args: argparse.Namespace) -> int:
    from mosa.data.build import build_dataset

    manifest = build_dataset(
        args.source, args.out, seed=args.seed, workers=args.workers, force=args.force
    )
    counts = manifest.get("counts", {})
    print(
        f"dataset in {args.out}: "
        + ", ".join(f"{k} {v}" for k, v in counts.items() if not isinstance(v, dict))
    )
    return 0


# -- render / convert -------------------------------------------------------------------------
def _add_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "render",
        help="animate motions as a 3D stick figure (.mp4/.gif)",
        description="Render one or more motions (.bvh, .npy joints (T,22,3) or features "
        "(T,263)) side by side as an animated stick figure.",
    )
    p.add_argument("inputs", nargs="+", type=Path, help="motion files")
    p.add_argument("-o", "--output", required=True, type=Path, help="out.mp4 or out.gif")
    p.add_argument("--caption", default=None, help="text shown above the animation")
    p.add_argument("--titles", nargs="*", default=None, help="one title per motion")
    p.add_argument("--mapping", default=None, help="BVH joint mapping (preset name or JSON file)")
    p.set_defaults(func=_run_render)


def _run_render(args: argparse.Namespace) -> int:
    from mosa.motion.io import read_motion
    from mosa.motion.render import render_motions

    motions = [read_motion(path, mapping=args.mapping) for path in args.inputs]
    titles = args.titles or [path.stem for path in args.inputs]
    if len(titles) != len(motions):
        raise MosaError(
            f"{len(titles)} titles for {len(motions)} motions", "give one --titles entry per input"
        )
    out = render_motions(
        [m.joints for m in motions], args.output, titles=titles, caption=args.caption
    )
    print(f"wrote {out} ({len(motions)} motion(s), {max(len(m.joints) for m in motions)} frames)")
    return 0


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert between .bvh, .npy joints and .npy 263-d features",
        description="Convert a motion by file extension: .bvh (any rig) -> .npy joints "
        "(T,22,3) metres Y-up 20 fps, or 263-d HumanML3D features with --to features; "
        ".npy -> .bvh on the 22-joint skeleton; .mp4/.gif renders it.",
    )
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument(
        "--to",
        choices=("joints", "features"),
        default="joints",
        help="what a .npy output holds (default joints)",
    )
    p.add_argument("--mapping", default=None, help="BVH joint mapping (preset name or JSON file)")
    p.set_defaults(func=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from mosa.motion.io import convert

    motion = convert(args.input, args.output, to=args.to, mapping=args.mapping)
    seconds = len(motion.joints) / motion.fps
    print(
        f"wrote {args.output} ({len(motion.joints)} frames, {seconds:.2f} s at "
        f"{motion.fps:g} fps, from {motion.source_kind})"
    )
    return 0


# -- commands whose flags live in their own module -------------------------------------------
# Importing a command's module pulls in torch and friends (seconds), so only the command on the
# command line is imported; the others register a name and a help line.
def _add_module_command(
    sub: argparse._SubParsersAction,
    name: str,
    help_text: str,
    module: str,
    prefix: str = "",
    wanted: frozenset[str] | None = None,
) -> None:
    """Register ``add_<prefix>arguments`` and ``run[_<prefix>]`` of ``module`` as ``name``.

    ``wanted``: the command-line words; the module is imported only if ``name`` is one of them
    (``None`` imports it always).
    """
    import importlib

    p = sub.add_parser(name, help=help_text.replace("%", "%%"), description=help_text)
    if wanted is not None and name not in wanted:
        return
    mod = importlib.import_module(module)
    getattr(mod, f"add_{prefix}arguments")(p)
    p.set_defaults(func=getattr(mod, f"run_{prefix[:-1]}" if prefix else "run"))


TRAINERS = (
    ("vae", "train the motion tokenizer (CAQ-VAE + MTPS)", "mosa.train.vae"),
    ("gen", "train the SAR text-to-motion generator", "mosa.train.gen"),
    ("length", "train the motion-length estimator", "mosa.train.length"),
    ("evaluator", "train the T2M text-motion evaluator", "mosa.eval.train_evaluator"),
)

# (name, help, module, prefix of add_<prefix>arguments / run_<prefix>)
MODULE_COMMANDS = (
    ("generate", "generate motion from text (.bvh/.npy/.mp4/.gif)", "mosa.generate", ""),
    ("edit", "regenerate a time span, extend or lead into a motion from text", "mosa.edit",
     "edit_"),
    ("inbetween", "generate the motion between two motions from text", "mosa.edit",
     "inbetween_"),
    ("eval", "T2M metrics (FID, R-Precision, ...) with 95% CIs", "mosa.eval.run", ""),
    ("serve", "web page and HTTP API (FastAPI)", "mosa.serve.app", ""),
    ("bench", "time text-to-motion generation (ms per motion)", "mosa.bench", ""),
)  # fmt: skip


def _add_train(sub: argparse._SubParsersAction, wanted: frozenset[str] | None) -> None:
    train = sub.add_parser("train", help="train models").add_subparsers(
        dest="train_command", required=True, metavar="{" + ",".join(t[0] for t in TRAINERS) + "}"
    )
    for name, help_text, module in TRAINERS:
        _add_module_command(train, name, help_text, module, wanted=wanted)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``argv``, only the modules of the commands named in it load."""
    parser = argparse.ArgumentParser(
        prog="mosa", description="mosa: text to 3D human motion, motion editing, BVH export."
    )
    parser.add_argument("--version", action="version", version=f"mosa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = None if argv is None else frozenset(argv)
    for name, help_text, module, prefix in MODULE_COMMANDS[:3]:
        _add_module_command(sub, name, help_text, module, prefix, wanted)
    _add_data(sub)
    _add_render(sub)
    _add_convert(sub)
    _add_train(sub, wanted)
    for name, help_text, module, prefix in MODULE_COMMANDS[3:]:
        _add_module_command(sub, name, help_text, module, prefix, wanted)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mosa` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MosaError as exc:
        print(f"mosa: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        # a library path check missed: still a user mistake, not a crash
        print(f"mosa: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("mosa: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
