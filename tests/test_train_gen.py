"""`mosa train gen` / `mosa train length` on a tiny synthetic dataset and a tiny random VAE."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from mosa.cli import train_gen as CG
from mosa.cli import train_length as CL
from mosa.errors import MosaError
from mosa.models.quantizer import PAD_TOKEN, scale_lengths
from mosa.models.vae import CAQVAE, VAEConfig, load_vae
from mosa.train import caches as TC
from mosa.train import gen as TG

CAPTIONS = ["a person walks forward", "someone jumps twice", "a man waves his hand",
            "a person sits down", "the person turns around"]  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """HumanML3D-layout folder (8 train / 3 val motions) + a tiny random tokenizer."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    (root / "new_joint_vecs").mkdir()
    (root / "texts").mkdir()
    mean = rng.normal(size=263).astype(np.float32)
    std = np.full(263, 0.5, np.float32)
    np.save(root / "Mean.npy", mean)
    np.save(root / "Std.npy", std)
    names = [f"m{i:02d}" for i in range(11)]
    lengths = [44, 60, 80, 120, 196, 230, 52, 100, 64, 90, 150]
    for i, (name, T) in enumerate(zip(names, lengths, strict=True)):
        np.save(
            root / "new_joint_vecs" / f"{name}.npy",
            (mean + std * rng.normal(size=(T, 263))).astype(np.float32),
        )
        lines = [f"{CAPTIONS[(i + j) % 5]}#a/DET person/NOUN#0.0#0.0" for j in range(2)]
        (root / "texts" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (root / "train.txt").write_text("\n".join(names[:8]) + "\n")
    (root / "val.txt").write_text("\n".join(names[8:]) + "\n")
    (root / "test.txt").write_text("\n".join(names[8:]) + "\n")
    torch.manual_seed(0)
    vae = CAQVAE(VAEConfig(width=32, depth=1, attn_heads=4, code_dim=8, codebook_size=16))
    for book in vae.quantizer.codebooks:
        book.embed.normal_()
    vae.save(root.parent / "vae", mean, std)
    return root, root.parent / "vae"


def _args(parser_fn, argv):
    p = argparse.ArgumentParser()
    parser_fn(p)
    return p.parse_args(argv)


def _config(tmp_path, steps):
    cfg = tmp_path / f"cfg{steps}.json"
    cfg.write_text(json.dumps({
        "model": {"dim": 32, "layers": 2, "heads": 4, "ff": 64, "dropout": 0.0},
        "train": {"batch_size": 4, "max_steps": steps, "val_every": 6, "log_every": 3,
                  "warmup_steps": 2, "lr": 2e-3},
    }))  # fmt: skip
    return cfg


def test_crop_windows_by_hand():
    assert TC.crop_windows(250, 196, 40, 4, augment=False) == [(0, 196)]
    assert TC.crop_windows(250, 196, 40, 4, augment=True) == [
        (0, 192), (0, 196), (54, 196), (58, 192)]  # fmt: skip
    assert TC.crop_windows(41, 196, 40, 4, augment=True) == [(0, 40), (1, 40)]
    assert TC.crop_windows(30, 196, 40, 4, augment=True) == []


def test_collate_splits_scales():
    toks = [torch.arange(sum(scale_lengths(n, 10))) for n in (12, 3)]
    items = [{"tokens": t, "n": n, "text": torch.ones(L, 5), "pooled": torch.zeros(5)}
             for t, n, L in zip(toks, (12, 3), (4, 2), strict=True)]  # fmt: skip
    batch = TG.make_collate(10)(items)
    assert batch["lens"][1].tolist() == scale_lengths(3, 10)
    for b in range(2):
        real = torch.cat([t[b][t[b] != PAD_TOKEN] for t in batch["tokens"]])
        assert torch.equal(real, toks[b])
    assert batch["tokens"][-1].shape == (2, 12)
    assert batch["text_mask"].tolist() == [[True] * 4, [True, True, False, False]]


def test_train_gen_end_to_end(setup, tmp_path):
    data, vae_dir = setup
    out = tmp_path / "gen"
    argv = [
        "--vae",
        str(vae_dir),
        "--data",
        str(data),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--config",
        str(_config(tmp_path, 12)),
    ]
    assert CG.run(_args(CG.add_arguments, argv)) == 0
    for name in ("config.json", "model.safetensors", "pipeline.json"):
        assert (out / "best" / name).is_file() and (out / "last" / name).is_file()
    spec = json.loads((out / "best" / "pipeline.json").read_text())
    assert (out / "best" / spec["vae"]).resolve() == vae_dir.resolve()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert "val_loss" in rows[0] and rows[-1].startswith("12,")

    # the token cache holds exactly what the tokenizer gives for each crop
    [cache_file] = (out / "cache").glob("tokens_train_*.safetensors")
    from safetensors.torch import load_file

    t = load_file(str(cache_file))
    vae, mean, std = load_vae(vae_dir)
    m5 = (np.load(data / "new_joint_vecs" / "m05.npy") - mean) / std  # 230 frames
    crops = TC.crop_windows(230, 196, 40, 4, augment=True)
    first = int((t["item"] < 5).sum())  # crops of items 0..4 come first
    for c, (start, frames) in enumerate(crops):
        ref = vae.encode(torch.from_numpy(m5[start : start + frames]).float()[None], frames)
        got = t["flat"][t["offset"][first + c] : t["offset"][first + c + 1]]
        assert torch.equal(got.long(), torch.cat(ref, dim=1)[0])
        assert int(t["n"][first + c]) == frames // 4

    # the trained folder is a pipeline
    from mosa.loading import load

    pipe = load(out / "best", device="cpu")
    [motion] = pipe.generate("a person walks forward", seconds=3.0, seed=0)
    assert motion.joints.shape == (60, 22, 3)

    # resume continues to the new step count and reuses the caches
    mtime = cache_file.stat().st_mtime_ns
    argv2 = [*argv[:-1], str(_config(tmp_path, 18)), "--resume"]
    CG.run(_args(CG.add_arguments, argv2))
    assert (out / "metrics.csv").read_text().splitlines()[-1].startswith("18,")
    assert cache_file.stat().st_mtime_ns == mtime
    with pytest.raises(MosaError, match="already exists"):
        CG.run(_args(CG.add_arguments, argv))

    # --init: a new run from those weights; the checkpoint's model config wins over --config
    cfg = tmp_path / "warm.json"
    train = {"batch_size": 4, "max_steps": 2, "lr": 1e-12}
    cfg.write_text(json.dumps({"model": {"dim": 48, "heads": 4}, "train": train}))
    warm = tmp_path / "warm"
    argv3 = [*argv[:4], "--out", str(warm), "--device", "cpu", "--config", str(cfg),
             "--init", str(out / "best"), "--balance-by", "m(0)", "--balance-cap", "2"]  # fmt: skip
    assert CG.run(_args(CG.add_arguments, argv3)) == 0
    assert (warm / "metrics.csv").read_text().splitlines()[-1].startswith("2,")  # fresh count
    run_cfg = json.loads((warm / "config.json").read_text())
    assert run_cfg["balance"] == ["m(0)", 0.5, 2]  # recorded with the run
    # --resume without --balance-by continues with the run's balance; another one is an error
    train["max_steps"] = 3
    cfg.write_text(json.dumps({"model": {"dim": 48, "heads": 4}, "train": train}))
    argv4 = [*argv3[:10], "--resume"]
    assert CG.run(_args(CG.add_arguments, argv4)) == 0
    assert (warm / "metrics.csv").read_text().splitlines()[-1].startswith("3,")
    assert json.loads((warm / "config.json").read_text())["balance"] == ["m(0)", 0.5, 2]
    assert TG.resumed_balance(warm, None) == ("m(0)", 0.5, 2)
    with pytest.raises(MosaError, match="was trained with --balance-by 'm\\(0\\)'"):
        CG.run(_args(CG.add_arguments, [*argv4, "--balance-by", "(m)"]))
    assert TG.resumed_balance(out, None) is None  # a run without balance stays without
    with pytest.raises(MosaError, match="trained with no --balance-by"):
        TG.resumed_balance(out, ("(m)", 0.5, 8))
    from mosa.models.sar import load_sar

    before, after = load_sar(out / "best"), load_sar(warm / "last")
    assert after.config == before.config and after.config.dim == 32
    weights = after.state_dict()
    for name, w0 in before.state_dict().items():
        assert torch.allclose(w0, weights[name], atol=1e-6), name  # lr 1e-12: weights stay put


def test_train_gen_errors(setup, tmp_path):
    data, vae_dir = setup
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"depth": 3}}))
    argv = [
        "--vae",
        str(vae_dir),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "o"),
        "--config",
        str(bad),
    ]
    with pytest.raises(MosaError, match="unknown model settings"):
        CG.run(_args(CG.add_arguments, argv))
    argv = [
        "--vae",
        str(tmp_path / "nothing"),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "o"),
        "--device",
        "cpu",
    ]
    with pytest.raises(MosaError, match="config.json is missing"):
        CG.run(_args(CG.add_arguments, argv))


