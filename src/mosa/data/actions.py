"""The canonical action names a dataset's clips are labelled with.

A clip carries one or more of these names (``actions.json`` in a built dataset folder:
``{clip_name: ["walk", ...]}``). The kinematic rules (``mosa.eval.actions``), the balancing of
rare actions in training and the model card all key on the same names, so a new corpus adds
its labels here and nowhere else.

``actions_in(text)`` finds the names in a caption, a CMU description or a file name;
``BANDAI_ACTIONS`` labels the Bandai-Namco contents, whose captions are made from the labels.
"""

from __future__ import annotations

import re
from functools import lru_cache

# name -> words that identify it in a label or description (lower case, whole words; a
# keyword of several words matches them in sequence, ignoring the filler words below)
ACTIONS: dict[str, tuple[str, ...]] = {
    "walk": ("walk", "walks", "walking", "stroll", "strolls", "shuffle", "shuffles", "stride",
             "strides", "sneak", "sneaks", "sneaking", "march", "marches"),
    "walk backwards": ("walk backwards", "walk backward", "walks backwards", "walks backward",
                       "walking backwards", "walking backward", "backward walk",
                       "steps backward", "steps backwards", "moves backward", "moving backward"),
    "walk sideways": ("walk sideways", "walks sideways", "walking sideways", "side step",
                      "side steps", "sidestep", "sidesteps", "steps sideways", "moves sideways",
                      "moving sideways"),
    "turn": ("turn", "turns", "turning"),
    "run": ("run", "runs", "running", "jog", "jogs", "jogging", "dash", "dashes", "sprint",
            "sprints"),
    "wave": ("wave", "waves", "waving"),
    "raise hands": ("raise hand", "raise hands", "raises hand", "raises hands", "raising hand",
                    "raising hands", "raise arm", "raise arms", "raises arm", "raises arms",
                    "raising arms", "hands up", "arms up", "lift arm", "lifts arm", "lift arms",
                    "lifts arms", "raise up"),
    "bow": ("bow", "bows", "bowing"),
    "kick": ("kick", "kicks", "kicking", "spinkick"),
    "punch": ("punch", "punches", "punching", "boxing", "boxer", "shadow boxes"),
    "slash": ("slash", "slashes", "slashing", "sword", "swordplay"),
    "dance": ("dance", "dances", "dancing", "dancer", "ballet", "pirouette", "pirouettes"),
    "jump": ("jump", "jumps", "jumping", "hop", "hops", "hopping", "leap", "leaps", "leaping"),
    "jumping jacks": ("jumping jacks", "jumping jack"),
    "sit down": ("sit", "sits", "sitting", "sit down", "sits down"),
    "stand up": ("stand up", "stands up", "standing up", "get up", "gets up", "getting up",
                 "getup"),
    "squat": ("squat", "squats", "squatting"),
    "climb": ("climb", "climbs", "climbing", "ladder"),
    "crawl": ("crawl", "crawls", "crawling"),
    "cartwheel": ("cartwheel", "cartwheels"),
    "roll": ("roll", "rolls", "rolling"),
    "flip": ("flip", "flips", "backflip", "backflips", "sideflip", "sideflips"),
    "spin": ("spin", "spins", "spinning", "pirouette", "pirouettes", "spinkick"),
    "drink": ("drink", "drinks", "drinking"),
    "basketball": ("basketball", "dribble", "dribbles", "dribbling"),
    "soccer": ("soccer", "football"),
    # added with the CMU / DeepMimic / AnimatedDrawings corpora
    "bend over": ("bend over", "bends over", "bending over", "bend down", "bends down",
                  "picks up", "pick up", "scoop up", "scoops up"),
    "twist": ("twist", "twists", "twisting"),
    "reach": ("reach", "reaches", "reaching", "reach for"),
    "laugh": ("laugh", "laughs", "laughing"),
    "wash": ("wash", "washes", "washing", "shower"),
    "balance": ("balance", "balances", "balancing"),
    "dab": ("dab", "dabs", "dabbing"),
}  # fmt: skip

# A match of the key makes the values redundant unless they are also said elsewhere: a walk
# backwards is not also a "walk" (a forward-walk rule would fail it), jumping jacks are not
# "jump"; "walks forward, backward and sideways" is all three.
SUBSUMES: dict[str, tuple[str, ...]] = {
    "walk backwards": ("walk",),
    "walk sideways": ("walk",),
    "jumping jacks": ("jump",),
}
# Words skipped between the words of a keyword ("raises their left hand" -> "raise hand").
FILLER = ("a", "an", "the", "their", "his", "her", "its", "my", "both", "left", "right", "one",
          "two", "other", "each", "of")  # fmt: skip

# Bandai-Namco content label -> actions. Set 1's walk-left/right are diagonal walks (the body
# keeps its heading, the path is 15-50 degrees off it: see mosa.data.captions), so they are
# "walk", not "walk sideways"; guide (show the way) and call (beckon) are no listed action.
BANDAI_ACTIONS: dict[str, tuple[str, ...]] = {
    "walk": ("walk",), "walk-left": ("walk",), "walk-right": ("walk",),
    "walk-back": ("walk backwards",),
    "walk-turn-left": ("walk", "turn"), "walk-turn-right": ("walk", "turn"),
    "run": ("run",), "dash": ("run",),
    "bow": ("bow",), "bye": ("wave",), "byebye": ("wave",),
    "wave-both-hands": ("wave",), "wave-left-hand": ("wave",), "wave-right-hand": ("wave",),
    "raise-up-both-hands": ("raise hands",), "raise-up-left-hand": ("raise hands",),
    "raise-up-right-hand": ("raise hands",),
    "kick": ("kick",), "punch": ("punch",), "slash": ("slash",),
    "dance-long": ("dance",), "dance-short": ("dance",),
    "guide": (), "respond": (), "call": (),
}  # fmt: skip


def _words(text: str) -> list[str]:
    """Lower-case words of ``text``; underscores, hyphens and digits separate words."""
    return re.findall(r"[a-z]+", text.lower().replace("_", " "))


@lru_cache(maxsize=1)
def _patterns() -> list[tuple[str, re.Pattern]]:
    filler = r"(?:\s+(?:" + "|".join(FILLER) + r"))*"
    out = []
    for name, keywords in ACTIONS.items():
        alts = [(filler + r"\s+").join(re.escape(w) for w in k.split()) for k in keywords]
        out.append((name, re.compile(r"\b(?:" + "|".join(alts) + r")\b")))
    return out


def actions_in(text: str) -> list[str]:
    """Canonical action names mentioned in ``text``, in ``ACTIONS`` order.

    >>> actions_in("a person does jumping jacks, then walks backwards")
    ['walk backwards', 'jumping jacks']
    """
    clean = " ".join(_words(text))
    patterns = dict(_patterns())
    found = [name for name, pattern in patterns.items() if pattern.search(clean)]
    rest = clean  # the text without the words of the more specific actions
    for name in found:
        if name in SUBSUMES:
            rest = patterns[name].sub(" ", rest)
    drop = {d for n in found for d in SUBSUMES.get(n, ()) if not patterns[d].search(rest)}
    return [name for name in found if name not in drop]


def bandai_actions(content: str) -> list[str]:
    """Actions of a Bandai-Namco content label (e.g. "walk-turn-left" -> walk, turn)."""
    if content in BANDAI_ACTIONS:
        return list(BANDAI_ACTIONS[content])
    return actions_in(content.replace("-", " "))
