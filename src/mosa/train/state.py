"""Training state as safetensors + JSON (no pickle): optimizer and RNG states, reading back
a checkpoint folder ``Trainer`` wrote, and choosing what a resume continues from.

A resume continues from the newest copy of the state that is intact in every part (config,
weights, optimizer, RNG, counters; ``find_resume_point``). A copy with a truncated file, a
changed config or a missing part is never half-used: an older intact copy is taken instead,
with a note saying so, or the resume stops with a ``MosaError`` naming the file and the fix.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from mosa.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_checkpoint_config
from mosa.errors import MosaError
from mosa.io import resolve_checkpoint_dir, write_error


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into safetensors-able tensors and JSON metadata."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in {**tensors, **meta.get("scalars", {})}.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """This process's torch / numpy / python RNG states (tensors, JSON)."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py = random.getstate()
    meta = {
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [py[0], list(py[1]), py[2]],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, state, gauss = meta["python"]
    random.setstate((version, tuple(state), gauss))


def load_training_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """``(model state dict, payload)`` of a checkpoint folder written by ``Trainer``."""
    folder = resolve_checkpoint_dir(path)
    payload = read_checkpoint_config(folder)
    if "trainer" not in payload.get("meta", {}):
        raise MosaError(f"{folder} holds no training state", "resume from an out/last folder")
    return load_file(str(folder / WEIGHTS_FILE)), payload


# --------------------------------------------------------------------------------------------
# finding the checkpoint a resume continues from

# the copies of the training state a run folder can hold, newest first: ``last`` (written
# every ckpt_every_s), ``last.old`` (``atomic_dir``'s side name while it swaps) and ``last.prev``
# (the checkpoint before ``last``, kept by ``Trainer.save_last``)
LAST_COPIES = ("last", "last.old", "last.prev")
CORRUPT_LAST = "last.corrupt"  # where an unusable ``last`` goes when an older copy is resumed
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"

BuildModel = Callable[[dict[str, Any]], torch.nn.Module]


@dataclass
class ResumePoint:
    """An intact training checkpoint, checked: ``model`` (built from its config, weights
    loaded), its optimizer and RNG tensors, and ``notes`` to show the user (which copy was
    used, and why when it is not ``last``)."""

    folder: Path
    payload: dict[str, Any]
    model: torch.nn.Module
    optimizer: dict[str, torch.Tensor]
    rng: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)

    @property
    def step(self) -> int:
        return int(self.payload["meta"]["trainer"]["step"])


