"""Checkpoint folder -> ``Pipeline``: ``load``, ``pipeline.json`` and the default locations.

A checkpoint folder holds ``pipeline.json`` (which parts, sampling defaults) and one folder per
part (``sar/``, ``vae/``, ``length/``: ``config.json`` + ``model.safetensors``); every part's
dimensions come from its own ``config.json``, so loading needs no flags.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mosa.checkpoint import CONFIG_FILE, config_from_dict, read_checkpoint_config
from mosa.errors import MosaError
from mosa.models.length import load_length
from mosa.models.sar import SARConfig, load_sar
from mosa.models.text import load_text_encoder
from mosa.models.vae import VAEConfig, load_vae
from mosa.motion.skeleton import FEATURE_DIM, FPS
from mosa.pipeline import Pipeline
from mosa.requests import DEFAULTS, check_sampling_defaults
from mosa.vocabulary import load_vocabulary

PIPELINE_FILE = "pipeline.json"


def default_checkpoint_dir() -> Path:
    """``$MOSA_CHECKPOINTS``, else the repository's ``checkpoints/`` folder."""
    env = os.environ.get("MOSA_CHECKPOINTS")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "checkpoints"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


_DEVICE_HINT = "pass --device cpu (or cuda, cuda:N on a machine with NVIDIA GPUs)"


def parse_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device`` (None: ``default_device``), not yet checked for being
    there; ``MosaError`` for a name torch does not know."""
    if device is None:
        return default_device()
    if not isinstance(device, str | torch.device):
        raise MosaError(
            f"device must be text such as 'cpu' or 'cuda', got {device!r}", _DEVICE_HINT
        )
    try:
        return torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise MosaError(f"unknown device '{device}'", _DEVICE_HINT) from None


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a ``torch.device`` mosa can run on (None: ``default_device``).

    ``MosaError`` for what torch does not know (``tpu``), for devices that hold no data
    (``meta``) or that mosa does not run on, for CUDA on a machine or torch build without it,
    and for a GPU index that is not there (``cuda:1`` on a one-GPU machine).
    """
    dev = parse_device(device)
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this torch build has no CUDA"
                if torch.version.cuda is None
                else "no CUDA GPU is visible (driver, CUDA_VISIBLE_DEVICES)"
            )
            raise MosaError(f"device '{device}' is not available: {why}", "pass --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise MosaError(
                f"device '{device}' does not exist: this machine has {count} CUDA GPU(s)",
                f"pass --device cuda:0 ... cuda:{count - 1}" if count > 1 else "pass --device cuda",
            )
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise MosaError(f"device '{device}' is not available on this machine", _DEVICE_HINT)
        return dev
    raise MosaError(f"mosa cannot run on device '{device}'", _DEVICE_HINT)


def check_int8_device(int8: bool, device: torch.device) -> None:
    """``MosaError`` for int8 sampling on anything but the CPU (before any loading)."""
    if int8 and device.type != "cpu":
        raise MosaError(
            f"--int8 is for CPU inference, not {device}", "drop --int8 or pass --device cpu"
        )


