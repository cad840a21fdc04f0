"""The shipped checkpoints: they load with no flags and produce a valid motion and BVH."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch

import mosa
from mosa.loading import default_checkpoint_dir
from mosa.models.vae import load_vae
from mosa.motion import extract_features, load_bvh, recover_joints

CHECKPOINTS = default_checkpoint_dir()


def test_shipped_tokenizer_reconstructs_a_bandai_clip(tiny_tar, tmp_path):
    """A real clip through encode/decode: all 10 scales beat the coarsest scale by far.

    Set-1 clips (rare styles) reconstruct at ~40-70 mm root-aligned MPJPE; the test-split
    average of 24.8 mm is dominated by the larger, more uniform set 2.
    """
    with tarfile.open(tiny_tar) as tar:
        member = next(m for m in tar if m.name.endswith("walk-left_happy_001.bvh"))
        tar.extract(member, tmp_path, filter="data")
    feats = extract_features(load_bvh(tmp_path / member.name).joints)
    n = len(feats) // 4 * 4
    feats = feats[:n]
    vae, mean, std = load_vae(CHECKPOINTS / "vae")
    x = torch.from_numpy((feats - mean) / std).float()[None]
    with torch.no_grad():
        tokens = vae.encode(x, [n])
        recon = [vae.decode(tokens[:k], [n])[0].numpy() * std + mean for k in (1, 10)]
    assert len(tokens) == 10 and tokens[-1].shape == (1, n // 4)
    coarse, fine = (_mpjpe_mm(feats, r) for r in recon)
    assert fine < 80 and fine < 0.75 * coarse, (coarse, fine)


def _mpjpe_mm(a: np.ndarray, b: np.ndarray) -> float:
    """Root-aligned MPJPE (mm) between the joints recovered from two feature arrays."""
    ja, jb = recover_joints(a), recover_joints(b)
    return float(np.linalg.norm((ja - ja[:, :1]) - (jb - jb[:, :1]), axis=-1).mean() * 1000)


@pytest.mark.skipif(not (CHECKPOINTS / "sar").is_dir(), reason="no generator shipped yet")
def test_main_job_generates_a_bvh(tmp_path):
    pipe = mosa.load()
    (motion,) = pipe.generate(["a person waves with the right hand"], seconds=2.0, seed=0)
    assert motion.joints.shape[1:] == (22, 3) and np.isfinite(motion.joints).all()
    assert abs(len(motion.joints) / motion.fps - 2.0) <= 0.25
    out = motion.save(tmp_path / "wave.bvh")
    back = load_bvh(out).joints
    assert back.shape == motion.joints.shape
