"""Retarget any BVH skeleton onto the 22-joint SMPL body: ``load_bvh``.

Steps, each a small function below:

1. Map source joints onto ``skeleton.JOINT_NAMES``: a preset when the joint names identify
   the rig (Bandai-Namco, CMU, Daz, AnimatedDrawings, Mixamo, SMPL, mosa's own exports; a
   preset may use a joint's End Site, e.g. Daz's toes), else a name matcher that
   reads left/right and body-part words off the names and walks the hierarchy, checked against
   (and, where names say too little, replaced by) the skeleton's structure
   (``rigmap.map_structure``; see ``resolve_mapping`` and docs/rig_mapping.md); a user
   mapping (preset name, JSON file ``{"pelvis": "Hips", ...}`` or dict) overrides all.
2. Joints the source lacks (``INTERPOLABLE``: spine1-3, neck, collars) are placed on the
   straight line between the nearest mapped joints of their chain, evenly spaced: with only
   spine1 and spine3 mapped, spine2 is halfway; with spine1 and spine2 missing they sit at
   1/3 and 2/3 from the pelvis to spine3; a missing collar is halfway from spine3 to the
   shoulder.
3. Rotate the up axis (from the pelvis-to-head direction) onto +Y with a proper rotation, so
   left stays left; if knees and toes point backwards relative to the hips' left-right axis
   the source is mirrored (left-handed axes or swapped L/R names) and X is negated.
4. Scale to metres (unit from the skeleton's size), put the lowest foot on the floor, and
   resample to the target frame rate by linear interpolation of positions.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mosa.errors import MosaError
from mosa.motion.bvh import BVHData, read_bvh
from mosa.motion.rigmap import (
    END_SITE,
    Contradiction,
    StructureMapping,
    end_site_names,
    map_structure,
    pick_spine,
    positions_with_end_sites,
    strip_namespace,
)
from mosa.motion.skeleton import FOOT_LEFT, FOOT_RIGHT, JOINT_NAMES, NUM_JOINTS

__all__ = [  # the public names, including those defined in rigmap and used from here
    "END_SITE", "INTERPOLABLE", "PRESETS", "ImportedMotion", "auto_mapping", "detect_rig",
    "detect_unit", "detect_up_axis", "end_site_names", "handedness", "is_mirrored",
    "load_bvh", "map_joints", "map_structure", "positions_with_end_sites", "put_on_floor",
    "read_mapping_json", "resample", "resolve_mapping", "retarget_bvh", "skeleton_size",
    "snap_fps", "to_y_up",
]  # fmt: skip

SIDES = ("left", "right")
INTERPOLABLE = ("spine1", "spine2", "spine3", "neck", "left_collar", "right_collar")
# Chains along which missing joints are interpolated (joint names, from the root outwards).
_SPINE_CHAIN = ("pelvis", "spine1", "spine2", "spine3", "neck", "head")
_COLLAR_CHAINS = (("spine3", "left_collar", "left_shoulder"),)
_COLLAR_CHAINS += (("spine3", "right_collar", "right_shoulder"),)


def _preset(
    centre: dict, left: dict, swap: tuple[str, str], prefix: bool = False
) -> dict[str, str | None]:
    """A full preset from the centre joints and the left side (``hip="LeftUpLeg"`` for
    ``left_hip``); the right side's names are the left's with ``swap`` applied (only to the
    start of the name when ``prefix``: Daz's "lShldr" -> "rShldr")."""

    def right(name: str) -> str:
        if prefix:
            return swap[1] + name[len(swap[0]) :] if name.startswith(swap[0]) else name
        return name.replace(*swap)

    out: dict[str, str | None] = dict(centre)
    for part, name in left.items():
        out[f"left_{part}"] = name
        out[f"right_{part}"] = None if name is None else right(name)
    return out


# Presets: SMPL joint -> source joint name (None: interpolated). Names compare case-blind and
# without a namespace prefix ("mixamorig:Hips" matches "Hips").
# fmt: off
PRESETS: dict[str, dict[str, str | None]] = {
    "bandai_namco": _preset(
        dict(pelvis="Hips", spine1="Spine", spine2=None, spine3="Chest", neck="Neck", head="Head"),
        dict(hip="UpperLeg_L", knee="LowerLeg_L", ankle="Foot_L", foot="Toes_L",
             collar="Shoulder_L", shoulder="UpperArm_L", elbow="LowerArm_L", wrist="Hand_L"),
        swap=("_L", "_R"),
    ),
    # CMU (cgspeed BVH): LowerBack, Neck and the *Shoulder joints sit on top of their parent
    # (zero-length bones), so spine2 and the collars are interpolated and Neck1 is the neck.
    "cmu": _preset(
        dict(pelvis="Hips", spine1="Spine", spine2=None, spine3="Spine1", neck="Neck1",
             head="Head"),
        dict(hip="LeftUpLeg", knee="LeftLeg", ankle="LeftFoot", foot="LeftToeBase",
             collar=None, shoulder="LeftArm", elbow="LeftForeArm", wrist="LeftHand"),
        swap=("Left", "Right"),
    ),
    # Daz gen3/gen4 (B. Hahne's "Daz-friendly" CMU conversion): no toe joints, the feet's End
    # Sites are the toes; "lButtock" is a connector above the hip joint "lThigh".
    "daz": _preset(
        dict(pelvis="hip", spine1="abdomen", spine2=None, spine3="chest", neck="neck",
             head="head"),
        dict(hip="lThigh", knee="lShin", ankle="lFoot", foot="lFoot" + END_SITE,
             collar="lCollar", shoulder="lShldr", elbow="lForeArm", wrist="lHand"),
        swap=("l", "r"), prefix=True,
    ),
    # Meta AnimatedDrawings' "fair1" character rig: Mixamo names with four spine bones; the
    # arms branch from Spine3, Spine1/Spine2 sit nearest SMPL's spine1/spine2 heights. Listed
    # before "mixamo", which would also match it.
    "animated_drawings": _preset(
        dict(pelvis="Hips", spine1="Spine1", spine2="Spine2", spine3="Spine3", neck="Neck",
             head="Head"),
        dict(hip="LeftUpLeg", knee="LeftLeg", ankle="LeftFoot", foot="LeftToeBase",
             collar="LeftShoulder", shoulder="LeftArm", elbow="LeftForeArm", wrist="LeftHand"),
        swap=("Left", "Right"),
    ),
    # CMU ASF bone names as AnimatedDrawings' "cmu1" rig has them (joint named after the bone
    # that starts there): lowerback, lowerneck and the collars are zero-length connectors.
    "cmu_asf": _preset(
        dict(pelvis="Hips", spine1="Chest", spine2=None, spine3="Chest2", neck="Neck",
             head="Head"),
        dict(hip="LeftHip", knee="LeftKnee", ankle="LeftAnkle", foot="LeftToe", collar=None,
             shoulder="LeftShoulder", elbow="LeftElbow", wrist="LeftWrist"),
        swap=("Left", "Right"),
    ),
    "mixamo": _preset(
        dict(pelvis="Hips", spine1="Spine", spine2="Spine1", spine3="Spine2", neck="Neck",
             head="Head"),
        dict(hip="LeftUpLeg", knee="LeftLeg", ankle="LeftFoot", foot="LeftToeBase",
             collar="LeftShoulder", shoulder="LeftArm", elbow="LeftForeArm", wrist="LeftHand"),
        swap=("Left", "Right"),
    ),
    "smpl": _preset(
        dict(pelvis="Pelvis", spine1="Spine1", spine2="Spine2", spine3="Spine3", neck="Neck",
             head="Head"),
        dict(hip="L_Hip", knee="L_Knee", ankle="L_Ankle", foot="L_Foot", collar="L_Collar",
             shoulder="L_Shoulder", elbow="L_Elbow", wrist="L_Wrist"),
        swap=("L_", "R_"),
    ),
    "mosa": {name: name for name in JOINT_NAMES},  # what save_bvh writes
}
# fmt: on


@dataclass
class ImportedMotion:
    """A BVH clip on the 22-joint body.

    ``joints`` is (T, 22, 3) float32 in ``JOINT_NAMES`` order: metres, Y up, lowest foot
    height over the clip at 0, ``fps`` frames per second. ``mapping`` gives the source joint
    used for each SMPL joint (None: interpolated); ``unit_scale`` is metres per source unit;
    ``up_axis`` the source's up axis (e.g. "+Z"); ``mirrored`` says X was negated.
    """

    joints: np.ndarray
    fps: float
    source_fps: float
    source_frames: int
    rig: str
    up_axis: str
    unit: str
    unit_scale: float
    mirrored: bool
    mapping: dict[str, str | None]
    source_joint_names: tuple[str, ...]
    source_path: str


# ------------------------------------------------------------------------- joint mapping


_strip_namespace = strip_namespace


def _key(name: str) -> str:
    """Compare names case-blind and without a namespace ("mixamorig:Hips" -> "hips")."""
    return _strip_namespace(name).lower()


def _lookup(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for n in names:
        out.setdefault(_key(n), n)
    return out


def detect_rig(names: list[str] | tuple[str, ...]) -> str | None:
    """The first preset whose joint names all occur in ``names``, or None."""
    keys = _lookup(names)
    for rig, preset in PRESETS.items():
        if all(_key(v) in keys for v in preset.values() if v is not None):
            return rig
    return None


def _apply_names(preset: Mapping[str, str | None], names: list[str]) -> dict[str, str | None]:
    """Rewrite preset names into the spelling the file uses."""
    keys = _lookup(names)
    return {k: (None if preset[k] is None else keys[_key(preset[k])]) for k in JOINT_NAMES}


_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# Helper bones that are never one of the 22 body joints.
_IGNORE = ("twist", "roll", "share", "nub", "end", "finger", "thumb", "index", "mid", "ring")
_IGNORE += ("pinky", "little", "big", "eye", "jaw", "tongue", "teeth", "breast", "ik", "pole")
_IGNORE += ("helper", "bend", "corrective", "target", "dummy", "weapon", "prop")
# Body-part words, most specific first (searched in the name with side words removed).
_PARTS = (
    ("toe", ("toe", "ball")),
    ("foot", ("foot", "ankle")),
    ("thigh", ("thigh", "upleg", "upperleg", "hip", "buttock")),
    ("calf", ("calf", "shin", "lowerleg", "knee", "leg")),
    ("forearm", ("forearm", "lowerarm", "elbow")),
    ("upperarm", ("upperarm", "shldr", "arm")),
    ("collar", ("clavicle", "collar", "shoulder")),
    ("hand", ("hand", "wrist")),
    ("head", ("head",)),
    ("neck", ("neck",)),
)


@dataclass
class _Bone:
    side: str | None  # "L", "R" or None
    part: str | None
    helper: bool


def _describe(name: str) -> _Bone:
    """Side, body part and helper flag read off a joint name (e.g. 'CC_Base_L_Upperarm')."""
    tokens = [t.lower() for t in _TOKEN.findall(_strip_namespace(name))]
    side = None
    if any(t in ("l", "left") for t in tokens):
        side = "L"
    elif any(t in ("r", "right") for t in tokens):
        side = "R"
    helper = any(t.startswith(_IGNORE) for t in tokens)
    rest = "".join(t for t in tokens if t not in ("l", "left", "r", "right"))
    part = next((p for p, words in _PARTS if any(w in rest for w in words)), None)
    if part == "thigh" and side is None:  # "Hips"/"Hip" is the pelvis, not a leg
        part = None
    return _Bone(side, part, helper)


class _Tree:
    """Hierarchy helpers over the source joints."""

    def __init__(self, parents: np.ndarray, positions: np.ndarray):
        self.parents = [int(p) for p in parents]
        self.depth = []
        for p in self.parents:
            self.depth.append(0 if p < 0 else self.depth[p] + 1)
        # A joint on top of its parent (zero-length bone, e.g. CMU's LHipJoint) is a connector.
        size = np.linalg.norm(positions.max(axis=0) - positions.min(axis=0))
        self.connector = [
            p >= 0 and np.linalg.norm(positions[j] - positions[p]) < 0.01 * size
            for j, p in enumerate(self.parents)
        ]

    def ancestors(self, j: int) -> list[int]:
        """From the parent of ``j`` up to the root."""
        out = []
        while self.parents[j] >= 0:
            j = self.parents[j]
            out.append(j)
        return out

    def lca(self, joints: list[int]) -> int | None:
        paths = [[j, *self.ancestors(j)] for j in joints]
        common = set(paths[0]).intersection(*paths[1:])
        return max(common, key=lambda j: self.depth[j]) if common else None


def auto_mapping(
    names: list[str], parents: np.ndarray, positions: np.ndarray
) -> dict[str, str | None]:
    """Best-effort mapping for an unknown rig from joint names and the hierarchy.

    ``positions`` (J, 3) is one pose (e.g. the first frame), used to skip zero-length
    connector bones. Limbs are found from the hand/toe upwards, each joint the nearest
    ancestor with the right body-part word and side; the pelvis is the common ancestor of
    the hips and the head; the spine joints are the bones between the pelvis and the joint
    the arms branch from. Joints not found are None (interpolated, or reported missing).
    """
    tree = _Tree(parents, positions)
    bones = [_describe(n) for n in names]

    def candidates(part: str, side: str | None, allow_helper: bool = False) -> list[int]:
        return [
            j
            for j, b in enumerate(bones)
            if b.part == part and b.side == side and (allow_helper or not b.helper)
            and not tree.connector[j]
        ]  # fmt: skip

    def shallowest(js: list[int]) -> int | None:
        return min(js, key=lambda j: tree.depth[j]) if js else None

    def nearest_ancestor(of: int | None, part: str, side: str | None) -> int | None:
        if of is None:
            return shallowest(candidates(part, side))
        allowed = set(candidates(part, side)) or set(candidates(part, side, allow_helper=True))
        return next((a for a in tree.ancestors(of) if a in allowed), None)

    found: dict[str, int | None] = {}
    for side, prefix in (("L", "left_"), ("R", "right_")):
        toe = shallowest(candidates("toe", side))
        ankle = nearest_ancestor(toe, "foot", side)
        knee = nearest_ancestor(ankle, "calf", side)
        hip = nearest_ancestor(knee, "thigh", side)
        wrist = shallowest(candidates("hand", side))
        elbow = nearest_ancestor(wrist, "forearm", side)
        shoulder = nearest_ancestor(elbow, "upperarm", side)
        collar = nearest_ancestor(shoulder, "collar", side) if shoulder is not None else None
        found |= {prefix + "foot": toe, prefix + "ankle": ankle, prefix + "knee": knee}
        found |= {prefix + "hip": hip, prefix + "wrist": wrist, prefix + "elbow": elbow}
        found |= {prefix + "shoulder": shoulder, prefix + "collar": collar}

    head = shallowest(candidates("head", None))
    neck = None
    if head is not None:
        necks = set(candidates("neck", None)) or set(candidates("neck", None, allow_helper=True))
        neck = next((a for a in reversed(tree.ancestors(head)) if a in necks), None)
    found |= {"head": head, "neck": neck}
    found |= _spine(tree, bones, found)
    return {k: (None if found.get(k) is None else names[found[k]]) for k in JOINT_NAMES}


def _spine(tree: _Tree, bones: list[_Bone], found: dict[str, int | None]) -> dict:
    """Pelvis and spine1-3 from the hierarchy between the legs, the arms and the head."""
    out: dict[str, int | None] = {"pelvis": None, "spine1": None, "spine2": None, "spine3": None}
    top = found["neck"] if found["neck"] is not None else found["head"]
    hips = [found["left_hip"], found["right_hip"]]
    if top is None or None in hips:
        return out
    pelvis = tree.lca([*hips, top])  # type: ignore[list-item]
    out["pelvis"] = pelvis
    if pelvis is None:
        return out
    chain = tree.ancestors(top)
    path = list(reversed(chain[: chain.index(pelvis)])) if pelvis in chain else []
    path = [j for j in path if not tree.connector[j] and not bones[j].helper]
    arms = [found[f"{s}_collar"] for s in ("left", "right")]
    arms = [found[f"{s}_shoulder"] if a is None else a for a, s in zip(arms, SIDES, strict=True)]
    branch = tree.lca(arms) if None not in arms else None  # type: ignore[arg-type]
    # If the arms hang off the neck (or were not found), the top spine bone is the chest.
    spine3 = branch if branch in path else (path[-1] if path else None)
    below = path[: path.index(spine3)] if spine3 is not None else []
    out["spine3"] = spine3
    if len(below) == 1:
        out["spine1"] = below[0]
    elif len(below) >= 2:
        out["spine1"], out["spine2"] = _pick_spine(below, tree, pelvis, spine3)
    return out


def _pick_spine(below: list[int], tree: _Tree, pelvis: int, spine3: int | None):
    """Two of several lower spine bones (``rigmap.pick_spine``)."""
    return pick_spine(below)


def read_mapping_json(path: str | os.PathLike) -> dict[str, str | None]:
    """Read a joint mapping file ``{"pelvis": "Hips", "left_hip": "LeftUpLeg", ...}``."""
    p = Path(path)
    if not p.is_file():
        raise MosaError(f"mapping file not found: {p}", "pass the path of a JSON mapping file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MosaError(
            f"{p}, line {e.lineno}: invalid JSON ({e.msg})",
            'write an object such as {"pelvis": "Hips", "left_hip": "LeftUpLeg"}',
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in data.items()
    ):
        raise MosaError(
            f"{p}: a mapping must be a JSON object of SMPL joint name -> source joint name",
            'e.g. {"pelvis": "Hips", "left_hip": "LeftUpLeg", "spine2": null}',
        )
    return data


def _mapping_hint(names: list[str]) -> str:
    shown = ", ".join(names[:60]) + (" ..." if len(names) > 60 else "")
    return (
        "pass a joint mapping: a JSON file (--mapping map.json) of SMPL joint -> source joint, "
        'e.g. {"pelvis": "Hips", "left_hip": "LeftUpLeg", "spine2": null}, where null means '
        f"interpolate ({', '.join(INTERPOLABLE)} only), or a preset name "
        f"({', '.join(PRESETS)}). The file's joints: {shown}"
    )


def _check_mapping(mapping: Mapping, names: list[str], src: str) -> dict[str, str | None]:
    """Validate a user mapping; returns it with names spelled as in the file."""
    unknown = [k for k in mapping if k not in JOINT_NAMES]
    if unknown:
        raise MosaError(
            f"joint mapping for {src}: unknown SMPL joint(s) {unknown}",
            f"keys must be among: {', '.join(JOINT_NAMES)}",
        )
    keys, exact = _lookup(names), set(names)
    out: dict[str, str | None] = {}
    absent: list[tuple[str, str]] = []
    for smpl, source in mapping.items():
        if source is None:
            if smpl not in INTERPOLABLE:
                raise MosaError(
                    f"joint mapping for {src}: '{smpl}' cannot be interpolated",
                    f"map it to a source joint; only {', '.join(INTERPOLABLE)} may be null",
                )
            out[smpl] = None
        elif source in exact:
            out[smpl] = source
        elif _key(source) in keys:
            out[smpl] = keys[_key(source)]
        else:
            absent.append((smpl, source))
    if absent:  # every wrong name at once, each with the file's closest spellings
        listed = ", ".join(f"'{source}' (for {smpl})" for smpl, source in absent)
        close = {source: difflib.get_close_matches(source, names, n=3) for _, source in absent}
        hints = [f"'{k}': did you mean {v}?" for k, v in close.items() if v]
        raise MosaError(
            f"joint mapping for {src}: {listed} "
            f"{'is not a joint' if len(absent) == 1 else 'are not joints'} of the file",
            "; ".join(hints) + "; in the mapping (JSON or dict: SMPL joint -> the file's joint) "
            "write joint names as the file's ROOT/JOINT lines spell them"
            if hints
            else _mapping_hint(names),
        )
    return out


def _roots_of(bvh: BVHData, mapping: Mapping[str, str | None]) -> set[int]:
    """The ROOT joints whose hierarchies hold the mapped joints."""
    index = {n: j for j, n in enumerate(bvh.names)}
    index |= {f"{bvh.names[j]}{END_SITE}": j for j, _ in bvh.end_sites}
    roots = set()
    for name in mapping.values():
        if name is not None and name in index:
            j = index[name]
            while bvh.parents[j] >= 0:
                j = int(bvh.parents[j])
            roots.add(j)
    return roots


def _one_skeleton(bvh: BVHData, mapping: dict[str, str | None]) -> dict[str, str | None]:
    """``mapping``, checked to lie within one ROOT hierarchy of the file."""
    roots = _roots_of(bvh, mapping)
    if len(roots) > 1:
        listed = ", ".join(bvh.names[r] for r in sorted(roots))
        raise MosaError(
            f"{bvh.path}: the body's joints belong to {len(roots)} separate ROOT hierarchies "
            f"({listed})",
            "export the character as one skeleton (one ROOT per file), or pass --mapping "
            "mapping.json naming joints of one hierarchy",
        )
    return mapping


# SMPL joints whose exact bone the name matcher and the structure may pick differently
# without either being wrong (several spine or neck bones, a collar on top of the chest):
# there the names are kept, as before the structure mapping existed.
_SOFT = frozenset(INTERPOLABLE)


def _reconcile(
    names_map: dict[str, str | None], structure: StructureMapping, src: str, names: list[str]
) -> dict[str, str | None]:
    """The name matcher's joints checked against the structure's.

    Where they sit at the same point they agree. Where the names chose a bone the structure
    recognised as a helper lying on a bone (a twist or split bone such as Rigify's
    ``upper_arm.L.001``) the structure's joint is taken; on the spine, neck and collars the
    names are kept. Any other disagreement raises: a wrong mapping is worse than none.
    """
    out = dict(names_map)
    clash = []
    for smpl, name in names_map.items():
        other = structure.mapping.get(smpl)
        if name is None or other is None or structure.same_place(name, other):
            continue
        if name in structure.inline:
            out[smpl] = other
        elif smpl not in _SOFT:
            clash.append(f"{smpl}: '{name}' by name, '{other}' by structure")
    if clash:
        raise MosaError(
            f"{src}: the joint names and the skeleton's structure disagree ({'; '.join(clash)})",
            _mapping_hint(names),
        )
    return out


def resolve_mapping(
    bvh: BVHData,
    mapping: str | os.PathLike | Mapping[str, str | None] | None = None,
    positions: np.ndarray | None = None,
) -> tuple[str, dict[str, str | None]]:
    """The rig name and the full SMPL-joint -> source-joint mapping (None: interpolated).

    ``mapping``: None (detect a preset, else match names, else read the structure), a preset
    name, a JSON file path, or a dict. ``positions`` (T, J + E, 3): the file's global
    positions with End Sites (``positions_with_end_sites``) if already computed.

    Without a mapping: a preset when the names identify the rig (rig = the preset's name).
    Else the name matcher, checked against ``rigmap.map_structure``: when both are complete
    the names stand where they agree (rig "auto"), the structure replaces a twist or helper
    bone the names chose, and any other disagreement raises; when the structure cannot be
    read (ambiguous) the names stand alone. When the names leave body joints unmapped, the
    structure maps the rig (rig "structure"). A partial user mapping (rig "custom") is
    completed by the names, then by the structure. Presets and user mappings may name End
    Sites (``end_site_names``: "lFoot.end").
    """
    names = list(bvh.names) + end_site_names(bvh)
    if mapping is None:
        rig = detect_rig(names)
        if rig is not None:
            return rig, _one_skeleton(bvh, _apply_names(PRESETS[rig], names))
        rig, user = "auto", {}
    elif isinstance(mapping, str) and mapping.lower() in PRESETS:
        rig = mapping.lower()
        preset = PRESETS[rig]
        absent = [v for v in preset.values() if v is not None and _key(v) not in _lookup(names)]
        if absent:
            raise MosaError(
                f"{bvh.path}: the '{rig}' preset needs joints the file lacks: {absent}",
                _mapping_hint(names),
            )
        return rig, _one_skeleton(bvh, _apply_names(preset, names))
    elif isinstance(mapping, (str, os.PathLike)):
        if not str(mapping).lower().endswith(".json") and not Path(mapping).is_file():
            raise MosaError(
                f"unknown mapping '{mapping}': neither a preset nor a JSON file",
                f"presets: {', '.join(PRESETS)}; or pass the path of a JSON mapping file",
            )
        rig, user = "custom", _check_mapping(read_mapping_json(mapping), names, bvh.path)
    elif isinstance(mapping, Mapping):
        rig, user = "custom", _check_mapping(mapping, names, bvh.path)
    else:
        raise MosaError(
            f"mapping must be a preset name, a JSON file path or a dict, got {type(mapping)}",
            f"presets: {', '.join(PRESETS)}",
        )
    if positions is None:
        positions = positions_with_end_sites(bvh)[1]
    auto = auto_mapping(list(bvh.names), bvh.parents, positions[0, : bvh.num_joints])
    full = {k: (user[k] if k in user else auto[k]) for k in JOINT_NAMES}

    def missing_of(m: Mapping[str, str | None]) -> list[str]:
        return [k for k, v in m.items() if v is None and k not in INTERPOLABLE]

    if rig == "custom" and not missing_of(full):
        return rig, _one_skeleton(bvh, full)
    try:
        structure: StructureMapping | None = map_structure(bvh, positions)
        why = ""
    except Contradiction as e:  # the names are wrong, not just incomplete
        raise MosaError(f"{bvh.path}: {e.message}", _mapping_hint(names)) from None
    except MosaError as e:
        structure, why = None, e.message
    missing = missing_of(full)
    if structure is not None:
        if not missing:  # names complete: they stand where the structure agrees
            return rig, _one_skeleton(bvh, _reconcile(full, structure, bvh.path, names))
        if rig == "custom":  # the user's joints first, the structure's for the rest
            merged = {k: user.get(k, structure.mapping[k]) for k in JOINT_NAMES}
            return rig, _one_skeleton(bvh, merged)
        partial = {k: v for k, v in auto.items() if v is not None}
        checked = _reconcile(partial, structure, bvh.path, names)
        merged = {k: checked.get(k, structure.mapping[k]) for k in JOINT_NAMES}
        return "structure", _one_skeleton(bvh, merged)
    if missing:
        raise MosaError(
            f"{bvh.path}: cannot map the rig onto the 22-joint body; no source joint found for "
            f"{', '.join(missing)}"
            + (f"; and from the skeleton's structure: {why}" if why else ""),
            _mapping_hint(names),
        )
    return rig, _one_skeleton(bvh, full)


def map_joints(
    positions: np.ndarray, names: list[str], mapping: Mapping[str, str | None]
) -> np.ndarray:
    """Source positions (T, J, 3) -> SMPL joints (T, 22, 3), interpolating unmapped ones."""
    index = {n: j for j, n in enumerate(names)}
    out = np.full((positions.shape[0], NUM_JOINTS, 3), np.nan)
    for k, smpl in enumerate(JOINT_NAMES):
        if mapping.get(smpl) is not None:
            out[:, k] = positions[:, index[mapping[smpl]]]
    for chain in (_SPINE_CHAIN, *_COLLAR_CHAINS):
        _fill_chain(out, [JOINT_NAMES.index(n) for n in chain])
    return out


def _fill_chain(joints: np.ndarray, chain: list[int]) -> None:
    """Place NaN joints of ``chain`` evenly on the segment between their mapped neighbours."""
    known = [i for i, j in enumerate(chain) if not np.isnan(joints[0, j, 0])]
    for a, b in zip(known[:-1], known[1:], strict=True):
        for i in range(a + 1, b):
            w = (i - a) / (b - a)
            joints[:, chain[i]] = (1 - w) * joints[:, chain[a]] + w * joints[:, chain[b]]


# ------------------------------------------------------------------ axes, units, timing

# Proper rotations taking each possible up axis onto +Y (row-vector form: p @ M.T).
_TO_Y_UP = {
    "+Y": np.eye(3),
    "-Y": np.diag([1.0, -1.0, -1.0]),
    "+Z": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "-Z": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "+X": np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]),
    "-X": np.array([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]]),
}


