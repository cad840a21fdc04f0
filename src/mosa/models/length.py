"""Motion length estimator (as in MoMask): text -> categorical distribution over token counts.

Input is the pooled sentence vector of the frozen text encoder; the classes are latent lengths
``min_tokens..max_tokens`` (frames = tokens x the tokenizer's downsampling, 4 by default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mosa.checkpoint import load_model, save_checkpoint
from mosa.errors import MosaError

KIND = "length"


@dataclass
class LengthConfig:
    text_dim: int = 384
    text_encoder: str = "minilm"  # spec for mosa.models.text.load_text_encoder
    hidden: int = 512
    dropout: float = 0.2
    min_tokens: int = 10  # 40 frames at downsampling 4
    max_tokens: int = 49  # 196 frames
    unit: int = 4  # frames per token

    @property
    def num_classes(self) -> int:
        return self.max_tokens - self.min_tokens + 1


class LengthEstimator(nn.Module):
    """MLP over the pooled text vector ``(B, text_dim)`` -> logits ``(B, num_classes)``."""

    def __init__(self, config: LengthConfig):
        super().__init__()
        if config.num_classes < 1:
            raise MosaError(
                f"length config: max_tokens {config.max_tokens} < min_tokens {config.min_tokens}",
                "fix the token range",
            )
        self.config = c = config
        self.net = nn.Sequential(
            nn.Linear(c.text_dim, c.hidden),
            nn.LayerNorm(c.hidden),
            nn.GELU(),
            nn.Dropout(c.dropout),
            nn.Linear(c.hidden, c.hidden // 2),
            nn.LayerNorm(c.hidden // 2),
            nn.GELU(),
            nn.Dropout(c.dropout),
            nn.Linear(c.hidden // 2, c.num_classes),
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.net(pooled)

    def targets(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class index of true token counts ``(B,)`` (clamped into the class range)."""
        c = self.config
        return tokens.long().clamp(c.min_tokens, c.max_tokens) - c.min_tokens

    def loss(self, pooled: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against true token counts ``(B,)``."""
        return nn.functional.cross_entropy(self(pooled), self.targets(tokens).to(pooled.device))

    @torch.no_grad()
    def predict(
        self,
        pooled: torch.Tensor,
        *,
        sample: bool = True,
        temperature: float = 1.0,
        generators: list[torch.Generator] | None = None,
    ) -> torch.Tensor:
        """Token counts ``(B,)``: drawn from the distribution (each row with its own generator
        when given) or its mode when ``sample`` is False."""
        logits = self(pooled).float()
        if not sample or temperature <= 0:
            idx = logits.argmax(-1)
        else:
            probs = (logits / temperature).softmax(-1).cpu()
            rows = []
            for b in range(probs.shape[0]):
                g = generators[b] if generators is not None else None
                gen_dev = g.device if g is not None else torch.device("cpu")
                rows.append(torch.multinomial(probs[b].to(gen_dev), 1, generator=g).cpu())
            idx = torch.cat(rows).to(logits.device)
        return idx + self.config.min_tokens

    def save(
        self,
        path: str | os.PathLike,
        meta: dict[str, Any] | None = None,
        extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
    ) -> Path:
        """Write a checkpoint folder (kind "length")."""
        return save_checkpoint(
            path, KIND, self.config, self.state_dict(), meta=meta, extra_tensors=extra_tensors
        )


def load_length(path: str | os.PathLike, device: str | torch.device = "cpu") -> LengthEstimator:
    """Load a length estimator checkpoint folder (kind "length") in eval mode."""
    return load_model(path, LengthEstimator, LengthConfig, KIND, device)[0]
