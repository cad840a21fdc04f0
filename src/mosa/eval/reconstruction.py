"""Tokenizer metrics: how well the VAE reconstructs motions, per number of scales used.

Both the reference and the reconstruction are de-normalised and passed through
``recover_joints`` (global positions, root trajectory integrated from the root velocities).

- ``mpjpe_mm`` follows MoMask's ``calculate_mpjpe`` (the protocol behind the tokenizer MPJPE
  numbers of MoMask / MoSa): the pelvis is subtracted from every joint per frame, then the
  per-joint Euclidean error is averaged.
- ``mpjpe_global_mm`` compares the global positions directly, so root drift counts too.

Errors are averaged over all valid frames and joints of all motions (frame-weighted), in mm.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mosa.errors import MosaError
from mosa.io import atomic_path
from mosa.motion.features import recover_joints


class _Sums:
    """Running sums for frame-weighted means."""

    def __init__(self):
        self.values: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def add(self, key: str, total: float, count: float) -> None:
        self.values[key] = self.values.get(key, 0.0) + float(total)
        self.counts[key] = self.counts.get(key, 0.0) + float(count)

    def mean(self, key: str) -> float:
        return self.values[key] / max(self.counts[key], 1.0)


def joint_errors(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed per-joint errors (metres) of normalised features ``(B, T, D)``.

    Returns ``(global_sum, root_aligned_sum, count)`` where count = valid frames x joints.
    """
    pj = recover_joints(pred.float() * std + mean)  # (B, T, 22, 3)
    tj = recover_joints(target.float() * std + mean)
    m = mask.to(pj.dtype)[..., None]
    err = (pj - tj).norm(dim=-1)  # (B, T, 22)
    err_ra = ((pj - pj[..., :1, :]) - (tj - tj[..., :1, :])).norm(dim=-1)
    return (err * m).sum(), (err_ra * m).sum(), m.sum() * pj.shape[-2]


def mpjpe_mm(pred, target, mask, mean, std, root_aligned: bool = True) -> float:
    """MPJPE in mm of one batch of normalised features (frame-weighted)."""
    g, ra, count = joint_errors(pred, target, mask, mean, std)
    return float((ra if root_aligned else g) / count.clamp(min=1) * 1000)


@torch.no_grad()
def evaluate_model(
    model,
    dataset,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    scale_curve: bool = True,
    max_items: int | None = None,
) -> dict[str, Any]:
    """Reconstruction metrics of ``model`` (a ``CAQVAE``) over a ``MotionDataset``.

    Returns mpjpe_mm (root-aligned, MoMask's protocol), mpjpe_global_mm, feature_l1 /
    feature_mse (normalised space), per-scale codebook utilisation/perplexity and, with
    ``scale_curve``, both MPJPEs when decoding from only the first k scales (k = 1..K).
    """
    from mosa.data.dataset import collate_motions

    device = torch.device(device)
    model = model.to(device).eval()
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    k_all = model.num_scales
    sums = _Sums()
    model.quantizer.reset_usage()
    n = len(dataset) if max_items is None else min(len(dataset), max_items)
    frames = 0
    for start in range(0, n, batch_size):
        batch = collate_motions([dataset[i] for i in range(start, min(start + batch_size, n))])
        x = batch["motion"].to(device)
        mask = batch["mask"].to(device)
        lengths = batch["lengths"].to(device)
        frames += int(lengths.sum())
        tokens = model.encode(x, lengths)
        ks = range(1, k_all + 1) if scale_curve else [k_all]
        for k in ks:
            recon = model.decode(tokens[:k], lengths)[:, : x.shape[1]]
            g, ra, count = joint_errors(recon, x, mask, mean_t, std_t)
            sums.add(f"ra_{k}", ra, count)
            sums.add(f"global_{k}", g, count)
            if k == k_all:
                m = mask[..., None].float()
                d = x.shape[-1]
                sums.add("l1", (F.l1_loss(recon, x, reduction="none") * m).sum(), m.sum() * d)
                sums.add("mse", (F.mse_loss(recon, x, reduction="none") * m).sum(), m.sum() * d)
    if n == 0:
        raise MosaError("no motions to evaluate", "check the split and --data folder")
    out: dict[str, Any] = {
        "mpjpe_mm": sums.mean(f"ra_{k_all}") * 1000,
        "mpjpe_global_mm": sums.mean(f"global_{k_all}") * 1000,
        "feature_l1": sums.mean("l1"),
        "feature_mse": sums.mean("mse"),
        "num_motions": n,
        "num_frames": frames,
        "codebook": model.codebook_stats(),
    }
    if scale_curve:
        out["scale_curve"] = {
            "scales": list(range(1, k_all + 1)),
            "mpjpe_mm": [sums.mean(f"ra_{k}") * 1000 for k in range(1, k_all + 1)],
            "mpjpe_global_mm": [sums.mean(f"global_{k}") * 1000 for k in range(1, k_all + 1)],
        }
    return out


