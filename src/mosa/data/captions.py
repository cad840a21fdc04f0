"""Natural-language captions for Bandai-Namco clips, made from their (content, style) labels.

Bandai-Namco clips carry no free text, only labels in the file name
(``dataset-N_{content}_{style}_{take}.bvh``). We turn each label pair into several phrasings, as
HumanML3D has 3-4 human captions per motion: varied subjects, synonyms for the action, and the
style as an adverb, an adjective, a clause or a style-specific subject ("an old man shuffles
forward"). The vocabularies below are plain data: add a content or a style by adding an entry.

Predicates are third person singular and may use ``{their}``, ``{them}`` and ``{self}``; they
are filled with the pronouns of the chosen subject ("a woman waves her left hand").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mosa.data.splits import is_mirror, original_name, stable_seed
from mosa.errors import MosaError


@dataclass(frozen=True)
class Content:
    """What the body does: predicates such as "walks forward" (3rd person singular)."""

    phrases: tuple[str, ...]


@dataclass(frozen=True)
class Style:
    """How it is done. Any field may be empty; ``optional`` styles are sometimes left unsaid."""

    adverbs: tuple[str, ...] = ()  # "happily", "in a cheerful mood" (after the predicate)
    adjectives: tuple[str, ...] = ()  # "cheerful" -> "a cheerful person"
    clauses: tuple[str, ...] = ()  # "looking pleased with {self}" (after a comma)
    subjects: tuple[str, ...] = ()  # "an old man": keys of SUBJECT_GENDER
    gender: str | None = None  # "m" or "f": gendered subjects must agree with it
    optional: bool = False  # the caption may omit the style (the "normal" style)
    phrases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # content -> predicates


# Subjects and their grammatical gender: "n" (they), "m" (he), "f" (she).
SUBJECT_GENDER: dict[str, str] = {
    "a person": "n", "the person": "n", "someone": "n", "a figure": "n", "the figure": "n",
    "a character": "n", "the character": "n", "a human": "n", "an individual": "n",
    "a man": "m", "the man": "m", "a guy": "m", "a woman": "f", "the woman": "f", "a lady": "f",
    # style-specific subjects
    "an old man": "m", "an old woman": "f", "an elderly person": "n", "an elderly man": "m",
    "an elderly woman": "f", "an old person": "n", "a senior citizen": "n",
    "a child": "n", "a kid": "n", "a little boy": "m", "a little girl": "f", "a small child": "n",
    "a young person": "n", "a young man": "m", "a young woman": "f", "a teenager": "n",
    "a macho man": "m", "a tough guy": "m", "a burly man": "m",
    "a graceful woman": "f", "a young lady": "f",
    "a thug": "n", "a street punk": "n", "a delinquent": "n", "a hoodlum": "n",
    "a giant": "n", "a huge person": "n", "a hulking figure": "n", "a heavy giant": "n",
    "a stage performer": "n", "an actor": "n", "a musical actor": "n",
}  # fmt: skip
# Generic subjects any style may use (gendered ones only where the style agrees).
GENERIC_SUBJECTS: tuple[str, ...] = (
    "a person", "the person", "someone", "a figure", "the figure", "a character",
    "the character", "a human", "an individual", "a man", "the man", "a guy", "a woman",
    "the woman", "a lady",
)  # fmt: skip
# Nouns for "a {adjective} {noun}".
ADJECTIVE_NOUNS: dict[str, str] = {
    "person": "n",
    "figure": "n",
    "character": "n",
    "man": "m",
    "woman": "f",
    "individual": "n",
}
PRONOUNS: dict[str, dict[str, str]] = {
    "n": {"their": "their", "them": "them", "self": "themselves"},
    "m": {"their": "his", "them": "him", "self": "himself"},
    "f": {"their": "her", "them": "her", "self": "herself"},
}


def _turn(side: str) -> tuple[str, ...]:
    return (
        f"walks forward and turns {side}",
        f"walks and then turns to the {side}",
        f"turns {side} while walking",
        f"walks in a curve to the {side}",
        f"makes a {side} turn while walking",
        f"walks ahead and changes direction to the {side}",
        f"walks forward, then veers off to the {side}",
    )


def _diagonal(side: str) -> tuple[str, ...]:
    # Set 1's walk-left/right: walking ahead on a diagonal, not turning (the body keeps its
    # heading; the path is 15-50 degrees off it), as measured on the clips.
    return (
        f"walks diagonally forward to the {side}",
        f"walks forward and to the {side}",
        f"walks ahead, drifting to the {side}",
        f"walks forward at an angle toward the {side}",
        f"walks toward the front {side}",
        f"walks diagonally {side}ward",
    )


def _wave(side: str) -> tuple[str, ...]:
    return (
        f"waves {{their}} {side} hand",
        f"waves with {{their}} {side} hand",
        f"raises {{their}} {side} hand and waves",
        f"waves hello with the {side} hand",
        f"lifts {{their}} {side} arm and waves it",
        f"waves a greeting with {{their}} {side} hand",
    )


def _raise(side: str) -> tuple[str, ...]:
    return (
        f"raises {{their}} {side} hand",
        f"raises {{their}} {side} arm up",
        f"lifts {{their}} {side} hand into the air",
        f"puts {{their}} {side} hand up",
        f"raises the {side} arm above {{their}} head",
        f"lifts {{their}} {side} arm straight up",
    )


CONTENTS: dict[str, Content] = {
    "walk": Content((
        "walks forward", "walks straight ahead", "walks forward in a straight line",
        "strolls ahead", "walks ahead", "moves forward at a walking pace",
        "walks a few steps forward", "takes a walk forward",
    )),
    "run": Content((
        "runs forward", "runs straight ahead", "jogs forward", "runs ahead in a straight line",
        "runs forward at a steady pace", "jogs straight ahead",
    )),
    "dash": Content((
        "sprints forward", "dashes forward", "sprints straight ahead",
        "runs forward at full speed", "dashes ahead at top speed", "breaks into a fast sprint",
    )),
    "walk-back": Content((
        "walks backward", "walks backwards", "steps backward", "walks in reverse",
        "moves backward step by step", "retreats by walking backwards",
    )),
    "walk-left": Content(_diagonal("left")),
    "walk-right": Content(_diagonal("right")),
    "walk-turn-left": Content(_turn("left")),
    "walk-turn-right": Content(_turn("right")),
    "bow": Content((
        "bows", "takes a bow", "bows forward", "bends forward at the waist in a bow",
        "gives a bow", "bows {their} head and upper body", "makes a respectful bow",
    )),
    "bye": Content((
        "waves goodbye", "waves goodbye with {their} right hand", "raises a hand and waves goodbye",
        "says goodbye with a wave of the right hand", "waves farewell with one hand",
        "lifts {their} right hand and waves goodbye",
    )),
    "byebye": Content((
        "waves goodbye with both hands", "raises both hands and waves goodbye",
        "waves both arms above {their} head to say goodbye", "says bye bye with both hands",
        "waves farewell with both hands raised high", "waves both hands back and forth in farewell",
    )),
    "guide": Content((
        "shows the way with a hand gesture", "gestures with {their} right hand to show the way",
        "points out the direction with {their} right hand",
        "guides a visitor with a sweeping gesture of the right arm",
        "motions with {their} arm to lead the way", "indicates the way with an open palm",
    )),
    "respond": Content((
        "raises {their} left hand to respond", "answers a call by raising {their} left hand",
        "responds by putting {their} left hand up", "replies with a raised left hand",
        "raises a hand high in reply",
    )),
    "call": Content((
        "calls out to a friend", "calls someone over with both hands",
        "beckons a friend to come closer", "waves a friend over with both hands",
        "gestures for a friend to come over", "calls to a friend in the distance",
    )),
    "punch": Content((
        "throws a few punches", "punches forward", "punches with both fists",
        "throws punches into the air", "strikes forward with a series of punches",
        "boxes the air",
    )),
    "kick": Content((
        "kicks with {their} right leg", "kicks forward", "throws a high kick with the right leg",
        "kicks into the air with {their} right foot", "delivers a powerful kick",
    )),
    "slash": Content((
        "slashes with a sword held in both hands", "swings an imaginary sword",
        "makes slashing motions with both arms", "slashes through the air with a blade",
        "cuts through the air with a two-handed sword swing",
        "swings {their} arms down as if cutting with a sword",
    )),
    "dance-long": Content((
        "dances", "performs a long dance", "dances a full routine", "dances to music",
        "performs a dance routine", "dances for a long while",
    )),
    "dance-short": Content((
        "dances", "performs a dance", "does a short dance", "dances to music",
        "performs a dance routine", "moves to the rhythm",
    )),
    "wave-both-hands": Content((
        "waves both hands", "waves with both hands", "raises both hands and waves",
        "waves hello with both hands", "waves both arms", "waves a greeting with both hands",
    )),
    "wave-left-hand": Content(_wave("left")),
    "wave-right-hand": Content(_wave("right")),
    "raise-up-both-hands": Content((
        "raises both hands", "raises both arms up", "lifts both hands into the air",
        "puts both hands up", "raises both arms above {their} head", "throws both hands up",
    )),
    "raise-up-left-hand": Content(_raise("left")),
    "raise-up-right-hand": Content(_raise("right")),
}  # fmt: skip

_OLD = Style(
    adverbs=("like an old person", "slowly and stiffly", "feebly", "in an elderly way",
             "with the stiffness of old age"),
    adjectives=("old", "elderly", "aged", "frail"),
    clauses=("moving slowly and stiffly like an elderly person", "bent over with age"),
    subjects=("an old man", "an old woman", "an elderly person", "an elderly man",
              "an elderly woman", "an old person", "a senior citizen"),
    phrases={
        "walk": ("shuffles forward", "hobbles forward", "shuffles slowly ahead",
                 "walks forward with slow, stiff steps"),
        "run": ("jogs slowly and stiffly forward", "runs forward with stiff, short steps"),
    },
)  # fmt: skip
_TIRED = Style(
    adverbs=("tiredly", "wearily", "sluggishly", "listlessly", "with heavy, tired movements"),
    adjectives=("tired", "exhausted", "weary", "fatigued", "worn out"),
    clauses=("looking exhausted", "as if completely worn out", "with barely any energy left"),
    phrases={
        "walk": ("drags {self} forward", "trudges forward", "plods ahead",
                 "drags {their} feet while walking forward"),
        "run": ("runs forward sluggishly", "struggles to keep running forward"),
    },
)  # fmt: skip
_MASCULINE = Style(
    adverbs=("in a masculine way", "in a manly manner", "in a macho way", "with a manly posture"),
    adjectives=("masculine", "manly", "macho", "burly"),
    clauses=("with broad, masculine movements", "acting very manly"),
    subjects=("a macho man", "a tough guy", "a burly man"),
    gender="m",
)  # fmt: skip
_ACTIVE = Style(
    adverbs=("energetically", "actively", "vigorously", "with lots of energy", "dynamically"),
    adjectives=("energetic", "lively", "active", "vigorous", "spirited"),
    clauses=("full of energy", "moving with great vigor"),
)  # fmt: skip

STYLES: dict[str, Style] = {
    "normal": Style(
        adverbs=("normally", "casually", "in a normal way", "in an ordinary manner", "naturally"),
        clauses=("in a natural, everyday manner", "without any particular emotion"),
        optional=True,
    ),
    "happy": Style(
        adverbs=("happily", "cheerfully", "joyfully", "in a cheerful mood", "in high spirits"),
        adjectives=("happy", "cheerful", "joyful", "glad", "merry"),
        clauses=("looking happy", "clearly in a good mood", "looking cheerful and upbeat"),
        phrases={
            "walk": ("skips forward cheerfully", "walks forward with a bounce in {their} step")
        },
    ),
    "sad": Style(
        adverbs=("sadly", "gloomily", "dejectedly", "in a sad mood", "with {their} head hung low"),
        adjectives=("sad", "gloomy", "unhappy", "downcast", "depressed"),
        clauses=("looking sad", "seeming downhearted", "as if something upsetting happened"),
    ),
    "angry": Style(
        adverbs=("angrily", "furiously", "in an angry mood", "with obvious anger", "irritably"),
        adjectives=("angry", "furious", "irritated", "mad", "annoyed"),
        clauses=("looking angry", "clearly annoyed", "as if very upset"),
        phrases={"walk": ("stomps forward angrily", "storms ahead")},
    ),
    "proud": Style(
        adverbs=("proudly", "confidently", "with {their} chest puffed out",
                 "with {their} head held high", "haughtily"),
        adjectives=("proud", "confident", "haughty", "arrogant"),
        clauses=("looking very pleased with {self}", "chest out and chin up"),
        phrases={"walk": ("struts forward proudly", "marches ahead with {their} chest out")},
    ),
    "not-confident": Style(
        adverbs=("timidly", "shyly", "hesitantly", "nervously", "without confidence"),
        adjectives=("timid", "shy", "insecure", "nervous", "hesitant", "unconfident"),
        clauses=("looking unsure of {self}", "as if lacking confidence", "seeming nervous"),
    ),
    "masculinity": _MASCULINE,
    "masculine": _MASCULINE,
    "feminine": Style(
        adverbs=("in a feminine way", "gracefully", "elegantly", "in a ladylike manner"),
        adjectives=("feminine", "graceful", "elegant", "ladylike"),
        clauses=("with feminine grace", "moving in a soft, feminine way"),
        subjects=("a graceful woman", "a young lady"),
        gender="f",
    ),
    "childish": Style(
        adverbs=("childishly", "like a child", "in a childlike way", "playfully"),
        adjectives=("childish", "childlike", "playful"),
        clauses=("acting like a small child", "with the bouncy movements of a kid"),
        subjects=("a child", "a kid", "a little boy", "a little girl", "a small child"),
    ),
    "old": _OLD,
    "elderly": _OLD,
    "tired": _TIRED,
    "exhausted": _TIRED,
    "active": _ACTIVE,
    "musical": Style(
        adverbs=("theatrically", "dramatically", "like a musical performer",
                 "in an exaggerated, theatrical way", "as if performing in a musical"),
        adjectives=("theatrical", "dramatic", "showy"),
        clauses=("as if on stage in a musical",
                 "with big, exaggerated gestures like a stage actor"),
        subjects=("a stage performer", "an actor", "a musical actor"),
    ),
    "giant": Style(
        adverbs=("heavily", "ponderously", "like a giant", "in a heavy, lumbering way"),
        adjectives=("giant", "huge", "hulking", "massive", "heavy"),
        clauses=("moving heavily like a giant", "as if {their} body were huge and heavy"),
        subjects=("a giant", "a huge person", "a hulking figure", "a heavy giant"),
        phrases={
            "walk": ("lumbers forward", "stomps forward with heavy steps",
                     "plods forward with big, heavy strides"),
            "run": ("lumbers forward at a run", "runs forward with heavy, pounding steps"),
        },
    ),
    "chimpira": Style(
        adverbs=("with a thuggish swagger", "like a street thug", "with a cocky attitude",
                 "in a delinquent's swaggering manner", "menacingly"),
        adjectives=("thuggish", "cocky", "swaggering", "menacing"),
        clauses=("swaggering like a thug", "acting tough like a street punk"),
        subjects=("a thug", "a street punk", "a delinquent", "a hoodlum"),
        phrases={"walk": ("swaggers forward", "struts ahead with a thuggish swagger")},
    ),
    "youthful": Style(
        adverbs=("youthfully", "in a youthful way", "with youthful energy", "lightly"),
        adjectives=("young", "youthful", "sprightly"),
        clauses=("full of youthful energy", "moving lightly like a young person"),
        subjects=("a young person", "a young man", "a young woman", "a teenager"),
    ),
}  # fmt: skip

# Contents whose mirror image is another content.
MIRROR_CONTENT: dict[str, str] = {
    "walk-left": "walk-right",
    "walk-turn-left": "walk-turn-right",
    "wave-left-hand": "wave-right-hand",
    "raise-up-left-hand": "raise-up-right-hand",
}
MIRROR_CONTENT.update({v: k for k, v in list(MIRROR_CONTENT.items())})

# Words swapped in a mirrored caption (HumanML3D does the same for its mirrored texts).
_SWAP_WORDS = {
    "left": "right", "leftward": "rightward", "leftwards": "rightwards",
    "clockwise": "counterclockwise", "anticlockwise": "clockwise",
}  # fmt: skip
_SWAP_WORDS.update({v: k for k, v in list(_SWAP_WORDS.items()) if v not in _SWAP_WORDS})
_SWAP_RE = re.compile(r"\b(" + "|".join(sorted(_SWAP_WORDS, key=len, reverse=True)) + r")\b", re.I)


@dataclass(frozen=True)
class ClipLabel:
    """Labels parsed from a clip name such as ``dataset-2_walk-turn-left_elderly_012``."""

    dataset: int
    content: str
    style: str
    take: str
    mirrored: bool = False

    @property
    def group(self) -> str:
        """Stratification key for splits: the content within its dataset ("2/walk")."""
        return f"{self.dataset}/{self.content}"


def parse_clip_name(name: str) -> ClipLabel:
    """Parse ``[M]dataset-N_{content}_{style}_{take}``; a mirrored name gets mirrored labels."""
    mirrored = is_mirror(name)
    parts = original_name(name).split("_")
    match = re.fullmatch(r"dataset-(\d+)", parts[0]) if parts else None
    if len(parts) != 4 or match is None:
        raise MosaError(
            f"clip name {name!r} is not of the form dataset-N_content_style_take",
            "Bandai-Namco files are named like dataset-1_walk_happy_001.bvh; rename the file",
        )
    content = mirror_content(parts[1]) if mirrored else parts[1]
    return ClipLabel(int(match.group(1)), content, parts[2], parts[3], mirrored)


def mirror_content(content: str) -> str:
    """The content label of the mirror image ("walk-left" -> "walk-right")."""
    return MIRROR_CONTENT.get(content, content)


def swap_left_right(text: str) -> str:
    """Swap left/right words (and clockwise/counterclockwise), keeping capitalisation."""

    def repl(m: re.Match) -> str:
        word = m.group(0)
        new = _SWAP_WORDS[word.lower()]
        return new.capitalize() if word[0].isupper() else new

    return _SWAP_RE.sub(repl, text)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _subject_ok(gender: str, style: Style) -> bool:
    return gender == "n" or style.gender is None or gender == style.gender


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _one_caption(content: Content, key: str, style: Style, rng: np.random.Generator) -> str:
    """One random phrasing: (subject, predicate, style expression) -> "a man bows politely."."""
    predicates = content.phrases
    own = style.phrases.get(key, ())
    if own and rng.random() < 0.4:
        predicates = own
    predicate = _pick(rng, predicates)

    forms = ["adjective"] * bool(style.adjectives) + ["subject"] * bool(style.subjects)
    if predicates is own:  # the predicate already says the style: no adverb or clause on top
        forms += ["plain"] * 2
    else:
        forms += ["adverb"] * bool(style.adverbs) + ["clause"] * bool(style.clauses)
        if style.optional or not forms:
            forms += ["plain"] * max(len(forms), 1)  # the style may go unsaid
    form = _pick(rng, forms)

    if form == "subject":
        subject = _pick(rng, style.subjects)
        gender = SUBJECT_GENDER[subject]
    elif form == "adjective":
        nouns = [n for n, g in ADJECTIVE_NOUNS.items() if _subject_ok(g, style)]
        noun, adjective = _pick(rng, nouns), _pick(rng, style.adjectives)
        subject = f"{_article(adjective)} {adjective} {noun}"
        gender = ADJECTIVE_NOUNS[noun]
    else:
        subject = _pick(rng, [s for s in GENERIC_SUBJECTS if _subject_ok(SUBJECT_GENDER[s], style)])
        gender = SUBJECT_GENDER[subject]

    text = f"{subject} {predicate}"
    if form == "adverb":
        adverb = _pick(rng, style.adverbs)
        # one-word adverbs may also stand before the verb: "someone happily strolls ahead"
        if " " not in adverb and rng.random() < 0.4:
            text = f"{subject} {adverb} {predicate}"
        else:
            text = f"{text} {adverb}"
    elif form == "clause":
        text = f"{text}, {_pick(rng, style.clauses)}"
    return text.format(**PRONOUNS[gender]) + "."


def make_captions(content: str, style: str, rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct captions for a clip with labels (content, style), drawn with ``rng``."""
    if content not in CONTENTS:
        raise MosaError(
            f"no caption vocabulary for content {content!r}",
            "add an entry to CONTENTS in mosa/data/captions.py",
        )
    if style not in STYLES:
        raise MosaError(
            f"no caption vocabulary for style {style!r}",
            "add an entry to STYLES in mosa/data/captions.py",
        )
    found: list[str] = []
    for _ in range(100 * n):
        caption = _one_caption(CONTENTS[content], content, STYLES[style], rng)
        if caption not in found:
            found.append(caption)
            if len(found) == n:
                break
    return found


