"""CMU motion capture trials: descriptions into captions, KIT-ML sentences, true frame rates.

The CMU index describes each trial in a terse list ("13_29 jumping jacks, side twists, bend
over, squats"; "basketball - forward dribble"). ``english`` turns it into what a user would
type ("a person does jumping jacks, side twists, bends over and squats"): each item becomes a
third-person verb phrase (``PHRASES`` for the vocabulary of the index, else the first word is
conjugated), a leading "category -" becomes context ("on a playground", "dribbles a
basketball").

Long takes are cut into windows of at most 9.8 s (HumanML3D's longest), and the index does not
say when each listed action happens. So a caption listing several actions is only given to a
clip holding the whole take. A window of a take with several actions gets captions that hold
for every part of the take: the category ("a person dances ballet"), an umbrella for known
sets ("a person exercises"), and a sentence that says it is part of the take ("part of a take
in which a person ..."). KIT-ML sentences describe the whole take too, so they go to a clip
holding the whole take, or to windows of a one-action take when they name no sequence or
count ("turns around and hops back" does not hold for every window).

KIT-ML sentences (Plappert et al., Big Data 2016) are crowd-sourced: ``kit_reject_reason``
drops web spam (links, HTML), non-English and very short ones.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mosa.errors import MosaError
from mosa.motion.bvh import BVHData

TRIAL = re.compile(r"^(\d{1,3})_(\d{1,3})$")
SUBJECTS = ("a person", "someone", "the person", "a human", "an individual", "a figure")
WINDOW_PREFIX = "part of a take in which"  # the window caption that describes the whole take

# CMU index item -> third-person phrases (alternatives); {their} is the subject's pronoun.
# fmt: off
PHRASES: dict[str, tuple[str, ...]] = {
    "walk": ("walks", "is walking", "takes a walk"),
    "slow walk": ("walks slowly", "takes a slow walk"),
    "brisk walk": ("walks briskly", "walks at a brisk pace"),
    "walk/stride": ("walks with long strides", "strides along"),
    "slow walk/stride": ("walks slowly with long strides",),
    "exaggerated stride": ("takes exaggerated strides", "walks with exaggerated strides"),
    "walk on uneven terrain": ("walks on uneven ground", "walks over uneven terrain"),
    "walk forward": ("walks forward",),
    "backward": ("walks backward",),
    "sideways": ("walks sideways",),
    "run": ("runs", "runs forward", "is running"),
    "run/jog": ("runs", "jogs"),
    "jog": ("jogs", "goes for a jog"),
    "jump": ("jumps", "jumps up"),
    "forward jump": ("jumps forward", "does a forward jump"),
    "forward jumps": ("jumps forward", "does forward jumps"),
    "jump down": ("jumps down",),
    "jump up to grab": ("jumps up to grab something", "jumps up to grab something overhead"),
    "balance": ("balances", "keeps {their} balance"),
    "punch/strike": ("punches", "throws punches", "strikes with {their} fists"),
    "boxing": ("boxes", "shadow boxes", "throws punches like a boxer"),
    "swordplay": ("fights with a sword", "practises swordplay", "swings a sword"),
    "bend over": ("bends over",),
    "scoop up": ("scoops something up", "picks something up"),
    "rise": ("rises", "stands back up"),
    "lift arm": ("lifts an arm", "raises an arm"),
    "wash self": ("washes {their} body", "washes {self}"),
    "wash windows": ("washes windows", "wipes a window"),
    "turn around": ("turns around",),
    "turn": ("turns",),
    "climb": ("climbs",),
    "climb ladder": ("climbs a ladder", "climbs up a ladder"),
    "climb 3 steps": ("climbs three steps", "walks up three steps"),
    "sit": ("sits",),
    "sit on high stool": ("sits on a high stool", "sits down on a tall stool"),
    "sit on stepstool": ("sits on a step stool", "sits down on a stool"),
    "stand up": ("stands up", "gets up"),
    "swing legs": ("swings {their} legs",),
    "dangle": ("dangles",),
    "dangle legs": ("dangles {their} legs", "lets {their} legs dangle"),
    "rock back": ("rocks back",),
    "lower self to ground": ("lowers {self} to the ground",),
    "legs push off against": ("pushes off with {their} legs",),
    "hang": ("hangs",),
    "swing": ("swings",),
    "go under": ("goes under",),
    "descend": ("climbs down",),
    "ankle on other knee": ("rests an ankle on the other knee",),
    "hand on chin": ("rests {their} chin on {their} hand",),
    "unscrew bottlecap": ("unscrews a bottle cap", "opens a bottle"),
    "screw on bottlecap": ("screws the cap back on", "closes the bottle"),
    "drink soda": ("drinks soda", "drinks from a bottle"),
    "reach for": ("reaches for something", "reaches out for something"),
    "tiptoe": ("stands on tiptoe", "stands on {their} toes"),
    "laugh": ("laughs", "laughs heartily"),
    "direct traffic": ("directs traffic", "signals to direct traffic"),
    "wave": ("waves",),
    "jumping jacks": ("does jumping jacks",),
    "side twists": ("does side twists", "twists from side to side"),
    "squats": ("squats", "does squats"),
    "kick ball": ("kicks a soccer ball", "kicks a ball"),
    # basketball
    "forward dribble": ("dribbles a basketball forward",
                        "dribbles a basketball while moving forward"),
    "backward dribble": ("dribbles a basketball while moving backward",),
    "sideways dribble": ("dribbles a basketball while moving sideways",),
    "dribble": ("dribbles a basketball",),
    "crossover dribble": ("does a crossover dribble",),
    "shoot": ("shoots the ball", "takes a shot"),
    "90-degree left turns": ("makes 90-degree left turns", "turns left at right angles"),
    "90-degree right turns": ("makes 90-degree right turns", "turns right at right angles"),
    # ballet, in plain words
    "expressive arms": ("moves {their} arms expressively",),
    "pirouette": ("does a pirouette", "spins on one foot"),
    "pirouettes": ("does pirouettes", "spins on one foot"),
    "shifted-axis pirouette": ("does an off-axis pirouette",),
    "sideways arabesque": ("does an arabesque to the side",),
    "attitude/arabesque": ("holds an arabesque", "raises one leg behind {them}"),
    "turn step": ("does a turning step",),
    "folding arms": ("folds {their} arms",),
    "bending back": ("bends backward", "arches {their} back"),
    "quasi-cou-de-pied": ("lifts one foot to the other ankle",),
    "raised leg above hip-height": ("raises a leg above hip height",),
    "jete": ("leaps", "does a leap"),
    "small jetes": ("does small leaps",),
    "jete en tourant": ("does a turning leap",),
    "grand jete en tourant": ("does a big turning leap",),
    "cartwheel-like start": ("starts with a cartwheel-like move",),
    "rond de jambe in the air": ("circles a leg in the air",),
    "glissade devant": ("does a gliding step",),
    "glissade derriere": ("does a gliding step",),
    "sideways steps": ("steps sideways",),
    "arms held high": ("holds {their} arms high",),
    "pointe tendue a terre": ("points a foot on the floor",),
    "upper body rotation": ("rotates {their} upper body",),
    "retire derriere": ("lifts a foot behind the knee",),
    "coupe dessous": ("does a quick cutting step",),
}
# "category - items": how the category reads (a context, and an umbrella caption that holds
# for any part of such a take).
CATEGORIES: dict[str, tuple[str, str]] = {
    "playground": ("on a playground", "plays on playground equipment"),
    "dance": ("dancing ballet", "dances ballet"),
    "basketball": ("", "dribbles a basketball"),
    "soccer": ("", "plays soccer"),
    "navigate": ("", "walks around"),
}
# Umbrellas for takes without a category whose items all fall in one activity.
UMBRELLAS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"jumping jacks", "side twists", "squats", "bend over", "jog"}), "exercises"),
    (frozenset({"unscrew bottlecap", "drink soda", "screw on bottlecap"}),
     "handles a soda bottle"),
    (frozenset({"jump up to grab", "reach for", "tiptoe"}), "reaches up high"),
    (frozenset({"direct traffic", "wave"}), "signals with {their} arms"),
)
# fmt: on
PRONOUNS = {"their": "their", "them": "them", "self": "themselves"}
_SEQUENCE_WORDS = re.compile(
    r"\b(then|again|after|before|afterwards|first|second|finally|twice|times|turns around|"
    r"back and forth|\d+|one|two|three|four|five)\b",
    re.I,
)


@dataclass
class Description:
    """A CMU description made English: items, their phrases, the category context."""

    raw: str
    items: list[str]
    phrases: list[tuple[str, ...]]
    category: str | None = None
    umbrella: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def several(self) -> bool:
        """True when the description lists more than one action."""
        return len({p[0] for p in self.phrases}) > 1


def _conjugate(verb: str) -> str:
    """Third person singular of an English verb ("bend" -> "bends", "do" -> "does")."""
    irregular = {"do": "does", "go": "goes", "have": "has", "be": "is"}
    if verb in irregular:
        return irregular[verb]
    if re.search(r"(s|sh|ch|x|z|o)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


def _phrase(item: str) -> tuple[str, ...]:
    """Phrases for one index item: the table, its first '/' alternative, else conjugated."""
    if item in PHRASES:
        return PHRASES[item]
    first = item.split("/")[0].strip()
    if first in PHRASES:
        return PHRASES[first]
    words = first.split()
    if not words:
        return ()
    if words[0].endswith("ing") or (len(words) == 1 and words[0].endswith("s")):
        return (f"does {first}",)  # "boxing" -> "does boxing", "lunges" -> "does lunges"
    return (" ".join([_conjugate(words[0]), *words[1:]]),)


def english(description: str) -> Description:
    """Parse a CMU description ("dance - sideways steps, pirouette") into phrases."""
    raw = " ".join(description.split())
    category, rest = None, raw
    match = re.match(r"^([a-z ]+?)\s+-\s+(.*)$", raw, re.I)
    if match and match.group(1).lower() in CATEGORIES:
        category, rest = match.group(1).lower(), match.group(2)
    items = [i.strip().lower() for i in rest.split(",") if i.strip()]
    phrases = [p for p in (_phrase(i) for i in items) if p]
    umbrella = CATEGORIES[category][1] if category else None
    if umbrella is None:
        umbrella = next((u for keys, u in UMBRELLAS if set(items) <= keys), None)
    return Description(raw, items, phrases, category, umbrella)


def _join(parts: Sequence[str], word: str = "and") -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + f" {word} " + parts[-1]


def _fill(text: str) -> str:
    return text.format(**PRONOUNS)


def _sentence(subject: str, predicate: str, context: str = "") -> str:
    text = f"{subject} {predicate}"
    if context:
        text += f" {context}" if context.startswith(("on ", "with ")) else f", {context}"
    return _fill(text) + "."


def take_captions(desc: Description, rng: np.random.Generator, n: int = 4) -> list[str]:
    """Up to ``n`` distinct captions for a clip holding the whole take."""
    context = CATEGORIES[desc.category][0] if desc.category else ""
    out: list[str] = []
    for k in range(8 * n):
        subject = SUBJECTS[int(rng.integers(len(SUBJECTS)))]
        chosen = [p[int(rng.integers(len(p)))] for p in desc.phrases]
        chosen = list(dict.fromkeys(chosen))  # "glissade devant, glissade derriere"
        word = "and then" if (k % 3 == 2 and len(chosen) > 1) else "and"
        if desc.category == "dance" and k % 2:
            caption = _sentence(subject, f"dances ballet: {_fill(_join(chosen))}")
            caption = caption.replace(": ", ", and ", 1) if len(chosen) == 1 else caption
        else:
            caption = _sentence(subject, _join(chosen, word), context)
        if caption not in out:
            out.append(caption)
        if len(out) == n:
            break
    return out


def window_captions(desc: Description, rng: np.random.Generator, n: int = 3) -> list[str]:
    """Captions true of any window of the take (see the module docstring)."""
    if not desc.several:
        return take_captions(desc, rng, n)
    out = []
    if desc.umbrella:
        subjects = rng.permutation(len(SUBJECTS))[: max(n - 1, 1)]
        out += [_sentence(SUBJECTS[int(s)], desc.umbrella) for s in subjects]
    for whole in take_captions(desc, rng, 1 if desc.umbrella else 2):
        out.append(f"{WINDOW_PREFIX} {whole}")
    return out


# ----------------------------------------------------------------------------------------------
# KIT-ML sentences

# English function words: a sentence with none of them is not English ("Eine Person geht").
_ENGLISH = re.compile(
    r"\b(a|an|the|is|are|was|with|and|his|her|their|its|to|of|in|on|at|he|she|they|someone|"
    r"somebody|forward|while|from|up|down)\b",
    re.I,
)


def kit_reject_reason(text: str) -> str | None:
    """Why a KIT-ML sentence is unusable as a caption, or None when it is fine."""
    t = " ".join(str(text).split())
    words = re.findall(r"[A-Za-z']+", t)
    if re.search(r"https?:|www\.|<\s*/?\s*a\b|href|\.com\b|@", t, re.I):
        return "web spam (a link or HTML)"
    letters = [c for c in t if c.isalpha()]
    if sum(not c.isascii() for c in letters) > 0.1 * max(len(letters), 1):
        return "not English (non-Latin letters)"
    if len(words) < 3:
        return "too short"
    if not _ENGLISH.search(t):
        return "not English (no English function word)"
    if len(words) > 60:
        return "too long"
    return None


def clean_sentence(text: str) -> str:
    """One line, no '#', ending in a full stop."""
    t = " ".join(str(text).replace("#", " ").split())
    return t if t.endswith((".", "!", "?")) else t + "."


def holds_for_windows(sentence: str) -> bool:
    """False for a sentence naming a sequence or a count (true of the whole take only)."""
    return _SEQUENCE_WORDS.search(sentence) is None


def read_kit(path: str | Path) -> tuple[dict[str, list[str]], list[dict]]:
    """KIT-ML sentences per CMU trial, and the rejected ones ``{trial, text, reason}``.

    Reads the TMR-style list ``[{"cmu_trial": "02_06", "texts": [...]}, ...]`` or a mapping
    ``{"02_06": [...]}``.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MosaError(f"cannot read KIT-ML captions {path}: {exc}", "fix the JSON") from None
    pairs = data.items() if isinstance(data, dict) else [
        (e.get("cmu_trial"), e.get("texts", [])) for e in data if isinstance(e, dict)
    ]  # fmt: skip
    good: dict[str, list[str]] = {}
    rejected: list[dict] = []
    for trial, texts in pairs:
        if not trial:
            continue
        for text in [texts] if isinstance(texts, str) else texts:
            reason = kit_reject_reason(text)
            if reason:
                rejected.append({"trial": str(trial), "text": str(text)[:120], "reason": reason})
            else:
                good.setdefault(str(trial), []).append(clean_sentence(text))
    return good, rejected


