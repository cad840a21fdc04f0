"""Dataset building (Bandai-Namco -> HumanML3D layout), captions, splits and the Dataset."""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import BANDAI_TAKES
from mosa.data import build as build_mod
from mosa.data.build import build_dataset, feature_groups, mean_std
from mosa.data.captions import (
    CONTENTS,
    STYLES,
    caption_tokens,
    clip_captions,
    make_captions,
    parse_clip_name,
    swap_left_right,
    text_line,
)
from mosa.data.dataset import (
    MotionDataset,
    collate_motions,
    load_mean_std,
    read_split,
    read_texts,
)
from mosa.data.splits import split_by_group, split_counts, with_mirrors, write_splits
from mosa.errors import MosaError

SET1_CONTENTS = [
    "walk",
    "run",
    "dash",
    "walk-back",
    "walk-left",
    "walk-right",
    "bow",
    "bye",
    "byebye",
    "guide",
    "respond",
    "call",
    "kick",
    "punch",
    "slash",
    "dance-long",
    "dance-short",
]
SET1_STYLES = [
    "normal",
    "happy",
    "sad",
    "angry",
    "proud",
    "not-confident",
    "masculinity",
    "feminine",
    "childish",
    "old",
    "tired",
    "active",
    "musical",
    "giant",
    "chimpira",
]
SET2_CONTENTS = [
    "walk",
    "walk-turn-left",
    "walk-turn-right",
    "run",
    "wave-both-hands",
    "wave-left-hand",
    "wave-right-hand",
    "raise-up-both-hands",
    "raise-up-left-hand",
    "raise-up-right-hand",
]
SET2_STYLES = ["active", "elderly", "exhausted", "feminine", "masculine", "normal", "youthful"]
ALL_CLIPS = [f"dataset-1_{c}_{s}_001" for c in SET1_CONTENTS for s in SET1_STYLES] + [
    f"dataset-2_{c}_{s}_007" for c in SET2_CONTENTS for s in SET2_STYLES
]

# Independent word lists: every caption of a content must use one of these stems.
CONTENT_WORDS = {
    "walk": r"walk|stroll|shuffl|hobbl|trudg|plod|lumber|stomp|swagger|strut|drag|skip|march"
    r"|storm",
    "run": r"\brun|jog",
    "dash": r"sprint|dash|full speed|top speed",
    "walk-back": r"backward|reverse",
    "walk-left": r"\bleft",
    "walk-right": r"\bright",
    "walk-turn-left": r"\bleft",
    "walk-turn-right": r"\bright",
    "bow": r"\bbow",
    "bye": r"goodbye|farewell",
    "byebye": r"goodbye|farewell|bye bye",
    "guide": r"way|direction|guid",
    "respond": r"respond|answer|repl|react",
    "call": r"call|beckon|come|over",
    "punch": r"punch|box",
    "kick": r"kick",
    "slash": r"slash|sword|cut",
    "dance-long": r"danc|rhythm",
    "dance-short": r"danc|rhythm",
    "wave-both-hands": r"(?=.*wav)(?=.*both)",
    "wave-left-hand": r"(?=.*wav)(?=.*\bleft)",
    "wave-right-hand": r"(?=.*wav)(?=.*\bright)",
    "raise-up-both-hands": r"both",
    "raise-up-left-hand": r"\bleft",
    "raise-up-right-hand": r"\bright",
}
# Every caption of a non-normal style must say the style with one of these stems.
STYLE_WORDS = {
    "happy": r"happ|cheer|joy|glad|merr|spirits|bounce|good mood|skips",
    "sad": r"sad|gloom|deject|unhappy|downcast|depress|downhearted|upset|hung low",
    "angry": r"angr|anger|furious|irrita|\bmad\b|annoy|upset|stomps|storms",
    "proud": r"proud|confident|haught|arrogant|chest|head held high|pleased",
    "not-confident": r"timid|shy|hesitant|nervous|confidence|insecure|unsure|unconfident",
    "masculinity": r"mascul|manly|macho|burly|tough guy",
    "masculine": r"mascul|manly|macho|burly|tough guy",
    "feminine": r"femin|grace|elegan|lad(y|ylike)",
    "childish": r"child|kid|little boy|little girl|playful",
    "old": r"\bold\b|elderly|aged|frail|age\b|stiff|shuffl|hobbl|senior|feebly",
    "elderly": r"\bold\b|elderly|aged|frail|age\b|stiff|shuffl|hobbl|senior|feebly",
    "tired": r"tired|exhaust|wear|sluggish|listless|fatigue|worn out|energy|drag|trudg|plod"
    r"|struggles",
    "exhausted": r"tired|exhaust|wear|sluggish|listless|fatigue|worn out|energy|drag|trudg|plod"
    r"|struggles",
    "active": r"energ|active|vigor|dynamic|lively|spirited",
    "musical": r"theatric|dramatic|musical|stage|showy|actor|performer",
    "giant": r"giant|heav|ponderous|huge|hulking|massive|lumber",
    "chimpira": r"thug|swagger|cocky|delinquent|hoodlum|punk|menac|tough",
    "youthful": r"young|youth|teenager|sprightly|lightly",
}


