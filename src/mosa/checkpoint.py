"""Checkpoint folders: ``config.json`` + ``model.safetensors`` (+ ``mean.npy``/``std.npy``).

No pickle anywhere. ``config.json`` holds ``{"kind": ..., "config": {...}, "meta": {...}}`` so a
loader rebuilds the model from its config dataclass without any flags.
"""

from __future__ import annotations

import dataclasses
import json
import mmap
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

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
        payload = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise MosaError(
            f"corrupt checkpoint config {cfg_file}: {exc}", "re-train or re-copy it"
        ) from exc
    check_payload(payload, cfg_file)
    if kind is not None and payload.get("kind") != kind:
        raise MosaError(
            f"{folder} holds a '{payload.get('kind')}' checkpoint, expected '{kind}'",
            f"pass the folder of a {kind} checkpoint",
        )
    return payload


_FIX = "re-train or re-copy the checkpoint (or fix the file by hand)"


def check_payload(payload: Any, where: str | os.PathLike) -> None:
    """``MosaError`` naming ``where`` unless ``payload`` is a checkpoint's ``config.json``:
    an object with ``config`` (an object), ``kind`` (text) and optional ``meta`` (an object)."""
    if not isinstance(payload, dict):
        raise MosaError(
            f"{where}: expected a JSON object with 'kind' and 'config', found {_kind(payload)}",
            _FIX,
        )
    if "config" not in payload:
        raise MosaError(f"{where}: the field 'config' (the model's settings) is missing", _FIX)
    if not isinstance(payload["config"], dict):
        raise MosaError(
            f"{where}: 'config' must be a JSON object of settings, found "
            f"{_kind(payload['config'])}",
            _FIX,
        )
    if "kind" in payload and not isinstance(payload["kind"], str):
        raise MosaError(f"{where}: 'kind' must be text, found {_kind(payload['kind'])}", _FIX)
    if "meta" in payload and not isinstance(payload["meta"], dict | None):
        raise MosaError(f"{where}: 'meta' must be a JSON object, found {_kind(payload['meta'])}")


