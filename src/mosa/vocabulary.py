"""What a model was trained on, and a check that warns when a prompt asks for something else.

A ``Vocabulary`` holds, for the training split of a dataset:

- per action (``mosa.data.actions.ACTIONS`` names): how many clips and seconds of it there were;
- sentence embeddings of the training captions (deduplicated, near-duplicates merged, float16),
  each with the actions of its clip, and the name of the text encoder that made them;
- the words of the training captions (lemmas, as in the HumanML3D ``word/POS`` tokens).

``vocab.check(prompt)`` combines two signals into one score: how close the prompt's sentence
embedding comes to a training caption (cosine similarity of the nearest one), minus penalties
for action words the training captions never had (a verb or noun of the prompt outside the
training words; a keyword of an action the training set has no clip of). A score under the
calibrated ``threshold`` is a warning. It warns, it never refuses: generation goes on.

Files, in any folder (a checkpoint's ``sar/`` folder in a pipeline): ``vocabulary.json``
(counts, words, threshold, encoder name) and ``vocabulary.safetensors`` (embeddings). No
pickle. ``load_vocabulary`` returns None for a folder without them (older checkpoints).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from mosa.data.actions import ACTIONS, actions_in
from mosa.errors import MosaError
from mosa.motion.skeleton import FPS

VOCAB_JSON = "vocabulary.json"
VOCAB_TENSORS = "vocabulary.safetensors"
ACTIONS_FILE = "actions.json"
FORMAT_VERSION = 1

DEFAULT_THRESHOLD = 0.58  # upper bound; calibration on held-out captions may lower it
CALIBRATION_QUANTILE = 0.02  # the threshold passes >= 98% of the held-out captions
MAX_CAPTIONS = 4096  # embeddings kept: 4096 x 384 x float16 = 3 MB
MERGE_SIMILARITY = 0.95  # captions closer than this to a kept one are merged into it
_CONTENT_POS = ("VERB", "NOUN")
_MIN_WORD_LEN = 3  # "up", "ok": too short to be an action word


class SentenceEncoder(Protocol):
    """What a vocabulary needs from a text encoder (``mosa.models.text.TextEncoder`` fits)."""

    spec: str

    def pooled(self, texts: list[str]) -> torch.Tensor:  # (B, D) unit vectors
        ...


@dataclass(frozen=True)
class Penalties:
    """What the lexical check subtracts from the nearest-caption similarity. They set the scale
    the threshold lives on, so every vocabulary saves its own."""

    untrained_action: float = 0.5  # a keyword of an action with no training clip: always warns
    unlabelled_action: float = 0.1  # the same, but some training caption has the words (a
    # window of a mixed take, left unlabelled): weaker evidence
    unknown_verb: float = 0.10  # per verb the training captions never had (at most 2 count)
    unknown_noun: float = 0.05  # per noun never had (at most 2 count)

    def __call__(
        self, untrained: int, unknown_verbs: int, unknown_nouns: int, unlabelled: int = 0
    ) -> float:
        return (
            self.untrained_action * min(untrained, 1)
            + self.unlabelled_action * min(unlabelled, 1) * (untrained == 0)
            + self.unknown_verb * min(unknown_verbs, 2)
            + self.unknown_noun * min(unknown_nouns, 2)
        )


@dataclass(frozen=True)
class ActionStats:
    clips: int
    seconds: float


@dataclass(frozen=True)
class VocabularyReport:
    """The answer of ``Vocabulary.check``.

    known: the score reaches the threshold (no warning); score: nearest-caption similarity minus
    penalties; similarity: the nearest-caption similarity alone; nearest: the trained actions
    closest to the prompt, best first; unknown_words: action-like words of the prompt the
    training captions never had; message: the warning, None when known.
    """

    known: bool
    score: float
    similarity: float
    nearest: list[str]
    unknown_words: list[str]
    message: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "known": self.known,
            "score": round(self.score, 4),
            "similarity": round(self.similarity, 4),
            "nearest": list(self.nearest),
            "unknown_words": list(self.unknown_words),
            "message": self.message,
        }


@dataclass
class Vocabulary:
    """What a model was trained on. ``embeddings`` ``(N, D)`` float16 unit vectors of the kept
    training captions; ``caption_actions`` ``(N, A)`` bool, column j for ``action_names[j]``."""

    encoder: str
    embeddings: torch.Tensor
    caption_actions: torch.Tensor
    action_names: list[str]
    counts: dict[str, ActionStats]
    words: frozenset[str]
    threshold: float = DEFAULT_THRESHOLD
    penalties: Penalties = field(default_factory=Penalties)
    meta: dict[str, Any] = field(default_factory=dict)
    _encoder: SentenceEncoder | None = field(default=None, repr=False, compare=False)

    @property
    def trained_actions(self) -> list[str]:
        """Actions with at least one training clip, most clips first."""
        have = [a for a, s in self.counts.items() if s.clips > 0]
        return sorted(have, key=lambda a: -self.counts[a].clips)

    def similarities(self, prompts: Sequence[str], encoder: SentenceEncoder | None = None):
        """Cosine similarity of each prompt to each kept caption: ``(B,) texts -> (B, N)``."""
        enc = self._resolve_encoder(encoder)
        query = enc.pooled(list(prompts)).float().cpu()
        if query.shape[-1] != self.embeddings.shape[-1]:
            raise MosaError(
                f"text encoder '{enc.spec}' gives {query.shape[-1]}-d vectors, the vocabulary "
                f"holds {self.embeddings.shape[-1]}-d ones from '{self.encoder}'",
                f"check prompts with the encoder the vocabulary was built with ('{self.encoder}')",
            )
        return query @ self.embeddings.float().T

    def check(
        self,
        prompt: str,
        encoder: SentenceEncoder | None = None,
        tokens: Sequence[str] | None = None,
    ) -> VocabularyReport:
        """Is ``prompt`` close to what the model was trained on? Never raises for a prompt.

        ``tokens``: its HumanML3D ``word/POS`` tokens when known (else tagged with spaCy).
        """
        return self.check_many([prompt], encoder, None if tokens is None else [tokens])[0]

    def check_many(
        self,
        prompts: Sequence[str],
        encoder: SentenceEncoder | None = None,
        tokens: Sequence[Sequence[str]] | None = None,
    ) -> list[VocabularyReport]:
        """``check`` for a batch of prompts (one encoder call)."""
        prompts = list(prompts)
        if not prompts:
            return []
        if tokens is None:
            tokens = tag_words(prompts)
        sims = self.similarities(prompts, encoder)
        return [self._report(p, s, t) for p, s, t in zip(prompts, sims, tokens, strict=True)]

    def nearest_actions(self, sims: torch.Tensor, k: int = 3) -> list[str]:
        """Trained actions ranked by their best caption similarity: ``(N,) -> k names``."""
        labels = self.caption_actions.bool()
        masked = torch.where(labels, sims[:, None], torch.tensor(-2.0))  # (N, A)
        best = masked.max(dim=0).values  # (A,)
        order = torch.argsort(best, descending=True).tolist()
        return [self.action_names[j] for j in order if best[j] > -2.0][:k]

    def _report(self, prompt: str, sims: torch.Tensor, tokens: Sequence[str]) -> VocabularyReport:
        similarity = float(sims.max()) if sims.numel() else 0.0
        untrained, unlabelled = self.untrained_keywords(prompt)
        keywords = [k for kws in ACTIONS.values() for k in find_keywords(prompt, kws)]
        verbs, nouns = self.unknown_content_words(tokens, skip=keywords)
        penalty = self.penalties(len(untrained), len(verbs), len(nouns), len(unlabelled))
        score = similarity - penalty
        known = score >= self.threshold
        nearest = self.nearest_actions(sims)
        unknown = untrained + unlabelled + verbs + nouns
        message = None
        if not known:
            message = warning_message(untrained, unlabelled, verbs + nouns, nearest, similarity)
        return VocabularyReport(known, score, similarity, nearest, unknown, message)

    def untrained_keywords(self, text: str) -> tuple[list[str], list[str]]:
        """Words of ``text`` naming an action with no training clip ("cartwheel"): the keyword
        that matched (``mosa.data.actions.ACTIONS``), else the action's name. Returns
        ``(never in the training captions, in some training caption of an unlabelled clip)``."""
        found = []
        for action in actions_in(text):
            if self.counts.get(action, _NONE).clips == 0:
                matched = sorted(find_keywords(text, ACTIONS[action]), key=len, reverse=True)
                found.append(matched[0] if matched else action)
        # "jumping jacks" also holds "jumping": keep the longest of overlapping matches
        kept: list[str] = []
        for word in sorted(dict.fromkeys(found), key=len, reverse=True):
            if not any(re.search(rf"\b{re.escape(word)}\b", k) for k in kept):
                kept.append(word)
        seen = [w for w in kept if all(part in self.words for part in w.split())]
        return [w for w in kept if w not in seen], seen

    def unknown_content_words(
        self, tokens: Sequence[str], skip: Iterable[str] = ()
    ) -> tuple[list[str], list[str]]:
        """Verbs and nouns (lemmas of ``word/POS`` tokens) the training captions never had."""
        skipped = {f(w) for phrase in skip for w in phrase.split() for f in (str, _stem)}
        verbs: list[str] = []
        nouns: list[str] = []
        for token in tokens:
            word, _, pos = token.rpartition("/")
            word = word.lower()
            if pos not in _CONTENT_POS or len(word) < _MIN_WORD_LEN or not word.isalpha():
                continue
            if word in self.words or word in skipped or _stem(word) in skipped:
                continue
            target = verbs if pos == "VERB" else nouns
            if word not in target:
                target.append(word)
        return verbs, nouns

    def _resolve_encoder(self, encoder: SentenceEncoder | None) -> SentenceEncoder:
        if encoder is not None:
            if getattr(encoder, "spec", self.encoder) != self.encoder:
                raise MosaError(
                    f"the vocabulary was built with text encoder '{self.encoder}', not "
                    f"'{encoder.spec}'",
                    "pass no encoder (the vocabulary loads its own) or the one it was built with",
                )
            return encoder
        if self._encoder is None:
            from mosa.models.text import load_text_encoder

            self._encoder = load_text_encoder(self.encoder)
        return self._encoder

    def summary(self) -> dict[str, Any]:
        """Counts per trained action, for a model card: ``{name: {clips, seconds}}``."""
        return {
            a: {"clips": self.counts[a].clips, "seconds": round(self.counts[a].seconds, 1)}
            for a in self.trained_actions
        }


_NONE = ActionStats(0, 0.0)


def warning_message(
    untrained: Sequence[str],
    unlabelled: Sequence[str],
    unknown: Sequence[str],
    nearest: Sequence[str],
    similarity: float,
) -> str:
    """ "never trained on 'cartwheel'; closest: dance, kick" and its variants."""
    closest = f"; closest: {', '.join(nearest)}" if nearest else ""
    if untrained:
        return f"never trained on {_quoted(untrained)}{closest}"
    if unlabelled:
        return f"no training clip of {_quoted(unlabelled)} (only captions mention it){closest}"
    if unknown:
        return f"the training captions never mention {_quoted(unknown)}{closest}"
    return f"far from every training caption (similarity {similarity:.2f}){closest}"


def _quoted(words: Sequence[str]) -> str:
    return ", ".join(f"'{w}'" for w in words)


def _stem(word: str) -> str:
    """Crude singular/base form, only to match a lemma against a keyword ("jumps" ~ "jump")."""
    for suffix in ("ing", "es", "s"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            return word[: -len(suffix)]
    return word


def normalise_text(text: str) -> str:
    """Lower case, hyphens and punctuation to spaces (as HumanML3D's text processing)."""
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " "))