# ----------------------------------------------------------------------------------------------
# Captions


def test_captions_deterministic_and_seeded():
    for name in ALL_CLIPS[::7]:
        assert clip_captions(name, seed=0) == clip_captions(name, seed=0)
    differ = sum(clip_captions(n, seed=0) != clip_captions(n, seed=1) for n in ALL_CLIPS[::7])
    assert differ > len(ALL_CLIPS[::7]) // 2


def test_captions_three_to_five_distinct_per_clip():
    sizes = Counter()
    for name in ALL_CLIPS:
        caps = clip_captions(name)
        assert 3 <= len(caps) <= 5, name
        assert len(set(caps)) == len(caps), caps
        assert all(c == c.strip() and c.endswith(".") and "{" not in c for c in caps), caps
        sizes[len(caps)] += 1
    assert set(sizes) == {3, 4, 5}  # all three sizes occur


def test_captions_name_the_content_and_the_style():
    for name in ALL_CLIPS:
        label = parse_clip_name(name)
        for caption in clip_captions(name):
            assert re.search(CONTENT_WORDS[label.content], caption), (name, caption)
            if label.style != "normal":
                assert re.search(STYLE_WORDS[label.style], caption), (name, caption)


def test_captions_use_synonyms_and_varied_subjects():
    rng = np.random.default_rng(0)
    caps = make_captions("walk", "happy", rng, 40)
    assert len(caps) == 40
    text = " ".join(caps)
    assert "walk" in text and "stroll" in text  # several verbs for one content
    assert len({w for w in ("happily", "cheerful", "joyful", "glad", "merry") if w in text}) >= 3
    starts = Counter(" ".join(c.split()[:2]) for c in caps)
    assert len(starts) >= 8  # many different subjects
    old = " ".join(make_captions("walk", "old", rng, 30))
    assert re.search(r"old man|old woman|elderly", old) and re.search(r"shuffl|hobbl", old)
    normal = make_captions("bow", "normal", rng, 30)
    assert any(not re.search(r"normal|casual|ordinary|natural|emotion", c) for c in normal)


def test_gendered_subjects_agree_with_the_style():
    rng = np.random.default_rng(1)
    for caption in make_captions("walk", "feminine", rng, 60):
        assert not re.search(r"\b(man|guy|his|him|himself)\b", caption), caption
    for caption in make_captions("bow", "masculine", rng, 60):
        assert not re.search(r"\b(woman|lady|her|herself)\b", caption), caption
    pronoun_ok = {"a man": "his", "a woman": "her", "a person": "their"}
    for caption in make_captions("wave-left-hand", "normal", rng, 60):
        for subject, pronoun in pronoun_ok.items():
            if (
                caption.startswith(subject + " ")
                and "hand" in caption
                and "the left" not in caption
            ):
                assert f"{pronoun} left" in caption, caption


