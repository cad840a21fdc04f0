"""Find the motion corpora in a source folder and describe every take in them: ``discover``.

A source folder may hold (anywhere below it, each recognised by its layout):

- ``bandai-namco``: ``dataset-N_{content}_{style}_{take}.bvh`` files (captions from the labels,
  made by ``mosa.data.captions``); other BVH files beside them are counted as unlabelled.
- ``cmu``: a folder with ``CMU-INDEX.md`` or ``CMU_data.csv`` (or a sub-folder of one) holding
  ``NN_MM.bvh`` trials; captions from the CMU descriptions and ``kitml_captions.json``
  (``mosa.data.cmu``); the Daz conversion's rest-pose first frames are dropped, a trial whose
  true rate (``CMU_data.csv``) is 60 fps under a 120 fps header is read at 60 fps.
- ``deepmimic``: a folder with a ``*_character.txt`` skeleton and ``*.txt`` JSON clips.
- ``animated-drawings``: a folder named ``animated-drawings`` (Meta's examples).
- ``user``: any other folder of BVH files; captions from ``captions.csv`` (columns
  ``file,caption``, several rows per file allowed) or ``captions.json`` (``{file: caption or
  [captions]}``), else from an action named in the file name ("wave_hello_02.bvh").

Problems with single files (a caption file naming a missing file, a file without caption)
are collected in ``Discovery.skipped`` (file -> reason); the build goes on without them.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mosa.data import cmu
from mosa.data.actions import actions_in, bandai_actions
from mosa.data.captions import parse_clip_name
from mosa.data.splits import stable_seed
from mosa.errors import MosaError

LICENCES: dict[str, str] = {
    "bandai-namco": "CC BY-NC 4.0 (Bandai Namco Research Inc.): non-commercial use, attribute",
    "cmu": "CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu): free for research "
    "and commercial use, not for resale; Daz-friendly BVH conversion by B. Hahne (MIT)",
    "deepmimic": "MIT (DeepMimic, X. B. Peng et al., SIGGRAPH 2018)",
    "animated-drawings": "MIT (Meta Platforms, AnimatedDrawings examples)",
    "user": "the user's own data: check its licence",
}
LICENCE_IDS: dict[str, str] = {
    "bandai-namco": "CC-BY-NC-4.0",
    "cmu": "CMU-free-research-and-commercial",
    "deepmimic": "MIT",
    "animated-drawings": "MIT",
    "user": "user",
}
KIT_CITATION = (
    "KIT Motion-Language Dataset captions: M. Plappert, C. Mandery, T. Asfour, The KIT "
    "Motion-Language Dataset, Big Data 4(4), 2016; cite it when using these captions"
)
CAPTION_FILES = ("captions.csv", "captions.json")
SUBJECTS = cmu.SUBJECTS


@dataclass
class Take:
    """One source motion file and what is known about it before loading.

    ``captions`` describe the whole take; ``window_captions`` hold for any window of it when
    a long take is cut (``mosa.data.cmu``). ``event``: repeating the (DeepMimic) cycle
    repeats the action, so the captions say how often ("does a backflip twice").
    """

    name: str
    corpus: str
    path: str
    reader: str = "bvh"  # "bvh" or "deepmimic"
    captions: tuple[str, ...] = ()
    window_captions: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    window_actions: tuple[str, ...] = ()
    captions_from: str = ""
    table_fps: float | None = None  # the CMU table's capture rate
    rest_pose: bool = False  # drop the Daz conversion's rest-pose first frames
    window: bool = True  # cut takes longer than 9.8 s (Bandai-Namco keeps its takes whole)
    event: bool = False
    character: str | None = None  # DeepMimic skeleton file


@dataclass
class Discovery:
    """The takes found under a source, files skipped (path -> reason) and notes."""

    takes: list[Take] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    unlabelled: list[str] = field(default_factory=list)
    kit_rejected: list[dict] = field(default_factory=list)
    corpora: dict[str, list[str]] = field(default_factory=dict)  # corpus -> folders

    def extend(self, other: Discovery) -> None:
        self.takes += other.takes
        self.skipped |= other.skipped
        self.unlabelled += other.unlabelled
        self.kit_rejected += other.kit_rejected
        for k, v in other.corpora.items():
            self.corpora.setdefault(k, []).extend(v)


# ----------------------------------------------------------------------------------------------
# Captions for named clips


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(stable_seed("captions", seed, name))


def _subject_captions(phrases: Iterable[str], rng: np.random.Generator, n: int) -> list[str]:
    """``n`` captions "{subject} {phrase}." cycling through the phrases."""
    phrases = list(phrases)
    order = rng.permutation(len(SUBJECTS))
    out = []
    for k in range(n * 3):
        text = f"{SUBJECTS[int(order[k % len(SUBJECTS)])]} {phrases[k % len(phrases)]}."
        text = text.format(**cmu.PRONOUNS)
        if text not in out:
            out.append(text)
        if len(out) == n:
            break
    return out


# DeepMimic clip label -> (phrases, event). Sides and directions were checked on the clips
# (the kick is the right leg's, the cartwheel and side flip go to the left, the roll forward).
# fmt: off
DEEPMIMIC: dict[str, tuple[tuple[str, ...], bool]] = {
    "backflip": (("does a backflip", "does a back flip", "flips backwards"), True),
    "cartwheel": (("does a cartwheel", "does a cartwheel to the left",
                   "performs a cartwheel"), True),
    "crawl": (("crawls forward on hands and knees", "crawls forward", "crawls on all fours"),
              False),
    "dance_a": (("dances", "dances energetically", "does a dance"), False),
    "dance_b": (("dances", "does a dance", "dances in place"), False),
    "dance_spin": (("does a dancing spin", "does a dance spin", "spins around"), True),
    "getup_facedown": (("gets up from lying face down", "stands up from lying on {their} front",
                        "gets up off the floor from a face-down position"), False),
    "getup_faceup": (("gets up from lying on {their} back", "stands up from lying face up",
                      "gets up off the floor from lying on {their} back"), False),
    "jog": (("jogs forward", "jogs", "runs at a jog"), False),
    "jump": (("jumps forward", "does a forward jump", "leaps forward"), True),
    "kick": (("kicks with {their} right leg", "kicks forward with the right foot",
              "does a high kick with {their} right leg"), True),
    "punch": (("punches with {their} right fist", "throws a punch", "punches forward"), True),
    "roll": (("does a forward roll", "rolls forward", "rolls forward on the ground"), True),
    "run": (("runs forward", "runs", "sprints forward"), False),
    "sideflip": (("does a side flip", "flips sideways to the left", "does a sideflip"), True),
    "spin": (("spins around", "turns around in a spin", "spins in place"), True),
    "spinkick": (("does a spinning kick", "spins and kicks", "does a spin kick"), True),
    "stealthy_walk": (("sneaks forward", "walks forward stealthily", "tiptoes forward"), False),
    "walk": (("walks forward", "walks", "walks straight ahead"), False),
    "zombie_walk": (("walks forward like a zombie", "shambles forward like a zombie",
                     "walks like a zombie"), False),
}
# AnimatedDrawings example file stem -> phrases (the wave is the right hand's, checked).
ANIMATED_DRAWINGS: dict[str, tuple[str, ...]] = {
    "cmu1_jumping_jacks": ("does jumping jacks", "does a set of jumping jacks",
                           "does a few jumping jacks"),
    "fair1_dab": ("dabs", "does the dab move", "strikes a dab pose"),
    "fair1_jumping": ("jumps forward", "jumps", "leaps forward"),
    "fair1_wave_hello": ("waves hello with {their} right hand", "waves hello",
                         "waves with {their} right hand"),
    "fair1_zombie": ("walks like a zombie", "shambles like a zombie", "walks as a zombie"),
    "rokoko_jesse_dance": ("dances", "does a dance", "dances to music"),
}
# fmt: on
TIMES = {2: "twice", 3: "three times", 4: "four times"}


def repeated(captions: Iterable[str], cycles: int) -> list[str]:
    """Captions of an action played ``cycles`` times in a row ("... twice.")."""
    if cycles <= 1:
        return list(captions)
    times = TIMES.get(cycles, f"{cycles} times")
    return [c.rstrip(".") + f" {times}." for c in captions]


_JUNK = {"take", "clip", "mocap", "motion", "anim", "bvh", "seq", "cmu", "fair", "rokoko"}


def name_phrase(stem: str) -> str | None:
    """A verb phrase from a file name that names an action ("wave_hello_02" -> "waves
    hello"), or None when no action is named."""
    words = [w for w in re.findall(r"[a-z]+", stem.lower().replace("_", " ")) if w not in _JUNK]
    words = [w for w in words if len(w) > 1]
    if not words or not actions_in(" ".join(words)):
        return None
    first = cmu._phrase(" ".join(words))
    return first[0] if first else None


def label_captions(stem: str, seed: int) -> list[str]:
    """Captions from the action a file name names, [] when it names none."""
    phrase = name_phrase(stem)
    return [] if phrase is None else _subject_captions([phrase], _rng(seed, stem), 3)


# ----------------------------------------------------------------------------------------------
# Corpora


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_") or "clip"


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _bvh_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".bvh")


