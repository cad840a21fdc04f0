"""``ScaleLayout``: where each scale's block sits in the SAR transformer's padded sequence."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

PAD_TOKEN = -1  # same value as mosa.models.quantizer.PAD_TOKEN


@dataclass
class ScaleLayout:
    """Where each scale's tokens sit in the padded sequence of a batch.

    ``lens (B, K)``: per-sample scale lengths; block k spans ``offsets[k]:offsets[k+1]`` and is
    ``widths[k] = lens[:, k].max()`` wide. ``valid (B, S)`` marks real tokens, ``scale_id (S,)``
    the scale of each position, ``frac (B, S)`` the position within its scale in (0, 1).
    """

    lens: torch.Tensor
    widths: list[int] = field(init=False)
    offsets: list[int] = field(init=False)
    valid: torch.Tensor = field(init=False)
    scale_id: torch.Tensor = field(init=False)
    frac: torch.Tensor = field(init=False)

    def __post_init__(self):
        lens = self.lens.long().cpu()
        self.lens = lens
        self.widths = [int(w) for w in lens.max(dim=0).values]
        self.offsets = [0]
        for w in self.widths:
            self.offsets.append(self.offsets[-1] + w)
        valid, scale_id, frac = [], [], []
        for k, w in enumerate(self.widths):
            i = torch.arange(w)
            n_k = lens[:, k : k + 1]
            valid.append(i[None] < n_k)
            scale_id.append(torch.full((w,), k))
            frac.append((i[None] + 0.5) / n_k.clamp(min=1))  # cell centres, as in interpolation
        self.valid = torch.cat(valid, dim=1)
        self.scale_id = torch.cat(scale_id)
        self.frac = torch.cat(frac, dim=1).float()

    @property
    def batch(self) -> int:
        return self.lens.shape[0]

    @property
    def num_scales(self) -> int:
        return self.lens.shape[1]

    @property
    def length(self) -> int:
        return self.offsets[-1]

    def block(self, k: int) -> slice:
        return slice(self.offsets[k], self.offsets[k + 1])

    def attn_mask(self, upto: int | None = None) -> torch.Tensor:
        """Block-causal mask ``(B, 1, S, S)``: query sees key iff key scale <= query scale and the
        key is a real token. Every query sees its sample's first-scale token, so no row is empty.
        """
        s = self.scale_id
        causal = s[None, :] <= s[:, None]  # (S_q, S_k)
        return (causal[None] & self.valid[:, None, :]).unsqueeze(1)

    def repeat(self, times: int) -> ScaleLayout:
        """The same layout for a batch repeated ``times`` (e.g. conditional + unconditional)."""
        return ScaleLayout(self.lens.repeat(times, 1))

    def pack(self, per_scale: list[torch.Tensor], fill: int = PAD_TOKEN) -> torch.Tensor:
        """Concatenate K per-scale tensors ``(B, w, ...)`` padded/cropped to this layout."""
        out = []
        for k, t in enumerate(per_scale):
            w = self.widths[k]
            if t.shape[1] < w:
                pad = t.new_full((t.shape[0], w - t.shape[1], *t.shape[2:]), fill)
                t = torch.cat([t, pad], dim=1)
            out.append(t[:, :w])
        return torch.cat(out, dim=1)


def sinusoid(x: torch.Tensor, dim: int, min_freq: float, max_freq: float) -> torch.Tensor:
    """Sinusoidal features of ``x (...)`` -> ``(..., dim)``, geometric angular frequencies."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(math.log(min_freq), math.log(max_freq), half, device=x.device))
    ang = x.float().unsqueeze(-1) * freqs
    out = torch.cat([ang.sin(), ang.cos()], dim=-1)
    return F.pad(out, (0, dim - 2 * half))