def test_mirrored_clip_captions_swap_sides():
    for content, other in (
        ("wave-left-hand", "right"),
        ("raise-up-right-hand", "left"),
        ("walk-turn-left", "right"),
    ):
        name = f"dataset-2_{content}_normal_003"
        original, mirrored = clip_captions(name), clip_captions("M" + name)
        side = "left" if other == "right" else "right"
        assert all(side in c and other not in c for c in original)
        assert all(other in c and side not in c for c in mirrored)
        assert mirrored == [c.replace(side, other) for c in original]
    assert parse_clip_name("Mdataset-1_walk-left_sad_001").content == "walk-right"
    assert parse_clip_name("Mdataset-1_bow_sad_001").content == "bow"
    # a content without sides keeps its captions when mirrored
    assert clip_captions("Mdataset-1_bow_sad_001") == clip_captions("dataset-1_bow_sad_001")


def test_swap_left_right_words():
    assert swap_left_right("Left hand up, then the right.") == "Right hand up, then the left."
    assert swap_left_right("turns clockwise leftward") == "turns counterclockwise rightward"
    assert swap_left_right("a leftover bright light") == "a leftover bright light"


def test_vocabulary_covers_every_label_and_rejects_unknown():
    assert set(SET1_CONTENTS + SET2_CONTENTS) <= set(CONTENTS)
    assert set(SET1_STYLES + SET2_STYLES) <= set(STYLES)
    with pytest.raises(MosaError, match="content 'moonwalk'"):
        make_captions("moonwalk", "normal", np.random.default_rng(0), 3)
    with pytest.raises(MosaError, match="dataset-N_content_style_take"):
        parse_clip_name("walk_normal_001")


def test_pos_tokens_follow_humanml3d():
    tokens = caption_tokens(["A person walks forward happily.", "the man waves his left hand."])
    assert tokens[0] == ["a/DET", "person/NOUN", "walk/VERB", "forward/ADV", "happily/ADV"]
    assert tokens[1][:3] == ["the/DET", "man/NOUN", "wave/VERB"]
    assert "left/ADJ" in tokens[1] and "hand/NOUN" in tokens[1]  # "left" is not lemmatised
    line = text_line("a person walks.", ["a/DET", "person/NOUN", "walk/VERB"])
    assert line == "a person walks.#a/DET person/NOUN walk/VERB#0.0#0.0"


# ----------------------------------------------------------------------------------------------
# Splits


def test_split_counts_by_hand():
    assert split_counts(10) == (8, 1, 1)
    assert split_counts(20) == (16, 2, 2)
    assert split_counts(200) == (160, 20, 20)
    assert split_counts(3) == (1, 1, 1)  # every content with >= 3 takes reaches test
    assert split_counts(2) == (2, 0, 0)
    assert split_counts(1) == (1, 0, 0)


def _takes() -> list[str]:
    sizes = {"walk": 175, "run": 31, "bow": 15, "kick": 3, "punch": 2, "respond": 1}
    return [f"dataset-2_{c}_normal_{i:03d}" for c, n in sizes.items() for i in range(n)]


def test_splits_disjoint_stratified_deterministic():
    names = _takes()
    group = lambda n: parse_clip_name(n).group  # noqa: E731
    assign = split_by_group(names, group, seed=0)
    assert set(assign) == set(names) and set(assign.values()) == {"train", "val", "test"}
    per = Counter((parse_clip_name(n).content, s) for n, s in assign.items())
    # by hand: 10 % of 175 = 17.5 -> 18 (round half to even), of 31 -> 3, of 15 -> 1.5 -> 2
    expected = {"walk": (139, 18, 18), "run": (25, 3, 3), "bow": (11, 2, 2), "kick": (1, 1, 1)}
    expected |= {"punch": (2, 0, 0), "respond": (1, 0, 0)}
    for content, want in expected.items():
        assert (per[content, "train"], per[content, "val"], per[content, "test"]) == want
    shuffled = list(reversed(names))
    assert split_by_group(shuffled, group, seed=0) == assign  # order does not matter
    other = split_by_group(names, group, seed=1)
    assert other != assign and Counter(other.values()) == Counter(assign.values())


