"""The T2M text-motion evaluator: a motion encoder and a text encoder sharing one embedding space.

Architecture of Guo et al. 2022 (and the layer names of their checkpoints, so the official
weights load into these modules, see :mod:`mosa.eval.t2m`; either kind loads with
:func:`mosa.eval.loading.load_evaluator`):

- movement encoder: two 1D convs (kernel 4, stride 2) over the normalised motion features
  without the 4 foot contacts, downsampling time by 4, then a linear layer;
- motion encoder: bidirectional GRU over the movement features -> final states -> MLP -> 512-d;
- text encoder: (word vector + linear(POS one-hot)) -> linear -> bidirectional GRU -> MLP -> 512-d.

Training objective (our choice, see :func:`contrastive_loss`): symmetric InfoNCE over the batch
on negative squared Euclidean distances, with embeddings projected onto a sphere. The official
evaluator uses a margin loss with one shifted negative per pair; InfoNCE uses all B-1 negatives
of a batch, which matters on a corpus of a few thousand clips and a CPU budget, and it trains
the very ranking R-Precision measures (Euclidean nearest neighbours). The official movement
encoder is pre-trained as an autoencoder and frozen; ours is trained end to end with the rest.
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from mosa.checkpoint import load_model, load_stats, save_checkpoint
from mosa.errors import MosaError
from mosa.eval.wordvec import NUM_POS, WordVectors, encode_token_batch
from mosa.io import resolve_checkpoint_dir

KIND = "evaluator"


@dataclass
class EvaluatorConfig:
    motion_dim: int = 263  # input features per frame
    contact_dims: int = 4  # trailing foot-contact channels the movement encoder ignores
    word_dim: int = 300
    pos_dim: int = NUM_POS
    movement_hidden: int = 512
    movement_dim: int = 512
    motion_hidden: int = 1024
    text_hidden: int = 512
    embed_dim: int = 512
    unit_length: int = 4  # frames per movement step (the two stride-2 convs)
    max_text_len: int = 20
    max_motion_length: int = 196  # motions are zero-padded to at least this many frames
    dropout: float = 0.2
    embed_norm: float = 10.0  # radius of the embedding sphere; 0 = raw outputs (official)
    temperature: float = 0.1  # InfoNCE temperature on the cosine scale
    word_vectors: str = "spacy"  # "spacy" (ours) or "glove" (official)


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv1d | nn.Linear):
        nn.init.xavier_normal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class MovementEncoder(nn.Module):
    """``(B, T, D_in)`` -> ``(B, T/4, D_out)``: two stride-2 convs and a linear layer."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv1d(in_dim, hidden, 4, 2, 1),
            nn.Dropout(dropout),
            nn.LeakyReLU(0.2),
            nn.Conv1d(hidden, out_dim, 4, 2, 1),
            nn.Dropout(dropout),
            nn.LeakyReLU(0.2),
        )
        self.out_net = nn.Linear(out_dim, out_dim)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_net(self.main(x.transpose(1, 2)).transpose(1, 2))


class _BiGRUHead(nn.Module):
    """Bidirectional GRU with a learned initial state; final states -> MLP -> embedding."""

    def __init__(self, hidden: int, out_dim: int):
        super().__init__()
        self.gru = nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.output_net = nn.Sequential(
            nn.Linear(2 * hidden, hidden),
            nn.LayerNorm(hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, out_dim),
        )
        self.hidden = nn.Parameter(torch.randn(2, 1, hidden))

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, L, H)`` with valid lengths ``(B,)`` -> ``(B, out_dim)``."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h0 = self.hidden.expand(-1, x.shape[0], -1).contiguous()
        _, last = self.gru(packed, h0)  # (2, B, H), in input order
        return self.output_net(torch.cat([last[0], last[1]], dim=-1))