def config_from_dict(cls: type[C], data: dict[str, Any], where: str | None = None) -> C:
    """Build dataclass ``cls`` from a dict, ignoring unknown keys (forward compatibility).

    Every known key's value must have its field's type (an int is a float too, a list a
    tuple); otherwise ``MosaError`` names ``where`` (e.g. the config.json), the field and the
    type expected.
    """
    where = where or f"{cls.__name__} settings"
    if not isinstance(data, dict):
        raise MosaError(f"{where}: expected a JSON object of settings, found {_kind(data)}", _FIX)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be resolved: check nothing
        hints = {}
    kwargs = {}
    for k, v in data.items():
        if k not in fields:
            continue
        tp = hints.get(k, Any)
        if not _matches(v, tp):
            raise MosaError(
                f"{where}: '{k}' must be {_describe(tp)}, found {_kind(v)} {_short(v)}", _FIX
            )
        kwargs[k] = _tuples(v)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise MosaError(f"{where}: missing the setting(s) {', '.join(missing)}", _FIX)
    return cls(**kwargs)


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def _matches(v: Any, tp: Any) -> bool:
    """Whether JSON value ``v`` fits annotation ``tp`` (unknown annotations: anything)."""
    if tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return any(_matches(v, a) for a in args)
    if tp is type(None):
        return v is None
    if tp is bool:
        return isinstance(v, bool)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return isinstance(v, int | float) and not isinstance(v, bool)
    if tp is str:
        return isinstance(v, str)
    if tp is tuple or origin is tuple or tp is list or origin is list:
        if not isinstance(v, list | tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(x, args[0]) for x in v)
        if args and origin is tuple:
            return len(v) == len(args) and all(_matches(x, a) for x, a in zip(v, args, strict=True))
        return all(_matches(x, args[0]) for x in v) if args else True
    if tp is dict or origin is dict:
        return isinstance(v, dict)
    if origin is typing.Literal:
        return v in args
    return True


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        parts = [_describe(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return text + " or null" if type(None) in args else text
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
             dict: "a JSON object"}  # fmt: skip
    if tp in names:
        return names[tp]
    if tp is tuple or origin is tuple or tp is list or origin is list:
        inner = args[0] if args else None
        return f"a list of {_describe(inner)}s" if inner in names else "a list"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    return str(tp)


def _kind(v: Any) -> str:
    names = {bool: "true/false", int: "a number", float: "a number", str: "text",
             list: "a list", dict: "an object", type(None): "null"}  # fmt: skip
    return names.get(type(v), type(v).__name__)


def _short(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, str | int | float | bool | None) else ""
    return f"({text[:40]})" if text else ""


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
    config = config_from_dict(config_cls, payload["config"], f"{folder / CONFIG_FILE}")
    return config, state, payload


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
    where = resolve_checkpoint_dir(path) / CONFIG_FILE
    _check_shapes(model_cls, config, state, where)
    try:
        model = model_cls(config)
    except (ValueError, TypeError, AssertionError, ArithmeticError, IndexError, KeyError,
            RuntimeError) as exc:  # fmt: skip
        raise MosaError(
            f"{where} does not describe a model that can be built: {exc}", _FIX
        ) from exc
    try:
        # assign: the model takes the loaded tensors instead of copying them into its
        # randomly initialised ones, which are freed (one copy of the weights, not two)
        model.load_state_dict(_like(state, model), assign=True)
    except RuntimeError as exc:
        raise MosaError(f"weights in {path} do not match its config: {exc}", "re-train it") from exc
    return model.to(device).eval(), payload


def _like(state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``state`` with each tensor in the dtype of the model's own (``load_state_dict`` with
    ``assign=True`` would keep a float16 file's dtype, where copying converts it), and in
    memory aligned as torch allocates it: safetensors' tensors start 8 bytes into a Python
    ``bytes`` object, and CPU kernels round differently on unaligned data, so a model would
    not give the outputs of the same weights copied in."""
    own = model.state_dict()
    out = {}
    for k, v in state.items():
        v = v.to(own[k].dtype) if k in own else v
        out[k] = v.clone() if v.data_ptr() % _ALIGN else v
    return out


_ALIGN = 64  # bytes: what torch's CPU allocator gives, and what vectorised kernels assume


def _check_shapes(model_cls: type, config: Any, state: dict[str, torch.Tensor], where) -> None:
    """Build the model on the meta device (no memory) and compare its tensor shapes with the
    weights file, so a config that asks for a huge model fails before anything is allocated."""
    try:
        with torch.device("meta"), _MetaProbe():
            probe = model_cls(config)
        want = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    except Exception:  # a model that cannot be built on meta: the real build will tell
        return
    for k, shape in want.items():
        if k in state and tuple(state[k].shape) != shape:
            raise MosaError(
                f"weights in {where.parent} do not match its {CONFIG_FILE}: '{k}' is "
                f"{tuple(state[k].shape)} in {WEIGHTS_FILE}, {where} makes it {shape}",
                "use the config.json saved with these weights (re-train or re-copy it)",
            )


class _MetaProbe(TorchFunctionMode):
    """While a model is built on the meta device for its shapes: initialisers
    (``torch.nn.init.*``), in-place fills, item assignment, ``torch.eye``, ``torch.randn``
    and arithmetic with a Python number only need the shape, so they skip the computation.
    Their meta kernels are Python code whose first use imports ``torch._dynamo`` (a second
    of every ``mosa generate``)."""

    _SCALAR_OPS = frozenset({
        torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.mul,
        torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__, torch.add,
        torch.Tensor.div, torch.Tensor.__truediv__, torch.div,
        torch.Tensor.sub, torch.Tensor.__sub__, torch.sub,
    })  # fmt: skip

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            return kwargs["tensor"] if "tensor" in kwargs else args[0]
        if func is torch.eye and not kwargs and all(isinstance(a, int) for a in args):
            return torch.empty(args[0], args[-1])  # on meta: the device context is below
        if func in (torch.randn, torch.rand) and "generator" not in kwargs:
            return torch.empty(*args, **kwargs)
        on_meta = bool(args) and isinstance(args[0], torch.Tensor) and args[0].is_meta
        if on_meta and func is torch.Tensor.__setitem__:
            return None
        name = getattr(func, "__name__", "")
        if on_meta and name.endswith("_") and not name.startswith(("resize", "set", "__")):
            return args[0]  # in-place fills (normal_, zero_, copy_, ...)
        if (
            func in self._SCALAR_OPS
            and len(args) == 2
            and not kwargs
            and on_meta
            and isinstance(args[1], int | float)
            and not isinstance(args[1], bool)
        ):
            return torch.empty(args[0].shape, dtype=args[0].dtype)
        return func(*args, **kwargs)


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
        try:
            arr = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
            raise MosaError(
                f"{f} is not a plain numeric array ({exc})", "re-train or re-copy it"
            ) from exc
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
            raise MosaError(f"{f} holds {getattr(arr, 'dtype', 'an archive')}, expected numbers",
                            "re-train or re-copy it")  # fmt: skip
        if not np.isfinite(arr).all():
            raise MosaError(f"{f} contains nan or inf", "re-train or re-copy it")
        out[name] = arr
    return out


def load_extra_tensors(path: str | os.PathLike, stem: str) -> dict[str, torch.Tensor] | None:
    """Load ``<stem>.safetensors`` from a checkpoint folder, or None if absent."""
    f = resolve_checkpoint_dir(path) / f"{stem}.safetensors"
    return load_file(str(f)) if f.is_file() else None


_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}  # fmt: skip


def map_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, memory-mapped copy-on-write instead of read.

    Nothing is read until a tensor is used, and only the pages used are (an embedding table
    whose few looked-up rows are all a prompt touches stays on disk); writing to a tensor
    copies its pages, never changes the file. ``MosaError`` for a file that is not a
    well-formed safetensors file. Falls back to ``safetensors.torch.load_file`` on a
    big-endian machine.
    """
    path = Path(path)
    if sys.byteorder != "little":
        return load_file(str(path))
    bad = f"corrupt weights {path}"
    try:
        with open(path, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except ValueError as exc:  # an empty file cannot be mapped
        raise MosaError(f"{bad}: {exc}", "re-train or re-copy it") from exc
    try:
        size = int.from_bytes(mm[:8], "little")
        if len(mm) < 8 or not 0 < size <= len(mm) - 8:
            raise ValueError("header size out of range")
        header = json.loads(bytes(mm[8 : 8 + size]))
        base = 8 + size
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            out[name] = _mapped_tensor(mm, base, info)
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise MosaError(f"{bad}: {exc}", "re-train or re-copy it") from exc
    return out


def _mapped_tensor(mm: mmap.mmap, base: int, info: dict[str, Any]) -> torch.Tensor:
    dtype = _SAFETENSORS_DTYPES[info["dtype"]]
    shape = [int(n) for n in info["shape"]]
    start, end = (int(o) for o in info["data_offsets"])
    count = int(np.prod(shape)) if shape else 1
    if end - start != count * dtype.itemsize or start < 0 or base + end > len(mm):
        raise ValueError(f"tensor data out of range ({info})")
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(mm, dtype=dtype, count=count, offset=base + start).view(shape)


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage
    return {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
