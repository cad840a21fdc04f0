"""Text to motion: the generation loop over scales and the user-facing ``Pipeline``.

``generate_tokens`` is the one loop over the K scales. At each scale it runs the SAR
transformer on the new scale only (KV cache), applies classifier-free guidance, filters and
samples the logits with one ``torch.Generator`` per sample, and lets a ``TokenStrategy`` decide
the final tokens (plain sampling keeps the draws; editing strategies force the tokens of a kept
region). The tokenizer's quantizer turns the tokens into the next scale's input.

``Pipeline`` bundles text encoder, SAR transformer, tokenizer and length estimator:

    >>> import mosa.generate as G
    >>> pipe = G.load()                                  # checkpoints/ of the repository
    >>> [m] = pipe.generate("a person waves with the right hand", seconds=4, seed=1)
    >>> m.joints.shape, m.fps                            # ((80, 22, 3), 20.0)
    >>> m.save("wave.bvh")

``Pipeline.generate_requests`` takes a list of ``GenerationRequest`` instead, each motion
with its own text, length, seed and sampling options (what the web server batches).
"""

from __future__ import annotations

import argparse
import json
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mosa
from mosa.errors import MosaError
from mosa.models.length import LengthEstimator, load_length
from mosa.models.quantizer import PAD_TOKEN, MultiScaleQuantizer
from mosa.models.sar import (
    Condition,
    SARTransformer,
    ScaleLayout,
    filter_logits,
    load_sar,
    sample_tokens,
)
from mosa.models.text import TextEncoder, load_text_encoder
from mosa.models.vae import CAQVAE, load_vae
from mosa.motion.skeleton import FPS

MAX_TEXT_CHARS = 300
PIPELINE_FILE = "pipeline.json"
DEFAULTS: dict[str, Any] = {"cfg": 3.0, "temperature": 1.0, "top_k": None, "top_p": 0.95}
# editing: kept frames pull the sample towards the source, stronger guidance keeps the text
# (shipped model, 20 seeds: a bow in-between bowed in 19 vs 12 with cfg 3; docs/editing)
EDIT_DEFAULTS: dict[str, Any] = {"cfg": 5.0}
OUTPUT_EXTENSIONS = (".bvh", ".npy", ".mp4", ".gif")

OnScale = Callable[[int, list[torch.Tensor]], None]


# --------------------------------------------------------------------------------------------
# token strategies (the editing hook)