def test_mirrors_follow_their_take(tmp_path):
    names = _takes()
    assign = split_by_group(names, lambda n: parse_clip_name(n).group, seed=0)
    full = with_mirrors(assign, names)
    assert len(full) == 2 * len(names)
    assert all(full["M" + n] == full[n] for n in names)
    lists = write_splits(tmp_path, full)
    for split in ("train", "val", "test"):
        assert read_split(tmp_path, split) == lists[split]
    train, val, test = (set(read_split(tmp_path, s)) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(read_split(tmp_path, "all"))


# ----------------------------------------------------------------------------------------------
# Mean / Std


def _direct_mean_std(arrays):
    """Stack all frames, then average the std inside HumanML3D's groups (hand-written bounds)."""
    x = np.concatenate(arrays).astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    j = (x.shape[1] + 1) // 12
    bounds = [0, 1, 3, 4, 4 + 3 * (j - 1), 4 + 9 * (j - 1), 4 + 9 * (j - 1) + 3 * j, x.shape[1]]
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        std[a:b] = std[a:b].mean()
    return mean, std


def test_mean_std_group_weighting_by_hand():
    # a tiny array whose group stds are easy to do by hand: column c has std c + 1 about 0
    x = np.array([[-1.0], [1.0]]) * (np.arange(263) + 1.0)[None]
    mean, std = mean_std([x])
    assert np.allclose(mean, 0)
    assert std[0] == 1 and np.allclose(std[1:3], 2.5) and std[3] == 4
    assert np.allclose(std[4:67], np.mean(np.arange(5, 68)))  # ric: columns 4..66 -> 5..67
    assert np.allclose(std[259:263], np.mean([260, 261, 262, 263]))
    # several arrays merge exactly as one stacked array, for 263-d and KIT's 251-d
    rng = np.random.default_rng(0)
    for dim in (263, 251):
        arrays = [rng.normal(size=(n, dim)) * rng.uniform(0.1, 5, dim) + 3 for n in (5, 1, 17)]
        got_mean, got_std = mean_std(arrays)
        want_mean, want_std = _direct_mean_std(arrays)
        assert np.allclose(got_mean, want_mean, atol=1e-5)
        assert np.allclose(got_std, want_std, rtol=1e-5)
    assert [s.stop - s.start for s in feature_groups(251)] == [1, 2, 1, 60, 120, 63, 4]


# ----------------------------------------------------------------------------------------------
# Dataset on HumanML3D-layout folders


@pytest.fixture
def hml_folder(tmp_path, hml_sample) -> Path:
    """A fake HumanML3D folder from the real sample files, with hand-written captions."""
    root = tmp_path / "hml"
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    for name in ("000612", "012314"):
        shutil.copy(
            hml_sample / f"{name}_new_joint_vecs.npy", root / "new_joint_vecs" / f"{name}.npy"
        )
    shutil.copy(hml_sample / "Mean.npy", root / "Mean.npy")
    shutil.copy(hml_sample / "Std.npy", root / "Std.npy")
    np.save(root / "new_joint_vecs" / "short.npy", np.zeros((30, 263), np.float32))
    (root / "texts" / "000612.txt").write_text(
        "a man jumps.#a/DET man/NOUN jump/VERB#0.0#0.0\n"
        "someone hops twice.#someone/PRON hop/VERB twice/ADV#0.0#0.0\n"
        "a person kicks.#a/DET person/NOUN kick/VERB#1.0#4.5\n"
        "too short a span.#too/ADV short/ADJ a/DET span/NOUN#0.5#2.0\n"
    )
    (root / "texts" / "012314.txt").write_text(
        "a person waves.#a/DET person/NOUN wave/VERB#nan#nan\n"
    )
    (root / "texts" / "short.txt").write_text("tiny.#tiny/ADJ#0.0#0.0\n")
    (root / "train.txt").write_text("000612\n012314\nshort\nmissing\n")
    (root / "test.txt").write_text("012314\n")
    return root


def test_read_texts_parses_humanml3d_lines(hml_folder):
    texts = read_texts(hml_folder / "texts" / "000612.txt")
    assert [t.caption for t in texts][:2] == ["a man jumps.", "someone hops twice."]
    assert texts[1].tokens == ("someone/PRON", "hop/VERB", "twice/ADV")
    assert (texts[2].start, texts[2].end) == (1.0, 4.5) and texts[0].whole
    assert read_texts(hml_folder / "texts" / "012314.txt")[0].whole  # nan tags = whole clip
    bad = hml_folder / "texts" / "bad.txt"
    bad.write_text("fine.#fine/ADJ#0.0#0.0\nno tags here\n")
    with pytest.raises(MosaError, match=r"bad.txt:2"):
        read_texts(bad)


def test_dataset_items_crops_and_normalisation(hml_folder, hml_sample):
    raw = {n: np.load(hml_sample / f"{n}_new_joint_vecs.npy") for n in ("000612", "012314")}
    mean, std = np.load(hml_sample / "Mean.npy"), np.load(hml_sample / "Std.npy")
    ds = MotionDataset(hml_folder, "train", random_crop=False, seed=0)
    # 000612 whole, 000612 frames 20:90 (the 0.5-2.0 span is 30 frames: dropped), 012314 whole;
    # "short" (30 frames) is dropped and "missing" has no files
    assert sorted(ds.lengths) == [70, 170, 199] and ds.missing == ["missing"]
    assert ds.feature_dim == 263
    by_name = {ds[i]["name"]: ds[i] for i in range(len(ds))}
    assert set(by_name) == {"000612", "000612@2", "012314"}
    want = {
        "000612": raw["000612"][:196],
        "000612@2": raw["000612"][20:88],
        "012314": raw["012314"][:168],
    }
    for name, item in by_name.items():
        assert item["length"] == len(want[name]) == item["motion"].shape[0]
        expected = (want[name] - mean) / std
        assert torch.allclose(item["motion"], torch.from_numpy(expected).float(), atol=1e-5)
    assert by_name["000612@2"]["caption"] == "a person kicks."
    assert by_name["000612@2"]["tokens"] == ["a/DET", "person/NOUN", "kick/VERB"]
    assert by_name["000612"]["caption"] in ("a man jumps.", "someone hops twice.")


def test_dataset_random_crops_stay_valid(hml_folder, hml_sample):
    raw = np.load(hml_sample / "000612_new_joint_vecs.npy")
    mean, std = np.load(hml_sample / "Mean.npy"), np.load(hml_sample / "Std.npy")
    ds = MotionDataset(hml_folder, "train")
    index = next(i for i in range(len(ds)) if ds.items[i].name == "000612")
    lengths, starts, captions = Counter(), set(), set()
    for _ in range(60):
        item = ds[index]
        n = item["length"]
        assert n % 4 == 0 and 40 <= n <= 196
        lengths[n] += 1
        captions.add(item["caption"])
        x = item["motion"].numpy() * std + mean  # undo the normalisation, find the window
        start = int(np.argmin(np.abs(raw[: len(raw) - n + 1, :4] - x[0, :4]).sum(1)))
        assert np.allclose(raw[start : start + n], x, atol=1e-4)
        starts.add(start)
    assert set(lengths) == {196, 192}  # HumanML3D's coin toss: sometimes one unit shorter
    assert len(starts) > 1 and len(captions) == 2


def test_dataset_deterministic_with_seed(hml_folder):
    a = MotionDataset(hml_folder, "train", seed=5)
    b = MotionDataset(hml_folder, "train", seed=5)
    for i in range(len(a)):
        x, y = a[i], b[i]
        assert x["caption"] == y["caption"] and x["length"] == y["length"]
        assert torch.equal(x["motion"], y["motion"])
        assert torch.equal(a[i]["motion"], x["motion"])


def test_collate_pads_and_masks(hml_folder):
    ds = MotionDataset(hml_folder, "train", random_crop=False, seed=0)
    batch = collate_motions([ds[i] for i in range(len(ds))])
    lengths = batch["lengths"]
    assert batch["motion"].shape == (3, int(lengths.max()), 263)
    assert batch["mask"].dtype == torch.bool and torch.equal(batch["mask"].sum(1), lengths)
    for i, n in enumerate(lengths.tolist()):
        assert torch.equal(batch["motion"][i, :n], ds[i]["motion"])
        assert not batch["motion"][i, n:].any() and not batch["mask"][i, n:].any()
    assert batch["name"] == [ds[i]["name"] for i in range(3)] and len(batch["tokens"]) == 3


def test_dataset_given_mean_std_and_kit_like_251(tmp_path):
    root = tmp_path / "kit"
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("00001", 60), ("00002", 100)):
        np.save(
            root / "new_joint_vecs" / f"{name}.npy", rng.normal(size=(n, 251)).astype(np.float32)
        )
        (root / "texts" / f"{name}.txt").write_text(
            "a person walks.#a/DET person/NOUN walk/VERB#0.0#0.0\n"
        )
    np.save(root / "Mean.npy", np.zeros(251, np.float32))
    np.save(root / "Std.npy", np.ones(251, np.float32))
    (root / "val.txt").write_text("00001\n00002\n")
    ds = MotionDataset(root, "val", random_crop=False, seed=0)
    assert ds.feature_dim == 251 and sorted(ds.lengths) == [60, 100]
    batch = collate_motions([ds[0], ds[1]])
    assert batch["motion"].shape == (2, 100, 251)
    mean, std = load_mean_std(root)
    ds2 = MotionDataset(root, "val", random_crop=False, seed=0, mean=mean + 1, std=std * 2)
    raw = np.load(root / "new_joint_vecs" / "00001.npy")
    item = next(ds2[i] for i in range(2) if ds2[i]["name"] == "00001")
    assert np.allclose(item["motion"].numpy(), (raw - 1) / 2, atol=1e-6)