def test_train_length(setup, tmp_path):
    data, _ = setup
    cfg = tmp_path / "len.json"
    cfg.write_text(
        json.dumps(
            {"model": {"hidden": 32}, "train": {"batch_size": 4, "max_steps": 10, "val_every": 5}}
        )
    )
    out = tmp_path / "len"
    argv = ["--data", str(data), "--out", str(out), "--device", "cpu", "--config", str(cfg)]
    assert CL.run(_args(CL.add_arguments, argv)) == 0
    from mosa.models.length import load_length

    est = load_length(out / "best")
    assert (est.config.min_tokens, est.config.max_tokens, est.config.unit) == (10, 49, 4)
    assert est.config.text_dim == 384
    assert "val_mae_frames" in (out / "metrics.csv").read_text().splitlines()[0]


def test_balance_repeats_by_hand():
    """Groups of 6, 3 and 1 items (and 2 unmatched): typical group = sum n^2 / N."""
    names = [f"d_walk_{i}" for i in range(6)] + [f"d_bow_{i}" for i in range(3)]
    names += ["d_kick_0", "odd", "odd2"]
    typical = (36 + 9 + 1 + 4) / 12
    got = TG.balance_repeats(names, r"_([a-z-]+)_", power=1.0, cap=3)
    want = {"walk": 1, "bow": round(typical / 3), "kick": min(round(typical / 1), 3)}
    assert got[:6] == [want["walk"]] * 6 and got[6:9] == [want["bow"]] * 3
    assert got[9] == want["kick"] == 3  # capped
    assert got[10:] == [round(typical / 2)] * 2  # the unmatched form one group
    assert TG.balance_repeats(names, r"_([a-z-]+)_", power=0.0, cap=8) == [1] * 12
    with pytest.raises(MosaError, match="not a valid regex"):
        TG.balance_repeats(names, "([", 0.5, 8)


def test_dataset_repeats_crops_of_repeated_items():
    tokens = TC.TokenCache(
        flat=torch.arange(6, dtype=torch.int32),
        offset=torch.tensor([0, 2, 4, 6]),
        n=torch.tensor([2, 2, 2]),
        item=torch.tensor([0, 1, 1]),  # crop 0 of item 0, crops 1-2 of item 1
    )
    texts = TC.TextCache(["a", "b"], torch.zeros(2, 4), torch.tensor([0, 1, 2]), torch.zeros(2, 4))
    data = TG.TokenTextDataset(tokens, texts, [["a"], ["b"]], repeats=[3, 1])
    assert data.crops.tolist() == [0, 0, 0, 1, 2]
    assert len(data) == 5 and data[4]["tokens"].tolist() == [4, 5]
    assert len(TG.TokenTextDataset(tokens, texts, [["a"], ["b"]])) == 3
