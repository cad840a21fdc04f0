"""What the server asks of the model: validated jobs in, motions out.

``Engine`` checks each request on the event loop (cheap, so a bad request never reaches the
model and never fails a batch), runs a whole micro-batch of generate requests as one
``Pipeline.generate_requests`` call on the worker thread (each motion with its own text,
length, seed and cfg), edits, continuations and sequences one at a time, and turns motions
into JSON-ready samples (joints, BVH text, optional coarse-to-fine previews) on a helper
thread.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mosa import limits
from mosa.edit import Take, edit_on_joints, edit_span, extend
from mosa.edit.on_rig import take_scale
from mosa.edit.sequences import SequencePlan, check_sequence, sequence
from mosa.errors import MosaError
from mosa.motion.skeleton import JOINT_NAMES, KINEMATIC_CHAINS, PARENTS
from mosa.pipeline import GeneratedMotion, Pipeline
from mosa.requests import (
    MAX_TEXT_CHARS,
    GenerationRequest,
    check_number,
    check_seed,
    sampling_options,
)

MAX_SAMPLES = 8
# parts of one /api/sequence request: each is a generator call on the one worker thread, so a
# request's cost is bounded here (the library's own bound, MOSA_MAX_MOTIONS, is far higher)
MAX_SEQUENCE_PARTS = 64
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
class ExtendJob:
    """One validated ``/api/extend`` request: ``seconds`` to generate after ``joints``."""

    text: str
    joints: np.ndarray
    seconds: float
    seed: int


@dataclass
class SequenceJob:
    """One validated ``/api/sequence`` request (``cfg`` None: the checkpoint's defaults)."""

    plan: SequencePlan
    cfg: float | None = None


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
        arr = check_joints(joints, int(limits.get("MOSA_MAX_FRAMES")))  # any length: the
        # generator sees the span plus a few seconds of context
        if not (np.isfinite(start) and np.isfinite(end)):
            raise MosaError("span start/end must be finite numbers", "pick start < end")
        return EditJob(text, arr, float(start), float(end), _seed(seed))

    def extend_job(
        self, joints: Any, text: str, seconds: float, seed: int | None = None
    ) -> ExtendJob:
        """A continuation of any length of motion (the generator sees its last seconds)."""
        text = self.pipe.check_text(text)
        arr = check_joints(joints, int(limits.get("MOSA_MAX_FRAMES")))
        s = check_number(seconds, "seconds")
        hi = self.pipe.frame_range[1] / self.pipe.fps
        if not 0 < s <= hi:
            raise MosaError(
                f"seconds must be more than 0 and at most {hi:g}, got {s:g}",
                f"generate at most {hi:g} s at once (a sequence makes longer takes)",
            )
        return ExtendJob(text, arr, s, _seed(seed))

    def sequence_job(
        self,
        texts: Sequence[str],
        seconds: Sequence[float] | None = None,
        seed: int | None = None,
        cfg: float | None = None,
    ) -> SequenceJob:
        if isinstance(texts, list | tuple) and len(texts) > MAX_SEQUENCE_PARTS:
            raise MosaError(
                f"{len(texts)} parts, the server makes at most {MAX_SEQUENCE_PARTS} per request",
                "use fewer, longer parts, or run `mosa sequence` locally",
            )
        pipe = self.pipe
        plan = check_sequence(texts, seconds, seed, frame_range=pipe.frame_range, fps=pipe.fps)
        sampling_options(pipe.edit_defaults, cfg, None, None, None)  # cfg in range
        return SequenceJob(plan, cfg)

    # -- the model (worker thread) -----------------------------------------------------------
    def process(self, items: Sequence[Any]) -> list[Result | Exception]:
        """Run one micro-batch: all generate jobs together (whatever their cfg), the others
        (edits, continuations, sequences) one by one."""
        out: dict[int, Result | Exception] = {}
        gen = [i for i, item in enumerate(items) if isinstance(item, GenerateJob)]
        for i, item in enumerate(items):
            if not isinstance(item, GenerateJob):
                out[i] = _guard(lambda item=item: self._alone(item))
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

    def _alone(self, job: EditJob | ExtendJob | SequenceJob) -> Result:
        pipe = self.pipe
        if isinstance(job, EditJob):
            out = _on_source(
                edit_span(pipe, job.joints, job.text, job.start, job.end, seed=job.seed), job.joints
            )
        elif isinstance(job, ExtendJob):
            out = _on_source(
                extend(pipe, job.joints, job.text, job.seconds, seed=job.seed), job.joints
            )
        elif isinstance(job, SequenceJob):
            p = job.plan
            out = sequence(pipe, p.texts, _seconds(p, pipe.fps), p.seed, cfg=job.cfg)
        else:
            raise TypeError(f"unknown job {type(job).__name__}")
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
            "extend": True,
            "sequence": True,
            "max_sequence_parts": MAX_SEQUENCE_PARTS,
        }


