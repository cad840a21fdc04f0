"""Flags shared by several commands: which pipeline to load, how to sample, edit context."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mosa.errors import MosaError
from mosa.io import check_writable
from mosa.motion.io import WRITE_EXTENSIONS
from mosa.requests import DEFAULTS, check_count, check_number, check_seed, sampling_options

if TYPE_CHECKING:
    from mosa.pipeline import Pipeline

# mosa.loading (torch, the models) is imported where it is used: convert and render, which
# check their outputs here, need none of it


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint --device --int8``: which pipeline to load (see :func:`load`) and how."""
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint folder (default: $MOSA_CHECKPOINTS or checkpoints/)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    add_int8_argument(parser)


def add_int8_argument(parser: argparse.ArgumentParser) -> None:
    """``--int8`` (see :func:`load`); also used by ``mosa bench`` and ``mosa eval``."""
    parser.add_argument(
        "--int8",
        action="store_true",
        help="CPU only: sample with int8 generator weights: faster at batch 1, same quality "
        "in our evaluation, but a motion then depends slightly on the other motions in its "
        "batch (docs/speed.md)",
    )


def load_from_args(args: argparse.Namespace) -> Pipeline:
    """The pipeline named by ``add_pipeline_arguments``' flags."""
    from mosa.loading import load

    return load(args.checkpoint, args.device, int8=args.int8)


def check_pipeline_args(args: argparse.Namespace) -> tuple[int, int, int, float]:
    """Check ``--device``/``--int8``/``--checkpoint`` before the seconds a load takes; returns
    the checkpoint's ``(shortest, longest, unit, fps)`` in frames (``loading.frame_info``)."""
    from mosa.loading import check_int8_device, frame_info, parse_device, resolve_device

    check_int8_device(args.int8, parse_device(args.device))
    resolve_device(args.device)
    return frame_info(args.checkpoint)


def check_sampling_args(args: argparse.Namespace) -> None:
    """``--cfg --temperature --top-k --top-p`` in range (before any loading)."""
    try:
        sampling_options(DEFAULTS, args.cfg, args.temperature, args.top_k, args.top_p)
    except MosaError as exc:
        raise MosaError(f"--{exc.message.replace('_', '-')}", exc.hint) from None


def check_seed_arg(seed: int | None, count: int = 1) -> None:
    if seed is not None:
        check_seed(seed, count, "--seed")


def check_seconds_arg(value: float | None, name: str, longest: float | None = None) -> None:
    """``MosaError`` unless ``value`` (seconds) is None or a finite number >= 0, at most
    ``longest`` seconds."""
    if value is None:
        return
    seconds = check_number(value, name)
    if seconds < 0:
        raise MosaError(f"{name} must be >= 0 seconds, got {value:g}", f"e.g. {name} 2")
    if longest is not None and seconds > longest:
        raise MosaError(
            f"{name} {seconds:g} s is more than the generator makes at once ({longest:g} s)",
            f"give at most {longest:g} s",
        )


def check_positive_arg(value: int, name: str) -> int:
    """``MosaError`` unless ``value`` is a whole number >= 1."""
    try:
        return check_count(value, name)
    except MosaError as exc:
        raise MosaError(exc.message, f"pass e.g. {name} 1") from None


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cfg --temperature --top-k --top-p``: shared by generate, edit and inbetween."""
    parser.add_argument(
        "--cfg",
        type=float,
        default=None,
        help="classifier-free guidance scale (default: the checkpoint's, pipeline.json; "
        "editing has its own, edit_defaults)",
    )
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    parser.add_argument("--top-k", type=int, default=None, help="keep the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")


def check_output(path: Path, extensions: tuple[str, ...] = WRITE_EXTENSIONS) -> None:
    """``MosaError`` unless ``path`` ends in an extension mosa writes and can be written
    (``mosa.io.check_writable``), before any loading."""
    if path.suffix.lower() not in extensions:
        raise MosaError(
            f"cannot write '{path}': unknown extension '{path.suffix}'",
            f"end the output name with one of {', '.join(extensions)}",
        )
    check_writable(path)


@contextlib.contextmanager
def prompt_warnings_to_stderr() -> Iterator[None]:
    """Print the pipeline's ``PromptWarning``s (a prompt far from the training captions) as
    ``mosa: warning: ...`` lines, once each; other warnings go on as usual."""
    from mosa.pipeline import PromptWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PromptWarning)
        yield
    printed: set[str] = set()
    for w in caught:
        if not issubclass(w.category, PromptWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        elif str(w.message) not in printed:
            printed.add(str(w.message))
            print(f"mosa: warning: {w.message}", file=sys.stderr)