def detect_up_axis(joints: np.ndarray) -> str:
    """The source axis closest to the mean pelvis-to-head direction of (T, 22, 3) joints."""
    d = joints[:, JOINT_NAMES.index("head")] - joints[:, JOINT_NAMES.index("pelvis")]
    mean = (d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)).mean(axis=0)
    axis = int(np.argmax(np.abs(mean)))
    return ("+" if mean[axis] > 0 else "-") + "XYZ"[axis]


def to_y_up(joints: np.ndarray, up_axis: str) -> np.ndarray:
    return joints @ _TO_Y_UP[up_axis].T


# (name, metres per unit), in order of preference; "cmu" is the CMU ASF unit (inch / 0.45).
UNITS = (("cm", 0.01), ("m", 1.0), ("cmu", 0.0254 / 0.45), ("inch", 0.0254), ("mm", 0.001))
# Plausible ankle-to-head chain length in metres (SMPL's mean body: 1.58 m).
_CHAIN_RANGE = (0.7, 2.2)
_CHAIN_REFERENCE = 1.55


def skeleton_size(joints: np.ndarray) -> float:
    """Ankle-to-head length along the bones (head-neck-spine-pelvis-hip-knee-ankle), in the
    units of ``joints`` (T, 22, 3): median bone lengths, so any pose gives the same answer."""
    j = JOINT_NAMES.index

    def bone(a: str, b: str) -> float:
        return float(np.median(np.linalg.norm(joints[:, j(a)] - joints[:, j(b)], axis=-1)))

    spine = sum(bone(a, b) for a, b in zip(_SPINE_CHAIN[:-1], _SPINE_CHAIN[1:], strict=True))
    legs = [
        bone("pelvis", f"{s}_hip") + bone(f"{s}_hip", f"{s}_knee") + bone(f"{s}_knee", f"{s}_ankle")
        for s in ("left", "right")
    ]
    return spine + float(np.mean(legs))