class Unusable(Exception):
    """A copy of the training state that cannot be resumed: ``file`` and why."""

    def __init__(self, file: Path, reason: str):
        super().__init__(f"{file} {reason}")
        self.file, self.reason = Path(file), reason


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_payload(cfg_file: Path, payload: Any, kind: str | None) -> None:
    """``Unusable`` unless ``payload`` holds a model config, counters, optimizer settings and
    RNG states of the right types (``MosaError`` for a checkpoint of another kind)."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise Unusable(cfg_file, what)

    need(isinstance(payload, dict), "is not a JSON object")
    if kind is not None and payload.get("kind") not in (None, kind):
        raise MosaError(
            f"{cfg_file.parent} holds a '{payload.get('kind')}' checkpoint, not a '{kind}' one",
            f"resume it with the trainer of its kind, or choose another --out for this {kind}",
        )
    need(isinstance(payload.get("config"), dict), "has no model config ('config')")
    meta = payload.get("meta")
    need(isinstance(meta, dict), "has no 'meta' section")
    t = meta.get("trainer")
    need(isinstance(t, dict), "has no meta.trainer (it is not a training checkpoint)")
    for key, low in (("step", 0), ("epoch", 0), ("batch_in_epoch", 0), ("best_step", -1)):
        value = t.get(key)
        need(
            _whole(value) and value >= low,
            f"has meta.trainer.{key} = {value!r}, not a whole number >= {low}",
        )
    need(t.get("best") is None or _real(t["best"]), f"has meta.trainer.best = {t.get('best')!r}")
    elapsed = t.get("elapsed_s")
    need(_real(elapsed) and elapsed >= 0, f"has meta.trainer.elapsed_s = {elapsed!r}")
    need(t.get("scaler") is None or isinstance(t["scaler"], dict), "has a bad meta.trainer.scaler")
    opt = meta.get("optimizer")
    need(isinstance(opt, dict), "has no meta.optimizer (the optimizer's settings)")
    groups = opt.get("param_groups")
    good_groups = isinstance(groups, list) and len(groups) > 0
    for g in groups if good_groups else ():
        params = g.get("params") if isinstance(g, dict) else None
        good_groups = good_groups and isinstance(params, list) and all(map(_whole, params))
    need(good_groups, "has a bad meta.optimizer.param_groups")
    need(isinstance(opt.get("scalars", {}), dict), "has a bad meta.optimizer.scalars")
    rng = meta.get("rng")
    need(
        isinstance(rng, dict)
        and isinstance(rng.get("numpy"), list)
        and len(rng["numpy"]) == 4
        and isinstance(rng.get("python"), list)
        and len(rng["python"]) == 3,
        "has no meta.rng (the random generators' state)",
    )


def _load_tensors(file: Path, what: str) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise Unusable(file, f"is missing ({what}): the run cannot continue exactly without it")
    try:
        return load_file(str(file))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types on bad files
        raise Unusable(file, f"is corrupt ({type(exc).__name__}: {exc})") from None


def _check_rng(file: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Try the states on private generators, so a bad one fails here and not mid-resume."""
    try:
        torch.Generator().set_state(tensors["torch"])
        kind, pos, has_gauss, cached = meta["numpy"]
        keys = tensors["numpy"].numpy().astype(np.uint32)
        np.random.RandomState().set_state((kind, keys, pos, has_gauss, cached))
        version, state, gauss = meta["python"]
        random.Random().setstate((version, tuple(state), gauss))
    except Exception as exc:  # noqa: BLE001 - KeyError, TypeError, ValueError, RuntimeError
        raise Unusable(
            file, f"does not hold a valid RNG state ({type(exc).__name__}: {exc})"
        ) from None


