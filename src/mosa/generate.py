"""Deprecated: the names that lived here moved in 0.2 (see docs/architecture.md).

- the sampling loop and token strategies: ``mosa.sampling``
- ``Pipeline``, ``GeneratedMotion``, ``check_compatible``: ``mosa.pipeline``
- requests, prompt checks and sampling defaults: ``mosa.requests``
- ``load`` and checkpoint folders: ``mosa.loading`` (and ``mosa.load``)
- the ``mosa generate`` command: ``mosa.cli.generate``

``from mosa.generate import X`` keeps working for the library names, with a
``DeprecationWarning`` naming the new home.
"""

from __future__ import annotations

import importlib
import warnings

_MOVED = {
    "mosa.sampling": (
        "OnScale", "TokenStrategy", "ForcedTokens", "generate_tokens", "broadcast",
    ),
    "mosa.pipeline": ("Pipeline", "GeneratedMotion", "check_compatible", "_joints"),
    "mosa.requests": (
        "MAX_TEXT_CHARS", "DEFAULTS", "EDIT_DEFAULTS", "GenerationRequest", "ResolvedRequest",
        "read_prompts",
    ),
    "mosa.loading": (
        "PIPELINE_FILE", "load", "read_pipeline_spec", "default_checkpoint_dir",
        "default_device", "check_int8_device",
    ),
    "mosa.motion.io": ("output_paths",),
}  # fmt: skip
_HOME = {name: module for module, names in _MOVED.items() for name in names}
_HOME["OUTPUT_EXTENSIONS"] = "mosa.motion.io"


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'mosa.generate' has no attribute {name!r}")
    warnings.warn(f"mosa.generate.{name} moved to {module}", DeprecationWarning, stacklevel=2)
    attr = "WRITE_EXTENSIONS" if name == "OUTPUT_EXTENSIONS" else name
    return getattr(importlib.import_module(module), attr)


def __dir__() -> list[str]:
    return sorted(_HOME)