def find_keywords(text: str, keywords: Iterable[str]) -> list[str]:
    """The keywords (whole words or phrases) that occur in ``text``, also with an inflected
    last word ("side step" matches "side steps", "roll" matches "rolled")."""
    norm = " ".join(normalise_text(text).split())
    return [k for k in keywords if re.search(rf"\b{re.escape(k)}(?:s|es|ed|ing)?\b", norm)]


def tag_words(texts: Sequence[str]) -> list[list[str]]:
    """HumanML3D ``word/POS`` tokens of texts, tagged with spaCy like the dataset captions."""
    from mosa.data.captions import caption_tokens

    return caption_tokens(list(texts))


# --- building from a dataset --------------------------------------------------------------


@dataclass
class SplitCaptions:
    """The unique captions of a dataset split, with their tokens and their clips' actions."""

    names: list[str]  # clips of the split
    clip_actions: dict[str, list[str]]  # clip -> its actions
    texts: list[str] = field(default_factory=list)  # unique captions
    tokens: list[list[str]] = field(default_factory=list)  # their word/POS tokens
    actions: list[set[str]] = field(default_factory=list)  # union over the clips they describe


def split_captions(root: str | os.PathLike, split: str) -> SplitCaptions:
    """Read ``root/{split}.txt``, the clips' ``texts/NAME.txt`` and their actions."""
    from mosa.data.dataset import read_split, read_texts

    root = Path(root)
    names = read_split(root, split)
    texts = {}
    for n in names:
        f = root / "texts" / f"{n}.txt"
        texts[n] = read_texts(f) if f.is_file() else []
    out = SplitCaptions(names, clip_actions(root, names, texts))
    index: dict[str, int] = {}
    for name, entries in texts.items():
        for e in entries:
            caption = e.caption.strip()
            if not caption:
                continue
            if caption not in index:
                index[caption] = len(out.texts)
                out.texts.append(caption)
                out.tokens.append(list(e.tokens))
                out.actions.append(set())
            out.actions[index[caption]].update(out.clip_actions[name])
    missing = [i for i, t in enumerate(out.tokens) if not t]
    if missing:  # caption files without POS tokens: tag them here
        for i, toks in zip(missing, tag_words([out.texts[i] for i in missing]), strict=True):
            out.tokens[i] = toks
    return out