def is_bandai_file(path: Path) -> bool:
    if path.suffix.lower() != ".bvh" or not path.stem.startswith("dataset-"):
        return False
    try:
        parse_clip_name(path.stem)
    except MosaError:
        return False
    return True


def bandai_take(path: Path) -> Take:
    label = parse_clip_name(path.stem)
    return Take(
        name=path.stem,
        corpus="bandai-namco",
        path=str(path),
        actions=tuple(bandai_actions(label.content)),
        window_actions=tuple(bandai_actions(label.content)),
        captions_from="labels",
        window=False,
    )


def _cmu_tables(folder: Path, root: Path, rates: dict[str, float] | None):
    """Descriptions, true rates, KIT-ML sentences and rejected ones for a CMU folder. The
    index and KIT-ML file may sit above a subject folder; a ``CMU_data.csv`` is only read
    inside the source (its rates change the output)."""
    index_path = cmu.find_upwards(folder, "CMU-INDEX.md")
    levels = len(folder.relative_to(root).parts) if folder.is_relative_to(root) else 0
    csv_path = cmu.find_upwards(folder, "CMU_data.csv", levels)
    kit_path = cmu.find_upwards(folder, "kitml_captions.json")
    descriptions = cmu.read_index(index_path) if index_path else {}
    table_rates: dict[str, float] = {}
    if csv_path:
        csv_desc, table_rates = cmu.read_csv_table(csv_path)
        descriptions = {**csv_desc, **descriptions}
    table_rates |= rates or {}
    kit, rejected = cmu.read_kit(kit_path) if kit_path else ({}, [])
    return descriptions, table_rates, kit, rejected