def detect_unit(joints: np.ndarray) -> tuple[str, float]:
    """The unit (name, metres per unit) that gives a human-sized skeleton (see ``UNITS``)."""
    size = skeleton_size(joints)
    if not size > 0:
        raise MosaError("the skeleton has zero size", "check the file's OFFSET values")
    for name, scale in UNITS:
        if _CHAIN_RANGE[0] <= size * scale <= _CHAIN_RANGE[1]:
            return name, scale
    # Nothing plausible (a doll, a giant): keep the nearest unit's proportions.
    return min(UNITS, key=lambda u: abs(np.log(size * u[1] / _CHAIN_REFERENCE)))


def handedness(joints: np.ndarray) -> float:
    """How much the knees and toes point forward, in [-1, 1]: about +0.5..+1 for a body
    whose left/right are right (a mirrored body gives the negative).

    The body's forward is (left_hip - right_hip) x (neck - pelvis): +X left and +Y up give
    +Z. Knees bend forward of the hip-ankle line and toes point forward of the ankles; each
    term is weighted by its length, so straight legs and pointed feet count little.
    """
    j = JOINT_NAMES.index
    across = joints[:, j("left_hip")] - joints[:, j("right_hip")]
    forward = np.cross(across, joints[:, j("neck")] - joints[:, j("pelvis")])
    forward /= np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-9)
    score = 0.0
    for side in ("left", "right"):
        hip, knee = joints[:, j(f"{side}_hip")], joints[:, j(f"{side}_knee")]
        ankle, toe = joints[:, j(f"{side}_ankle")], joints[:, j(f"{side}_foot")]
        for v in (knee - (hip + ankle) / 2, toe - ankle):
            score += np.sum(forward * v) / max(np.sum(np.linalg.norm(v, axis=-1)), 1e-9) / 4
    return float(score)


