"""What the server asks of the model: validated jobs in, motions out.

``Engine`` checks each request on the event loop (cheap, so a bad request never reaches the
model and never fails a batch), runs a whole micro-batch of generate requests as one
``Pipeline.generate_requests`` call on the worker thread (each motion with its own text,
length, seed and cfg), and turns motions into JSON-ready samples (joints, BVH text, optional
coarse-to-fine previews) on a helper thread.
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

from mosa.edit import edit_span
from mosa.errors import MosaError
from mosa.motion.skeleton import JOINT_NAMES, KINEMATIC_CHAINS, PARENTS
from mosa.pipeline import GeneratedMotion, Pipeline
from mosa.requests import MAX_TEXT_CHARS, GenerationRequest, check_seed

MAX_SAMPLES = 8
# seeds a client may send follow the library's rule (``mosa.requests.check_seed``: whole
# numbers 0..MAX_SEED, with room for seed + i of each sample); seeds drawn for a request
# without one stay below RANDOM_SEEDS, short enough to read back and type in
RANDOM_SEEDS = 2**31
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


class Engine:
    """A loaded ``Pipeline`` plus the request checks and the batch runner.

    ``max_rows``: motions per generator call (a batch of 16 requests x 8 samples is split
    into calls of at most this many rows).
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
        if not 1 <= int(num_samples) <= MAX_SAMPLES:
            raise MosaError(
                f"num_samples must be 1-{MAX_SAMPLES}, got {num_samples}",
                "ask for fewer samples per request",
            )
        if seed is not None:
            seed = check_seed(seed, int(num_samples))
        # text, length, cfg and the seed draw: the pipeline's own checks and defaults
        [r] = self.pipe.resolve([GenerationRequest(text, seconds=seconds, seed=seed, cfg=cfg)])
        return GenerateJob(r.text, r.n, r.seed, int(num_samples), r.cfg, bool(previews))

    def edit_job(
        self, joints: Any, text: str, start: float, end: float, seed: int | None = None
    ) -> EditJob:
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
        seed = random.SystemRandom().randrange(RANDOM_SEEDS) if seed is None else check_seed(seed)
        return EditJob(text, arr, float(start), float(end), seed)

    # -- the model (worker thread) -----------------------------------------------------------
    def process(self, items: Sequence[GenerateJob | EditJob]) -> list[Result | Exception]:
        """Run one micro-batch: all generate jobs together (whatever their cfg), edits alone."""
        out: dict[int, Result | Exception] = {}
        gen = [i for i, item in enumerate(items) if isinstance(item, GenerateJob)]
        for i, item in enumerate(items):
            if isinstance(item, EditJob):
                out[i] = _guard(lambda item=item: self._edit(item))
        if gen:
            results = _guard(lambda: self._generate([items[i] for i in gen]))
            for k, i in enumerate(gen):
                out[i] = results if isinstance(results, Exception) else results[k]
        return [out[i] for i in range(len(items))]

    def _generate(self, jobs: list[GenerateJob]) -> list[Result]:
        rows: list[tuple[int, GenerationRequest]] = []  # (job index, one motion)
        for i, j in enumerate(jobs):
            frames = None if j.n is None else j.n * self.pipe.unit
            for s in range(j.num_samples):
                rows.append(
                    (i, GenerationRequest(j.text, frames=frames, seed=j.seed + s, cfg=j.cfg))
                )
        motions: list[GeneratedMotion] = []
        for start in range(0, len(rows), self.max_rows):
            chunk = [r for _, r in rows[start : start + self.max_rows]]
            motions += self.pipe.generate_requests(chunk, batch_size=self.max_rows)
            self.generator_calls += 1
        results = [Result([], []) for _ in jobs]
        for (i, _), m in zip(rows, motions, strict=True):
            results[i].motions.append(m)
            results[i].previews.append(scale_previews(self.pipe, m) if jobs[i].previews else None)
        return results

    def _edit(self, job: EditJob) -> Result:
        out = edit_span(self.pipe, job.joints, job.text, job.start, job.end, seed=job.seed)
        return Result([out], [None])

    def vocabulary(self, text: str) -> dict[str, Any] | None:
        """How close ``text`` is to the training captions (``Pipeline.vocabulary_reports``):
        ``known``, ``score``, ``nearest`` actions and a ``message`` when it is far; None when
        the checkpoint records no vocabulary."""
        [report] = self.pipe.vocabulary_reports([text])
        return None if report is None else report.to_dict()

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
            "edit_defaults": dict(pipe.edit_defaults),
            "max_text_chars": MAX_TEXT_CHARS,
            "max_samples": MAX_SAMPLES,
            "edit": True,
        }


def skeleton_info() -> dict[str, Any]:
    """Joint names, parents and kinematic chains, for the page's skeleton drawing."""
    return {"names": list(JOINT_NAMES), "parents": list(PARENTS), "chains": KINEMATIC_CHAINS}


def scale_previews(pipe: Pipeline, motion: GeneratedMotion) -> np.ndarray:
    """Joints ``(K, T, 22, 3)`` decoded from the first 1, 2, ..., K scales of ``motion``'s
    tokens (coarse to fine; the last is the motion itself)."""
    from mosa.motion.features import recover_joints

    n = torch.tensor([len(motion.joints) // pipe.unit])
    dev = pipe.device
    tokens = [torch.as_tensor(t, dtype=torch.long, device=dev)[None] for t in motion.tokens]
    with torch.inference_mode():
        quantizer = pipe.vae.quantizer
        prefixes = [quantizer.decode(tokens[: k + 1], n) for k in range(len(tokens))]
        feats = pipe.decode_latent(torch.cat(prefixes), n.repeat(len(tokens)))
    return np.stack([np.asarray(recover_joints(f), dtype=np.float32) for f in feats])


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
