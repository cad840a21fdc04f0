"""The user-facing ``Pipeline``: text encoder + SAR generator + tokenizer + length estimator.

    >>> import mosa
    >>> pipe = mosa.load()                               # checkpoints/ of the repository
    >>> [m] = pipe.generate("a person waves with the right hand", seconds=4, seed=1)
    >>> m.joints.shape, m.fps                            # ((80, 22, 3), 20.0)
    >>> m.save("wave.bvh")

``Pipeline.generate_requests`` takes a list of ``GenerationRequest`` instead, each motion
with its own text, length, seed and sampling options (what the web server batches). Loading a
checkpoint folder into a ``Pipeline`` is ``mosa.loading``; editing and sequences take a
``Pipeline`` (``mosa.edit``), the pipeline never imports them.
"""

from __future__ import annotations

import functools
import importlib
import numbers
import os
import random
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mosa import limits
from mosa.errors import MosaError
from mosa.models.length import LengthEstimator
from mosa.models.sar import SARTransformer
from mosa.models.text import TextEncoder
from mosa.models.vae import CAQVAE
from mosa.motion.skeleton import FPS
from mosa.requests import (
    DEFAULTS,
    EDIT_DEFAULTS,
    GenerationRequest,
    ResolvedRequest,
    check_count,
    check_length,
    check_number,
    check_seed,
    check_text,
    sampling_options,
)
from mosa.sampling import OnScale, TokenStrategy, broadcast, generate_tokens
from mosa.vocabulary import Vocabulary, VocabularyReport


@dataclass
class GeneratedMotion:
    """One generated motion: ``joints (T, 22, 3)`` metres Y-up, ``features (T, 263)``
    (de-normalised HumanML3D features), at ``fps``; ``tokens`` are the K scales' tokens."""

    text: str
    seed: int
    joints: np.ndarray
    features: np.ndarray
    fps: float = FPS
    tokens: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def seconds(self) -> float:
        return len(self.joints) / self.fps

    def save(
        self,
        path: str | os.PathLike,
        *,
        rig: Any = None,
        mapping: Any = None,
        foot_lock: bool = True,
    ) -> Path:
        """Write by extension: .bvh, .npy (joints), .mp4 or .gif (rendered, captioned).

        What is written is the export (``mosa.motion.io.prepare_generated``): one skeleton for
        the whole motion (constant bone lengths, so .npy and .bvh agree) with the feet locked
        where the generator predicts contact (``foot_lock=False``: as sampled). ``rig``: a
        character's BVH (path or ``BVHData``) to retarget onto (.bvh only; ``mapping`` for a
        rig whose joints are not recognised); None or ``"smpl"``: mosa's 22-joint skeleton.
        """
        from mosa.motion.io import save_generated

        return save_generated(
            path, self.joints, fps=self.fps, features=self.features, rig=rig,
            mapping=mapping, foot_lock=foot_lock, caption=self.text,
        )  # fmt: skip


