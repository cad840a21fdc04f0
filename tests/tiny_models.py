"""Tiny random-weight models and a complete tiny pipeline folder, shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mosa.models.length import LengthConfig, LengthEstimator
from mosa.models.sar import SARConfig, SARTransformer, save_sar
from mosa.models.vae import CAQVAE, VAEConfig

CODE_DIM, V, K, TEXT_DIM = 8, 16, 10, 384


def tiny_vae(codebook_size: int = V) -> CAQVAE:
    torch.manual_seed(0)
    cfg = VAEConfig(
        width=32,
        depth=1,
        attn_heads=4,
        code_dim=CODE_DIM,
        codebook_size=codebook_size,
        num_scales=K,
    )
    vae = CAQVAE(cfg).eval()
    for book in vae.quantizer.codebooks:
        book.embed.normal_()
    return vae


def tiny_sar(text_dim: int = TEXT_DIM) -> SARTransformer:
    torch.manual_seed(0)
    cfg = SARConfig(
        codebook_size=V,
        code_dim=CODE_DIM,
        text_dim=text_dim,
        dim=32,
        layers=2,
        heads=4,
        ff=64,
        num_scales=K,
        dropout=0.0,
        min_tokens=10,
        max_tokens=49,
    )
    m = SARTransformer(cfg).eval()
    with torch.no_grad():  # make the output depend visibly on the inputs
        m.head_weight.normal_(std=0.5)
    return m


def write_tiny_pipeline(root: Path) -> Path:
    """Write a complete tiny pipeline folder: sar/, vae/, length/, pipeline.json."""
    root = Path(root)
    rng = np.random.default_rng(0)
    mean = rng.normal(size=263).astype(np.float32) * 0.1
    std = np.full(263, 0.05, np.float32)
    tiny_vae().save(root / "vae", mean, std)
    save_sar(root / "sar", tiny_sar())
    torch.manual_seed(0)
    LengthEstimator(LengthConfig(text_dim=TEXT_DIM, hidden=32)).save(root / "length")
    (root / "pipeline.json").write_text(
        json.dumps({"sar": "sar", "vae": "vae", "length": "length", "defaults": {"cfg": 2.0}})
    )
    return root