def cmu_take(path: Path, trial: str, description: str, kit: list[str], seed: int) -> Take:
    """A CMU trial: captions from its description and KIT-ML sentences (``mosa.data.cmu``)."""
    desc = cmu.english(description)
    rng = _rng(seed, f"cmu_{trial}")
    whole = cmu.take_captions(desc, rng) + kit
    window = cmu.window_captions(desc, rng)
    window_kit = [s for s in kit if cmu.holds_for_windows(s)] if not desc.several else []
    window += window_kit
    # actions from the description and every phrasing of it (not the drawn captions, so
    # takes with the same description get the same actions)
    said = [description, *(p for ps in desc.phrases for p in ps)]
    actions = actions_in(" ".join(said + kit))
    window_actions = actions_in(" ".join(said + window_kit) if not desc.several else "")
    if desc.several and desc.umbrella:
        window_actions = actions_in(desc.umbrella)
    return Take(
        name=f"cmu_{trial}",
        corpus="cmu",
        path=str(path),
        captions=tuple(whole),
        window_captions=tuple(window),
        actions=tuple(actions),
        window_actions=tuple(window_actions),
        captions_from="cmu-index+kit-ml" if kit else "cmu-index",
        rest_pose=True,
    )


def discover_cmu(folder: Path, root: Path, seed: int, rates: dict[str, float] | None):
    found = Discovery(corpora={"cmu": [str(folder)]})
    descriptions, table_rates, kit, found.kit_rejected = _cmu_tables(folder, root, rates)
    for path in _bvh_files(folder):
        trial = cmu.trial_of(path.stem)
        if trial is None:
            found.skipped[_rel(path, root)] = "not named like a CMU trial (NN_MM.bvh)"
        elif trial not in descriptions:
            found.skipped[_rel(path, root)] = f"no description of trial {trial} in the index"
        else:
            take = cmu_take(path, trial, descriptions[trial], kit.get(trial, []), seed)
            take.table_fps = table_rates.get(trial)
            found.takes.append(take)
    return found