class Pipeline:
    """Text encoder + SAR transformer + tokenizer (+ length estimator) on one device."""

    def __init__(
        self,
        sar: SARTransformer,
        vae: CAQVAE,
        mean: np.ndarray,
        std: np.ndarray,
        text_encoder: TextEncoder,
        length_model: LengthEstimator | None = None,
        *,
        defaults: dict[str, Any] | None = None,
        edit_defaults: dict[str, Any] | None = None,
        fps: float = FPS,
        vocabulary: Vocabulary | None = None,
    ):
        check_compatible(sar, vae, text_encoder, length_model)
        self.sar, self.vae = sar.eval(), vae.eval()
        self.text_encoder, self.length_model = text_encoder, length_model
        if length_model is not None:
            length_model.eval()
        self.mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        self.std = torch.as_tensor(np.asarray(std), dtype=torch.float32)
        self.defaults = {**DEFAULTS, **(defaults or {})}
        self.edit_defaults = {**self.defaults, **EDIT_DEFAULTS, **(edit_defaults or {})}
        self.fps = fps
        self.vocabulary = vocabulary  # what the generator was trained on (None: unknown)

    @property
    def device(self) -> torch.device:
        return next(self.sar.parameters()).device

    @property
    def unit(self) -> int:
        """Frames per latent token (the tokenizer's time downsampling)."""
        return self.vae.config.downsample

    @property
    def frame_range(self) -> tuple[int, int]:
        """Shortest and longest motion the generator supports, in frames."""
        return self.sar.config.min_tokens * self.unit, self.sar.config.max_tokens * self.unit

    def to(self, device: str | torch.device) -> Pipeline:
        for m in (self.sar, self.vae, self.text_encoder, self.length_model):
            if m is not None:
                m.to(device)
        return self

    # -- inputs --------------------------------------------------------------------------------
    def check_text(self, text: str, where: str = "prompt") -> str:
        return check_text(text, where)

    def vocabulary_reports(self, texts: Sequence[str]) -> list[VocabularyReport | None]:
        """How close each text is to what the generator was trained on (``mosa.vocabulary``);
        None per text when the checkpoint records no vocabulary. Without POS tags (no spaCy at
        generation time): the sentence similarity and the action keywords decide."""
        texts = list(texts)
        if self.vocabulary is None:
            return [None] * len(texts)
        same = self.text_encoder.spec == self.vocabulary.encoder
        return self.vocabulary.check_many(texts, self.text_encoder if same else None,
                                          [[] for _ in texts])  # fmt: skip

    def prompt_warnings(self, texts: Sequence[str]) -> list[str]:
        """One message per distinct text far from the training captions ("never trained on
        'cartwheel'; closest: ..."). A warning, never a refusal."""
        unique = list(dict.fromkeys(texts))
        reports = self.vocabulary_reports(unique)
        return [f"'{t}': {r.message}" for t, r in zip(unique, reports, strict=True)
                if r is not None and not r.known]  # fmt: skip

    def frames_for(self, seconds: float | None = None, frames: int | None = None) -> int | None:
        """Requested length -> latent token count, checked against the supported range."""
        return check_length(seconds, frames, self.frame_range, self.fps, self.unit)

    # -- generation ----------------------------------------------------------------------------
    def generate(
        self,
        texts: str | Sequence[str],
        seconds: float | Sequence[float] | None = None,
        frames: int | Sequence[int] | None = None,
        *,
        seed: int | None = None,
        num_samples: int = 1,
        cfg: float | None = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        strategy: TokenStrategy | None = None,
        on_scale: OnScale | None = None,
        batch_size: int = 32,
    ) -> list[GeneratedMotion]:
        """Generate ``num_samples`` motions per text; returns them text by text.

        ``seconds``/``frames``: one value or one per text; None asks the length estimator.
        ``seed``: motion i of the call uses seed ``seed + i`` (random seeds when None; each
        motion records its seed, and a motion depends only on its own seed, text and length,
        not on the rest of the batch). ``cfg``/``temperature``/``top_k``/``top_p`` default to
        the checkpoint's ``pipeline.json`` defaults.
        """
        sampling = {"cfg": cfg, "temperature": temperature, "top_k": top_k, "top_p": top_p}
        requests = self._requests(texts, seconds, frames, seed, num_samples, sampling)
        for message in self.prompt_warnings([r.text for r in requests]):
            warnings.warn(message, PromptWarning, stacklevel=2)
        return self.generate_requests(
            requests, strategy=strategy, on_scale=on_scale, batch_size=batch_size
        )

    @torch.inference_mode()
    def generate_requests(
        self,
        requests: Sequence[GenerationRequest],
        *,
        strategy: TokenStrategy | None = None,
        on_scale: OnScale | None = None,
        batch_size: int = 32,
    ) -> list[GeneratedMotion]:
        """One motion per request, in order; each request has its own text, length, seed and
        sampling options (e.g. a server's micro-batch of users' requests).

        Up to ``batch_size`` requests share each generator pass; a motion depends only on its
        own request, not on the rest of the batch. ``strategy.begin`` gets row indices into
        ``requests``; ``on_scale(k, tokens)`` sees the current pass's tokens after scale k.
        """
        step = _batch_size(batch_size)
        jobs = self.resolve(requests)
        out: list[GeneratedMotion] = []
        for start in range(0, len(jobs), step):
            rows = list(range(start, min(start + step, len(jobs))))
            out.extend(self._generate_batch([jobs[i] for i in rows], rows, strategy, on_scale))
        return out

    def _requests(
        self, texts, seconds, frames, seed, num_samples, sampling: dict[str, Any]
    ) -> list[GenerationRequest]:
        """``generate``'s arguments as requests: texts checked, seeds numbered ``seed + i``."""
        if isinstance(texts, str):
            texts = [texts]
        elif isinstance(texts, bytes | bytearray) or not isinstance(texts, Iterable):
            check_text(texts)  # says what it is instead
        texts = list(texts)
        if not texts:
            raise MosaError("no prompt given", "pass at least one text")
        num_samples = check_count(num_samples, "num_samples")
        total = len(texts) * num_samples
        limits.check("MOSA_MAX_MOTIONS", total, f"{total:,} motions asked for")
        texts = [
            self.check_text(t, f"prompt {i + 1}" if len(texts) > 1 else "prompt")
            for i, t in enumerate(texts)
        ]
        secs = _broadcast(seconds, len(texts), "seconds")
        frms = _broadcast(frames, len(texts), "frames")
        base = random.SystemRandom().randrange(2**31) if seed is None else check_seed(seed, total)
        requests: list[GenerationRequest] = []
        for text, s, f in zip(texts, secs, frms, strict=True):
            for _ in range(num_samples):
                seed_i = base + len(requests)
                requests.append(GenerationRequest(text, s, f, seed=seed_i, **sampling))
        return requests

    def resolve(self, requests: Sequence[GenerationRequest]) -> list[ResolvedRequest]:
        """Check the requests and fill in what they leave open (defaults, seeds, lengths);
        raises ``MosaError`` naming the bad request (a server checks requests with it before
        batching them)."""
        if not requests:
            raise MosaError("no request given", "pass at least one GenerationRequest")
        limits.check("MOSA_MAX_MOTIONS", len(requests), f"{len(requests):,} requests")
        jobs = []
        for i, r in enumerate(requests):
            where = "prompt" if len(requests) == 1 else f"request {i + 1}"
            if not isinstance(r, GenerationRequest):
                raise MosaError(
                    f"{where} is a {type(r).__name__}", "pass GenerationRequest objects"
                )
            text = self.check_text(r.text, where)
            n = self.frames_for(r.seconds, r.frames)
            seed = (
                random.SystemRandom().randrange(2**31)
                if r.seed is None
                else check_seed(r.seed, where="seed" if len(requests) == 1 else f"{where}: seed")
            )
            opts = self._options(r.cfg, r.temperature, r.top_k, r.top_p)
            jobs.append(ResolvedRequest(text, n, seed, **opts))
        if any(j.n is None for j in jobs) and self.length_model is None:
            raise MosaError(
                "no motion length given and the checkpoint has no length estimator",
                "pass seconds=/frames= (CLI: --seconds or --frames)",
            )
        return jobs

    def _options(self, cfg, temperature, top_k, top_p) -> dict[str, Any]:
        return sampling_options(self.defaults, cfg, temperature, top_k, top_p)

    def _generate_batch(
        self,
        jobs: list[ResolvedRequest],
        rows: list[int],
        strategy: TokenStrategy | None,
        on_scale: OnScale | None,
    ) -> list[GeneratedMotion]:
        dev = self.device
        feats, mask, pooled = self.text_encoder.encode_with_pooled([j.text for j in jobs])
        gens = [torch.Generator(device=dev).manual_seed(j.seed) for j in jobs]
        if any(j.n is None for j in jobs):
            # the length draw has its own generator so it does not shift the token draws
            lgens = [torch.Generator(device=dev).manual_seed(j.seed + 7919) for j in jobs]
            est = self.length_model.predict(pooled.to(dev), generators=lgens).cpu()
            lo, hi = self.sar.config.min_tokens, self.sar.config.max_tokens
            for i, j in enumerate(jobs):
                if j.n is None:
                    j.n = int(est[i].clamp(lo, hi))
        n = torch.tensor([j.n for j in jobs], dtype=torch.long)
        cond = self.sar.condition(feats.to(dev), mask.to(dev), pooled.to(dev), n.to(dev))
        tokens, f_hat = generate_tokens(
            self.sar,
            self.vae.quantizer,
            cond,
            cfg=[j.cfg for j in jobs],
            temperature=[j.temperature for j in jobs],
            top_k=[j.top_k for j in jobs],
            top_p=[j.top_p for j in jobs],
            generators=gens,
            strategy=strategy,
            rows=rows,
            on_scale=on_scale,
        )
        features = self.decode_latent(f_hat, n)
        out = []
        for i, j in enumerate(jobs):
            f = features[i]
            toks = [t[i][t[i] >= 0].cpu().numpy() for t in tokens]
            out.append(GeneratedMotion(j.text, j.seed, _joints(f), f, self.fps, toks))
        return out

    @torch.inference_mode()
    def decode_latent(self, f_hat: torch.Tensor, n: torch.Tensor) -> list[np.ndarray]:
        """Quantized latent ``(B, n_max, C)`` -> de-normalised features, one ``(T_i, 263)`` each."""
        frames = n.cpu() * self.unit
        x = self.vae.decode_latent(f_hat.to(self.device), frames.to(self.device)).float().cpu()
        x = x * self.std + self.mean
        return [x[i, : int(t)].numpy() for i, t in enumerate(frames)]

    @torch.inference_mode()
    def decode_tokens(self, tokens: Sequence[torch.Tensor], n: torch.Tensor) -> list[np.ndarray]:
        """Features from the first ``len(tokens)`` scales (coarse-to-fine previews)."""
        f_hat = self.vae.quantizer.decode([t.to(self.device) for t in tokens], n.cpu())
        return self.decode_latent(f_hat, n)

    def sequence(self, texts: Sequence[str], seconds=None, seed: int | None = None, **kw):
        """One continuous take of ``texts`` in order, each part a continuation of the last:
        ``mosa.edit.sequence(self, texts, seconds, seed, **kw)`` (a ``SequenceMotion`` with
        the parts' spans). The pipeline does not depend on editing: the function is resolved
        by name at call time."""
        return importlib.import_module("mosa.edit").sequence(self, texts, seconds, seed, **kw)

    def __getattr__(self, name: str):
        """Deprecated (0.2): ``pipe.extend(...)`` & co. are ``mosa.edit.extend(pipe, ...)``.

        The pipeline does not depend on editing (editing depends on the pipeline); the old
        methods resolve the edit function by name at call time, with a warning."""
        if name not in _MOVED_TO_EDIT:
            raise AttributeError(f"'Pipeline' object has no attribute {name!r}")
        warnings.warn(
            f"Pipeline.{name}(...) moved to mosa.edit.{name}(pipe, ...)",
            DeprecationWarning,
            stacklevel=2,
        )
        function = getattr(importlib.import_module("mosa.edit"), name)
        return functools.partial(function, self)