def is_mirrored(joints: np.ndarray) -> bool:
    """True when knees and toes clearly point backwards: left-handed axes or swapped L/R."""
    return handedness(joints) < -0.25


def put_on_floor(joints: np.ndarray) -> np.ndarray:
    """Shift (T, 22, 3) Y-up joints so the lowest foot joint over the clip is at height 0."""
    feet = list(FOOT_LEFT + FOOT_RIGHT)
    return joints - np.array([0.0, joints[:, feet, 1].min(), 0.0])


def snap_fps(fps: float) -> float:
    """1/0.0333333 -> 30: BVH frame times are rounded decimals of whole rates."""
    r = round(fps)
    return float(r) if r > 0 and abs(fps - r) < 1e-4 * fps else fps


_snap_fps = snap_fps  # the name earlier code used


def resample(x: np.ndarray, src_fps: float, fps: float) -> np.ndarray:
    """Linearly resample (T, ...) frames from ``src_fps`` to ``fps`` over the same duration.

    Output frame k is at time k / fps; there are floor((T - 1) * fps / src_fps) + 1 frames.
    """
    T = x.shape[0]
    n = int(np.floor((T - 1) * fps / src_fps + 1e-6)) + 1
    t = np.arange(n) * (src_fps / fps)
    i0 = np.clip(np.floor(t).astype(np.int64), 0, max(T - 2, 0))
    i1 = np.minimum(i0 + 1, T - 1)
    w = (t - i0).reshape(-1, *([1] * (x.ndim - 1)))
    return (1 - w) * x[i0] + w * x[i1]