def discover_deepmimic(folder: Path, root: Path, seed: int) -> Discovery:
    found = Discovery(corpora={"deepmimic": [str(folder)]})
    characters = sorted(folder.glob("*_character.txt"))
    for path in sorted(folder.glob("*.txt")):
        if path in characters:
            continue
        label = re.sub(r"^humanoid3d_", "", path.stem)
        phrases, event = DEEPMIMIC.get(label, ((), False))
        if not phrases and (phrase := name_phrase(label)):
            phrases = (phrase,)
        if not phrases:
            found.skipped[_rel(path, root)] = "no caption: the clip's name names no action"
            continue
        captions = _subject_captions(phrases, _rng(seed, label), 3)
        actions = tuple(actions_in(" ".join([label, *captions])))
        found.takes.append(
            Take(
                name=f"deepmimic_{_slug(label)}",
                corpus="deepmimic",
                path=str(path),
                reader="deepmimic",
                captions=tuple(captions),
                window_captions=tuple(captions),
                actions=actions,
                window_actions=actions,
                captions_from="clip name",
                event=event,
                character=str(characters[0]) if characters else None,
            )
        )
    return found


def discover_animated_drawings(folder: Path, root: Path, seed: int) -> Discovery:
    found = Discovery(corpora={"animated-drawings": [str(folder)]})
    for path in _bvh_files(folder):
        phrases = ANIMATED_DRAWINGS.get(path.stem)
        captions = (
            _subject_captions(phrases, _rng(seed, path.stem), 3)
            if phrases
            else label_captions(path.stem, seed)
        )
        if not captions:
            found.skipped[_rel(path, root)] = "no caption: the file name names no action"
            continue
        actions = tuple(actions_in(" ".join([path.stem, *captions])))
        found.takes.append(
            Take(
                name=f"ad_{_slug(path.stem)}",
                corpus="animated-drawings",
                path=str(path),
                captions=tuple(captions),
                window_captions=tuple(captions),
                actions=actions,
                window_actions=actions,
                captions_from="file name",
            )
        )
    return found


# ----------------------------------------------------------------------------------------------
# Users' folders


def _caption_list(value, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
        raise MosaError(f"{where}: a caption must be a string or a list of strings")
    return [cmu.clean_sentence(c) for c in items if c.strip()]


def read_caption_file(path: Path) -> dict[str, list[str]]:
    """``captions.csv`` (file,caption rows) or ``captions.json`` -> {file: [captions]}."""
    out: dict[str, list[str]] = {}
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise MosaError(f"{path}: expected an object {{file: caption or [captions]}}")
            for key, value in data.items():
                out.setdefault(str(key), []).extend(_caption_list(value, f"{path}, {key}"))
            return out
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"file", "caption"} <= set(reader.fieldnames):
                raise MosaError(
                    f"{path}: needs the columns file,caption (found {reader.fieldnames})",
                    "write a header line: file,caption",
                )
            for row in reader:
                if row["file"] and row["caption"] and row["caption"].strip():
                    out.setdefault(row["file"].strip(), []).append(
                        cmu.clean_sentence(row["caption"])
                    )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise MosaError(f"cannot read {path}: {exc}", "fix or remove the captions file") from None
    return out


def _match_files(keys: Iterable[str], files: list[Path], folder: Path) -> dict[str, Path]:
    """Caption-file keys -> BVH files: by relative path, file name or stem (case-blind)."""
    lookup: dict[str, Path] = {}
    for p in files:
        rel = _rel(p, folder)
        for k in (rel, rel.rsplit(".", 1)[0], p.name, p.stem):
            lookup.setdefault(k.lower(), p)
    return {k: lookup[k.strip().lower()] for k in keys if k.strip().lower() in lookup}