class PromptWarning(UserWarning):
    """A prompt is far from anything the generator was trained on (``Pipeline.prompt_warnings``)."""


_MOVED_TO_EDIT = frozenset({"edit_span", "extend", "lead_in", "inbetween", "outpaint"})


def _broadcast(value: Any, count: int, name: str) -> list:
    """``sampling.broadcast``, with text and other non-numbers named instead of split up."""
    if isinstance(value, str | bytes | bytearray) or not (
        value is None or isinstance(value, numbers.Real | Iterable | torch.Tensor)
    ):
        check_number(value, name)
    return broadcast(value, count, name)


def _batch_size(batch_size: Any) -> int:
    """``batch_size`` checked: a whole number 1..MOSA_MAX_BATCH_SIZE."""
    step = check_count(batch_size, "batch_size")
    limits.check("MOSA_MAX_BATCH_SIZE", step, f"batch size {step:,}")
    return step


def _joints(features: np.ndarray) -> np.ndarray:
    from mosa.motion.features import recover_joints

    return np.asarray(recover_joints(features), dtype=np.float32)


def check_compatible(
    sar: SARTransformer,
    vae: CAQVAE,
    text_encoder: TextEncoder | None = None,
    length_model: LengthEstimator | None = None,
) -> None:
    """Raise ``MosaError`` unless the parts of a pipeline were made for each other."""
    s, v = sar.config, vae.config
    if v.quantizer != "mtps":
        raise MosaError(
            f"the tokenizer uses the '{v.quantizer}' quantizer; the generator needs 'mtps'",
            "pass the multi-scale tokenizer the generator was trained with",
        )
    pairs = [("codebook size", s.codebook_size, v.codebook_size),
             ("code dim", s.code_dim, v.code_dim),
             ("number of scales", s.num_scales, v.num_scales)]  # fmt: skip
    for what, a, b in pairs:
        if a != b:
            raise MosaError(
                f"tokenizer/generator mismatch: the generator expects {what} {a}, "
                f"the tokenizer has {b}",
                "use the tokenizer (VAE) the generator was trained with (see pipeline.json)",
            )
    if text_encoder is not None and text_encoder.dim != s.text_dim:
        raise MosaError(
            f"text encoder '{text_encoder.spec}' gives {text_encoder.dim}-d features, the "
            f"generator expects {s.text_dim}-d ('{s.text_encoder}')",
            "use the text encoder the generator was trained with",
        )
    if length_model is not None and length_model.config.text_dim != s.text_dim:
        raise MosaError(
            f"length estimator expects {length_model.config.text_dim}-d text, the generator "
            f"{s.text_dim}-d",
            "train the length estimator with the generator's text encoder",
        )