def clip_actions(root: Path, names: Sequence[str], texts: dict[str, list]) -> dict[str, list[str]]:
    """Actions of each clip: ``actions.json`` when the dataset has one, else from Bandai-Namco
    clip names when all are such, else the actions its captions name (``actions_in``). A
    mirrored clip ("M" + name) missing from ``actions.json`` gets its original's."""
    from mosa.data.splits import original_name

    path = root / ACTIONS_FILE
    if not path.is_file():
        bandai = _bandai_labels(names)
        if bandai is not None:
            return bandai
        return {n: sorted({a for e in texts[n] for a in actions_in(e.caption)}) for n in names}
    try:
        table = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MosaError(f"corrupt {path}: {exc}", "rebuild the dataset") from exc
    return {n: list(table.get(n, table.get(original_name(n), []))) for n in names}


def _bandai_labels(names: Sequence[str]) -> dict[str, list[str]] | None:
    """Actions from Bandai-Namco clip names (``dataset-N_{content}_...``), None if any other."""
    from mosa.data.actions import bandai_actions
    from mosa.data.captions import parse_clip_name

    try:
        return {n: bandai_actions(parse_clip_name(n).content) for n in names}
    except MosaError:
        return None


def clip_seconds(root: Path, name: str, fps: float = FPS) -> float:
    """Length of a clip in seconds, from the frame count of its joints or features file."""
    for sub in ("new_joints", "new_joint_vecs"):
        f = root / sub / f"{name}.npy"
        if f.is_file():
            return np.load(f, mmap_mode="r").shape[0] / fps
    return 0.0


