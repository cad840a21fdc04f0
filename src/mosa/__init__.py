"""mosa: text to 3D human motion with scalable autoregressive modelling (MoSa)."""

from __future__ import annotations

__version__ = "0.1.0"


def load(checkpoint_dir=None, device=None):
    """Load the text-to-motion pipeline (default: the shipped ``checkpoints/``).

    ``pipe = mosa.load(); pipe.generate(["a person waves"])``. Imported lazily so that
    ``import mosa`` stays cheap.
    """
    from mosa.loading import load as _load

    return _load(checkpoint_dir, device=device)
