"""What the server asks of the model: validated jobs in, motions out.

``Engine`` checks each request on the event loop (cheap, so a bad request never reaches the
model and never fails a batch), runs a whole micro-batch of generate requests as one generator
call on the worker thread, and turns motions into JSON-ready samples (joints, BVH text,
optional coarse-to-fine previews) on a helper thread.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mosa.errors import MosaError
from mosa.generate import MAX_TEXT_CHARS, GeneratedMotion, Pipeline
from mosa.motion.skeleton import JOINT_NAMES, KINEMATIC_CHAINS, PARENTS

MAX_SAMPLES = 8
MAX_SEED = 2**31 - 1
# what the shipped model (trained on Bandai-Namco) knows: contents x styles
EXAMPLES = (
    "a person walks forward happily",
    "someone waves with their right hand",
    "an old man shuffles forward slowly",
    "a person bows politely",
    "a tired person runs",
    "a man raises both hands above his head",
    "a person walks backward",
    "a proud person walks and turns left",
)


@dataclass
class GenerateJob:
    """One validated ``/api/generate`` request: ``n`` latent tokens (None: estimate)."""

    text: str
    n: int | None
    seed: int
    num_samples: int
    cfg: float
    previews: bool = False


@dataclass
class EditJob:
    """One validated ``/api/edit`` request: ``joints (T, 22, 3)``, span in seconds."""

    text: str
    joints: np.ndarray
    start: float
    end: float
    seed: int


@dataclass
class Result:
    """The motions of one request; ``previews[i]``: per-scale joints ``(K, T, 22, 3)`` or None."""

    motions: list[GeneratedMotion]
    previews: list[np.ndarray | None]


class EditUnavailable(Exception):
    """``mosa.edit.edit_span`` is not there (yet)."""


class Engine:
    """A loaded ``Pipeline`` plus the request checks and the batch runner.

    ``max_rows``: motions per generator forward pass (a batch of 16 requests x 8 samples is
    split into passes of at most this many rows).
    """

    def __init__(self, pipe: Pipeline, *, max_rows: int = 64, checkpoint: str | None = None):
        self.pipe = pipe
        self.max_rows = max(1, int(max_rows))
        self.checkpoint = checkpoint
        self.generator_calls = 0

    # -- checks (event loop) -----------------------------------------------------------------
    def generate_job(
        self,
        text: str,
        seconds: float | None = None,
        seed: int | None = None,
        num_samples: int = 1,
        cfg: float | None = None,
        previews: bool = False,
    ) -> GenerateJob:
        pipe = self.pipe
        text = pipe.check_text(text)
        if not 1 <= int(num_samples) <= MAX_SAMPLES:
            raise MosaError(
                f"num_samples must be 1-{MAX_SAMPLES}, got {num_samples}",
                "ask for fewer samples per request",
            )
        n = pipe.frames_for(seconds=seconds)
        if n is None and pipe.length_model is None:
            raise MosaError("no length given and the model has no length estimator", "pass seconds")
        cfg = float(pipe.defaults["cfg"] if cfg is None else cfg)
        if not np.isfinite(cfg) or cfg < 0:
            raise MosaError(f"cfg must be >= 0, got {cfg}", "use e.g. 3 (1 = no guidance)")
        seed = random.SystemRandom().randrange(MAX_SEED) if seed is None else int(seed)
        if not 0 <= seed <= MAX_SEED:
            raise MosaError(f"seed must be 0-{MAX_SEED}, got {seed}", "pick a smaller seed")
        return GenerateJob(text, n, seed, int(num_samples), cfg, bool(previews))

    def edit_job(
        self, joints: Any, text: str, start: float, end: float, seed: int | None = None
    ) -> EditJob:
        if _edit_function() is None:
            raise EditUnavailable
        text = self.pipe.check_text(text)
        try:
            arr = np.asarray(joints, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise MosaError(
                f"joints is not a numeric array: {exc}", "send the joints of a generated motion"
            ) from exc
        if arr.ndim != 3 or arr.shape[1:] != (len(JOINT_NAMES), 3):
            raise MosaError(
                f"joints must have shape (T, {len(JOINT_NAMES)}, 3), got {arr.shape}",
                "send the joints of a generated motion",
            )
        hi = self.pipe.frame_range[1] + 1
        if not 2 <= len(arr) <= hi or not np.isfinite(arr).all():
            raise MosaError(
                f"joints have {len(arr)} frames (need 2-{hi}, finite values)",
                "send the joints of a generated motion",
            )
        if not (np.isfinite(start) and np.isfinite(end)):
            raise MosaError("span start/end must be finite numbers", "pick start < end")
        seed = random.SystemRandom().randrange(MAX_SEED) if seed is None else int(seed)
        return EditJob(text, arr, float(start), float(end), seed)

    # -- the model (worker thread) -----------------------------------------------------------
    def process(self, items: Sequence[GenerateJob | EditJob]) -> list[Result | Exception]:
        """Run one micro-batch: all generate jobs with the same cfg in one generator call."""
        out: dict[int, Result | Exception] = {}
        groups: dict[float, list[int]] = {}
        for i, item in enumerate(items):
            if isinstance(item, EditJob):
                out[i] = _guard(lambda item=item: self._edit(item))
            else:
                groups.setdefault(item.cfg, []).append(i)
        for cfg, idx in groups.items():
            results = _guard(lambda idx=idx, cfg=cfg: self._generate([items[i] for i in idx], cfg))
            for k, i in enumerate(idx):
                out[i] = results if isinstance(results, Exception) else results[k]
        return [out[i] for i in range(len(items))]

    def _generate(self, reqs: list[GenerateJob], cfg: float) -> list[Result]:
        rows = [
            {"text": r.text, "n": r.n, "seed": r.seed + s, "req": i}
            for i, r in enumerate(reqs)
            for s in range(r.num_samples)
        ]
        motions: list[GeneratedMotion] = []
        previews: list[np.ndarray | None] = []
        for start in range(0, len(rows), self.max_rows):
            chunk = rows[start : start + self.max_rows]
            want = [k for k, row in enumerate(chunk) if reqs[row["req"]].previews]
            jobs = [{"text": r["text"], "n": r["n"], "seed": r["seed"]} for r in chunk]
            collect = _PreviewCollector(self.pipe, jobs, want)
            motions += run_generator(self.pipe, jobs, cfg, collect if want else None)
            self.generator_calls += 1
            previews += collect.result()
        results = [Result([], []) for _ in reqs]
        for row, m, p in zip(rows, motions, previews, strict=True):
            results[row["req"]].motions.append(m)
            results[row["req"]].previews.append(p)
        return results

    def _edit(self, job: EditJob) -> Result:
        fn = _edit_function()
        if fn is None:
            raise EditUnavailable
        out = fn(self.pipe, job.joints, job.text, job.start, job.end, seed=job.seed)
        if isinstance(out, list | tuple):
            out = out[0]
        if not isinstance(out, GeneratedMotion):
            joints = np.asarray(out, dtype=np.float32)
            out = GeneratedMotion(job.text, job.seed, joints, np.zeros((len(joints), 0)))
        return Result([out], [None])

    # -- info ----------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        pipe = self.pipe
        lo, hi = pipe.frame_range
        return {
            "checkpoint": self.checkpoint,
            "device": str(pipe.device),
            "fps": pipe.fps,
            "min_seconds": lo / pipe.fps,
            "max_seconds": hi / pipe.fps,
            "num_scales": pipe.sar.config.num_scales,
            "length_estimator": pipe.length_model is not None,
            "defaults": dict(pipe.defaults),
            "max_text_chars": MAX_TEXT_CHARS,
            "max_samples": MAX_SAMPLES,
            "edit": _edit_function() is not None,
        }


def skeleton_info() -> dict[str, Any]:
    """Joint names, parents and kinematic chains, for the page's skeleton drawing."""
    return {"names": list(JOINT_NAMES), "parents": list(PARENTS), "chains": KINEMATIC_CHAINS}


