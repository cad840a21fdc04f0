"""Text-motion evaluator: shapes, masking, save/load, learning, word features, official loader."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mosa.errors import MosaError
from mosa.eval import metrics as M
from mosa.eval.evaluator import (
    Evaluator,
    EvaluatorConfig,
    TextMotionEvaluator,
    contrastive_loss,
    save_evaluator,
)
from mosa.eval.loading import load_evaluator
from mosa.eval.wordvec import (
    POS_CATEGORIES,
    GloVeWordVectors,
    SpacyWordVectors,
    encode_token_batch,
    encode_tokens,
    frame_tokens,
    load_plain_pickle,
    token_features,
    tokenize_caption,
)

D = 12  # tiny motion features: 8 pose channels + 4 contacts


def tiny_config(**kw) -> EvaluatorConfig:
    base = dict(
        motion_dim=D, movement_hidden=16, movement_dim=16, motion_hidden=24, text_hidden=20,
        embed_dim=8, max_motion_length=48, dropout=0.0,
    )  # fmt: skip
    return EvaluatorConfig(**{**base, **kw})


class FakeVectors:
    """Random 300-d vectors for a small vocabulary."""

    dim = 300

    def __init__(self, words, seed=0):
        g = np.random.default_rng(seed)
        self.table = {w: g.standard_normal(300).astype(np.float32) for w in words}

    def vector(self, word):
        return self.table.get(word)


VOCAB = ["sos", "eos", "unk", "a", "person", "walk", "forward", "jump", "wave"]


# ---------------------------------------------------------------- model


def test_encode_shapes_and_sphere():
    model = TextMotionEvaluator(tiny_config()).eval()
    m = model.encode_motion(torch.randn(3, 40, D), torch.tensor([40, 20, 4]))
    assert m.shape == (3, 8)
    torch.testing.assert_close(m.norm(dim=-1), torch.full((3,), 10.0))
    words, pos, lengths = encode_token_batch(FakeVectors(VOCAB), [["walk/VERB"], ["a/DET"] * 30])
    assert words.shape == (2, 22, 300) and pos.shape == (2, 22, 15)
    assert lengths.tolist() == [3, 22]
    t = model.encode_text(words, pos, lengths)
    assert t.shape == (2, 8)
    raw = TextMotionEvaluator(tiny_config(embed_norm=0.0)).eval()
    assert not torch.allclose(raw.encode_text(words, pos, lengths).norm(dim=-1), torch.tensor(10.0))


def test_padding_does_not_change_motion_embeddings():
    model = TextMotionEvaluator(tiny_config()).eval()
    lengths = [44, 23, 8]
    batch = torch.randn(3, 48, D) * 5  # garbage beyond each length
    together = model.encode_motion(batch, torch.tensor(lengths))
    for i, n in enumerate(lengths):
        alone = model.encode_motion(batch[i : i + 1, :n], torch.tensor([n]))
        torch.testing.assert_close(together[i : i + 1], alone, atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_text_embeddings():
    model = TextMotionEvaluator(tiny_config()).eval()
    vec = FakeVectors(VOCAB)
    words, pos, lengths = encode_token_batch(
        vec, [["a/DET", "person/NOUN", "walk/VERB"], ["jump/VERB"]]
    )
    out = model.encode_text(words, pos, lengths)
    words[:, 5:] = torch.randn_like(words[:, 5:]) * 3  # corrupt the padding of both
    pos[:, 5:] = 1.0
    torch.testing.assert_close(model.encode_text(words, pos, lengths), out)
    alone = model.encode_text(words[1:, :3], pos[1:, :3], lengths[1:])
    torch.testing.assert_close(alone, out[1:], atol=1e-5, rtol=1e-5)


def test_batch_order_does_not_matter():
    model = TextMotionEvaluator(tiny_config()).eval()
    x, lengths = torch.randn(4, 48, D), torch.tensor([12, 48, 20, 36])
    out = model.encode_motion(x, lengths)
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(model.encode_motion(x[perm], lengths[perm]), out[perm])


def test_bad_lengths_raise():
    model = TextMotionEvaluator(tiny_config())
    with pytest.raises(MosaError):
        model.encode_motion(torch.randn(1, 10, D), torch.tensor([3]))
    with pytest.raises(MosaError):
        model.encode_motion(torch.randn(1, 10, D + 1), torch.tensor([8]))


def test_contrastive_loss_by_hand():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    t = torch.cat([a, b])
    # matched pairs identical and orthogonal to the other pair, unit sphere, tau = 0.5:
    # logits = (cos - 1) / tau = [[0, -2], [-2, 0]] -> loss = log(1 + e^-2) both ways
    loss = contrastive_loss(t, t.clone(), temperature=0.5, embed_norm=1.0)
    assert loss.item() == pytest.approx(np.log(1 + np.exp(-2.0)), rel=1e-5)
    # identical captions are not negatives of each other: with both pairs equal and grouped,
    # the only logit left per row is the positive one -> zero loss
    same = torch.cat([a, a])
    assert contrastive_loss(same, same, 0.5, 1.0).item() == pytest.approx(np.log(2), rel=1e-5)
    grouped = contrastive_loss(same, same, 0.5, 1.0, groups=torch.tensor([7, 7]))
    assert grouped.item() == pytest.approx(0.0, abs=1e-6)


def test_tiny_contrastive_training_beats_chance():
    """16 classes of synthetic motions, each named by its own word: R-Precision must rise."""
    k, t = 16, 32
    vec = FakeVectors(VOCAB + [f"w{c}" for c in range(k)])
    protos = np.random.default_rng(1).standard_normal((k, t // 4, D)).repeat(4, axis=1)

    def sample(n, rng):
        cls = rng.integers(0, k, n)
        motion = torch.tensor(
            protos[cls] + 0.3 * rng.standard_normal((n, t, D)), dtype=torch.float32
        )
        tokens = [["a/DET", "person/NOUN", f"w{c}/VERB"] for c in cls]
        return motion, torch.full((n,), t), tokens, torch.tensor(cls)

    model = TextMotionEvaluator(tiny_config(max_motion_length=t))

    @torch.no_grad()
    def r_prec():
        model.eval()
        motion, lengths, tokens, _ = sample(320, np.random.default_rng(5))
        te = model.encode_text(*encode_token_batch(vec, tokens)).double().numpy()
        return M.r_precision(te, model.encode_motion(motion, lengths).double().numpy())

    before = r_prec()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(2)
    for _ in range(80):
        model.train()
        motion, lengths, tokens, cls = sample(32, rng)
        te = model.encode_text(*encode_token_batch(vec, tokens))
        loss = contrastive_loss(te, model.encode_motion(motion, lengths), 0.1, 10.0, groups=cls)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = r_prec()
    assert before["top3"] < 0.2  # chance is 3/32
    # ~2 motions of each class per pool of 32: perfect class matching gives top-1 ~ 0.5
    assert after["top1"] > 0.25 and after["top3"] > 0.6
    assert after["mm_dist"] < before["mm_dist"]


def test_save_load_gives_identical_outputs(tmp_path: Path):
    model = TextMotionEvaluator(tiny_config()).eval()
    mean, std = np.linspace(-1, 1, D).astype(np.float32), np.linspace(0.5, 2, D).astype(np.float32)
    ev = Evaluator(model, mean, std, SpacyWordVectors())
    save_evaluator(tmp_path / "run" / "best", model, mean, std, meta={"epoch": 3})
    loaded = load_evaluator(tmp_path / "run")  # a run folder resolves to its best/
    assert loaded.config == model.config
    np.testing.assert_array_equal(loaded.mean, mean)
    feats, lengths = torch.randn(3, 40, D), torch.tensor([40, 17, 9])
    np.testing.assert_array_equal(
        loaded.embed_motions(feats, lengths), ev.embed_motions(feats, lengths)
    )
    tokens = [tokenize_caption("A person walks forward and waves."), ["jump/VERB"]]
    np.testing.assert_array_equal(loaded.embed_texts(tokens), ev.embed_texts(tokens))
    # the normalisation is applied: raw = mean gives the same as zeros into the model
    with torch.no_grad():
        z = model.encode_motion(torch.zeros(1, 40, D), torch.tensor([40])).double().numpy()
    np.testing.assert_allclose(
        ev.embed_motions(torch.from_numpy(mean)[None].repeat(1, 40, 1), [40]), z
    )


def test_load_missing_checkpoint_is_a_user_error(tmp_path: Path):
    with pytest.raises(MosaError):
        load_evaluator(tmp_path / "nothing")


def test_load_evaluator_at_its_old_home_warns_and_is_the_moved_function():
    import mosa.eval.evaluator as old_home

    with pytest.warns(DeprecationWarning, match="mosa.eval.loading"):
        assert old_home.load_evaluator is load_evaluator
    with pytest.raises(AttributeError):
        old_home.no_such_name  # noqa: B018


# ---------------------------------------------------------------- word features


@pytest.fixture(scope="module")
def spacy_vectors():
    return SpacyWordVectors()


def _category(onehot: np.ndarray) -> str:
    assert onehot.sum() == 1
    return POS_CATEGORIES[int(onehot.argmax())]


def test_pos_categories_and_vip_lists(spacy_vectors):
    cases = {
        "walk/VERB": "Act_VIP", "left/ADJ": "Loc_VIP", "counterclockwise/ADV": "Loc_VIP",
        "hand/NOUN": "Body_VIP", "chair/NOUN": "Obj_VIP", "happily/ADV": "Desc_VIP",
        "person/NOUN": "NOUN", "the/DET": "DET", "on/ADP": "ADP", "two/NUM": "NUM",
        "is/AUX": "AUX", "his/PRON": "PRON", "tall/ADJ": "ADJ", "then/ADV": "ADV",
        "and/CCONJ": "OTHER", "wobble/VERB": "VERB",
    }  # fmt: skip
    assert len(POS_CATEGORIES) == 15
    for token, category in cases.items():
        _, onehot = token_features(spacy_vectors, token)
        assert _category(onehot) == category, token


def test_unknown_word_is_unk_other(spacy_vectors):
    vec, onehot = token_features(spacy_vectors, "qzxvwbt/NOUN")
    np.testing.assert_array_equal(vec, spacy_vectors.vector("unk"))
    assert _category(onehot) == "OTHER"


def test_spacy_vectors_scale_and_specials(spacy_vectors):
    v = spacy_vectors.vector("walk")
    assert v.shape == (300,) and np.linalg.norm(v) == pytest.approx(np.sqrt(300), rel=1e-5)
    specials = [spacy_vectors.vector(w) for w in ("sos", "eos", "unk")]
    assert not np.allclose(specials[0], specials[1]) and not np.allclose(specials[1], specials[2])
    # similar words are closer than unrelated ones (these really are word vectors)
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert cos(v, spacy_vectors.vector("run")) > cos(v, spacy_vectors.vector("banana"))


def test_frame_tokens_pad_and_cut():
    framed, n = frame_tokens(["a/DET", "walk/VERB"])
    assert n == 4 and len(framed) == 22
    assert framed[:4] == ["sos/OTHER", "a/DET", "walk/VERB", "eos/OTHER"]
    assert framed[4:] == ["unk/OTHER"] * 18
    framed, n = frame_tokens([f"w{i}/NOUN" for i in range(25)])
    assert n == 22 and framed[-2] == "w19/NOUN" and framed[-1] == "eos/OTHER"


def test_encode_tokens_rows(spacy_vectors):
    words, pos, n = encode_tokens(spacy_vectors, ["person/NOUN", "jump/VERB"])
    assert n == 4 and words.shape == (22, 300) and pos.shape == (22, 15)
    np.testing.assert_array_equal(words[0], spacy_vectors.vector("sos"))
    np.testing.assert_array_equal(words[2], spacy_vectors.vector("jump"))
    assert [_category(p) for p in pos[:4]] == ["OTHER", "NOUN", "Act_VIP", "OTHER"]


def test_tokenize_caption_follows_humanml3d():
    tokens = tokenize_caption("A man walks forward, turns left and sits-down on two chairs.")
    words = [t.split("/")[0] for t in tokens]
    # punctuation dropped, hyphen removed, nouns/verbs lemmatised, "left" kept as is
    assert words == [
        "a",
        "man",
        "walk",
        "forward",
        "turn",
        "left",
        "and",
        "sitsdown",
        "on",
        "two",
        "chair",
    ]
    assert "man/NOUN" in tokens and tokens[-1] == "chair/NOUN"


# ---------------------------------------------------------------- official evaluator files


def _official_layout(rng: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
    """Random weights under the key names and shapes of the official T2M modules.

    Sizes are reduced but distinct, so a wrong size inference would fail: movement conv
    259 -> 24 -> 20, motion GRU 36, text GRU 28, embedding 16.
    """
    r = lambda *s: torch.randn(*s, generator=rng) * 0.2  # noqa: E731

    def gru(inp, h):
        out = {}
        for sfx in ("", "_reverse"):
            out |= {
                f"gru.weight_ih_l0{sfx}": r(3 * h, inp), f"gru.weight_hh_l0{sfx}": r(3 * h, h),
                f"gru.bias_ih_l0{sfx}": r(3 * h), f"gru.bias_hh_l0{sfx}": r(3 * h),
            }  # fmt: skip
        return out

    def head(h, e):
        return {
            "output_net.0.weight": r(h, 2 * h), "output_net.0.bias": r(h),
            "output_net.1.weight": 1 + r(h), "output_net.1.bias": r(h),
            "output_net.3.weight": r(e, h), "output_net.3.bias": r(e), "hidden": r(2, 1, h),
        }  # fmt: skip

    movement = {
        "main.0.weight": r(24, 259, 4), "main.0.bias": r(24),
        "main.3.weight": r(20, 24, 4), "main.3.bias": r(20),
        "out_net.weight": r(20, 20), "out_net.bias": r(20),
    }  # fmt: skip
    motion = {"input_emb.weight": r(36, 20), "input_emb.bias": r(36), **gru(36, 36), **head(36, 16)}
    text = {
        "pos_emb.weight": r(300, 15), "pos_emb.bias": r(300),
        "input_emb.weight": r(28, 300), "input_emb.bias": r(28), **gru(28, 28), **head(28, 16),
    }  # fmt: skip
    return {"movement_encoder": movement, "motion_encoder": motion, "text_encoder": text}


GLOVE_WORDS = ["sos", "eos", "unk", "walk", "forward", "person"]


@pytest.fixture()
def official_dir(tmp_path: Path):
    states = _official_layout(torch.Generator().manual_seed(0))
    root = tmp_path / "checkpoints" / "t2m"
    (root / "text_mot_match" / "model").mkdir(parents=True)
    ckpt = {
        **states, "epoch": 7, "iter": 1234,
        "opt_text_encoder": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
    }  # fmt: skip
    torch.save(ckpt, root / "text_mot_match" / "model" / "finest.tar")
    meta = root / "Comp_v6_KLD005" / "meta"
    meta.mkdir(parents=True)
    g = np.random.default_rng(0)
    mean, std = g.normal(size=263).astype(np.float32), g.uniform(0.5, 2, 263).astype(np.float32)
    np.save(meta / "mean.npy", mean)
    np.save(meta / "std.npy", std)
    glove = tmp_path / "glove"
    glove.mkdir()
    data = g.normal(size=(len(GLOVE_WORDS), 300)).astype(np.float32)
    np.save(glove / "our_vab_data.npy", data)
    with open(glove / "our_vab_words.pkl", "wb") as f:
        pickle.dump(GLOVE_WORDS, f)
    with open(glove / "our_vab_idx.pkl", "wb") as f:
        pickle.dump({w: i for i, w in enumerate(GLOVE_WORDS)}, f)
    return root, states, mean, std, data


def _ref_head(state, x, length):
    """Reference bi-GRU head from raw tensors: x (L, H) -> (E,), GRU built fresh from torch."""
    x = F.linear(x, state["input_emb.weight"], state["input_emb.bias"])
    h = x.shape[-1]
    gru = torch.nn.GRU(h, h, batch_first=True, bidirectional=True)
    gru.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("gru.")})
    _, last = gru(x[None, :length], state["hidden"])
    y = F.linear(
        torch.cat([last[0, 0], last[1, 0]]),
        state["output_net.0.weight"],
        state["output_net.0.bias"],
    )
    y = F.layer_norm(y, (h,), state["output_net.1.weight"], state["output_net.1.bias"])
    y = F.leaky_relu(y, 0.2)
    return F.linear(y, state["output_net.3.weight"], state["output_net.3.bias"])


@torch.no_grad()
def test_official_evaluator_loads_and_matches_reference(official_dir):
    root, states, mean, std, data = official_dir
    ev = load_evaluator(f"t2m:{root.parent}")  # the checkpoints/ folder holding t2m/
    c = ev.config
    assert (c.motion_dim, c.movement_hidden, c.movement_dim) == (263, 24, 20)
    assert (c.motion_hidden, c.text_hidden, c.embed_dim, c.embed_norm) == (36, 28, 16, 0.0)

    # motion: the protocol zero-pads the normalised motion to 196 frames, drops the contacts
    raw = torch.from_numpy(np.random.default_rng(1).normal(size=(60, 263)).astype(np.float32))
    x = (raw - torch.from_numpy(mean)) / torch.from_numpy(std)
    x = F.pad(x[:, :-4], (0, 0, 0, 196 - 60)).T[None]
    mv = states["movement_encoder"]
    y = F.leaky_relu(F.conv1d(x, mv["main.0.weight"], mv["main.0.bias"], stride=2, padding=1), 0.2)
    y = F.leaky_relu(F.conv1d(y, mv["main.3.weight"], mv["main.3.bias"], stride=2, padding=1), 0.2)
    y = F.linear(y[0].T, mv["out_net.weight"], mv["out_net.bias"])
    expected = _ref_head(states["motion_encoder"], y, 60 // 4)
    got = ev.embed_motions(raw[None], [60])[0]
    np.testing.assert_allclose(got, expected.double().numpy(), rtol=1e-4, atol=1e-5)

    # text: sos walk forward unk eos with POS OTHER Act_VIP Loc_VIP OTHER OTHER
    rows = [0, 3, 4, 2, 1]
    pos = torch.zeros(5, 15)
    pos[[0, 3, 4], 14] = 1
    pos[1, 12] = 1
    pos[2, 9] = 1
    tx = states["text_encoder"]
    words = torch.from_numpy(data[rows]) + F.linear(pos, tx["pos_emb.weight"], tx["pos_emb.bias"])
    expected = _ref_head(tx, words, 5)
    got = ev.embed_texts([["walk/VERB", "forward/ADV", "zebra/NOUN"]])[0]
    np.testing.assert_allclose(got, expected.double().numpy(), rtol=1e-4, atol=1e-5)


def test_glove_vectors_and_plain_pickle(official_dir, tmp_path: Path):
    root, _, _, _, data = official_dir
    glove = GloVeWordVectors(root.parent.parent / "glove")
    np.testing.assert_array_equal(glove.vector("walk"), data[3])
    assert glove.vector("zebra") is None
    bad = tmp_path / "bad.pkl"
    with open(bad, "wb") as f:
        pickle.dump(collections.OrderedDict(a=1), f)  # needs a class: refused
    with pytest.raises(MosaError):
        load_plain_pickle(bad)


def test_official_loader_errors(tmp_path: Path, official_dir):
    with pytest.raises(MosaError):
        load_evaluator(f"t2m:{tmp_path / 'nowhere'}")
    root = official_dir[0]
    (tmp_path / "glove" / "our_vab_data.npy").unlink()
    with pytest.raises(MosaError):
        load_evaluator(f"t2m:{root}")


# ---------------------------------------------------------------- training + `mosa eval` smoke test

ACTIONS = ("walk", "jump", "wave", "kick")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """A HumanML3D-layout folder: 4 actions, each a distinct motion pattern, 263-d features."""
    root = tmp_path_factory.mktemp("tiny_hml")
    (root / "new_joint_vecs").mkdir()
    (root / "texts").mkdir()
    g = np.random.default_rng(0)
    patterns = g.normal(size=(len(ACTIONS), 263))
    splits = {"train": 64, "val": 36, "test": 40}
    clip = 0
    for split, count in splits.items():
        names = []
        for _ in range(count):
            a = clip % len(ACTIONS)
            n = int(g.integers(40, 90))
            t = np.linspace(0, 2 * np.pi, n)[:, None]
            feats = np.sin(t * (a + 1)) * patterns[a] + 0.3 * g.normal(size=(n, 263))
            name = f"{clip:06d}"
            np.save(root / "new_joint_vecs" / f"{name}.npy", feats.astype(np.float32))
            verb = ACTIONS[a]
            (root / "texts" / f"{name}.txt").write_text(
                f"a person {verb}s#a/DET person/NOUN {verb}/VERB#0.0#0.0\n"
                f"someone {verb}s again#someone/PRON {verb}/VERB again/ADV#0.0#0.0\n"
            )
            names.append(name)
            clip += 1
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    np.save(root / "Mean.npy", np.zeros(263, np.float32))
    np.save(root / "Std.npy", np.ones(263, np.float32))
    return root


def test_train_evaluator_then_eval_is_reproducible(tiny_dataset, tmp_path, monkeypatch, capsys):
    import argparse
    import json

    from mosa.cli import eval as cli_eval
    from mosa.cli import train_evaluator as cli_train_evaluator
    from mosa.eval import train_evaluator

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOSA_CHECKPOINTS", str(tmp_path / "no-checkpoints"))  # no model rows
    parser = argparse.ArgumentParser()
    cli_train_evaluator.add_arguments(parser)
    args = parser.parse_args(
        ["--data", str(tiny_dataset), "--out", "run", "--epochs", "2", "--batch-size", "16",
         "--width", "16", "--lr", "3e-3", "--no-progress"]
    )  # fmt: skip
    report = train_evaluator.train(**cli_train_evaluator.train_kwargs(args))
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,step,train_loss") and len(log) == 3
    assert set(report["test"]) == {"Real", "Real (shuffled texts)"}

    parser = argparse.ArgumentParser()
    cli_eval.add_arguments(parser)
    outs = []
    for name in ("a.json", "b.json"):
        args = parser.parse_args(
            ["--evaluator", "run", "--data", str(tiny_dataset), "--replications", "2",
             "--json", name, "--no-progress"]
        )  # fmt: skip
        assert cli_eval.run(args) == 0
        outs.append(json.loads((tmp_path / name).read_text()))
    assert outs[0]["rows"] == outs[1]["rows"]  # fixed seed -> identical numbers
    real = outs[0]["rows"]["Real"]
    assert set(real) == {"fid", "top1", "top2", "top3", "mm_dist", "diversity"}
    assert set(outs[0]["rows"]["Real (shuffled texts)"]) == {"top1", "top2", "top3", "mm_dist"}
    assert len(real["top1"]["values"]) == 2
    assert real["top1"]["mean"] <= real["top2"]["mean"] <= real["top3"]["mean"]
    table = capsys.readouterr().out
    assert "| Real (shuffled texts) |" in table and "±" in table


def test_evaluate_model_rows_with_stand_in_models(tiny_dataset):
    """An identity tokenizer reproduces the Real row; a generator row gets MultiModality."""
    from mosa.data.dataset import MotionDataset
    from mosa.eval.run import GENERATED, REAL, RECON, EvalSettings, evaluate

    data = MotionDataset(tiny_dataset, "test", random_crop=True, seed=0)
    cfg = tiny_config(motion_dim=263, max_motion_length=196)
    ev = Evaluator(
        TextMotionEvaluator(cfg), data.mean, data.std, FakeVectors(VOCAB + list(ACTIONS))
    )
    calls = []

    def generate(captions, lengths, seed):
        calls.append((len(captions), seed))
        g = np.random.default_rng(seed)
        return [g.normal(size=(44, 263)) for _ in captions]  # its own length, not the asked one

    settings = EvalSettings(replications=2, mm_samples=5, mm_repeats=12, mm_times=10, batch_size=16)
    out = evaluate(ev, data, vae=lambda raw, n: raw.clone(), generate=generate, settings=settings,
                   progress=False)  # fmt: skip
    for k in ("fid", "top1", "top2", "top3", "mm_dist"):
        assert out[RECON][k] == out[REAL][k]
    assert len(out[GENERATED]["multimodality"]) == 2
    assert all(v > 0 for v in out[GENERATED]["multimodality"])
    assert out[GENERATED]["fid"][0] > out[REAL]["fid"][0]
    # 40 captions in chunks of 16 + 5 x 12 MultiModality generations per replication
    assert sum(n for n, _ in calls) == 2 * (40 + 60)


def test_pipeline_generate_fn_clamps_lengths_and_passes_sampling():
    from types import SimpleNamespace

    from mosa.eval.run import pipeline_generate_fn

    calls = []

    def fake_generate(captions, frames, seed, **kw):
        calls.append((captions, frames, seed, kw))
        return [SimpleNamespace(features=np.zeros((f, 3))) for f in frames]

    pipe = SimpleNamespace(frame_range=(40, 196), generate=fake_generate)
    out = pipeline_generate_fn(pipe, cfg=5.0, top_k=None)(["a", "b"], [10, 300], 7)
    assert [len(x) for x in out] == [40, 196]
    assert calls == [(["a", "b"], [40, 196], 7, {"cfg": 5.0, "top_k": None})]
