"""CAQ-VAE: the motion tokenizer (convolution + attention encoder/decoder around a quantizer).

Input and output are normalised HumanML3D features ``(B, T, D)`` (D = 263). The encoder
downsamples time by ``2 ** down_t`` (4) with strided convolutions; each stage has pre-norm
dilated residual blocks followed (``"caq"`` variant) by self-attention blocks masked for padding,
so the latent sees the whole motion. The decoder mirrors it. Between them sits the MTPS
``MultiScaleQuantizer`` (or the plain ``ResidualQuantizer`` for the ablation).

Padding: every layer keeps padded frames at exactly zero (masks re-applied before each
temporal conv), so a padded sample gives the same output as the sample alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mosa.checkpoint import (
    config_from_dict,
    load_model,
    load_stats,
    save_checkpoint,
)
from mosa.errors import MosaError
from mosa.models.quantizer import Lengths, MultiScaleQuantizer, ResidualQuantizer, lengths_tensor

KIND = "vae"


@dataclass
class VAEConfig:
    feature_dim: int = 263
    width: int = 256
    depth: int = 3  # residual blocks per stage
    down_t: int = 2  # stride-2 stages: time is downsampled by 2 ** down_t
    dilation_growth: int = 3  # dilations 1, 3, 9, ... inside a stage
    activation: str = "gelu"  # "gelu" or "geglu" (gated) in the residual blocks
    encoder: str = "caq"  # "caq" (conv + attention) or "conv"
    decoder: str = "caq"
    attn_blocks: int = 1  # attention blocks after each stage ("caq" only)
    attn_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.0
    code_dim: int = 128
    codebook_size: int = 512
    quantizer: str = "mtps"  # "mtps" (multi-scale) or "rvq" (plain residual VQ, ablation)
    num_scales: int = 10  # MTPS scales, or RVQ layers
    shared_codebook: bool = False
    num_phi: int = 4
    phi_kernel: int = 3
    phi_ratio: float = 0.5
    ema_decay: float = 0.99
    restart_threshold: float = 0.1  # dead if EMA usage < this fraction of a uniform share
    # loss weights (used by mosa.train.vae)
    w_recon: float = 1.0
    w_vel: float = 0.5
    w_joint: float = 1.0
    w_commit: float = 0.02

    @property
    def downsample(self) -> int:
        return 2**self.down_t

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VAEConfig:
        cfg = config_from_dict(cls, data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        choices = {
            "activation": ("gelu", "geglu"),
            "encoder": ("caq", "conv"),
            "decoder": ("caq", "conv"),
            "quantizer": ("mtps", "rvq"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise MosaError(
                    f"VAE config: {name}={getattr(self, name)!r} is not one of {allowed}",
                    f"set {name} to one of {', '.join(allowed)}",
                )
        if self.width % self.attn_heads:
            raise MosaError(
                f"VAE config: width {self.width} is not divisible by attn_heads {self.attn_heads}",
                "pick a width that is a multiple of attn_heads",
            )
        for name in ("width", "depth", "code_dim", "codebook_size", "num_scales"):
            if getattr(self, name) < 1:
                raise MosaError(f"VAE config: {name} must be >= 1", f"fix {name}")


# --------------------------------------------------------------------------------------------
# building blocks (time-major conv tensors are (B, C, T); attention uses (B, T, C))


def _mask_ct(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return x * mask[:, None, :].to(x.dtype)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over channels of ``(B, C, T)``: per frame, so padding never leaks in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ResBlock(nn.Module):
    """Pre-norm residual block: norm -> dilated conv (k=3) -> GELU or GEGLU -> 1x1 conv."""

    def __init__(self, width: int, dilation: int, activation: str, dropout: float):
        super().__init__()
        self.gated = activation == "geglu"
        self.norm = ChannelNorm(width)
        hidden = width * 2 if self.gated else width
        self.conv1 = nn.Conv1d(width, hidden, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(width, width, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.conv1(_mask_ct(self.norm(x), mask))
        if self.gated:
            a, b = h.chunk(2, dim=1)
            h = a * F.gelu(b)
        else:
            h = F.gelu(h)
        return _mask_ct(x + self.drop(self.conv2(h)), mask)


def _rope(x: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding on ``(B, H, T, Dh)``: relative positions, any length."""
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    freqs = 10000 ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)
    ang = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * freqs[None]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half : 2 * half]
    rot = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return torch.cat([rot, x[..., 2 * half :]], dim=-1)