# ----------------------------------------------------------------------------- loading


def _drop_frames(bvh: BVHData, start_frame: int) -> BVHData:
    """``bvh`` without its first ``start_frame`` frames (e.g. a converter's rest-pose frame)."""
    if start_frame == 0:
        return bvh
    if not 0 < start_frame < bvh.num_frames - 1:
        raise MosaError(
            f"{bvh.path}: cannot drop {start_frame} of its {bvh.num_frames} frames",
            "start_frame must leave at least two frames",
        )
    return replace(bvh, motion=bvh.motion[start_frame:])


def load_bvh(
    path: str | os.PathLike,
    mapping: str | os.PathLike | Mapping[str, str | None] | None = None,
    fps: float | None = 20.0,
    *,
    source_fps: float | None = None,
    start_frame: int = 0,
) -> ImportedMotion:
    """Read a BVH of any human rig as (T, 22, 3) SMPL joints: metres, Y up, feet on the floor.

    ``mapping``: None (detect), a preset name (``PRESETS``), a JSON file or a dict of SMPL
    joint -> source joint. ``fps``: output frame rate (None keeps the source rate).
    ``source_fps``: the true capture rate when the header's Frame Time is wrong (CMU trials
    captured at 60 fps whose conversion says 120); None trusts the header. ``start_frame``:
    frames to drop from the start (the rest pose the Daz conversion puts in frame 0).
    """
    return retarget_bvh(
        read_bvh(path), mapping, fps, source_fps=source_fps, start_frame=start_frame
    )