def caption_words(captions: Iterable[str], tokens: Iterable[Sequence[str]]) -> set[str]:
    """Lower-case words and lemmas of captions (the lexical check's known words)."""
    words: set[str] = set()
    for caption in captions:
        words.update(normalise_text(caption).split())
    for toks in tokens:
        words.update(t.rpartition("/")[0].lower() for t in toks)
    words.discard("")
    return words


def encode(encoder: SentenceEncoder, texts: Sequence[str], batch: int = 256) -> torch.Tensor:
    """Unit sentence vectors ``(N, D)`` float32 on the CPU, in batches."""
    parts = [
        encoder.pooled(list(texts[i : i + batch])).float().cpu()
        for i in range(0, len(texts), batch)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, 0)


def merge_near_duplicates(
    emb: torch.Tensor, max_keep: int = MAX_CAPTIONS, similarity: float = MERGE_SIMILARITY
) -> list[int]:
    """Indices of rows of ``emb`` ``(N, D)`` to keep: greedily drop rows closer than
    ``similarity`` to a kept one; lower the bar until at most ``max_keep`` remain."""
    while True:
        keep = _greedy_cover(emb, similarity)
        if len(keep) <= max_keep:
            return keep
        similarity -= 0.02


def _greedy_cover(emb: torch.Tensor, similarity: float) -> list[int]:
    kept = torch.empty(len(emb), emb.shape[1])
    keep: list[int] = []
    for i in range(len(emb)):
        if not keep or float((kept[: len(keep)] @ emb[i]).max()) < similarity:
            kept[len(keep)] = emb[i]
            keep.append(i)
    return keep