def run_generator(
    pipe: Pipeline, jobs: list[dict], cfg: float, on_scale: Callable | None = None
) -> list[GeneratedMotion]:
    """One generator pass over ``jobs`` (``{"text", "n", "seed"}`` each, own seed per motion).

    ``Pipeline.generate`` numbers seeds ``seed + i`` within one call, so requests with their
    own seeds share a pass through the pipeline's per-job batch runner instead.
    """
    opts = pipe._options(cfg, None, None, None)
    return pipe._generate_batch(jobs, list(range(len(jobs))), opts, None, on_scale)


class _PreviewCollector:
    """``on_scale`` hook: joints decoded from the first k+1 scales for the wanted rows."""

    def __init__(self, pipe: Pipeline, jobs: list[dict], want: list[int]):
        self.pipe, self.jobs, self.want = pipe, jobs, want
        self.frames: dict[int, list[np.ndarray]] = {k: [] for k in want}

    def __call__(self, k: int, tokens: list[torch.Tensor]) -> None:
        from mosa.motion.features import recover_joints

        sel = torch.as_tensor(self.want, dtype=torch.long)
        # the length estimate has been written into the job dicts by now
        n = torch.as_tensor([self.jobs[i]["n"] for i in self.want], dtype=torch.long)
        feats = self.pipe.decode_tokens([t[sel.to(t.device)] for t in tokens], n)
        for row, f in zip(self.want, feats, strict=True):
            self.frames[row].append(np.asarray(recover_joints(f), dtype=np.float32))

    def result(self) -> list[np.ndarray | None]:
        return [
            np.stack(self.frames[i]) if self.frames.get(i) else None for i in range(len(self.jobs))
        ]


def _edit_function() -> Callable | None:
    try:
        from mosa.edit import edit_span
    except ImportError:
        return None
    return edit_span


def _guard(fn: Callable) -> Any:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - one failing group must not fail the others
        return exc


# -- JSON ----------------------------------------------------------------------------------------


def bvh_text(joints: np.ndarray, fps: float) -> str:
    """The BVH file of ``joints (T, 22, 3)`` as text."""
    from mosa.motion.bvh import save_bvh

    with tempfile.TemporaryDirectory(prefix="mosa-serve-") as tmp:
        path = Path(tmp) / "motion.bvh"
        save_bvh(path, joints, fps)
        return path.read_text()


def sample_json(
    m: GeneratedMotion, preview: np.ndarray | None = None, bvh: bool = True
) -> dict[str, Any]:
    """One motion as the API returns it (joints in metres, 0.1 mm resolution)."""
    out: dict[str, Any] = {
        "fps": m.fps,
        "frames": len(m.joints),
        "seconds": m.seconds,
        "seed": m.seed,
        "joints": np.round(m.joints.astype(np.float64), 4).tolist(),
    }
    if bvh:
        out["bvh"] = bvh_text(m.joints, m.fps)
    if preview is not None:
        out["previews"] = np.round(preview.astype(np.float64), 3).tolist()
    return out


def result_json(result: Result, text: str, bvh: bool = True) -> dict[str, Any]:
    pairs = zip(result.motions, result.previews, strict=True)
    samples = [sample_json(m, p, bvh) for m, p in pairs]
    return {"text": text, "samples": samples}
