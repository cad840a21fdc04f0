"""``Linear``: ``nn.Linear`` with a fast CPU inference path, optionally int8 (fbgemm)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class Linear(nn.Linear):
    """``nn.Linear`` with a faster inference path on the CPU (no autograd): a scale step runs a
    few rows at a time, so the weight's memory traffic dominates.

    By default it multiplies by a cached contiguous ``(in, out)`` copy of the weight, which MKL's
    GEMM streams faster than the transposed view of ``(out, in)``. With ``int8`` set (see
    ``SARTransformer.set_int8``) it uses a cached int8 copy (symmetric, per output channel) and
    quantizes the input rows on the fly (fbgemm's dynamic int8 linear): a quarter of the weight
    traffic and twice the arithmetic rate, at ~1-2% relative error per layer. The input's
    scale is one per call (per tensor), so a row's output then depends a little on the other
    rows of the call: batched motions are no longer independent of each other. Same parameters
    and state dict as ``nn.Linear``; the cached copy is rebuilt whenever the weight or bias is
    modified in place or replaced, or the mode changes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.int8 = False
        self._copy_key: tuple | None = None
        self._copy: Any = None  # fp32 (out, in) view of an (in, out) copy, or packed int8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if torch.is_grad_enabled() or not w.is_cpu:
            return F.linear(x, w, self.bias)
        b = self.bias
        bkey = (-1, 0) if b is None else (b._version, b.data_ptr())
        key = (self.int8, w._version, w.data_ptr(), *bkey)
        if self._copy_key != key:
            with torch.inference_mode(False), torch.no_grad():  # usable in and out of it
                self._copy = _pack_int8(w, b) if self.int8 else w.detach().t().contiguous().t()
            self._copy_key = key
        if self.int8:  # fbgemm wants 2-D rows; reduce_range: AVX2's 16-bit sums cannot overflow
            y = torch.ops.quantized.linear_dynamic(x.reshape(-1, x.shape[-1]), self._copy, True)
            return y.view(*x.shape[:-1], y.shape[-1])
        return F.linear(x, self._copy, b)


def int8_available() -> bool:
    """Whether this PyTorch build has the fbgemm int8 kernels ``Linear`` uses."""
    engines = torch.backends.quantized.supported_engines
    return hasattr(torch.ops.quantized, "linear_dynamic") and bool({"fbgemm", "x86"} & set(engines))


def _pack_int8(w: torch.Tensor, b: torch.Tensor | None) -> Any:
    """``w (out, in)`` -> fbgemm's packed int8 weight (per-channel symmetric scales)."""
    w = w.detach().float()
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-8).double()
    zero = torch.zeros(w.shape[0], dtype=torch.long)
    with warnings.catch_warnings():  # deprecated in favour of torchao, still in torch 2.13
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_channel(w, scale, zero, 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(q, None if b is None else b.detach().float())