def test_dataset_errors_name_what_is_missing(tmp_path, hml_folder):
    with pytest.raises(MosaError, match="does not exist"):
        MotionDataset(tmp_path / "nowhere")
    with pytest.raises(MosaError, match="val.txt"):
        MotionDataset(hml_folder, "val")
    (hml_folder / "Std.npy").unlink()
    with pytest.raises(MosaError, match="Std.npy"):
        MotionDataset(hml_folder, "train")
    shutil.rmtree(hml_folder / "texts")
    with pytest.raises(MosaError, match="texts"):
        MotionDataset(hml_folder, "test", mean=np.zeros(263), std=np.ones(263))


# ----------------------------------------------------------------------------------------------
# Build


@pytest.fixture(scope="session")
def built(tiny_tar, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("built") / "bandai"
    manifest = build_dataset(tiny_tar, out, seed=0, workers=2, progress=False)
    return out, manifest


def test_build_writes_the_humanml3d_layout(built):
    out, manifest = built
    kept = [t for t in BANDAI_TAKES if "run" not in t]
    names = sorted(kept + ["M" + t for t in kept])
    assert read_split(out, "all") == names
    assert (out / "raw" / "dataset").is_dir()  # the archive went under raw/
    splits = {s: read_split(out, s) for s in ("train", "val", "test")}
    assert sorted(sum(splits.values(), [])) == names
    # walk-left has 3 takes: one each to train, val and test, each with its mirror
    for split, members in splits.items():
        assert sum(n.startswith("dataset-1_walk-left") for n in members) == 1, split
        assert all(("M" + n) in members for n in members if not n.startswith("M"))
    assert "dataset-1_bow_normal_001" in splits["train"]  # a single take stays in train
    frames = 0
    for name in names:
        vecs = np.load(out / "new_joint_vecs" / f"{name}.npy")
        joints = np.load(out / "new_joints" / f"{name}.npy")
        assert vecs.dtype == np.float32 and vecs.shape[1] == 263 and len(vecs) >= 40
        assert joints.shape == (len(vecs), 22, 3) and joints.dtype == np.float32
        texts = read_texts(out / "texts" / f"{name}.txt")
        assert 3 <= len(texts) <= 5 and all(t.whole and t.tokens for t in texts)
        assert all(re.fullmatch(r"[a-z]+/[A-Z]+", tok) for t in texts for tok in t.tokens)
        frames += len(vecs)
    # the mirrored walk-left is labelled and captioned as walking right
    mirrored = read_texts(out / "texts" / "Mdataset-1_walk-left_sad_001.txt")
    assert all("right" in t.caption and "left" not in t.caption for t in mirrored)
    # manifest counts match the files
    counts = manifest["counts"]
    assert counts["clips"] == len(names) and counts["mirrored"] == len(kept)
    assert counts["frames"] == frames and counts["seconds"] == pytest.approx(frames / 20, abs=0.01)
    assert counts["takes_found"] == 5 and counts["skipped_short"] == 1 and counts["failed"] == 0
    assert manifest["skipped_short"] == ["dataset-1_run_normal_001"]
    assert (
        counts["contents"]["walk-left"]["clips"] == 3
        and counts["contents"]["walk-right"]["clips"] == 3
    )
    assert counts["styles"]["normal"]["clips"] == 2
    assert sum(v["clips"] for v in counts["splits"].values()) == len(names)
    assert json.loads((out / "manifest.json").read_text()) == manifest
    # Mean/Std come from the train split only
    train = [np.load(out / "new_joint_vecs" / f"{n}.npy") for n in splits["train"]]
    want_mean, want_std = _direct_mean_std(train)
    mean, std = load_mean_std(out)
    assert np.allclose(mean, want_mean, atol=1e-5) and np.allclose(std, want_std, rtol=1e-4)
    ds = MotionDataset(out, "train", random_crop=False, seed=0)
    assert len(ds) == len(splits["train"]) and ds.feature_dim == 263


def test_build_features_match_the_loader(built):
    """Stored features = extract_features(load_bvh joints); mirrors use mirror_joints."""
    from mosa.motion.features import extract_features, mirror_joints
    from mosa.motion.retarget import load_bvh

    out, _ = built
    bvh = next((out / "raw").rglob("dataset-1_walk-left_happy_001.bvh"))
    joints = load_bvh(bvh, fps=20.0).joints
    assert np.allclose(
        np.load(out / "new_joint_vecs" / f"{bvh.stem}.npy"), extract_features(joints), atol=1e-5
    )
    mirrored = np.load(out / "new_joint_vecs" / f"M{bvh.stem}.npy")
    assert np.allclose(mirrored, extract_features(mirror_joints(joints)), atol=1e-5)


def test_second_build_is_a_no_op(built, tiny_tar, capsys):
    out, manifest = built
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    again = build_dataset(tiny_tar, out, seed=0, workers=1, progress=False)
    assert again == manifest
    assert "up to date" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps


def test_killed_build_leaves_no_manifest(tiny_tar, tmp_path, monkeypatch):
    out = tmp_path / "bandai"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_mod, "_write_texts", killed)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(tiny_tar, out, workers=1, progress=False)
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.tmp*"))  # no half-written files either
    monkeypatch.undo()
    manifest = build_dataset(tiny_tar, out, workers=1, progress=False)
    assert (out / "manifest.json").exists() and manifest["counts"]["clips"] == 8
    # a forced rebuild removes the old manifest first: killed half-way, nothing claims completion
    monkeypatch.setattr(build_mod, "_write_texts", killed)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(tiny_tar, out, workers=1, progress=False, force=True)
    assert not (out / "manifest.json").exists()


def test_build_from_a_folder_and_different_seed(tiny_tar, tmp_path):
    src = tmp_path / "src"
    with tarfile.open(tiny_tar) as tar:
        tar.extractall(src, filter="data")
    a = build_dataset(src, tmp_path / "a", seed=3, workers=1, progress=False)
    assert a["source"]["kind"] == "folder" and not (tmp_path / "a" / "raw").exists()
    assert a["counts"]["clips"] == 8 and a["seed"] == 3


def test_bad_sources_raise_mosa_error(tmp_path):
    with pytest.raises(MosaError, match="does not exist"):
        build_dataset(tmp_path / "missing.tar.xz", tmp_path / "out", progress=False)
    text = tmp_path / "notes.txt"
    text.write_text("not an archive")
    with pytest.raises(MosaError, match="neither a folder nor a tar"):
        build_dataset(text, tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MosaError, match="no Bandai-Namco BVH"):
        build_dataset(tmp_path / "empty", tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "manifest.json").exists()
