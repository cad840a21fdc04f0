"""Rare-group repeats for every trainer, the tokenizer's warm start, per-corpus reconstruction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mosa.errors import MosaError
from mosa.eval.reconstruction import evaluate_by_corpus, evaluate_tokenizer
from mosa.models.vae import VAEConfig, load_vae
from mosa.train import vae as train_vae_mod
from mosa.train.balance import RepeatedItems, balance_repeats
from mosa.train.common import TrainConfig

TINY_MODEL = dict(
    width=32, depth=1, attn_blocks=1, attn_heads=2, code_dim=16, codebook_size=32, num_phi=2
)
TINY_TRAIN = dict(
    batch_size=3, lr=1e-3, warmup_steps=2, window=48, log_every=1, val_every=0, ckpt_every_s=1e9
)


def test_repeated_items_lists_each_item_its_repeats():
    base = ["a", "b", "c"]
    rep = RepeatedItems(base, [1, 3, 0])
    assert len(rep) == 4
    assert [rep[i] for i in range(len(rep))] == ["a", "b", "b", "b"]
    with pytest.raises(ValueError):
        RepeatedItems(base, [1, 2])


def test_balance_repeats_by_actions_hand_computed():
    names = ["w1", "w2", "w3", "w4", "j1"]
    actions = {n: ["walk"] for n in names[:4]} | {"j1": ["jump", "walk"]}
    # groups: walk x4, jump x1 (rarest action); typical = (16 + 1) / 5 = 3.4
    assert balance_repeats(names, "actions", 1.0, 8, actions=actions) == [1, 1, 1, 1, 3]
    assert balance_repeats(names, "actions", 1.0, 2, actions=actions)[-1] == 2  # the cap
    with pytest.raises(MosaError, match="actions.json"):
        balance_repeats(names, "actions", 1.0, 8, actions=None)


def _with_actions(src: Path, dst: Path) -> Path:
    """A copy of ``src`` (a tiny HumanML3D-layout folder) with an actions.json and a manifest
    naming two corpora."""
    import shutil

    shutil.copytree(src, dst)
    names = (dst / "all.txt").read_text().split() if (dst / "all.txt").exists() else []
    names = names or sum(
        ((dst / f"{s}.txt").read_text().split() for s in ("train", "val", "test")), []
    )
    actions = {n: (["jump"] if n.startswith("c1") else ["walk"]) for n in names}
    (dst / "actions.json").write_text(json.dumps(actions))
    clips = {n: {"corpus": "cmu" if n.startswith("c1") else "bandai-namco"} for n in names}
    (dst / "manifest.json").write_text(json.dumps({"clips": clips}))
    return dst


@pytest.fixture(scope="module")
def fake_data(hml_sample: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hml_bal")
    (root / "new_joint_vecs").mkdir()
    (root / "texts").mkdir()
    names = []
    for c, n in enumerate(("000612", "012314")):
        clip = np.load(hml_sample / f"{n}_new_joint_vecs.npy").astype(np.float32)
        for j, start in enumerate(range(0, len(clip) - 60, 18)):
            name = f"c{c}_{j:02d}"
            np.save(root / "new_joint_vecs" / f"{name}.npy", clip[start : start + 60 + 4 * (j % 4)])
            (root / "texts" / f"{name}.txt").write_text(
                "a person moves.#a/DET person/NOUN move/VERB#0.0#0.0\n"
            )
            names.append(name)
    np.save(root / "Mean.npy", np.load(hml_sample / "Mean.npy"))
    np.save(root / "Std.npy", np.load(hml_sample / "Std.npy"))
    (root / "train.txt").write_text("\n".join(names[:-4]) + "\n")
    (root / "val.txt").write_text("\n".join(names[-4:-2]) + "\n")
    (root / "test.txt").write_text("\n".join(names[-2:]) + "\n")
    return _with_actions(root, tmp_path_factory.mktemp("bal") / "data")


def test_vae_init_keeps_weights_and_normalisation_then_trains(fake_data, tmp_path):
    model = VAEConfig(**TINY_MODEL)
    train = TrainConfig(**{**TINY_TRAIN, "max_steps": 2})
    first = tmp_path / "first"
    train_vae_mod.train_vae(fake_data, first, model, train, quiet=True)
    # the init's own mean/std travel with it, not the dataset's
    init = first / "last"
    np.save(init / "mean.npy", np.load(init / "mean.npy") + 0.5)
    tuned = tmp_path / "tuned"
    train_vae_mod.train_vae(
        fake_data, tuned, VAEConfig(**{**TINY_MODEL, "width": 64}), train, quiet=True,
        init=init, balance=("actions", 1.0, 4),
    )  # fmt: skip
    m0, mean0, _ = load_vae(init, "cpu")
    m1, mean1, _ = load_vae(tuned / "last", "cpu")
    assert m1.config.width == 32  # the init's config wins over the one passed
    assert np.array_equal(mean0, mean1)
    p0, p1 = dict(m0.named_parameters()), dict(m1.named_parameters())
    assert p0.keys() == p1.keys()
    assert any(not torch.equal(p0[k], p1[k]) for k in p0)  # it trained from there
    meta = json.loads((tuned / "last" / "config.json").read_text())["meta"]
    assert meta["balance"] == ["actions", 1.0, 4] and meta["init"] == str(init)


def test_evaluate_by_corpus_splits_the_clips(fake_data, tmp_path):
    train_vae_mod.train_vae(
        fake_data, tmp_path / "v", VAEConfig(**TINY_MODEL),
        TrainConfig(**{**TINY_TRAIN, "max_steps": 1}), quiet=True,
    )  # fmt: skip
    per = evaluate_by_corpus(tmp_path / "v" / "last", fake_data, "train")
    whole = evaluate_tokenizer(tmp_path / "v" / "last", fake_data, "train")
    assert set(per) == {"bandai-namco", "cmu"}
    n = {k: v["num_frames"] for k, v in per.items()}
    assert sum(n.values()) == whole["num_frames"]
    # frame-weighted corpus means give the whole split's mean back
    mixed = sum(v["mpjpe_mm"] * n[k] for k, v in per.items()) / whole["num_frames"]
    assert mixed == pytest.approx(whole["mpjpe_mm"], rel=1e-4)
    # the same through the command line, as JSON
    from mosa.cli import eval_reconstruction

    out = tmp_path / "per.json"
    argv = ["--vae", str(tmp_path / "v" / "last"), "--data", str(fake_data), "--split", "train"]
    assert eval_reconstruction.main([*argv, "--by-corpus", "--json", str(out)]) == 0
    assert json.loads(out.read_text()).keys() == per.keys()
    assert eval_reconstruction.main([*argv, "--by-corpus", "--png", str(tmp_path / "x.png")]) == 2