def build_vocabulary(
    dataset_root: str | os.PathLike,
    split: str = "train",
    encoder: SentenceEncoder | None = None,
    *,
    calibration_split: str | None = "val",
    max_captions: int = MAX_CAPTIONS,
    threshold: float | None = None,
) -> Vocabulary:
    """The vocabulary of a HumanML3D-layout dataset's ``split``.

    ``encoder``: the model's text encoder (default: MiniLM). ``threshold``: None calibrates it
    on ``calibration_split``'s captions: at most ``DEFAULT_THRESHOLD``, low enough that 98% of
    those captions pass. Pass ``calibration_split=None`` to keep the default.
    """
    root = Path(dataset_root)
    if encoder is None:
        from mosa.models.text import load_text_encoder

        encoder = load_text_encoder("minilm")
    caps = split_captions(root, split)
    if not caps.texts:
        raise MosaError(
            f"no captions in the '{split}' split of {root}",
            "build the dataset first (`mosa data build`); texts/NAME.txt must hold captions",
        )
    emb = encode(encoder, caps.texts)
    keep = merge_near_duplicates(emb, max_captions)
    action_names = _action_names(caps.clip_actions)
    labels = torch.tensor(
        [[a in caps.actions[i] for a in action_names] for i in keep], dtype=torch.bool
    ).reshape(len(keep), len(action_names))
    vocab = Vocabulary(
        encoder=encoder.spec,
        embeddings=emb[keep].to(torch.float16),
        caption_actions=labels,
        action_names=action_names,
        counts=_count(root, caps.clip_actions, action_names),
        words=frozenset(caption_words(caps.texts, caps.tokens)),
        meta={
            "dataset": root.name,
            "split": split,
            "clips": len(caps.names),
            "captions": len(caps.texts),
            "kept_captions": len(keep),
        },
        _encoder=encoder,
    )
    vocab.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if threshold is None and calibration_split is not None:
        calibrate(vocab, root, calibration_split, encoder)
    return vocab


def _action_names(actions: dict[str, list[str]]) -> list[str]:
    extra = sorted({a for acts in actions.values() for a in acts} - set(ACTIONS))
    return list(ACTIONS) + extra