def clip_captions(name: str, seed: int = 0, n_min: int = 3, n_max: int = 5) -> list[str]:
    """Between ``n_min`` and ``n_max`` captions for a clip, deterministic for (seed, name).

    A mirrored clip (``M`` + name) gets its original's captions with left and right swapped,
    as HumanML3D mirrors its texts, so the two copies describe the same motion and its mirror.
    """
    label = parse_clip_name(original_name(name))
    rng = np.random.default_rng(stable_seed("captions", seed, original_name(name)))
    n = int(rng.integers(n_min, n_max + 1))
    captions = make_captions(label.content, label.style, rng, n)
    return [swap_left_right(c) for c in captions] if is_mirror(name) else captions


def caption_tokens(captions: Sequence[str], nlp=None) -> list[list[str]]:
    """HumanML3D ``word/POS`` tokens for each caption, tagging each unique caption once.

    As HumanML3D's text processing: lower-cased text, hyphens split, non-alphabetic tokens
    dropped, nouns and verbs lemmatised (except "left", which the lemmatiser would turn into
    "leave"), coarse universal POS tags (``token.pos_``).
    """
    if nlp is None:
        from mosa.nlp import load_spacy

        nlp = load_spacy()
    unique = list(dict.fromkeys(captions))
    texts = [c.lower().replace("-", " ") for c in unique]
    tagged: dict[str, list[str]] = {}
    for caption, doc in zip(unique, nlp.pipe(texts, batch_size=256), strict=True):
        tokens = []
        for tok in doc:
            if not tok.text.isalpha():
                continue
            lemma = tok.pos_ in ("NOUN", "VERB") and tok.text != "left"
            tokens.append(f"{tok.lemma_ if lemma else tok.text}/{tok.pos_}")
        tagged[caption] = tokens
    return [tagged[c] for c in captions]


def text_line(caption: str, tokens: Sequence[str], start: float = 0.0, end: float = 0.0) -> str:
    """One line of a HumanML3D text file: ``caption#word/POS ...#start#end``."""
    if "#" in caption or "\n" in caption:
        raise ValueError(f"caption may not contain '#' or a newline: {caption!r}")
    return f"{caption}#{' '.join(tokens)}#{start}#{end}"