class MosaSpace(NamedTuple):
    """A BVH's frames as the 22 joints in mosa's space, and how they got there."""

    joints: np.ndarray  # (T, 22, 3) metres, Y up, right-handed, at the file's frame rate
    rig: str  # the preset or mapping that matched
    mapping: dict  # mosa joint -> the file's joint (or None: interpolated)
    up_axis: str
    unit: str
    unit_scale: float  # file units -> metres
    mirrored: bool  # the file was left-handed; x was flipped


def mosa_space(bvh: BVHData, mapping=None) -> MosaSpace:
    """Map ``bvh``'s joints onto the 22 (``resolve_mapping``), then turn them Y up, into
    metres and right-handed; no resampling, no floor."""
    names, positions = positions_with_end_sites(bvh)
    rig, full = resolve_mapping(bvh, mapping, positions)
    joints = map_joints(positions, names, full)
    up = detect_up_axis(joints)
    joints = to_y_up(joints, up)
    unit, scale = detect_unit(joints)
    joints = joints * scale
    mirrored = is_mirrored(joints)
    if mirrored:
        joints = joints * np.array([-1.0, 1.0, 1.0])
    return MosaSpace(joints, rig, full, up, unit, float(scale), bool(mirrored))


def retarget_bvh(
    bvh: BVHData,
    mapping: str | os.PathLike | Mapping[str, str | None] | None = None,
    fps: float | None = 20.0,
    *,
    source_fps: float | None = None,
    start_frame: int = 0,
) -> ImportedMotion:
    """``load_bvh`` for an already parsed file (e.g. one inspected first to pick
    ``start_frame``)."""
    if fps is not None and not fps > 0:
        raise MosaError(f"fps must be positive, got {fps}", "pass e.g. fps=20")
    if source_fps is not None and not source_fps > 0:
        raise MosaError(f"source_fps must be positive, got {source_fps}", "pass e.g. 60")
    n_file_frames = bvh.num_frames
    bvh = _drop_frames(bvh, int(start_frame))
    space = mosa_space(bvh, mapping)
    joints, rig, full, up = space.joints, space.rig, space.mapping, space.up_axis
    unit, scale, mirrored = space.unit, space.unit_scale, space.mirrored
    source_fps = snap_fps(bvh.fps) if source_fps is None else float(source_fps)
    out_fps = source_fps if fps is None else float(fps)
    if out_fps != source_fps:
        joints = resample(joints, source_fps, out_fps)
    joints = put_on_floor(joints)  # after resampling: the output's lowest foot is at 0
    return ImportedMotion(
        joints=joints.astype(np.float32),
        fps=out_fps,
        source_fps=source_fps,
        source_frames=n_file_frames,
        rig=rig,
        up_axis=up,
        unit=unit,
        unit_scale=scale,
        mirrored=mirrored,
        mapping=full,
        source_joint_names=tuple(bvh.names),
        source_path=str(bvh.path),
    )