def _count(
    root: Path, actions: dict[str, list[str]], action_names: list[str]
) -> dict[str, ActionStats]:
    clips = dict.fromkeys(action_names, 0)
    seconds = dict.fromkeys(action_names, 0.0)
    for n in actions:
        length = clip_seconds(root, n) if actions[n] else 0.0
        for a in actions[n]:
            clips[a] += 1
            seconds[a] += length
    return {a: ActionStats(clips[a], seconds[a]) for a in action_names}


def calibrate(
    vocab: Vocabulary, root: Path, split: str, encoder: SentenceEncoder | None = None
) -> Vocabulary:
    """Lower ``vocab.threshold`` so that 98% of ``split``'s captions pass; records the numbers
    in ``vocab.meta["calibration"]``. A missing split leaves the threshold as it is."""
    try:
        caps = split_captions(root, split)
    except MosaError:
        return vocab
    if not caps.texts:
        return vocab
    reports = vocab.check_many(caps.texts, encoder, caps.tokens)
    scores = np.array([r.score for r in reports])
    quantile = float(np.quantile(scores, CALIBRATION_QUANTILE))
    vocab.threshold = min(vocab.threshold, quantile)
    vocab.meta["calibration"] = {
        "split": split,
        "captions": len(scores),
        "quantile": CALIBRATION_QUANTILE,
        "score_at_quantile": round(quantile, 4),
        "threshold": round(vocab.threshold, 4),
        "warned": float(np.mean(scores < vocab.threshold)),
    }
    return vocab


# --- files --------------------------------------------------------------------------------


def save_vocabulary(vocab: Vocabulary, folder: str | os.PathLike) -> Path:
    """Write ``vocabulary.json`` + ``vocabulary.safetensors`` into ``folder``; returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        "embeddings": vocab.embeddings.to(torch.float16).contiguous(),
        "caption_actions": vocab.caption_actions.to(torch.uint8).contiguous(),
    }
    save_file(tensors, str(folder / VOCAB_TENSORS))
    payload = {
        "version": FORMAT_VERSION,
        "encoder": vocab.encoder,
        "threshold": vocab.threshold,
        "penalties": dataclasses.asdict(vocab.penalties),
        "action_names": vocab.action_names,
        "counts": {
            a: {"clips": s.clips, "seconds": round(s.seconds, 2)} for a, s in vocab.counts.items()
        },
        "words": sorted(vocab.words),
        "meta": vocab.meta,
    }
    tmp = folder / f".{VOCAB_JSON}.tmp"
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(folder / VOCAB_JSON)
    return folder


def load_vocabulary(folder: str | os.PathLike) -> Vocabulary | None:
    """The vocabulary saved in ``folder``, or None when it has none (older checkpoints)."""
    folder = Path(folder)
    meta_file, tensor_file = folder / VOCAB_JSON, folder / VOCAB_TENSORS
    if not meta_file.is_file() or not tensor_file.is_file():
        return None
    try:
        payload = json.loads(meta_file.read_text())
        tensors = load_file(str(tensor_file))
    except Exception as exc:  # json and safetensors raise several types on corrupt files
        raise MosaError(f"corrupt vocabulary in {folder}: {exc}", "rebuild it") from exc
    if payload.get("version", 0) > FORMAT_VERSION:
        raise MosaError(
            f"{meta_file} has format version {payload['version']}, this mosa reads "
            f"{FORMAT_VERSION}",
            "upgrade mosa",
        )
    return Vocabulary(
        encoder=payload["encoder"],
        embeddings=tensors["embeddings"],
        caption_actions=tensors["caption_actions"].bool(),
        action_names=list(payload["action_names"]),
        counts={
            a: ActionStats(int(c["clips"]), float(c["seconds"]))
            for a, c in payload["counts"].items()
        },
        words=frozenset(payload["words"]),
        threshold=float(payload["threshold"]),
        penalties=Penalties(**payload.get("penalties", {})),
        meta=payload.get("meta", {}),
    )
