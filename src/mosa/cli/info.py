"""``mosa info``: the model card of a checkpoint folder: what it was trained on."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint folder (default: $MOSA_CHECKPOINTS or checkpoints/)",
    )


def run(args: argparse.Namespace) -> int:
    from mosa.loading import default_checkpoint_dir, model_card

    folder = args.checkpoint or default_checkpoint_dir()
    print(model_card(folder))
    return 0