class MotionEncoder(_BiGRUHead):
    def __init__(self, in_dim: int, hidden: int, out_dim: int):
        super().__init__(hidden, out_dim)
        self.input_emb = nn.Linear(in_dim, hidden)
        self.apply(_init)

    def forward(self, movements: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        return self.encode(self.input_emb(movements), steps)


class TextEncoder(_BiGRUHead):
    def __init__(self, word_dim: int, pos_dim: int, hidden: int, out_dim: int):
        super().__init__(hidden, out_dim)
        self.pos_emb = nn.Linear(pos_dim, word_dim)
        self.input_emb = nn.Linear(word_dim, hidden)
        self.apply(_init)

    def forward(
        self, words: torch.Tensor, pos: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        return self.encode(self.input_emb(words + self.pos_emb(pos)), lengths)


class TextMotionEvaluator(nn.Module):
    def __init__(self, config: EvaluatorConfig):
        super().__init__()
        self.config = c = config
        if c.motion_dim <= c.contact_dims:
            raise MosaError(f"evaluator motion_dim {c.motion_dim} leaves no non-contact channels")
        self.movement_encoder = MovementEncoder(
            c.motion_dim - c.contact_dims, c.movement_hidden, c.movement_dim, c.dropout
        )
        self.motion_encoder = MotionEncoder(c.movement_dim, c.motion_hidden, c.embed_dim)
        self.text_encoder = TextEncoder(c.word_dim, c.pos_dim, c.text_hidden, c.embed_dim)

    def _project(self, emb: torch.Tensor) -> torch.Tensor:
        r = self.config.embed_norm
        return F.normalize(emb, dim=-1) * r if r > 0 else emb

    def encode_motion(self, motion: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Motions ``(B, T, motion_dim)`` normalised with this evaluator's stats -> ``(B, E)``.

        Frames at or beyond ``lengths`` are zeroed and the batch zero-padded to at least
        ``max_motion_length`` frames, as the protocol's loader pads its motions: an output then
        depends only on the first ``length`` frames for lengths up to ``max_motion_length - 4``.
        The GRU reads ``length // unit_length`` movement steps.
        """
        c = self.config
        if motion.ndim != 3 or motion.shape[-1] != c.motion_dim:
            raise MosaError(
                f"evaluator expects motion (B, T, {c.motion_dim}), got {tuple(motion.shape)}"
            )
        lengths = torch.as_tensor(lengths, device=motion.device).long()
        steps = lengths // c.unit_length
        if (steps < 1).any() or (lengths > motion.shape[1]).any():
            raise MosaError(
                f"motion lengths must lie in [{c.unit_length}, {motion.shape[1]}], "
                f"got {lengths.tolist()}"
            )
        frames = torch.arange(motion.shape[1], device=motion.device)
        x = (
            motion[..., : c.motion_dim - c.contact_dims]
            * (frames[None, :] < lengths[:, None])[..., None]
        )
        if x.shape[1] < c.max_motion_length:
            x = F.pad(x, (0, 0, 0, c.max_motion_length - x.shape[1]))
        movements = self.movement_encoder(x)
        return self._project(self.motion_encoder(movements, steps))

    def encode_text(
        self, word_emb: torch.Tensor, pos: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Embed captions: word vectors ``(B, L, 300)``, POS one-hots ``(B, L, 15)``,
        token counts ``(B,)`` (sos and eos included) -> ``(B, E)``."""
        lengths = torch.as_tensor(lengths).long()
        if (lengths < 1).any() or (lengths > word_emb.shape[1]).any():
            raise MosaError(
                f"text lengths must lie in [1, {word_emb.shape[1]}], got {lengths.tolist()}"
            )
        return self._project(self.text_encoder(word_emb, pos, lengths))


def contrastive_loss(
    text_emb: torch.Tensor,
    motion_emb: torch.Tensor,
    temperature: float,
    embed_norm: float,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matched pairs ``(B, E)``, ``(B, E)``.

    Logits are ``-||t_i - m_j||^2 / (2 r^2 tau)`` (r = ``embed_norm``, or 1 for raw
    embeddings): on the sphere this is ``(cos - 1) / tau``, so training ranks by the same
    Euclidean distance that R-Precision uses. ``groups`` ``(B,)`` marks pairs with identical
    captions: they are not counted as negatives of each other (Bandai captions repeat).
    """
    r2 = embed_norm**2 if embed_norm > 0 else 1.0
    logits = -torch.cdist(text_emb, motion_emb).pow(2) / (2 * r2 * temperature)
    if groups is not None:
        same = groups[:, None] == groups[None, :]
        eye = torch.eye(len(groups), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same & ~eye, float("-inf"))
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


@dataclass
class Evaluator:
    """A ready-to-use evaluator: the model, its normalisation and its word vectors."""

    model: TextMotionEvaluator
    mean: np.ndarray  # (motion_dim,) statistics the model's inputs are normalised with
    std: np.ndarray
    vectors: WordVectors
    name: str = ""

    @property
    def config(self) -> EvaluatorConfig:
        return self.model.config

    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        """Raw features ``(..., D)`` -> this evaluator's normalised input."""
        mean = torch.as_tensor(self.mean, dtype=features.dtype, device=features.device)
        std = torch.as_tensor(self.std, dtype=features.dtype, device=features.device)
        return (features - mean) / std

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def embed_motions(self, features: torch.Tensor, lengths, batch_size: int = 256) -> np.ndarray:
        """Raw (un-normalised) features ``(B, T, D)`` + lengths ``(B,)`` -> ``(B, E)`` float64."""
        self.model.eval()
        lengths = torch.as_tensor(lengths).long()
        out = []
        for i in range(0, len(features), batch_size):
            x = self.normalise(features[i : i + batch_size].float().to(self.device))
            out.append(self.model.encode_motion(x, lengths[i : i + batch_size]).cpu())
        return torch.cat(out).double().numpy()

    @torch.no_grad()
    def embed_texts(self, token_lists: list[list[str]], batch_size: int = 256) -> np.ndarray:
        """HumanML3D token lists (``"word/POS"``) -> ``(B, E)`` float64."""
        self.model.eval()
        out = []
        for i in range(0, len(token_lists), batch_size):
            words, pos, lengths = encode_token_batch(
                self.vectors, token_lists[i : i + batch_size], self.config.max_text_len
            )
            dev = self.device
            out.append(self.model.encode_text(words.to(dev), pos.to(dev), lengths).cpu())
        return torch.cat(out).double().numpy()


def save_evaluator(
    path: str | os.PathLike,
    model: TextMotionEvaluator,
    mean: np.ndarray,
    std: np.ndarray,
    meta: dict | None = None,
) -> Path:
    """Write an evaluator checkpoint folder (config.json + model.safetensors + mean/std.npy)."""
    return save_checkpoint(
        path, KIND, model.config, model.state_dict(), stats={"mean": mean, "std": std}, meta=meta
    )


def _checkpoint_folder(path: Path) -> Path:
    # A training run folder holds its best checkpoint in best/.
    path = resolve_checkpoint_dir(path)
    if not (path / "config.json").is_file() and (path / "best" / "config.json").is_file():
        return resolve_checkpoint_dir(path / "best")
    return path


def load_evaluator_checkpoint(path: str | os.PathLike) -> Evaluator:
    """Load one of our evaluator checkpoints (or a training run folder holding ``best/``)."""
    folder = _checkpoint_folder(Path(path))
    model, _ = load_model(folder, TextMotionEvaluator, EvaluatorConfig, KIND)
    config = model.config
    stats = load_stats(folder)
    if config.word_vectors != "spacy":
        raise MosaError(f"{folder}: unknown word vectors '{config.word_vectors}'")
    from mosa.eval.wordvec import SpacyWordVectors

    return Evaluator(model, stats["mean"], stats["std"], SpacyWordVectors(), name=str(folder))


def __getattr__(name: str):
    # ``load_evaluator`` moved to mosa.eval.loading (it dispatches to mosa.eval.t2m, which
    # imports this module); importlib, so this module does not import its own dependant
    if name == "load_evaluator":
        warnings.warn(
            "mosa.eval.evaluator.load_evaluator moved to mosa.eval.loading",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module("mosa.eval.loading").load_evaluator
    raise AttributeError(f"module 'mosa.eval.evaluator' has no attribute {name!r}")