class AttnBlock(nn.Module):
    """Pre-norm transformer block over time with RoPE and a key-padding mask, on ``(B, C, T)``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.drop = nn.Dropout(dropout)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (B, T, C)
        b, t, c = h.shape
        qkv = self.qkv(self.norm1(h)).view(b, t, 3, self.heads, c // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
        q, k = _rope(q), _rope(k)
        attn_mask = mask[:, None, None, :]  # keys: True = attend
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        h = h + self.drop(self.proj(y.transpose(1, 2).reshape(b, t, c)))
        h = h + self.drop(self.mlp(self.norm2(h)))
        return _mask_ct(h.transpose(1, 2), mask)


class Stage(nn.Module):
    """Residual blocks (dilations growing or shrinking) then optional attention blocks."""

    def __init__(self, cfg: VAEConfig, attention: bool, reverse_dilation: bool):
        super().__init__()
        dil = [cfg.dilation_growth**i for i in range(cfg.depth)]
        if reverse_dilation:
            dil = dil[::-1]
        self.res = nn.ModuleList(ResBlock(cfg.width, d, cfg.activation, cfg.dropout) for d in dil)
        n_attn = cfg.attn_blocks if attention else 0
        self.attn = nn.ModuleList(
            AttnBlock(cfg.width, cfg.attn_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(n_attn)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for blk in self.res:
            x = blk(x, mask)
        for blk in self.attn:
            x = blk(x, mask)
        return x


def _frame_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    return torch.arange(t, device=lengths.device)[None] < lengths[:, None]


def _ceil_div(a: torch.Tensor, b: int) -> torch.Tensor:
    return torch.div(a + b - 1, b, rounding_mode="floor")


class Encoder(nn.Module):
    """``(B, D, T)`` features -> ``(B, code_dim, T / 2**down_t)`` latent."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        attention = cfg.encoder == "caq"
        self.conv_in = nn.Conv1d(cfg.feature_dim, cfg.width, 3, padding=1)
        self.down = nn.ModuleList(
            nn.Conv1d(cfg.width, cfg.width, 4, stride=2, padding=1) for _ in range(cfg.down_t)
        )
        self.stages = nn.ModuleList(Stage(cfg, attention, False) for _ in range(cfg.down_t))
        self.norm_out = ChannelNorm(cfg.width)
        self.conv_out = nn.Conv1d(cfg.width, cfg.code_dim, 3, padding=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``x`` must be zero past ``lengths``; its time axis a multiple of 2**down_t."""
        mask = _frame_mask(lengths, x.shape[-1])
        x = self.conv_in(x)
        for i, (down, stage) in enumerate(zip(self.down, self.stages, strict=True)):
            x = down(_mask_ct(F.gelu(x), mask))
            mask = _frame_mask(_ceil_div(lengths, 2 ** (i + 1)), x.shape[-1])
            x = stage(_mask_ct(x, mask), mask)
        return _mask_ct(self.conv_out(_mask_ct(self.norm_out(x), mask)), mask)


class Decoder(nn.Module):
    """``(B, code_dim, n)`` latent -> ``(B, D, n * 2**down_t)`` features."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        attention = cfg.decoder == "caq"
        self.conv_in = nn.Conv1d(cfg.code_dim, cfg.width, 3, padding=1)
        self.stages = nn.ModuleList(Stage(cfg, attention, True) for _ in range(cfg.down_t))
        self.up = nn.ModuleList(
            nn.Conv1d(cfg.width, cfg.width, 3, padding=1) for _ in range(cfg.down_t)
        )
        self.norm_out = ChannelNorm(cfg.width)
        self.conv_out = nn.Conv1d(cfg.width, cfg.feature_dim, 3, padding=1)
        self.down_t = cfg.down_t

    def forward(self, z: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``lengths``: frame lengths ``(B,)`` (they define the mask at every resolution)."""
        level = self.down_t
        mask = _frame_mask(_ceil_div(lengths, 2**level), z.shape[-1])
        x = _mask_ct(self.conv_in(_mask_ct(z, mask)), mask)
        for stage, up in zip(self.stages, self.up, strict=True):
            x = stage(x, mask)
            level -= 1
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            mask = _frame_mask(_ceil_div(lengths, 2**level), x.shape[-1])
            x = _mask_ct(up(_mask_ct(x, mask)), mask)
        x = F.gelu(self.norm_out(x))
        return _mask_ct(self.conv_out(_mask_ct(x, mask)), mask)


# --------------------------------------------------------------------------------------------
# the VAE


@dataclass
class VAEOutput:
    recon: torch.Tensor  # (B, T, D) normalised features, zero past each length
    commit_loss: torch.Tensor  # scalar
    tokens: list[torch.Tensor]  # K x (B, n_k)
    stats: dict[str, float]


class CAQVAE(nn.Module):
    """Motion tokenizer: ``encode`` features to K scales of tokens, ``decode`` them back."""

    def __init__(self, config: VAEConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        if config.quantizer == "mtps":
            self.quantizer: MultiScaleQuantizer | ResidualQuantizer = MultiScaleQuantizer(
                config.code_dim,
                config.codebook_size,
                config.num_scales,
                shared_codebook=config.shared_codebook,
                num_phi=config.num_phi,
                phi_kernel=config.phi_kernel,
                phi_ratio=config.phi_ratio,
                decay=config.ema_decay,
                restart_threshold=config.restart_threshold,
            )
        else:
            self.quantizer = ResidualQuantizer(
                config.code_dim,
                config.codebook_size,
                config.num_scales,
                decay=config.ema_decay,
                restart_threshold=config.restart_threshold,
            )

    @property
    def num_scales(self) -> int:
        return self.config.num_scales

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def latent_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frame lengths ``(B,)`` -> latent token counts ``(B,)`` (ceil division)."""
        return _ceil_div(lengths, self.config.downsample)

    def _prepare(
        self, features: torch.Tensor, lengths: Lengths | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if features.ndim != 3 or features.shape[-1] != self.config.feature_dim:
            raise MosaError(
                f"expected features of shape (B, T, {self.config.feature_dim}), "
                f"got {tuple(features.shape)}",
                "pass normalised HumanML3D feature vectors",
            )
        b, t, _ = features.shape
        lengths = lengths_tensor(t if lengths is None else lengths, b)
        if int(lengths.min()) < 1 or int(lengths.max()) > t:
            raise MosaError(f"lengths must be in 1..{t}, got {lengths.tolist()}", "fix the lengths")
        lengths = lengths.to(features.device)
        pad = (-t) % self.config.downsample  # pad time to a multiple of the downsampling
        x = F.pad(features, (0, 0, 0, pad)) * _frame_mask(lengths, t + pad)[..., None]
        return x, lengths

    def _encode_latent(self, features, lengths):
        x, lengths = self._prepare(features, lengths)
        z = self.encoder(x.transpose(1, 2), lengths).transpose(1, 2)  # (B, n, C)
        n = self.latent_lengths(lengths)
        return z, _frame_mask(n, z.shape[1]), lengths

    def forward(self, features: torch.Tensor, lengths: Lengths | None = None) -> VAEOutput:
        """Reconstruct ``features (B, T, D)``; codebooks update in training mode."""
        t = features.shape[1]
        z, zmask, lengths = self._encode_latent(features, lengths)
        q = self.quantizer(z, zmask)
        recon = self.decoder(q.f_hat.transpose(1, 2).to(z.dtype), lengths).transpose(1, 2)
        return VAEOutput(recon[:, :t], q.commit_loss, q.tokens, q.stats)

    @torch.no_grad()
    def encode(self, features: torch.Tensor, lengths: Lengths | None = None) -> list[torch.Tensor]:
        """Tokens of ``features (B, T, D)``: K LongTensors ``(B, n_k)``, -1 where padded."""
        z, zmask, _ = self._encode_latent(features, lengths)
        return self.quantizer.encode(z, zmask)

    def decode(self, tokens: list[torch.Tensor], lengths: Lengths | None = None) -> torch.Tensor:
        """Features ``(B, T, D)`` from the first ``len(tokens)`` scales (fewer = coarser).

        ``lengths``: frame counts (int or ``(B,)``); ``T = max(lengths)`` rounded up to the
        downsampling factor, frames past each length are zero. With all scales given it may be
        omitted: each sample then spans ``downsample x`` its last-scale token count.
        """
        b = tokens[0].shape[0]
        if lengths is None:
            if len(tokens) != self.num_scales:
                raise MosaError(
                    f"decoding {len(tokens)} of {self.num_scales} scales needs the motion lengths",
                    "pass lengths (frames) to decode",
                )
            lengths = (tokens[-1] >= 0).sum(1) * self.config.downsample
        lengths = lengths_tensor(lengths, b).to(tokens[0].device)
        n = self.latent_lengths(lengths)
        f_hat = self.quantizer.decode(tokens, n.cpu())  # (B, n_max, C)
        return self.decode_latent(f_hat, lengths)

    def decode_latent(self, f_hat: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Features ``(B, T, D)`` from a quantized latent ``(B, n, C)`` (e.g. a generator's)."""
        out = self.decoder(f_hat.transpose(1, 2), lengths.to(f_hat.device)).transpose(1, 2)
        return out

    def codebook_stats(self) -> list[dict[str, float]]:
        return self.quantizer.codebook_stats()

    def save(
        self,
        path: str | os.PathLike,
        mean: np.ndarray,
        std: np.ndarray,
        *,
        meta: dict[str, Any] | None = None,
        extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None,
    ) -> Path:
        """Write a checkpoint folder (config.json, model.safetensors, mean.npy, std.npy)."""
        meta = {"num_parameters": self.num_parameters(), **(meta or {})}
        return save_checkpoint(
            path,
            KIND,
            self.config,
            self.state_dict(),
            stats={"mean": np.asarray(mean), "std": np.asarray(std)},
            meta=meta,
            extra_tensors=extra_tensors,
        )


def load_vae(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[CAQVAE, np.ndarray, np.ndarray]:
    """Load a tokenizer checkpoint folder -> ``(model in eval mode, mean (D,), std (D,))``."""
    model, _ = load_model(path, CAQVAE, VAEConfig, KIND, device)
    stats = load_stats(path)
    return model, stats["mean"], stats["std"]


def count_parameters_mb(model: nn.Module) -> float:
    """Size of the float32 state dict in MB (what model.safetensors will weigh)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6