# ----------------------------------------------------------------------------------------------
# Index, frame rates, the Daz conversion's first frames


def trial_key(subject: int | str, trial: int | str) -> str:
    """'13', '29' -> '13_29' (two digits at least, as the index names trials)."""
    return f"{int(subject):02d}_{int(trial):02d}"


def read_index(path: str | Path) -> dict[str, str]:
    """``CMU-INDEX.md`` -> {"13_29": "jumping jacks, side twists, bend over, squats"}."""
    out: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        match = re.match(r"^\s*(\d{1,3})_(\d{1,3})\s+(.+?)\s*$", line)
        if match:
            out[trial_key(match.group(1), match.group(2))] = match.group(3)
    return out


def _csv_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return list(csv.DictReader(f))


def read_csv_table(path: str | Path) -> tuple[dict[str, str], dict[str, float]]:
    """``CMU_data.csv`` -> ({trial: description}, {trial: true frame rate})."""
    descriptions, rates = {}, {}
    for row in _csv_rows(path):
        try:
            key = trial_key(row["Subject"], row["Trial #"])
        except (KeyError, TypeError, ValueError):
            continue
        if row.get("Motion Description"):
            descriptions[key] = row["Motion Description"].strip()
        with contextlib.suppress(ValueError):
            rates[key] = float(row.get("framerate") or "nan")
    return descriptions, {k: v for k, v in rates.items() if v > 0}