def check_joints(joints: Any, max_frames: int) -> np.ndarray:
    """``joints`` as a finite ``(T, 22, 3)`` float32 array of 2-``max_frames`` frames."""
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
    if not 2 <= len(arr) <= max_frames or not np.isfinite(arr).all():
        raise MosaError(
            f"joints have {len(arr)} frames (need 2-{max_frames}, finite values)",
            "send the joints of a generated motion",
        )
    return arr


def _seed(seed: int | None) -> int:
    return random.SystemRandom().randrange(RANDOM_SEEDS) if seed is None else check_seed(seed)


def _seconds(plan: SequencePlan, fps: float) -> list[float] | None:
    """The plan's part lengths as seconds (exactly its frames again)."""
    return None if plan.frames is None else [f / fps for f in plan.frames]


def _on_source(m: GeneratedMotion, source: np.ndarray) -> GeneratedMotion:
    """An edit of the joints a client sent, given back on them: kept frames are the sent
    frames exactly, generated ones the edit's poses at the source's bone lengths
    (``mosa.edit.edit_on_joints``)."""
    src = np.asarray(source, np.float64)
    joints = edit_on_joints(m, [Take(src, take_scale(src))])
    return dataclasses.replace(m, joints=joints.astype(np.float32))


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
    """The BVH file of ``joints (T, 22, 3)`` as text (what ``save_bvh`` writes)."""
    from mosa.motion.bvh import format_bvh, skeleton_bvh

    return format_bvh(skeleton_bvh(joints, fps))


def parse_rig(text: str | None, mapping: dict[str, str | None] | None = None) -> Rig | None:
    """A character's skeleton sent as BVH text (``rig_bvh``), checked: parsed and mapped onto
    the 22 joints now, so a rig that cannot be used is a 422 before any generation."""
    if text is None:
        return None
    from mosa.motion.bvh import parse_bvh
    from mosa.motion.rig_out import rig_frame

    limits.check("MOSA_MAX_FILE_MB", len(text.encode()) / 2**20, "the rig_bvh text")
    bvh = parse_bvh(text, "rig_bvh")
    rig_frame(bvh, mapping)  # MosaError naming the fix, as `mosa generate --rig` checks it
    return Rig(bvh, mapping)


@dataclass
class Rig:
    """A character to write the BVH on (``motion.rig_out.retarget_to_rig``)."""

    bvh: Any  # BVHData
    mapping: dict[str, str | None] | None = None


def rig_bvh_text(m: GeneratedMotion, rig: Rig, foot_lock: bool = True) -> str:
    """The BVH text of ``m``'s export on ``rig``'s skeleton (fitted, feet locked)."""
    from mosa.motion.bvh import format_bvh
    from mosa.motion.io import prepare_generated
    from mosa.motion.rig_out import retarget_to_rig

    joints = prepare_generated(m.joints, m.features, foot_lock=foot_lock)
    return format_bvh(retarget_to_rig(joints, rig.bvh, m.fps, mapping=rig.mapping))


def sample_json(
    m: GeneratedMotion,
    preview: np.ndarray | None = None,
    bvh: bool = True,
    rig: Rig | None = None,
) -> dict[str, Any]:
    """One motion as the API returns it (joints in metres, 0.1 mm resolution); with ``rig``,
    its BVH is on that character's skeleton."""
    out: dict[str, Any] = {
        "fps": m.fps,
        "frames": len(m.joints),
        "seconds": m.seconds,
        "seed": m.seed,
        "joints": np.round(m.joints.astype(np.float64), 4).tolist(),
    }
    if bvh:
        out["bvh"] = bvh_text(m.joints, m.fps) if rig is None else rig_bvh_text(m, rig)
    if preview is not None:
        out["previews"] = np.round(preview.astype(np.float64), 3).tolist()
    return out


def result_json(
    result: Result, text: str, bvh: bool = True, rig: Rig | None = None
) -> dict[str, Any]:
    pairs = zip(result.motions, result.previews, strict=True)
    samples = [sample_json(m, p, bvh, rig) for m, p in pairs]
    return {"text": text, "samples": samples}
