"""CAQ-VAE: shapes, padding invariance, gradients, save/load, config handling."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mosa.errors import MosaError
from mosa.models.quantizer import PAD_TOKEN, scale_lengths
from mosa.models.vae import CAQVAE, VAEConfig, count_parameters_mb, load_vae

REPO = Path(__file__).resolve().parents[1]
TINY = dict(width=32, depth=2, attn_blocks=1, attn_heads=2, code_dim=16, codebook_size=32)


def _features(hml_sample: Path) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The two real HumanML3D clips, normalised, cut to 168 frames: (2, 168, 263)."""
    mean = np.load(hml_sample / "Mean.npy")
    std = np.load(hml_sample / "Std.npy")
    clips = [
        (np.load(hml_sample / n)[:168] - mean) / std
        for n in ("000612_new_joint_vecs.npy", "012314_new_joint_vecs.npy")
    ]
    return torch.tensor(np.stack(clips), dtype=torch.float32), mean, std


@pytest.fixture(scope="module")
def real(hml_sample):
    return _features(hml_sample)


@pytest.fixture(scope="module")
def model(real) -> CAQVAE:
    """A tiny VAE whose codebooks were initialised and EMA-updated on real motion."""
    torch.manual_seed(0)
    m = CAQVAE(VAEConfig(**TINY))
    x, _, _ = real
    m.train()
    with torch.no_grad():
        for _ in range(3):
            m(x, torch.tensor([168, 120]))
    return m.eval()


def test_forward_shapes(model, real):
    x, _, _ = real
    out = model(x[:, :100], torch.tensor([100, 64]))
    assert out.recon.shape == (2, 100, 263)
    assert out.commit_loss.ndim == 0
    assert [t.shape[1] for t in out.tokens] == scale_lengths(25, 10)
    assert (out.tokens[-1][1, 16:] == PAD_TOKEN).all()  # 64 frames -> 16 tokens
    assert out.recon[1, 64:].abs().sum() == 0


def test_encode_decode_lengths_and_coarse_to_fine(model, real):
    x, _, _ = real
    lengths = torch.tensor([168, 92])
    tokens = model.encode(x, lengths)
    assert len(tokens) == 10
    for k, t in enumerate(tokens):
        assert t.shape == (2, scale_lengths(42, 10)[k])
        n_k = scale_lengths(23, 10)[k]
        assert (t[1, :n_k] >= 0).all() and (t[1, n_k:] == PAD_TOKEN).all()
    full = model.decode(tokens, lengths)
    assert full.shape == (2, 168, 263)
    assert torch.equal(model.decode(tokens), full)  # lengths inferred from the last scale
    with pytest.raises(MosaError, match="lengths"):
        model.decode(tokens[:4])
    coarse = model.decode(tokens[:3], lengths)
    assert coarse.shape == full.shape
    assert not torch.allclose(coarse, full)
    # decoding every scale reproduces the forward pass in eval mode
    with torch.no_grad():
        assert torch.allclose(full, model(x, lengths).recon, atol=1e-5)


def test_frames_not_multiple_of_four(model, real):
    x, _, _ = real
    out = model(x[:, :101], torch.tensor([101, 77]))
    assert out.recon.shape == (2, 101, 263)
    assert [t.shape[1] for t in out.tokens][-1] == 26  # ceil(101 / 4)


def test_padded_batch_matches_each_sample_alone(model, real):
    x, _, _ = real
    lengths = [168, 72]
    batch = x.clone()
    batch[1, 72:] = 123.0  # garbage past the length must not matter
    with torch.no_grad():
        out = model(batch, torch.tensor(lengths))
        for i, n in enumerate(lengths):
            alone = model(x[i : i + 1, :n], torch.tensor([n]))
            assert torch.allclose(out.recon[i, :n], alone.recon[0], atol=1e-4), i
            for k in range(10):
                size = alone.tokens[k].shape[1]
                assert torch.equal(out.tokens[k][i, :size], alone.tokens[k][0]), (i, k)


def test_gradients_reach_encoder_through_quantizer(real):
    torch.manual_seed(0)
    m = CAQVAE(VAEConfig(**TINY)).train()
    x, _, _ = real
    out = m(x[:, :64])
    (out.recon - x[:, :64]).abs().mean().backward()
    for name, p in m.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert m.decoder.conv_out.weight.grad.abs().sum() > 0


def test_save_load_round_trip(model, real, tmp_path):
    x, mean, std = real
    model.save(tmp_path / "vae", mean, std, meta={"note": "test"})
    loaded, m2, s2 = load_vae(tmp_path / "vae")
    assert loaded.config == model.config
    np.testing.assert_array_equal(m2, mean.astype(np.float32))
    np.testing.assert_array_equal(s2, std.astype(np.float32))
    lengths = torch.tensor([168, 100])
    t1, t2 = model.encode(x, lengths), loaded.encode(x, lengths)
    assert all(torch.equal(a, b) for a, b in zip(t1, t2, strict=True))
    with torch.no_grad():
        assert torch.equal(model.decode(t1, lengths), loaded.decode(t1, lengths))
    payload = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert payload["kind"] == "vae" and payload["meta"]["note"] == "test"


def test_load_errors(tmp_path, real):
    with pytest.raises(MosaError, match="config.json"):
        load_vae(tmp_path / "nothing")
    x, mean, std = real
    m = CAQVAE(VAEConfig(**TINY))
    m.save(tmp_path / "vae", mean, std)
    cfg = json.loads((tmp_path / "vae" / "config.json").read_text())
    cfg["config"]["width"] = 48  # weights no longer match
    (tmp_path / "vae" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(MosaError, match="do not match"):
        load_vae(tmp_path / "vae")


def test_config_validation_and_from_dict():
    with pytest.raises(MosaError, match="encoder"):
        VAEConfig.from_dict({"encoder": "transformer"})
    with pytest.raises(MosaError, match="attn_heads"):
        CAQVAE(VAEConfig(width=30, attn_heads=4))
    cfg = VAEConfig.from_dict({"width": 64, "unknown_future_key": 1})
    assert cfg.width == 64


def test_variants_conv_and_rvq(real):
    x, _, _ = real
    conv = CAQVAE(VAEConfig(**{**TINY, "encoder": "conv", "decoder": "conv"}))
    assert not any("attn" in n for n, _ in conv.named_parameters())
    caq = CAQVAE(VAEConfig(**TINY))
    assert any("attn" in n for n, _ in caq.named_parameters())
    rvq = CAQVAE(VAEConfig(**{**TINY, "quantizer": "rvq", "num_scales": 6})).train()
    out = rvq(x[:, :80])
    assert len(out.tokens) == 6 and all(t.shape == (2, 20) for t in out.tokens)
    rvq.eval()
    tokens = rvq.encode(x[:, :80])
    assert rvq.decode(tokens[:2], 80).shape == (2, 80, 263)


def test_shipped_configs_build_small_models():
    for path in sorted((REPO / "configs" / "vae").glob("*.json")):
        data = json.loads(path.read_text())
        model = CAQVAE(VAEConfig.from_dict(data["model"]))
        assert count_parameters_mb(model) < 40, path.name  # checkpoint must stay < 40 MB
