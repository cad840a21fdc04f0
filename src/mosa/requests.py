"""What a user asks for: prompts, lengths, seeds and sampling options, checked.

``GenerationRequest`` is one motion to generate (what the server batches), ``ResolvedRequest``
the same once checked and filled in by ``Pipeline.resolve``. ``check_text`` and
``read_prompts`` are the one place prompts are validated; ``sampling_options`` the one place
sampling options are.
"""

from __future__ import annotations

import numbers
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mosa import limits
from mosa.errors import MosaError

MAX_TEXT_CHARS = 300
# seeds: whole numbers 0..MAX_SEED (motion i of a call uses seed + i, all of which must fit;
# torch's generators take up to 2**64 - 1, the length draw uses seed + 7919)
MAX_SEED = 2**63 - 1
DEFAULTS: dict[str, Any] = {"cfg": 3.0, "temperature": 1.0, "top_k": None, "top_p": 0.95}
# editing: kept frames pull the sample towards the source, stronger guidance keeps the text
# (shipped model, 20 seeds: a bow in-between bowed in 19 vs 12 with cfg 3; docs/editing)
EDIT_DEFAULTS: dict[str, Any] = {"cfg": 5.0}


@dataclass
class GenerationRequest:
    """One motion to generate, with its own text, length, seed and sampling options.

    Length: ``seconds`` or ``frames`` (neither: the length estimator draws one). ``seed`` None
    draws a random seed; ``cfg``/``temperature``/``top_k``/``top_p`` None take the pipeline's
    defaults (``pipeline.json``).
    """

    text: str
    seconds: float | None = None
    frames: int | None = None
    seed: int | None = None
    cfg: float | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None


@dataclass
class ResolvedRequest:
    """A checked ``GenerationRequest``: latent length ``n`` in tokens (None until the length
    estimator draws it), a concrete seed and concrete sampling options."""

    text: str
    n: int | None
    seed: int
    cfg: float
    temperature: float
    top_k: int | None
    top_p: float | None


_DESCRIBE = "describe the motion, e.g. 'a person walks forward'"