def _check_optimizer(
    file: Path, model: torch.nn.Module, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    params = list(model.parameters())
    ids = [p for g in meta["param_groups"] for p in g["params"]]
    if sorted(ids) != list(range(len(params))):
        raise Unusable(
            file, f"holds the state of {len(ids)} parameters, the model has {len(params)}"
        )
    one_group = len(meta["param_groups"]) == 1  # then state id i is model parameter i
    for name, value in {**tensors, **meta.get("scalars", {})}.items():
        pid, _, key = name.partition(".")
        if not pid.isdigit() or int(pid) >= len(params) or not key:
            raise Unusable(file, f"holds an unknown entry {name!r}")
        shape = tuple(params[int(pid)].shape)
        if one_group and key in ("exp_avg", "exp_avg_sq") and tuple(value.shape) != shape:
            raise Unusable(
                file, f"holds {name} of shape {tuple(value.shape)} for a parameter of {shape}"
            )


def check_training_checkpoint(
    folder: Path, build: BuildModel, kind: str | None = None
) -> ResumePoint:
    """``folder`` as a ``ResumePoint`` if every part of it is intact; ``Unusable`` naming the
    first bad file otherwise (``MosaError`` if it holds another kind of model)."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        raise Unusable(folder, "is missing")
    if not folder.is_dir():
        raise Unusable(folder, "is a file, not a checkpoint folder")
    cfg_file = folder / CONFIG_FILE
    if not cfg_file.is_file():
        empty = not any(folder.iterdir())
        raise Unusable(folder, "is empty" if empty else f"has no {CONFIG_FILE}")
    try:
        payload = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Unusable(cfg_file, f"is not valid JSON ({exc})") from None
    _check_payload(cfg_file, payload, kind)
    meta = payload["meta"]
    state = _load_tensors(folder / WEIGHTS_FILE, "the model weights")
    opt = _load_tensors(folder / OPTIMIZER_FILE, "the optimizer state")
    rng = _load_tensors(folder / RNG_FILE, "the random generators' state")
    _check_rng(folder / RNG_FILE, rng, meta["rng"])
    try:
        model = build(payload["config"])
    except Exception as exc:  # noqa: BLE001 - a bad config raises MosaError, TypeError, ...
        raise Unusable(cfg_file, f"holds a model config that builds no model ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = [line.strip() for line in str(exc).strip().splitlines()[1:2]] or [str(exc)]
        raise Unusable(
            folder / WEIGHTS_FILE, f"does not fit the model config in {CONFIG_FILE} ({first[0]})"
        ) from None
    _check_optimizer(folder / OPTIMIZER_FILE, model, opt, meta["optimizer"])
    return ResumePoint(folder, payload, model, opt, rng)


def _claimed_step(folder: Path) -> int:
    try:
        step = json.loads((folder / CONFIG_FILE).read_text())["meta"]["trainer"]["step"]
    except Exception:  # noqa: BLE001 - whatever is wrong, it is tried last
        return -1
    return step if _whole(step) and step >= 0 else -1


def find_resume_point(
    out: str | os.PathLike, build: BuildModel, *, kind: str | None = None, is_main: bool = True
) -> ResumePoint | None:
    """The newest intact copy of ``out``'s training state (``LAST_COPIES``), or None when the
    folder holds none at all (nothing to resume: the run starts at step 0).

    ``build(config dict) -> model`` makes the model a copy is checked against (its weights are
    loaded into it). When the copy used is not ``out/last``, the point's ``notes`` say why, and
    on the main process an unusable ``last`` is moved to ``out/last.corrupt`` so the next
    checkpoint can be written. When no copy is intact: ``MosaError`` naming the bad file of
    each copy and the fix.
    """
    out = Path(out)
    present = [out / n for n in LAST_COPIES if (out / n).exists() or (out / n).is_symlink()]
    if not present:
        return None
    order = sorted(present, key=lambda f: (-_claimed_step(f), LAST_COPIES.index(f.name)))
    problems: dict[str, Unusable] = {}
    for folder in order:
        try:
            point = check_training_checkpoint(folder, build, kind)
        except Unusable as bad:
            problems[folder.name] = bad
            continue
        if folder.name != "last":
            point.notes += _fallback_notes(out, point, problems, build, kind, is_main)
        return point
    tried = "; ".join(_describe(problems[f.name]) for f in order)
    raise MosaError(
        f"cannot resume {out}: {tried}",
        f"restore {out / 'last'} from a backup, or start a fresh run there with --force (it "
        f"deletes this run: copy {out / 'best'} first to keep its weights)",
    )


def _fallback_notes(
    out: Path,
    point: ResumePoint,
    problems: dict[str, Unusable],
    build: BuildModel,
    kind: str | None,
    is_main: bool,
) -> list[str]:
    """Why ``point`` is not ``out/last``; an unusable ``last`` is set aside (main process)."""
    last = out / "last"
    why = f"{last} is missing (the run was stopped while writing it)"
    if "last" not in problems and (last.exists() or last.is_symlink()):
        try:
            older = check_training_checkpoint(last, build, kind)
            why = f"{last} holds an older step ({older.step}) than {point.folder}"
        except Unusable as bad:
            problems["last"] = bad
    if "last" in problems:
        why = _describe(problems["last"])
    notes = [f"{why}; resuming from {point.folder} (step {point.step}) instead"]
    if "last" in problems and is_main:
        notes.append(f"moved the unusable {last} to {_set_aside(last)}")
    return notes


def _describe(bad: Unusable) -> str:
    return f"{bad.file} {bad.reason}"


def _set_aside(last: Path) -> Path:
    target = last.with_name(CORRUPT_LAST)
    remove_path(target)
    os.replace(last, target)
    return target


def keep_previous(last: Path) -> Path:
    """Move the checkpoint folder ``last`` to ``last.prev`` (replacing the one there) before a
    new ``last`` is written, so a damaged new one has an intact copy to fall back to. A kill
    between the two leaves ``last.prev`` alone, which ``find_resume_point`` takes."""
    last = Path(last)
    try:
        if last.is_dir() and not last.is_symlink():
            prev = last.with_name("last.prev")
            remove_path(prev)
            os.replace(last, prev)
    except OSError as exc:
        raise write_error(last, exc) from exc
    return last


def remove_path(path: Path) -> None:
    """Delete a file, link or folder tree (nothing if absent)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
