"""Renamed and re-boned copies of a real BVH, to test mapping a rig from its structure.

``write_variant(src, folder, variant)`` writes ``folder/<variant>.bvh``: the same motion as
``src`` (a Bandai-Namco or CMU 31-joint file) with the joints renamed to another convention
(``NAMINGS``: Rigify, Unreal, Unity, Mixamo with and without ``mixamorig:``, 3ds Max Biped,
German, Japanese, meaningless ``joint_N``) and, for some variants, changed bones that leave
every original joint where it was: in-line twist bones splitting a bone in two, twist bones
hanging off a bone, finger chains on the hands, and a shuffled child order (``VARIANTS``).
Pure renames edit the HIERARCHY text only; the others rebuild the file with ``write_bvh``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from mosa.motion.bvh import POSITION_CHANNELS, BVHData, read_bvh, write_bvh

# Each source joint's role: a body part and a side ("L"/"R"; None: the centre).
_BN = {"joint_Root": ("root", None), "Hips": ("pelvis", None), "Spine": ("spine", None)}
_BN |= {"Chest": ("chest", None), "Neck": ("neck", None), "Head": ("head", None)}
for _s in "LR":
    _BN |= {f"{bn}_{_s}": (part, _s) for bn, part in (
        ("Shoulder", "collar"), ("UpperArm", "upperarm"), ("LowerArm", "forearm"),
        ("Hand", "hand"), ("UpperLeg", "thigh"), ("LowerLeg", "shin"), ("Foot", "foot"),
        ("Toes", "toe"),
    )}  # fmt: skip
_CMU = {"Hips": ("pelvis", None), "LowerBack": ("lowerback", None), "Spine": ("spine", None)}
_CMU |= {"Spine1": ("chest", None), "Neck": ("neckbase", None), "Neck1": ("neck", None)}
_CMU |= {"Head": ("head", None)}
for _s, _side in (("L", "Left"), ("R", "Right")):
    _CMU |= {f"{_s}HipJoint": ("hipjoint", _s), f"{_side}UpLeg": ("thigh", _s)}
    _CMU |= {f"{_side}Leg": ("shin", _s), f"{_side}Foot": ("foot", _s)}
    _CMU |= {f"{_side}ToeBase": ("toe", _s), f"{_side}Shoulder": ("collar", _s)}
    _CMU |= {f"{_side}Arm": ("upperarm", _s), f"{_side}ForeArm": ("forearm", _s)}
    _CMU |= {f"{_side}Hand": ("hand", _s), f"{_side}FingerBase": ("palm", _s)}
    _CMU |= {f"{_s}Fingers": ("finger:9:1", _s), f"{_s}Thumb": ("finger:0:9", _s)}
ROLES = {"bandai_namco": _BN, "cmu": _CMU}

# Naming conventions: part -> name, "{s}" the side's spelling, and the two sides' spellings.
_NAMES: dict[str, tuple[dict[str, str], tuple[str, str]]] = {
    "rigify": ({
        "root": "root", "pelvis": "hips", "lowerback": "spine.000", "spine": "spine",
        "chest": "chest", "neckbase": "neck.000", "neck": "neck", "head": "head",
        "hipjoint": "pelvis{s}", "thigh": "thigh{s}", "shin": "shin{s}", "foot": "foot{s}",
        "toe": "toe{s}", "collar": "shoulder{s}", "upperarm": "upper_arm{s}",
        "forearm": "forearm{s}", "hand": "hand{s}", "palm": "palm{s}", "finger": "f_middle",
        "thumb": "thumb", "twist": "{part}{s}.001",
    }, (".L", ".R")),
    "unreal": ({
        "root": "root", "pelvis": "pelvis", "lowerback": "spine_00", "spine": "spine_01",
        "chest": "spine_02", "neckbase": "neck_00", "neck": "neck_01", "head": "head",
        "hipjoint": "hip_connector{s}", "thigh": "thigh{s}", "shin": "calf{s}",
        "foot": "foot{s}", "toe": "ball{s}", "collar": "clavicle{s}", "upperarm": "upperarm{s}",
        "forearm": "lowerarm{s}", "hand": "hand{s}", "palm": "palm{s}", "finger": "middle",
        "thumb": "thumb", "twist": "{part}_twist_01{s}",
    }, ("_l", "_r")),
    "unity": ({
        "root": "Root", "pelvis": "Hips", "lowerback": "Waist", "spine": "Spine",
        "chest": "Chest", "neckbase": "UpperChest", "neck": "Neck", "head": "Head",
        "hipjoint": "{s}HipJoint", "thigh": "{s}UpperLeg", "shin": "{s}LowerLeg",
        "foot": "{s}Foot", "toe": "{s}Toes", "collar": "{s}Shoulder", "upperarm": "{s}UpperArm",
        "forearm": "{s}LowerArm", "hand": "{s}Hand", "palm": "{s}Palm", "finger": "Middle",
        "thumb": "Thumb", "twist": "{s}{part}Twist",
    }, ("Left", "Right")),
    "mixamo": ({
        "root": "Root", "pelvis": "Hips", "lowerback": "Spine0", "spine": "Spine",
        "chest": "Spine1", "neckbase": "Neck0", "neck": "Neck", "head": "Head",
        "hipjoint": "{s}HipJoint", "thigh": "{s}UpLeg", "shin": "{s}Leg", "foot": "{s}Foot",
        "toe": "{s}ToeBase", "collar": "{s}Shoulder", "upperarm": "{s}Arm",
        "forearm": "{s}ForeArm", "hand": "{s}Hand", "palm": "{s}HandPalm",
        "finger": "HandMiddle", "thumb": "HandThumb", "twist": "{s}{part}Twist",
    }, ("Left", "Right")),
    "biped": ({
        "root": "Bip01", "pelvis": "Bip01 Pelvis", "lowerback": "Bip01 Spine0",
        "spine": "Bip01 Spine", "chest": "Bip01 Spine1", "neckbase": "Bip01 Neck0",
        "neck": "Bip01 Neck", "head": "Bip01 Head", "hipjoint": "Bip01 {s} HipJoint",
        "thigh": "Bip01 {s} Thigh", "shin": "Bip01 {s} Calf", "foot": "Bip01 {s} Foot",
        "toe": "Bip01 {s} Toe0", "collar": "Bip01 {s} Clavicle",
        "upperarm": "Bip01 {s} UpperArm", "forearm": "Bip01 {s} Forearm",
        "hand": "Bip01 {s} Hand", "palm": "Bip01 {s} Palm", "finger": "Finger2",
        "thumb": "Finger0", "twist": "Bip01 {s} {part}Twist",
    }, ("L", "R")),
    "german": ({
        "root": "Wurzel", "pelvis": "Becken", "lowerback": "Lendenwirbel",
        "spine": "Wirbelsäule", "chest": "Brustkorb", "neckbase": "Halsansatz",
        "neck": "Hals", "head": "Kopf", "hipjoint": "Hüftgelenk_{s}",
        "thigh": "Oberschenkel_{s}", "shin": "Unterschenkel_{s}", "foot": "Fuß_{s}",
        "toe": "Zehen_{s}", "collar": "Schlüsselbein_{s}", "upperarm": "Oberarm_{s}",
        "forearm": "Unterarm_{s}", "hand": "Hand_{s}", "palm": "Mittelhand_{s}",
        "finger": "Mittelfinger", "thumb": "Daumen", "twist": "{part}_Drehung_{s}",
    }, ("links", "rechts")),
    # MikuMikuDance's names: 左/右 are left/right.
    "japanese": ({
        "root": "センター", "pelvis": "下半身", "lowerback": "腰", "spine": "上半身",
        "chest": "上半身2", "neckbase": "首根元", "neck": "首", "head": "頭",
        "hipjoint": "{s}腰", "thigh": "{s}足", "shin": "{s}ひざ", "foot": "{s}足首",
        "toe": "{s}つま先", "collar": "{s}肩", "upperarm": "{s}腕", "forearm": "{s}ひじ",
        "hand": "{s}手首", "palm": "{s}手のひら", "finger": "中指", "thumb": "親指",
        "twist": "{s}{part}捩",
    }, ("左", "右")),
}  # fmt: skip
NAMINGS = (*_NAMES, "mixamo_prefix", "joint_n")


def _namer(naming: str) -> Callable[[str, str | None, int], str]:
    """(part, side, index) -> a joint name in ``naming``."""
    if naming == "joint_n":
        return lambda part, side, k: f"joint_{k}"
    table, sides = _NAMES["mixamo" if naming == "mixamo_prefix" else naming]
    prefix = "mixamorig:" if naming == "mixamo_prefix" else ""

    def name(part: str, side: str | None, k: int) -> str:
        s = "" if side is None else sides["LR".index(side)]
        if part.startswith("finger:"):  # finger:F:N, F = 0 the thumb, N from the hand out
            f, n = part.split(":")[1:]
            digit = table["thumb"] if f == "0" else f"{table['finger']}{f}"
            return prefix + table["hand"].format(s=s) + f"_{digit}_{n}"
        if part.startswith("twist:"):
            of = part.split(":")[1]
            word = table[of].format(s="").strip(" _.")
            return prefix + table["twist"].format(s=s, part=word)
        return prefix + table[part].format(s=s)

    return name


# What each variant does: a naming and the changes to the bones.
VARIANTS = {name: (name, ()) for name in NAMINGS}
VARIANTS |= {
    "joint_n_shuffled": ("joint_n", ("shuffle",)),
    "rigify_inline_twist": ("rigify", ("inline_twist",)),
    "unreal_twist_fingers": ("unreal", ("leaf_twist", "fingers")),
    "joint_n_twist_fingers_shuffled": ("joint_n", ("inline_twist", "fingers", "shuffle")),
}


def rig_of(data: BVHData) -> str:
    for rig, roles in ROLES.items():
        if set(data.names) == set(roles):
            return rig
    raise ValueError(f"not a Bandai-Namco or CMU 31-joint file: {data.names[:5]} ...")


def write_variant(src: str | Path, folder: str | Path, variant: str, seed: int = 0) -> Path:
    """Write ``folder/<variant>.bvh``, ``src`` renamed and re-boned as ``VARIANTS[variant]``."""
    naming, changes = VARIANTS[variant]
    data = read_bvh(src)
    roles = ROLES[rig_of(data)]
    parts = [roles[n] for n in data.names]
    out = Path(folder) / f"{variant}.bvh"
    rng = np.random.default_rng(seed)
    if "inline_twist" in changes:
        for part in ("upperarm", "forearm", "thigh", "shin"):
            for side in "LR":
                child = next(k for k, p in enumerate(parts) if p == (part, side))
                below = [k for k, p in enumerate(data.parents) if p == child]
                data, parts = _split_bone(data, parts, below[0], (f"twist:{part}", side))
    if "leaf_twist" in changes:
        for part in ("upperarm", "forearm", "thigh", "shin"):
            for side in "LR":
                j = next(k for k, p in enumerate(parts) if p == (part, side))
                below = [k for k, p in enumerate(data.parents) if p == j]
                data, parts = _add_leaf(data, parts, j, data.offsets[below[0]] * 0.5,
                                        (f"twist:{part}", side))  # fmt: skip
    if "fingers" in changes:
        for side in "LR":
            data, parts = _add_fingers(data, parts, side)
    if "shuffle" in changes:
        data, parts = _shuffled(data, parts, rng)
    name = _namer(naming)
    new = [name(part, side, k) for k, (part, side) in enumerate(parts)]
    assert len(set(new)) == len(new), "variant names must be unique"
    if not changes:  # a pure rename: edit the HIERARCHY text only
        lookup = dict(zip(data.names, new, strict=True))
        out.write_text(_renamed(Path(src).read_text(), lookup), encoding="utf-8")
    else:
        data.names = new
        write_bvh(out, data)
    return out


def write_nameless(src: str | Path, path: str | Path) -> Path:
    """Write ``src`` with every joint renamed ``joint_<k>`` (file order): any rig, names
    that say nothing."""
    names = read_bvh(src).names
    lookup = {n: f"joint_{k}" for k, n in enumerate(names)}
    Path(path).write_text(_renamed(Path(src).read_text(), lookup), encoding="utf-8")
    return Path(path)


def _renamed(text: str, names: dict[str, str]) -> str:
    lines = []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) >= 2 and tokens[0] in ("ROOT", "JOINT"):
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}{tokens[0]} {names[' '.join(tokens[1:])]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _insert(data: BVHData, parts: list, at: int, parent: int, offset, channels, columns, role):
    """``data`` with a new joint at index ``at`` (children keep their place)."""
    start = sum(len(c) for c in data.channels[:at])
    parents = [p + (p >= at) for p in data.parents]
    parents.insert(at, parent)
    motion = np.concatenate([data.motion[:, :start], columns, data.motion[:, start:]], axis=1)
    return BVHData(
        names=[*data.names[:at], f"new{at}", *data.names[at:]],
        parents=np.array(parents),
        offsets=np.insert(data.offsets, at, offset, axis=0),
        channels=[*data.channels[:at], channels, *data.channels[at:]],
        frame_time=data.frame_time,
        motion=motion,
        end_sites=[(j + (j >= at), o) for j, o in data.end_sites],
        path=data.path,
    ), [*parts[:at], role, *parts[at:]]


_ROT = ("Zrotation", "Xrotation", "Yrotation")


def _position_columns(data: BVHData, j: int) -> list[int]:
    cols = data.channel_columns()[j]
    return [
        int(cols[data.channels[j].index(c)]) for c in POSITION_CHANNELS if c in data.channels[j]
    ]


def _split_bone(data: BVHData, parts: list, child: int, role):
    """Split the bone ending at ``child`` in two halves with an unrotated joint between."""
    parent = int(data.parents[child])
    half = data.offsets[child] * 0.5
    pos = _position_columns(data, child)
    if len(pos) == 3:  # position channels replace the offset (Bandai-Namco): halve those too
        columns = np.concatenate([data.motion[:, pos] * 0.5, np.zeros((data.num_frames, 3))], 1)
        channels = (*POSITION_CHANNELS, *_ROT)
        data.motion[:, pos] *= 0.5
    else:
        columns, channels = np.zeros((data.num_frames, 3)), _ROT
    data.offsets[child] = half
    data, parts = _insert(data, parts, child, parent, half, channels, columns, role)
    data.parents[child + 1] = child
    return data, parts


def _add_leaf(data: BVHData, parts: list, parent: int, offset, role):
    """A leaf joint (a twist bone hanging off ``parent``) at ``offset`` from it."""
    at = parent + 1
    return _insert(data, parts, at, parent, offset, _ROT, np.zeros((data.num_frames, 3)), role)


def _add_fingers(data: BVHData, parts: list, side: str):
    """Five three-joint finger chains on the hand, splayed around its End Site's direction."""
    hand = next(k for k, p in enumerate(parts) if p == ("hand", side))
    end = next((o for j, o in data.end_sites if j == hand), None)
    bone = data.offsets[hand] if end is None or not np.linalg.norm(end) > 0 else end
    length = np.linalg.norm(data.offsets[hand])
    along = bone / max(np.linalg.norm(bone), 1e-9)
    across = np.cross(along, [0.0, 1.0, 0.0] if abs(along[1]) < 0.9 else [1.0, 0.0, 0.0])
    across /= np.linalg.norm(across)
    for f, spread in enumerate((-0.6, -0.3, 0.0, 0.3, 0.6)):
        direction = along + spread * across
        direction /= np.linalg.norm(direction)
        parent = hand
        for n, frac in enumerate((0.35, 0.18, 0.12), start=1):
            at = len(data.names)
            zeros = np.zeros((data.num_frames, 3))
            offset = direction * frac * length
            data, parts = _insert(
                data, parts, at, parent, offset, _ROT, zeros, (f"finger:{f}:{n}", side)
            )
            parent = at
    return data, parts


def _shuffled(data: BVHData, parts: list, rng: np.random.Generator):
    """The same skeleton with its joints in another depth-first order (children shuffled)."""
    children: list[list[int]] = [[] for _ in data.names]
    for j, p in enumerate(data.parents):
        if p >= 0:
            children[p].append(j)
    order, todo = [], [j for j, p in enumerate(data.parents) if p < 0]
    while todo:
        j = todo.pop()
        order.append(j)
        kids = list(children[j])
        rng.shuffle(kids)
        todo.extend(kids)
    new_index = {j: k for k, j in enumerate(order)}
    cols = data.channel_columns()
    return BVHData(
        names=[data.names[j] for j in order],
        parents=np.array(
            [-1 if data.parents[j] < 0 else new_index[data.parents[j]] for j in order]
        ),
        offsets=data.offsets[order],
        channels=[data.channels[j] for j in order],
        frame_time=data.frame_time,
        motion=data.motion[:, np.concatenate([cols[j] for j in order])],
        end_sites=[(new_index[j], o) for j, o in data.end_sites],
        path=data.path,
    ), [parts[j] for j in order]