def read_pipeline_spec(folder: Path) -> dict[str, Any]:
    """``pipeline.json`` of a checkpoint folder, with defaults for a plain folder layout.

    Keys: ``sar`` (default "sar" if that subfolder exists, else "."), ``vae`` (default "vae"),
    ``length`` (optional), ``text_encoder`` (optional override), ``defaults`` (sampling),
    ``edit_defaults`` (sampling for editing, over ``defaults``).
    Paths are relative to the folder.
    """
    spec: dict[str, Any] = {}
    f = folder / PIPELINE_FILE
    if f.is_file():
        try:
            spec = json.loads(f.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise MosaError(f"corrupt {f}: {exc}", "fix or delete the file") from exc
        if not isinstance(spec, dict):
            raise MosaError(f"{f} must hold a JSON object", "fix the file")
        _check_spec(spec, f)
    spec.setdefault("sar", "sar" if (folder / "sar").is_dir() else ".")
    spec.setdefault("vae", "vae")
    if "length" not in spec and (folder / "length").is_dir():
        spec["length"] = "length"
    return spec


def _check_spec(spec: dict[str, Any], f: Path) -> None:
    """``MosaError`` naming ``pipeline.json``'s field for a value of the wrong type."""
    for key in ("sar", "vae", "length", "text_encoder"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise MosaError(
                f"{f}: '{key}' must be a folder name (text), found {value!r}",
                'fix the file: e.g. "sar": "sar"',
            )
    fps = spec.get("fps", FPS)
    if (
        isinstance(fps, bool)
        or not isinstance(fps, int | float)
        or not math.isfinite(fps)
        or fps <= 0
    ):
        raise MosaError(f"{f}: 'fps' must be a positive number, found {fps!r}", 'e.g. "fps": 20')
    for key in ("defaults", "edit_defaults"):
        value = spec.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise MosaError(
                f"{f}: '{key}' must be a JSON object of sampling options, found {value!r}",
                f'e.g. "{key}": {{"cfg": 3.0}}',
            )
        unknown = sorted(set(value) - set(DEFAULTS))
        if unknown:
            raise MosaError(
                f"{f}: unknown sampling option(s) in '{key}': {', '.join(unknown)}",
                f"the options are {', '.join(DEFAULTS)}",
            )
        check_sampling_defaults(value, f"{f}: '{key}'")


def load(
    checkpoint_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    *,
    int8: bool = False,
) -> Pipeline:
    """Load a generation pipeline from a checkpoint folder (default: ``default_checkpoint_dir``).

    ``int8``: on the CPU, sample with int8 weights in the generator's transformer blocks
    (``SARTransformer.set_int8``): faster, with slightly different token probabilities. Its
    inputs are quantized with one scale per layer call, so a motion then also depends
    slightly on the other motions generated in the same batch (fp32 does not).
    """
    folder = checkpoint_folder(checkpoint_dir)
    spec = read_pipeline_spec(folder)
    check_int8_device(int8, parse_device(device))  # the flag's own error first
    dev = resolve_device(device)
    # resolve every part first: a wrong pipeline.json fails before any loading
    parts = {k: _resolve(folder, spec[k]) for k in ("sar", "vae", "length") if spec.get(k)}
    sar = load_sar(parts["sar"], dev).set_int8(int8)
    vae, mean, std = load_vae(parts["vae"], dev)
    _check_stats(parts["vae"], mean, std, getattr(vae.config, "feature_dim", FEATURE_DIM))
    text_spec = spec.get("text_encoder") or sar.config.text_encoder
    text_encoder = load_text_encoder(text_spec, dev)
    length_model = load_length(parts["length"], dev) if "length" in parts else None
    return Pipeline(
        sar,
        vae,
        mean,
        std,
        text_encoder,
        length_model,
        defaults=spec.get("defaults"),
        edit_defaults=spec.get("edit_defaults"),
        fps=float(spec.get("fps", FPS)),
        vocabulary=load_vocabulary(parts["sar"]),
    )


def checkpoint_folder(checkpoint_dir: str | os.PathLike | None) -> Path:
    """The checkpoint folder ``load`` reads (``MosaError`` when it is not a folder)."""
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, str | os.PathLike):
        raise MosaError(
            f"checkpoint_dir must be a folder path, got {checkpoint_dir!r}",
            "pass the path of a checkpoint folder, e.g. mosa.load('checkpoints')",
        )
    folder = Path(checkpoint_dir).expanduser() if checkpoint_dir else default_checkpoint_dir()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise MosaError(
            f"checkpoint folder {folder} {what}",
            "pass --checkpoint DIR (or set MOSA_CHECKPOINTS) to a folder with pipeline.json",
        )
    return folder


def frame_info(checkpoint_dir: str | os.PathLike | None = None) -> tuple[int, int, int, float]:
    """``(shortest, longest, unit, fps)`` in frames of what the pipeline in
    ``checkpoint_dir`` generates, read from its config files alone (no weights, no model):
    for checking a request before the seconds a ``load`` takes."""
    folder = checkpoint_folder(checkpoint_dir)
    spec = read_pipeline_spec(folder)
    parts = {k: _resolve(folder, spec[k]) for k in ("sar", "vae")}
    sar = config_from_dict(
        SARConfig, read_checkpoint_config(parts["sar"], "sar")["config"], parts["sar"] / CONFIG_FILE
    )
    vae = config_from_dict(
        VAEConfig, read_checkpoint_config(parts["vae"], "vae")["config"], parts["vae"] / CONFIG_FILE
    )
    unit = vae.downsample
    return sar.min_tokens * unit, sar.max_tokens * unit, unit, float(spec.get("fps", FPS))


def _check_stats(folder: Path, mean: np.ndarray, std: np.ndarray, dim: int) -> None:
    """The tokenizer's feature statistics must be ``(dim,)`` numbers, std above zero."""
    for name, arr in (("mean", mean), ("std", std)):
        if arr.shape != (dim,):
            raise MosaError(
                f"{folder / (name + '.npy')} has shape {arr.shape}, expected ({dim},): one "
                "value per feature",
                "re-copy the tokenizer checkpoint (mean.npy and std.npy come with it)",
            )
    if not (std > 0).all():
        raise MosaError(
            f"{folder / 'std.npy'} holds values <= 0", "re-copy the tokenizer checkpoint"
        )


def _resolve(folder: Path, rel: str) -> Path:
    p = Path(rel).expanduser()
    p = p if p.is_absolute() else folder / p
    if not p.exists() and not p.with_name(p.name + ".old").exists():
        raise MosaError(
            f"checkpoint {p} named in {folder / PIPELINE_FILE} does not exist",
            "copy the missing checkpoint there or fix pipeline.json",
        )
    return p


# --------------------------------------------------------------------------------------------


PASS_RATES_FILE = "action_pass_rates.json"  # in the sar folder: benchmarks/action_generation.py


def model_card(folder: str | os.PathLike) -> str:
    """A checkpoint folder's model card as text: what the pipeline was trained on (the
    ``trained_on`` note and ``corpora`` of ``pipeline.json``), the actions its vocabulary
    records with their training clips and seconds (``mosa.vocabulary``) and, where measured
    (``sar/action_pass_rates.json``), how often generated motion shows each action."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise MosaError(
            f"checkpoint folder {folder} does not exist",
            "pass --checkpoint DIR (or set MOSA_CHECKPOINTS) to a folder with pipeline.json",
        )
    spec = read_pipeline_spec(folder)
    lines = [f"checkpoint: {folder}", f"trained on: {spec.get('trained_on', 'not recorded')}"]
    lines += _corpora_lines(spec)
    sar_dir = _resolve(folder, spec["sar"])
    vocab = load_vocabulary(sar_dir)
    if vocab is None:
        lines.append("actions: not recorded (this checkpoint has no vocabulary)")
        return "\n".join(lines)
    rates = _pass_rates(sar_dir)
    head = "| action | training clips | seconds |" + (" generated pass rate |" if rates else "")
    lines += ["", head, "|---|---|---|" + ("---|" if rates else "")]
    for name, stats in sorted(vocab.counts.items(), key=lambda kv: -kv[1].clips):
        if stats.clips:
            rate = f" {rates.get(name, 'n/a')} |" if rates else ""
            lines.append(f"| {name} | {stats.clips} | {stats.seconds:.0f} |{rate}")
    never = sorted(n for n, st in vocab.counts.items() if st.clips == 0)
    if never:
        lines += ["", "never trained on: " + ", ".join(never)]
    if rates:
        lines.append(f"pass rates: {rates['_how']}")
    lines.append(f"prompts far from the training captions are warned about (threshold "
                 f"{vocab.threshold:.2f}, text encoder {vocab.encoder})")  # fmt: skip
    return "\n".join(lines)


def _corpora_lines(spec: dict[str, Any]) -> list[str]:
    """``pipeline.json``'s ``corpora`` (name, clips, licence) and ``citations`` as lines."""
    lines = []
    corpora = spec.get("corpora") or []
    if corpora:
        lines += ["", "corpora:"]
        for c in corpora:
            licence = c.get("licence", "licence not recorded")
            lines.append(f"  {c['name']}: {c.get('clips', '?')} clips; {licence}")
    lines += [f"  cite: {c}" for c in spec.get("citations") or []]
    return lines


def _pass_rates(sar_dir: Path) -> dict[str, str]:
    """``{action: "81% (26/32)"}`` from the sar folder's measured pass rates ({} when none);
    ``_how`` says how they were measured."""
    f = sar_dir / PASS_RATES_FILE
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
        rates = {r["action"]: f"{100 * r['pass_rate']:.0f}% ({r['passed']}/{r['motions']})"
                 for r in data["rows"] if r.get("pass_rate") is not None}  # fmt: skip
    except (ValueError, KeyError, TypeError):
        return {}  # a damaged optional file must not stop `mosa info`
    rates["_how"] = (f"kinematic rule per action (mosa.eval.actions), {data.get('seeds', '?')} "
                     "seeds per prompt, 2 user-phrased prompts per action")  # fmt: skip
    return rates