def evaluate_tokenizer(
    vae_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    split: str = "test",
    *,
    batch_size: int = 32,
    device: str | None = None,
    max_items: int | None = None,
) -> dict[str, Any]:
    """Load a tokenizer checkpoint and measure it on ``data_dir``'s ``split``.

    Motions are taken whole (up to 196 frames, cropped from frame 0, lengths a multiple of 4),
    normalised with the checkpoint's own mean/std.
    """
    from mosa.data.dataset import MotionDataset
    from mosa.models.vae import load_vae
    from mosa.train.distributed import choose_device

    dev = choose_device(device)
    model, mean, std = load_vae(vae_dir, dev)
    dataset = MotionDataset(data_dir, split, mean=mean, std=std, random_crop=False, seed=0)
    results = evaluate_model(
        model, dataset, mean, std, batch_size=batch_size, device=dev, max_items=max_items
    )
    results.update({"checkpoint": str(vae_dir), "data": str(data_dir), "split": split})
    return results


def plot_scale_curve(
    results: dict[str, Any] | dict[str, dict[str, Any]], png: str | os.PathLike
) -> Path:
    """Plot MPJPE vs number of scales used. ``results``: one result dict or ``{label: dict}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {"tokenizer": results} if "scale_curve" in results else results
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for label, res in runs.items():
        curve = res.get("scale_curve")
        if not curve:
            raise MosaError(f"results {label!r} have no scale_curve", "evaluate with scale_curve")
        ax.plot(curve["scales"], curve["mpjpe_mm"], marker="o", label=label)
    ax.set_xlabel("scales (or RVQ layers) decoded")
    ax.set_ylabel("MPJPE (mm, root-aligned)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(png) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return Path(png)


def _corpus_of(data_dir: Path) -> dict[str, str]:
    """``{clip: corpus}`` from a built dataset's ``manifest.json`` (empty when it has none)."""
    f = Path(data_dir) / "manifest.json"
    if not f.is_file():
        return {}
    clips = json.loads(f.read_text()).get("clips", {})
    return {name: info.get("corpus", "?") for name, info in clips.items()}


def evaluate_by_corpus(
    vae_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    split: str = "test",
    *,
    batch_size: int = 32,
    device: str | None = None,
) -> dict[str, dict[str, Any]]:
    """``evaluate_tokenizer`` per corpus of a merged dataset (``manifest.json``'s clip corpora):
    ``{corpus: metrics}``, so a corpus the tokenizer reconstructs badly shows itself."""
    import copy

    from mosa.data.dataset import MotionDataset
    from mosa.models.vae import load_vae
    from mosa.train.distributed import choose_device

    dev = choose_device(device)
    model, mean, std = load_vae(vae_dir, dev)
    dataset = MotionDataset(data_dir, split, mean=mean, std=std, random_crop=False, seed=0)
    corpus = _corpus_of(Path(data_dir))
    groups: dict[str, list] = {}
    for item in dataset.items:
        groups.setdefault(corpus.get(item.name.split("@")[0], "?"), []).append(item)
    out = {}
    for name, items in sorted(groups.items()):
        part = copy.copy(dataset)
        part.items = items
        out[name] = evaluate_model(
            model, part, mean, std, batch_size=batch_size, device=dev, scale_curve=False
        )
    return out
