"""Evaluator spec -> :class:`~mosa.eval.evaluator.Evaluator`: one of our checkpoints
(:mod:`mosa.eval.evaluator`) or the official T2M release (:mod:`mosa.eval.t2m`).

The dispatch lives here, downstream of both, so neither module imports the other's loader.
"""

from __future__ import annotations

import os

from mosa.eval.evaluator import Evaluator, load_evaluator_checkpoint
from mosa.eval.t2m import load_t2m_evaluator


def load_evaluator(spec: str | os.PathLike) -> Evaluator:
    """Load an evaluator from ``DIR`` (our checkpoint) or ``t2m:PATH`` (the official one)."""
    spec = str(spec)
    if spec.startswith("t2m:"):
        return load_t2m_evaluator(spec[len("t2m:") :])
    return load_evaluator_checkpoint(spec)
