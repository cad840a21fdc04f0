"""The `mosa` command line: one module per command under ``mosa.cli``.

Every command module has ``add_arguments(parser)`` and ``run(args) -> int`` and is a thin layer
over the library: parse flags, call library functions, print what happened. The library has no
argparse in it. User mistakes surface as ``MosaError`` and end as a one-line message with exit
code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import re
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from mosa import __version__
from mosa.errors import MosaError

EXIT_USER_ERROR = 2


class Command(NamedTuple):
    name: str
    help: str
    module: str  # has add_arguments(parser) and run(args)
    description: str | None = None  # default: the help line


TRAINERS = (
    Command("vae", "train the motion tokenizer (CAQ-VAE + MTPS)", "mosa.cli.train_vae"),
    Command("gen", "train the SAR text-to-motion generator", "mosa.cli.train_gen"),
    Command("length", "train the motion-length estimator", "mosa.cli.train_length"),
    Command("evaluator", "train the T2M text-motion evaluator", "mosa.cli.train_evaluator"),
)

# in the order `mosa --help` lists them; "train" stands for the TRAINERS group
COMMANDS = (
    Command("generate", "generate motion from text (.bvh/.npy/.mp4/.gif)", "mosa.cli.generate"),
    Command(
        "edit",
        "regenerate a time span, extend or lead into a motion from text",
        "mosa.cli.edit",
    ),
    Command("inbetween", "generate the motion between two motions from text",
            "mosa.cli.inbetween"),
    Command("sequence", "one continuous take from a sequence of prompts", "mosa.cli.sequence"),
    Command("data", "build training data", "mosa.cli.data"),
    Command(
        "render",
        "animate motions as a 3D stick figure (.mp4/.gif)",
        "mosa.cli.render",
        "Render one or more motions (.bvh, .npy joints (T,22,3) or features (T,263)) side by "
        "side as an animated stick figure.",
    ),
    Command(
        "convert",
        "convert between .bvh, .npy joints and .npy 263-d features",
        "mosa.cli.convert",
        "Convert a motion by file extension: .bvh (any rig) -> .npy joints (T,22,3) metres "
        "Y-up 20 fps, or 263-d HumanML3D features with --to features; .npy -> .bvh on the "
        "22-joint skeleton; .mp4/.gif renders it.",
    ),
    Command("train", "train models", ""),
    Command("eval", "T2M metrics (FID, R-Precision, ...) with 95% CIs", "mosa.cli.eval"),
    Command("serve", "web page and HTTP API (FastAPI)", "mosa.cli.serve"),
    Command("bench", "time text-to-motion generation (ms per motion)", "mosa.cli.bench"),
    Command("info", "the model card: what a checkpoint was trained on", "mosa.cli.info"),
    Command("blender-addon", "write the Blender add-on's installable zip",
            "mosa.cli.blender_addon"),
)  # fmt: skip


def _add_command(
    sub: argparse._SubParsersAction, cmd: Command, wanted: frozenset[str] | None
) -> None:
    """Register ``cmd``; its module (which may pull in torch: seconds) is imported only when
    ``cmd.name`` is one of the command-line words ``wanted`` (``None``: always)."""
    description = cmd.description or cmd.help
    p = sub.add_parser(cmd.name, help=cmd.help.replace("%", "%%"), description=description)
    if wanted is not None and cmd.name not in wanted:
        return
    module = importlib.import_module(cmd.module)
    module.add_arguments(p)
    p.set_defaults(func=module.run)


def _add_train(sub: argparse._SubParsersAction, wanted: frozenset[str] | None) -> None:
    names = ",".join(t.name for t in TRAINERS)
    train = sub.add_parser("train", help="train models").add_subparsers(
        dest="train_command", required=True, metavar="{" + names + "}"
    )
    for cmd in TRAINERS:
        _add_command(train, cmd, wanted)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``argv``, only the modules of the commands named in it load."""
    parser = argparse.ArgumentParser(
        prog="mosa", description="mosa: text to 3D human motion, motion editing, BVH export."
    )
    parser.add_argument("--version", action="version", version=f"mosa {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    wanted = None if argv is None else frozenset(argv)
    for cmd in COMMANDS:
        if cmd.name == "train":
            _add_train(sub, wanted)
        else:
            _add_command(sub, cmd, wanted)
    return parser


# commands whose SIGTERM/SIGHUP end like Ctrl-C (unwinding, so no temporary file is left);
# the others (serve, train, data) keep the handling they have
CLEAN_STOP_COMMANDS = frozenset({"generate", "edit", "inbetween", "sequence", "convert", "render"})


class Terminated(BaseException):
    """Raised by the SIGTERM/SIGHUP handler: unwinds like ``KeyboardInterrupt``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_cleanly(enabled: bool) -> Iterator[None]:
    """While the command runs, SIGTERM and SIGHUP raise ``Terminated`` (default: die at once,
    leaving half-written temporaries)."""
    if not enabled:
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    old = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            with contextlib.suppress(ValueError, OSError):  # not the main thread
                old[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


# mosa's temporaries (mosa.io): ".<stem>.<pid>-<random>.tmp<suffix>" -> "<stem><suffix>"
_TEMP = re.compile(
    r"^(?P<dir>.*?)\.(?P<stem>[^/]+)\.(?:\d+-)?[a-z0-9_]{8}\.tmp(?P<suffix>\.[^./]*)?$"
)


def _user_path(name) -> str:
    """``name`` with a mosa temporary replaced by the file it stands for."""
    m = _TEMP.match(str(name))
    return f"{m['dir']}{m['stem']}{m['suffix'] or ''}" if m else str(name)


_OS_HINTS = {
    errno.ENOENT: "check the path",
    errno.EISDIR: "that is a folder: give a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EACCES: "check the permissions, or use another path",
    errno.EPERM: "check the permissions, or use another path",
    errno.ENOSPC: "free some disk space or write somewhere else",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.ENAMETOOLONG: "use a shorter file name",
}


def _os_error(exc: OSError) -> str:
    """An ``OSError`` that no library check turned into a ``MosaError``, for the user."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    names = [_user_path(n) for n in (exc.filename, getattr(exc, "filename2", None)) if n]
    text = f"{reason}: {' -> '.join(repr(n) for n in names)}" if names else reason
    return f"{text}\n  hint: {_OS_HINTS.get(exc.errno, 'check the paths and the disk')}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mosa` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        with _stop_cleanly(args.command in CLEAN_STOP_COMMANDS):
            return int(args.func(args) or 0)
    except MosaError as exc:
        print(f"mosa: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        # a library check missed (a path, a full disk): still no traceback
        print(f"mosa: error: {_os_error(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except MemoryError:
        print(
            "mosa: error: out of memory\n  hint: use a smaller input, a smaller --batch-size, "
            "or a machine with more memory",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("mosa: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"mosa: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum


if __name__ == "__main__":
    sys.exit(main())