def true_fps(header_fps: float, table_fps: float | None) -> float | None:
    """The rate to use instead of the header's, or None to trust the header.

    The Daz conversion writes 120 fps for every trial, also for those captured at 60 fps
    (their frames were not resampled); other conversions (iClone's 60 fps) resample and write
    the right rate. So only a 120 header over a 60 capture is corrected.
    """
    if table_fps is None or not np.isfinite(table_fps):
        return None
    if abs(header_fps - 120) < 0.5 and abs(table_fps - 60) < 0.5:
        return 60.0
    return None


def rest_pose_frames(bvh: BVHData, limit: int = 12) -> int:
    """Leading frames to drop from a Daz-converted trial: 0 when frame 0 is no rest pose.

    The conversion adds a rest pose as frame 0 (zero root rotation, near-zero joint angles);
    the next few frames swing from it at thousands of degrees per second before the capture
    settles. Frames are dropped while the largest per-frame angle change exceeds 4 times its
    median over the take (at most ``limit`` frames).
    """
    columns = bvh.channel_columns()
    rotations = [
        int(c)
        for names, cols in zip(bvh.channels, columns, strict=True)
        for name, c in zip(names, cols, strict=True)
        if name.endswith("rotation")
    ]
    root = [int(c) for n, c in zip(bvh.channels[0], columns[0], strict=True) if "rotation" in n]
    motion = bvh.motion
    if len(motion) < 4 or not root or np.abs(motion[0, root]).max() > 1e-6:
        return 0
    if np.abs(motion[1, root]).max() < 1e-6:
        return 0  # frame 1 also has zero rotation: a still start, not the conversion's pose
    change = np.abs(np.diff(motion[:, rotations], axis=0)).max(axis=1)
    threshold = max(4.0 * float(np.median(change)), 1.0)
    start = 1
    while start < min(limit, len(change) - 2) and change[start] > threshold:
        start += 1
    return start


def find_upwards(folder: Path, name: str, levels: int = 2) -> Path | None:
    """``folder/name`` or the same in up to ``levels`` parent folders."""
    for parent in [folder, *folder.parents][: levels + 1]:
        if (parent / name).is_file():
            return parent / name
    return None


def trial_of(stem: str) -> str | None:
    """'13_29' -> '13_29', '002_04' -> '02_04', other names -> None."""
    match = TRIAL.match(stem)
    return trial_key(match.group(1), match.group(2)) if match else None
