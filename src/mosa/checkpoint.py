"""Checkpoint folders: ``config.json`` + ``model.safetensors`` (+ ``mean.npy``/``std.npy``).

No pickle anywhere. ``config.json`` holds ``{"kind": ..., "config": {...}, "meta": {...}}`` so a
loader rebuilds the model from its config dataclass without any flags.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mosa.errors import MosaError
from mosa.io import atomic_dir, resolve_checkpoint_dir

C = TypeVar("C")
M = TypeVar("M", bound=torch.nn.Module)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_checkpoint(
    path: str | os.PathLike,
    kind: str,
    config: Any,
    state_dict: dict[str, torch.Tensor],
    *,
    stats: dict[str, np.ndarray] | None = None,
    meta: dict[str, Any] | None = None,
    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write a checkpoint folder atomically and return its path.

    ``config`` is a dataclass; ``stats`` are arrays saved as ``<name>.npy`` (e.g. mean, std);
    ``extra_tensors`` maps a file stem to more tensors (e.g. ``{"optimizer": ...}``) saved as
    ``<stem>.safetensors``.
    """
    payload = {"kind": kind, "config": dataclasses.asdict(config), "meta": meta or {}}
    with atomic_dir(path) as tmp:
        (tmp / CONFIG_FILE).write_text(json.dumps(payload, indent=2) + "\n")
        save_file(_contiguous(state_dict), str(tmp / WEIGHTS_FILE))
        for name, arr in (stats or {}).items():
            np.save(tmp / f"{name}.npy", np.asarray(arr, dtype=np.float32), allow_pickle=False)
        for stem, tensors in (extra_tensors or {}).items():
            save_file(_contiguous(tensors), str(tmp / f"{stem}.safetensors"))
    return Path(path)


def read_checkpoint_config(path: str | os.PathLike, kind: str | None = None) -> dict[str, Any]:
    """Read ``config.json`` of a checkpoint folder, checking its ``kind`` when given."""
    folder = resolve_checkpoint_dir(path)
    cfg_file = folder / CONFIG_FILE
    if not cfg_file.is_file():
        raise MosaError(
            f"no checkpoint at {folder}: {CONFIG_FILE} is missing",
            "pass a checkpoint folder holding config.json and model.safetensors",
        )
    try:
        payload = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise MosaError(
            f"corrupt checkpoint config {cfg_file}: {exc}", "re-train or re-copy it"
        ) from exc
    if kind is not None and payload.get("kind") != kind:
        raise MosaError(
            f"{folder} holds a '{payload.get('kind')}' checkpoint, expected '{kind}'",
            f"pass the folder of a {kind} checkpoint",
        )
    return payload


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build dataclass ``cls`` from a dict, ignoring unknown keys (forward compatibility)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(
        **{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    )


def load_checkpoint(
    path: str | os.PathLike, config_cls: type[C], kind: str | None = None
) -> tuple[C, dict[str, torch.Tensor], dict[str, Any]]:
    """Return ``(config, state_dict, payload)`` of a checkpoint folder."""
    folder = resolve_checkpoint_dir(path)
    payload = read_checkpoint_config(folder, kind)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise MosaError(f"checkpoint {folder} has no {WEIGHTS_FILE}", "re-train or re-copy it")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises several types on corrupt files
        raise MosaError(f"corrupt weights {weights}: {exc}", "re-train or re-copy it") from exc
    return config_from_dict(config_cls, payload["config"]), state, payload


def load_model(
    path: str | os.PathLike,
    model_cls: type[M],
    config_cls: type,
    kind: str,
    device: str | torch.device = "cpu",
) -> tuple[M, dict[str, Any]]:
    """Rebuild ``model_cls(config)`` from a checkpoint folder -> ``(model in eval mode, payload)``.

    The config's ``validate()`` runs first when it has one, so a bad config names its field.
    """
    config, state, payload = load_checkpoint(path, config_cls, kind)
    if hasattr(config, "validate"):
        config.validate()
    model = model_cls(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise MosaError(f"weights in {path} do not match its config: {exc}", "re-train it") from exc
    return model.to(device).eval(), payload


def load_stats(
    path: str | os.PathLike, names: tuple[str, ...] = ("mean", "std")
) -> dict[str, np.ndarray]:
    """Load the ``<name>.npy`` arrays stored beside a checkpoint."""
    folder = resolve_checkpoint_dir(path)
    out = {}
    for name in names:
        f = folder / f"{name}.npy"
        if not f.is_file():
            raise MosaError(f"checkpoint {folder} lacks {f.name}", "re-train or re-copy it")
        out[name] = np.load(f, allow_pickle=False)
    return out


def load_extra_tensors(path: str | os.PathLike, stem: str) -> dict[str, torch.Tensor] | None:
    """Load ``<stem>.safetensors`` from a checkpoint folder, or None if absent."""
    f = resolve_checkpoint_dir(path) / f"{stem}.safetensors"
    return load_file(str(f)) if f.is_file() else None


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