class TokenStrategy:
    """Decides the tokens of each scale. The base class keeps the sampled tokens.

    ``begin(rows, layout)`` is called before each batch with the indices (into the whole
    ``generate`` call's list of motions) of the batch's rows; ``apply(k, logits, sampled)``
    returns the tokens ``(B, w_k)`` of scale ``k`` given the guided logits ``(B, w_k, V)`` and
    the sampled tokens ``(B, w_k)``. Padded positions are reset to ``PAD_TOKEN`` afterwards.
    """

    def begin(self, rows: list[int], layout: ScaleLayout) -> None:
        pass

    def apply(self, k: int, logits: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
        return sampled


class ForcedTokens(TokenStrategy):
    """Force given tokens where a mask is True, sample elsewhere (in-betweening, continuation,
    span regeneration all reduce to this).

    ``tokens[k]``: ``(N, >= w_k)`` LongTensor and ``masks[k]``: ``(N, >= w_k)`` bool, for the N
    motions of the ``generate`` call, one pair per scale.
    """

    def __init__(self, tokens: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]):
        if len(tokens) != len(masks):
            raise MosaError(
                f"{len(tokens)} token scales but {len(masks)} masks", "pass one per scale"
            )
        self.tokens, self.masks = list(tokens), list(masks)
        self._rows: list[int] = []

    def begin(self, rows: list[int], layout: ScaleLayout) -> None:
        if len(self.tokens) != layout.num_scales:
            raise MosaError(
                f"forced tokens have {len(self.tokens)} scales, the model {layout.num_scales}",
                "encode the kept motion with the same tokenizer",
            )
        self._rows = rows

    def apply(self, k: int, logits: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
        w = sampled.shape[1]
        rows = torch.as_tensor(self._rows, dtype=torch.long)
        tok = _fit(self.tokens[k][rows], w, PAD_TOKEN).to(sampled.device)
        mask = _fit(self.masks[k][rows].bool(), w, False).to(sampled.device)
        return torch.where(mask & (tok >= 0), tok, sampled)


def _fit(t: torch.Tensor, w: int, fill) -> torch.Tensor:
    """Crop or pad ``(B, n)`` to ``(B, w)``."""
    if t.shape[1] >= w:
        return t[:, :w]
    return torch.cat([t, t.new_full((t.shape[0], w - t.shape[1]), fill)], dim=1)


# --------------------------------------------------------------------------------------------
# the loop over scales


@torch.no_grad()
def generate_tokens(
    model: SARTransformer,
    quantizer: MultiScaleQuantizer,
    cond: Condition,
    *,
    cfg: float | Sequence[float] = 1.0,
    temperature: float | Sequence[float] = 1.0,
    top_k: int | None | Sequence[int | None] = None,
    top_p: float | None | Sequence[float | None] = None,
    generators: Sequence[torch.Generator] | None = None,
    strategy: TokenStrategy | None = None,
    rows: list[int] | None = None,
    on_scale: OnScale | None = None,
    guidance: bool | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Sample the K scales of tokens for ``cond`` (B samples with latent lengths ``cond.n``).

    Exactly K transformer calls, each on the new scale only. ``guidance`` (default: some
    ``cfg != 1``) runs the conditional and unconditional passes as one doubled batch and mixes
    the logits as ``u + cfg * (c - u)``. ``temperature <= 0`` takes the argmax. The sampling
    options take one value for all samples or one per sample. Returns the tokens (K tensors
    ``(B, w_k)``, ``PAD_TOKEN`` past each sample) and the latent ``f_hat (B, n_max, C)`` for
    the tokenizer's decoder.
    """
    B = cond.start.shape[0]
    n = cond.n.cpu()
    K = model.config.num_scales
    layout = ScaleLayout(torch.tensor([quantizer.scale_lengths(int(v)) for v in n]))
    cfgs = _broadcast(cfg, B, "cfg", "samples")
    guided = any(c != 1.0 for c in cfgs) if guidance is None else guidance
    mix = _cfg_mix(cfgs, cond.start.device)
    samplers = _sampling_groups(temperature, top_k, top_p, B)
    cache = model.start(cond, layout, guided=guided)
    strategy = strategy or TokenStrategy()
    strategy.begin(list(range(B)) if rows is None else rows, layout)
    if generators is None:
        generators = [torch.Generator().manual_seed(random.randrange(2**31)) for _ in range(B)]
    generators = list(generators)
    tokens: list[torch.Tensor] = []
    f_hat, x = None, None
    for k in range(K):
        logits = model.step(cache, x).float()
        if guided:
            logits = mix(*logits.chunk(2))
        valid = layout.valid[:, layout.block(k)]
        sampled = _sample(logits, valid, generators, samplers)
        tok = strategy.apply(k, logits, sampled).long()
        tok = tok.masked_fill(~valid.to(tok.device), PAD_TOKEN)
        tokens.append(tok)
        f_hat = quantizer.add_scale(f_hat, tok, k, n)
        if on_scale is not None:
            on_scale(k, tokens)
        if k < K - 1:
            x = quantizer.next_scale_input(f_hat, k, n)  # shared by both halves when guided
    return tokens, f_hat


def _cfg_mix(cfgs: list[float], device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Guidance ``(c, u) -> u + cfg * (c - u)`` for ``(B, w, V)`` logits; with one scale per
    sample, rows with ``cfg == 1`` keep ``c`` exactly (as they would unguided)."""
    if len(set(cfgs)) <= 1:
        scale = float(cfgs[0]) if cfgs else 1.0
        return lambda c, u: u + scale * (c - u)
    w = torch.tensor(cfgs, dtype=torch.float32, device=device).view(-1, 1, 1)
    return lambda c, u: torch.where(w == 1.0, c, u + w * (c - u))


def _sampling_groups(temperature, top_k, top_p, B: int) -> dict[tuple, list[int]]:
    """Rows grouped by their ``(temperature, top_k, top_p)``: one filtering call per group."""
    groups: dict[tuple, list[int]] = {}
    opts = zip(
        _broadcast(temperature, B, "temperature", "samples"),
        _broadcast(top_k, B, "top_k", "samples"),
        _broadcast(top_p, B, "top_p", "samples"),
        strict=True,
    )
    for b, key in enumerate(opts):
        groups.setdefault(key, []).append(b)
    return groups


def _sample(
    logits: torch.Tensor,
    valid: torch.Tensor,
    generators: list[torch.Generator],
    groups: dict[tuple, list[int]],
) -> torch.Tensor:
    """Filter and sample ``(B, w, V)`` logits, each row with its own options and generator."""
    if len(groups) == 1:
        [((temperature, top_k, top_p), _)] = groups.items()
        filtered = filter_logits(logits, temperature, top_k, top_p)
        return sample_tokens(filtered, generators, valid, greedy=temperature <= 0)
    out = torch.empty(logits.shape[:2], dtype=torch.long, device=logits.device)
    for (temperature, top_k, top_p), rows in groups.items():
        idx = torch.as_tensor(rows, device=logits.device)
        filtered = filter_logits(logits[idx], temperature, top_k, top_p)
        gens = [generators[b] for b in rows]
        out[idx] = sample_tokens(filtered, gens, valid[rows], greedy=temperature <= 0)
    return out


# --------------------------------------------------------------------------------------------
# pipeline


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

    def save(self, path: str | os.PathLike) -> Path:
        """Write by extension: .bvh, .npy (joints), .mp4 or .gif (rendered, captioned)."""
        from mosa.motion.io import write_motion

        return write_motion(path, self.joints, fps=self.fps, caption=self.text)


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


def default_checkpoint_dir() -> Path:
    """``$MOSA_CHECKPOINTS``, else the repository's ``checkpoints/`` folder."""
    env = os.environ.get("MOSA_CHECKPOINTS")
    if env:
        return Path(env).expanduser()
    return Path(mosa.__file__).resolve().parents[2] / "checkpoints"


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
        if not isinstance(text, str) or not text.strip():
            raise MosaError(
                f"{where} is empty", "describe the motion, e.g. 'a person walks forward'"
            )
        text = " ".join(text.split())
        if len(text) > MAX_TEXT_CHARS:
            raise MosaError(
                f"{where} has {len(text)} characters, the limit is {MAX_TEXT_CHARS}",
                "shorten the description",
            )
        return text

    def frames_for(self, seconds: float | None = None, frames: int | None = None) -> int | None:
        """Requested length -> latent token count, checked against the supported range."""
        if seconds is not None and frames is not None:
            raise MosaError("both seconds and frames were given", "give only one of them")
        if seconds is None and frames is None:
            return None
        lo, hi = self.frame_range
        f = float(seconds) * self.fps if seconds is not None else float(frames)
        what = f"{float(seconds):g} s" if seconds is not None else f"{int(frames)} frames"
        if not np.isfinite(f) or not lo <= round(f) <= hi:
            raise MosaError(
                f"length {what} is outside the supported range {lo / self.fps:g}-"
                f"{hi / self.fps:g} s ({lo}-{hi} frames at {self.fps:g} fps)",
                "pick a length inside the range",
            )
        return max(
            self.sar.config.min_tokens, min(self.sar.config.max_tokens, round(f / self.unit))
        )

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
        jobs = self.resolve(requests)
        out: list[GeneratedMotion] = []
        step = max(1, int(batch_size))
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
        texts = list(texts)
        if not texts:
            raise MosaError("no prompt given", "pass at least one text")
        if int(num_samples) < 1:
            raise MosaError(f"num_samples must be >= 1, got {num_samples}", "ask for 1 or more")
        texts = [
            self.check_text(t, f"prompt {i + 1}" if len(texts) > 1 else "prompt")
            for i, t in enumerate(texts)
        ]
        secs = _broadcast(seconds, len(texts), "seconds")
        frms = _broadcast(frames, len(texts), "frames")
        base = random.SystemRandom().randrange(2**31) if seed is None else int(seed)
        requests: list[GenerationRequest] = []
        for text, s, f in zip(texts, secs, frms, strict=True):
            for _ in range(int(num_samples)):
                seed_i = base + len(requests)
                requests.append(GenerationRequest(text, s, f, seed=seed_i, **sampling))
        return requests

    def resolve(self, requests: Sequence[GenerationRequest]) -> list[ResolvedRequest]:
        """Check the requests and fill in what they leave open (defaults, seeds, lengths);
        raises ``MosaError`` naming the bad request (a server checks requests with it before
        batching them)."""
        if not requests:
            raise MosaError("no request given", "pass at least one GenerationRequest")
        jobs = []
        for i, r in enumerate(requests):
            where = "prompt" if len(requests) == 1 else f"request {i + 1}"
            text = self.check_text(r.text, where)
            n = self.frames_for(r.seconds, r.frames)
            seed = random.SystemRandom().randrange(2**31) if r.seed is None else int(r.seed)
            opts = self._options(r.cfg, r.temperature, r.top_k, r.top_p)
            jobs.append(ResolvedRequest(text, n, seed, **opts))
        if any(j.n is None for j in jobs) and self.length_model is None:
            raise MosaError(
                "no motion length given and the checkpoint has no length estimator",
                "pass seconds=/frames= (CLI: --seconds or --frames)",
            )
        return jobs

    def _options(self, cfg, temperature, top_k, top_p) -> dict[str, Any]:
        d = self.defaults
        opts = {
            "cfg": float(d["cfg"] if cfg is None else cfg),
            "temperature": float(d["temperature"] if temperature is None else temperature),
            "top_k": d["top_k"] if top_k is None else int(top_k),
            "top_p": d["top_p"] if top_p is None else float(top_p),
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

    # -- editing (see mosa.edit) -----------------------------------------------------------------
    def edit_span(self, source, text: str, start_s: float, end_s: float, **kw):
        """Regenerate ``[start_s, end_s)`` of ``source`` (joints or MotionFile): ``mosa.edit``."""
        from mosa import edit

        return edit.edit_span(self, source, text, start_s, end_s, **kw)

    def extend(self, source, text: str, seconds: float, **kw):
        """Keep ``source`` and generate ``seconds`` more after it: ``mosa.edit.extend``."""
        from mosa import edit

        return edit.extend(self, source, text, seconds, **kw)

    def lead_in(self, source, text: str, seconds: float, **kw):
        """Generate ``seconds`` leading into ``source``: ``mosa.edit.lead_in``."""
        from mosa import edit

        return edit.lead_in(self, source, text, seconds, **kw)

    def inbetween(self, a, b, text: str, seconds: float, **kw):
        """Keep A and B, generate ``seconds`` between them: ``mosa.edit.inbetween``."""
        from mosa import edit

        return edit.inbetween(self, a, b, text, seconds, **kw)

    def outpaint(self, source, text: str, before_s: float, after_s: float, **kw):
        """Generate around ``source``: ``mosa.edit.outpaint``."""
        from mosa import edit

        return edit.outpaint(self, source, text, before_s, after_s, **kw)


def _joints(features: np.ndarray) -> np.ndarray:
    from mosa.motion.features import recover_joints

    return np.asarray(recover_joints(features), dtype=np.float32)


def _broadcast(value, count: int, name: str, items: str = "prompts") -> list:
    """``value`` once per item: a single value (or None) repeated ``count`` times, or a
    sequence (list, tuple, tensor, array) that must hold exactly ``count`` values."""
    if isinstance(value, torch.Tensor | np.ndarray):
        value = value.tolist()
    if value is None or isinstance(value, int | float | np.integer | np.floating):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise MosaError(
            f"got {len(values)} {name} values for {count} {items}",
            f"give one {name} value, or one per {items.rstrip('s')}",
        )
    return values


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
            spec = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise MosaError(f"corrupt {f}: {exc}", "fix or delete the file") from exc
        if not isinstance(spec, dict):
            raise MosaError(f"{f} must hold a JSON object", "fix the file")
    spec.setdefault("sar", "sar" if (folder / "sar").is_dir() else ".")
    spec.setdefault("vae", "vae")
    if "length" not in spec and (folder / "length").is_dir():
        spec["length"] = "length"
    return spec


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
    folder = Path(checkpoint_dir).expanduser() if checkpoint_dir else default_checkpoint_dir()
    if not folder.is_dir():
        raise MosaError(
            f"checkpoint folder {folder} does not exist",
            "pass --checkpoint DIR (or set MOSA_CHECKPOINTS) to a folder with pipeline.json",
        )
    spec = read_pipeline_spec(folder)
    dev = torch.device(device) if device is not None else default_device()
    check_int8_device(int8, dev)
    # resolve every part first: a wrong pipeline.json fails before any loading
    parts = {k: _resolve(folder, spec[k]) for k in ("sar", "vae", "length") if spec.get(k)}
    sar = load_sar(parts["sar"], dev).set_int8(int8)
    vae, mean, std = load_vae(parts["vae"], dev)
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
# CLI: mosa generate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="?", default=None, help="what the motion shows (quoted)")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="out.bvh, out.npy (joints), out.mp4 or out.gif; several motions "
        "are numbered out_000.bvh, out_001.bvh, ...",
    )
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--seconds", type=float, default=None, help="motion length in seconds")
    length.add_argument("--frames", type=int, default=None, help="motion length in frames (20 fps)")
    parser.add_argument(
        "--prompts",
        type=Path,
        default=None,
        help="text file with one prompt per line (# comments, blank lines skipped)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the first motion")
    parser.add_argument("--num-samples", type=int, default=1, help="motions per prompt (default 1)")
    add_sampling_arguments(parser)
    add_pipeline_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=32, help="motions per forward pass")


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint --device --int8``: which pipeline to load (see :func:`load`) and how."""
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint folder (default: $MOSA_CHECKPOINTS or checkpoints/)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    add_int8_argument(parser)


def add_int8_argument(parser: argparse.ArgumentParser) -> None:
    """``--int8`` (see :func:`load`); also used by ``mosa bench`` and ``mosa eval``."""
    parser.add_argument(
        "--int8",
        action="store_true",
        help="CPU only: sample with int8 generator weights: faster at batch 1, same quality "
        "in our evaluation, but a motion then depends slightly on the other motions in its "
        "batch (docs/speed.md)",
    )


def check_int8_device(int8: bool, device: torch.device) -> None:
    """``MosaError`` for int8 sampling on anything but the CPU (before any loading)."""
    if int8 and device.type != "cpu":
        raise MosaError(
            f"--int8 is for CPU inference, not {device}", "drop --int8 or pass --device cpu"
        )


def load_from_args(args: argparse.Namespace) -> Pipeline:
    """The pipeline named by ``add_pipeline_arguments``' flags."""
    return load(args.checkpoint, args.device, int8=args.int8)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cfg --temperature --top-k --top-p``: shared by generate, edit and inbetween."""
    parser.add_argument(
        "--cfg",
        type=float,
        default=None,
        help="classifier-free guidance scale (default: the checkpoint's, pipeline.json; "
        "editing has its own, edit_defaults)",
    )
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    parser.add_argument("--top-k", type=int, default=None, help="keep the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")


def read_prompts(path: Path) -> list[str]:
    """Prompts of a text file: one per line; blank lines and lines starting with # skipped."""
    if not path.is_file():
        raise MosaError(f"prompt file {path} does not exist", "pass a text file, one prompt a line")
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
        prompts.append(text)
    if not prompts:
        raise MosaError(f"prompt file {path} holds no prompt", "write one prompt per line")
    return prompts


def output_paths(output: Path, count: int) -> list[Path]:
    """``out.bvh`` for one motion, ``out_000.bvh``, ``out_001.bvh``, ... for several."""
    if count == 1:
        return [output]
    width = max(3, len(str(count - 1)))
    return [output.with_name(f"{output.stem}_{i:0{width}d}{output.suffix}") for i in range(count)]


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.output.suffix.lower() not in OUTPUT_EXTENSIONS:
        raise MosaError(
            f"cannot write '{args.output}': unknown extension '{args.output.suffix}'",
            f"end the output name with one of {', '.join(OUTPUT_EXTENSIONS)}",
        )
    if (args.text is None) == (args.prompts is None):
        raise MosaError(
            "give one prompt or --prompts FILE (not both, not neither)",
            'e.g. mosa generate "a person jumps" -o jump.bvh',
        )
    prompts = read_prompts(args.prompts) if args.prompts else [args.text]
    if args.num_samples < 1:
        raise MosaError(f"--num-samples must be >= 1, got {args.num_samples}", "pass 1 or more")
    pipe = load_from_args(args)
    paths = output_paths(args.output, len(prompts) * args.num_samples)
    per_chunk = max(1, args.batch_size // args.num_samples)
    bar = tqdm(total=len(prompts), unit="prompt", disable=args.prompts is None, leave=False)
    written = 0
    seed = args.seed
    for start in range(0, len(prompts), per_chunk):
        chunk = prompts[start : start + per_chunk]
        motions = pipe.generate(
            chunk, seconds=args.seconds, frames=args.frames,
            seed=None if seed is None else seed + written, num_samples=args.num_samples,
            cfg=args.cfg, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
            batch_size=args.batch_size,
        )  # fmt: skip
        for m in motions:
            path = m.save(paths[written])
            written += 1
            bar.write(
                f"wrote {path} ({len(m.joints)} frames, {m.seconds:.2f} s, seed {m.seed}): {m.text}"
            )
        bar.update(len(chunk))
    bar.close()
    return 0