def user_take(path: Path, folder: Path, captions: list[str], source: str) -> Take:
    rel = _rel(path, folder).rsplit(".", 1)[0]
    actions = tuple(actions_in(" ".join(captions)))
    return Take(
        name=f"user_{_slug(rel)}",
        corpus="user",
        path=str(path),
        captions=tuple(captions),
        window_captions=tuple(captions),
        actions=actions,
        window_actions=actions,
        captions_from=source,
    )


def discover_user(folder: Path, root: Path, seed: int, files: list[Path] | None = None):
    """A folder of BVH files with a caption file, or captions from file names."""
    found = Discovery(corpora={"user": [str(folder)]})
    files = _bvh_files(folder) if files is None else files
    caption_file = next((folder / n for n in CAPTION_FILES if (folder / n).is_file()), None)
    if caption_file is None:
        for path in files:
            captions = label_captions(path.stem, seed)
            if captions:
                found.takes.append(user_take(path, folder, captions, "file name"))
            else:
                found.skipped[_rel(path, root)] = (
                    "no caption: no captions.csv/captions.json beside it and its name names "
                    "no known action"
                )
        return found
    table = read_caption_file(caption_file)
    matched = _match_files(table, files, folder)
    for key in table:
        if key not in matched:
            found.skipped[f"{_rel(caption_file, root)}: {key}"] = (
                f"{caption_file.name} names {key}, which is not a BVH file in {folder.name}/"
            )
    by_file: dict[Path, list[str]] = {}
    for key, path in matched.items():
        by_file.setdefault(path, []).extend(table[key])
    for path in files:
        captions = list(dict.fromkeys(by_file.get(path, [])))
        if captions:
            found.takes.append(user_take(path, folder, captions, caption_file.name))
        else:
            found.skipped[_rel(path, root)] = f"no caption for it in {caption_file.name}"
    return found


# ----------------------------------------------------------------------------------------------
# Walking a source


def corpus_kind(folder: Path) -> str | None:
    """The corpus a folder holds as a whole, by its layout, or None."""
    if (folder / "CMU-INDEX.md").is_file() or (folder / "CMU_data.csv").is_file():
        return "cmu"
    if any(folder.glob("*_character.txt")):
        return "deepmimic"
    if folder.name.lower().replace("_", "-") in ("animated-drawings", "animateddrawings"):
        return "animated-drawings"
    if any((folder / n).is_file() for n in CAPTION_FILES):
        return "user"
    bvh = [p for p in folder.glob("*.bvh")]
    if bvh and all(cmu.trial_of(p.stem) for p in bvh) and cmu.find_upwards(folder, "CMU-INDEX.md"):
        return "cmu"  # a subject folder (cmu-daz/13) of the Daz conversion
    return None


def discover(root: str | Path, seed: int = 0, rates: dict[str, float] | None = None) -> Discovery:
    """Every take under ``root`` (see the module docstring)."""
    root = Path(root)
    found = Discovery()
    _walk(root, root, seed, rates, found)
    return found


def _walk(folder: Path, root: Path, seed: int, rates, found: Discovery) -> None:
    kind = corpus_kind(folder)
    if kind == "cmu":
        found.extend(discover_cmu(folder, root, seed, rates))
        return
    if kind == "deepmimic":
        found.extend(discover_deepmimic(folder, root, seed))
        return
    if kind == "animated-drawings":
        found.extend(discover_animated_drawings(folder, root, seed))
        return
    if kind == "user":
        found.extend(discover_user(folder, root, seed))
        return
    files = sorted(p for p in folder.glob("*") if p.is_file() and p.suffix.lower() == ".bvh")
    bandai = [p for p in files if is_bandai_file(p)]
    if bandai:
        found.takes += [bandai_take(p) for p in bandai]
        found.unlabelled += [p.name for p in files if p not in bandai]
        found.corpora.setdefault("bandai-namco", []).append(str(folder))
    elif files:
        found.extend(discover_user(folder, root, seed, files))
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        _walk(sub, root, seed, rates, found)