def check_text(text: str, where: str = "prompt") -> str:
    """``text`` with its whitespace collapsed; ``MosaError`` when it is not text, empty (also
    when it holds only invisible characters), holds control characters or is too long."""
    if isinstance(text, bytes | bytearray):
        raise MosaError(f"{where} is bytes, not text", "decode it first, e.g. text.decode('utf-8')")
    if not isinstance(text, str):
        what = "missing (None)" if text is None else f"not text but {text!r:.40}"
        raise MosaError(f"{where} is {what}", _DESCRIBE)
    if not text.strip():
        raise MosaError(f"{where} is empty", _DESCRIBE)
    text = " ".join(text.split())
    if len(text) > MAX_TEXT_CHARS:
        raise MosaError(
            f"{where} has {len(text)} characters, the limit is {MAX_TEXT_CHARS}",
            "shorten the description",
        )
    control = next((c for c in text if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise MosaError(
            f"{where} contains the control character U+{ord(control):04X}",
            "write the description as plain text",
        )
    if not any(unicodedata.category(c)[0] in "LN" for c in text):
        raise MosaError(f"{where} has no letters: {text!r}", _DESCRIBE)
    return text


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_seed(seed: Any, count: int = 1, where: str = "seed") -> int:
    """``seed`` as an int; ``MosaError`` unless it is a whole number in 0..MAX_SEED with room
    for ``count`` consecutive seeds (``seed + i`` for motion i)."""
    if not _is_int(seed):
        raise MosaError(
            f"{where} must be a whole number, got {seed!r}", f"pass e.g. 0 (0-{MAX_SEED})"
        )
    seed = int(seed)
    top = MAX_SEED - (int(count) - 1)
    if not 0 <= seed <= top:
        extra = f" for {count} motions (seed + i each)" if count > 1 else ""
        raise MosaError(f"{where} must be 0-{top}{extra}, got {seed}", "pick a smaller seed")
    return seed


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int; ``MosaError`` unless it is a whole number >= ``minimum``."""
    if not _is_int(value) or int(value) < minimum:
        raise MosaError(
            f"{name} must be a whole number >= {minimum}, got {value!r}",
            f"pass {minimum} or more",
        )
    return int(value)


def check_number(value: Any, name: str) -> float:
    """``value`` as a finite float; ``MosaError`` for text, booleans, nan and inf."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MosaError(f"{name} must be a number, got {value!r}", f"pass {name} as a number")
    out = _float(value)
    if not np.isfinite(out):
        raise MosaError(f"{name} must be finite, got {value!r:.40}", f"pass a finite {name}")
    return out


def _float(value: numbers.Real) -> float:
    try:
        return float(value)
    except OverflowError:  # an int beyond a float's range
        return float("inf") if value > 0 else float("-inf")


def check_length(
    seconds: Any, frames: Any, frame_range: tuple[int, int], fps: float, unit: int
) -> int | None:
    """Requested length (``seconds`` or ``frames``, at most one) -> latent token count, checked
    against ``frame_range`` (frames); None when neither is given."""
    if seconds is not None and frames is not None:
        raise MosaError("both seconds and frames were given", "give only one of them")
    if seconds is None and frames is None:
        return None
    lo, hi = frame_range
    if seconds is not None:
        seconds = check_number(seconds, "seconds")
    elif (
        isinstance(frames, bool)
        or not isinstance(frames, numbers.Real)
        or (np.isfinite(_float(frames)) and _float(frames) != round(_float(frames)))
    ):
        raise MosaError(f"frames must be a whole number, got {frames!r}", "pass e.g. frames=120")
    f = seconds * fps if seconds is not None else _float(frames)
    what = f"{seconds:g} s" if seconds is not None else f"{f:g} frames"
    if not np.isfinite(f) or not lo <= round(f) <= hi:
        raise MosaError(
            f"length {what} is outside the supported range {lo / fps:g}-"
            f"{hi / fps:g} s ({lo}-{hi} frames at {fps:g} fps)",
            "pick a length inside the range",
        )
    return max(lo // unit, min(hi // unit, round(f / unit)))


def sampling_options(defaults: dict[str, Any], cfg, temperature, top_k, top_p) -> dict[str, Any]:
    """Concrete, checked ``cfg``/``temperature``/``top_k``/``top_p``; None takes ``defaults``."""
    d = defaults
    top_k = d["top_k"] if top_k is None else top_k
    if top_k is not None and not _is_int(top_k):
        raise MosaError(f"top_k must be a whole number, got {top_k!r}", "use 0 to disable it")
    top_p = d["top_p"] if top_p is None else top_p
    opts = {
        "cfg": _real(d["cfg"] if cfg is None else cfg, "cfg"),
        "temperature": _real(
            d["temperature"] if temperature is None else temperature, "temperature"
        ),
        "top_k": None if top_k is None else int(top_k),
        "top_p": None if top_p is None else _real(top_p, "top_p"),
    }
    if not np.isfinite(opts["cfg"]) or opts["cfg"] < 0:
        raise MosaError(f"cfg must be >= 0, got {opts['cfg']}", "use e.g. 3 (1 = no guidance)")
    if not np.isfinite(opts["temperature"]):
        raise MosaError(f"temperature must be finite, got {opts['temperature']}", "use e.g. 1")
    if opts["top_k"] is not None and opts["top_k"] < 0:
        raise MosaError(f"top_k must be >= 0, got {opts['top_k']}", "use 0 to disable it")
    if opts["top_p"] is not None and not 0 < opts["top_p"] <= 1:
        raise MosaError(f"top_p must be in (0, 1], got {opts['top_p']}", "use 1 to disable it")
    return opts


def _real(value: Any, name: str) -> float:
    """A sampling option as a float (nan/inf are left to the range checks)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise MosaError(f"{name} must be a number, got {value!r:.40}", f"pass {name} as a number")
    return _float(value)


def check_sampling_defaults(values: dict[str, Any], where: str) -> None:
    """``MosaError`` prefixed with ``where`` (e.g. pipeline.json's 'defaults') for a sampling
    default of the wrong type or range."""
    try:
        sampling_options({**DEFAULTS, **values}, None, None, None, None)
    except MosaError as exc:
        raise MosaError(f"{where}: {exc.message}", exc.hint) from None


def read_prompts(path: Path) -> list[str]:
    """Prompts of a text file: one per line; blank lines and lines starting with # skipped."""
    path = Path(path)
    hint = "pass a text file, one prompt a line"
    if not path.is_file():
        if path.is_dir():
            raise MosaError(f"prompt file {path} is a folder", hint)
        if path.exists():
            raise MosaError(f"prompt file {path} is not a regular file", hint)
        raise MosaError(f"prompt file {path} does not exist", hint)
    limits.check_file_size(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise MosaError(f"prompt file {path} is not UTF-8 text: {exc}", "save it as UTF-8") from exc
    prompts = []
    for lineno, line in enumerate(lines, start=1):
        text = " ".join(line.split())
        if not text or text.startswith("#"):
            continue
        if len(text) > MAX_TEXT_CHARS:
            raise MosaError(
                f"{path}:{lineno}: prompt has {len(text)} characters, "
                f"the limit is {MAX_TEXT_CHARS}",
                "shorten that line",
            )
        check_text(text, f"{path}:{lineno}: the prompt")
        prompts.append(text)
        if len(prompts) > limits.get("MOSA_MAX_PROMPTS"):
            limits.check("MOSA_MAX_PROMPTS", len(prompts), f"prompt file {path} holds more prompts")
    if not prompts:
        raise MosaError(f"prompt file {path} holds no prompt", "write one prompt per line")
    return prompts
