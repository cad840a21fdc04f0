"""Map any humanoid rig onto the 22 SMPL joints from its structure: ``map_structure``.

Names are what ``retarget`` tries first (presets, then a name matcher); this module reads the
skeleton itself, for rigs whose names say nothing (``joint_17``), are in another language, or
follow a convention no preset knows. Steps, each a small function below:

1. Joints and End Sites become one tree of *nodes* with their positions over (up to 64) frames
   of the clip; a bone's length is its median over those frames. A node on top of its parent
   (a zero-length bone, under 1% of the skeleton's size) is the same point as its parent.
2. The tree is cut into *branches*: from the root each node continues into the child with the
   longest reach, every other child starts a branch of its own (its length: from where it
   leaves to its farthest tip). The main branch and the three longest others are the limbs;
   the pair of limbs that meet highest up (the deepest common ancestor) are the arms, the
   other two the legs. The pelvis is where all four meet, the upper spine where the arms do;
   the head is the longest other branch leaving the spine. Legs must hang below the pelvis
   in the body's own frame (pelvis -> upper spine is up), the head must sit above.
3. Each limb's chain (from the pelvis or the upper spine out to its tip) drops the nodes on
   top of their predecessor and the *in-line* ones: straight in every frame (under 3 degrees
   of bend; twist, roll and split-bone helpers of Rigify's ``upper_arm.L.001`` kind), unless
   fingers or toes branch there. The ankle (wrist) is the first node past the knee (elbow)
   whose remaining chain is short (at most 0.4 of the chain so far: the foot, the hand); the
   two nodes before it are hip and knee (shoulder and elbow), the node after it the toes;
   an arm's first node before the shoulder is the collar. Branches that leave a limb
   (fingers, toes, twist and helper bones hanging off a bone) are never part of a chain.
4. Left and right come from geometry: with the across-the-hips axis and up, a right-handed
   body's toes and bent knees point forward (``handedness`` in ``retarget``); the arm on the
   left hip's side is the left arm. Names (``.L``, ``_l``, ``Left``, ``links``, ``gauche``,
   ``左``, ...) break ties: when the geometry cannot tell, and when they consistently name the
   geometric right leg "left" (a mirrored export: the loader then flags ``mirrored``). Names
   also pick the head among the neck bones when one of them says head.

Whatever stays ambiguous (not four limbs, two candidate heads, legs that do not hang, names
contradicting geometry on one side only, two ROOT skeletons) raises ``MosaError`` saying what
is ambiguous; the fix is a JSON mapping (``--mapping``), see ``MAPPING_FORMAT``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from mosa.errors import MosaError
from mosa.motion.bvh import BVHData
from mosa.motion.skeleton import JOINT_NAMES

# Suffix naming a joint's End Site, which a mapping may use as a body joint (Daz feet end in
# an End Site at the toes): "lFoot.end".
END_SITE = ".end"
MAX_FRAMES = 64  # frames of the clip the geometry is read from (evenly spaced)
COINCIDENT = 0.01  # a bone shorter than this fraction of the skeleton joins its parent
INLINE_DEGREES = 3.0  # a node bending less than this in every frame is a helper on a bone
END_RATIO = 0.4  # the hand / foot: what remains of a limb past the wrist / ankle, at most
SIDE_CONFIDENCE = 0.2  # how clearly the geometry must say left from right (0..1)
EXTRA_LIMB = 0.5  # another branch this long (fraction of an arm) makes the body ambiguous

MAPPING_FORMAT = (
    "pass a joint mapping: --mapping mapping.json with a JSON object of SMPL joint -> the "
    'file\'s joint, e.g. {"pelvis": "Hips", "left_hip": "LeftUpLeg", "left_knee": "LeftLeg", '
    '..., "spine2": null} (null: interpolate; spine1-3, neck and the collars only). The SMPL '
    f"joints: {', '.join(JOINT_NAMES)}"
)


# ------------------------------------------------------------------------------ names


def strip_namespace(name: str) -> str:
    """'mixamorig:Hips' -> 'Hips' (also Maya's 'group|Hips')."""
    return re.split(r"[:|]", name)[-1].strip()


def name_key(name: str) -> str:
    """Names compare case-blind and without a namespace ("mixamorig:Hips" -> "hips")."""
    return strip_namespace(name).lower()


_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^\W\d_]+")
# Side words in several languages (whole tokens, case-blind); CJK side characters anywhere.
_LEFT = {"l", "left", "lft", "lt", "links", "linke", "linker", "linkes", "gauche", "izquierda"}
_LEFT |= {"izquierdo", "izq", "sinistra", "sinistro", "esquerda", "esquerdo", "lewy", "lewa"}
_LEFT |= {"левый", "левая", "лев"}
_RIGHT = {"r", "right", "rgt", "rt", "rechts", "rechte", "rechter", "rechtes", "droite"}
_RIGHT |= {"droit", "derecha", "derecho", "der", "destra", "destro", "direita", "direito"}
_RIGHT |= {"prawy", "prawa", "правый", "правая", "прав"}
_HEAD = {"head", "kopf", "tete", "tête", "cabeza", "testa", "cabeca", "cabeça", "hoofd"}
_HEAD |= {"голова", "atama"}
_HEAD_CHARS = ("頭", "头", "머리")
_NOT_HEAD = {"end", "top", "nub", "tip", "site", "jaw", "eye", "neck", "hals"}


def _tokens(name: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(strip_namespace(name))]


def name_side(name: str) -> str | None:
    """ "L", "R" or None: the side a joint's name says ("shoulder.L", "thigh_l", "lShin",
    "LeftArm", "Bip01 L Calf", "Oberarm_links", "bras_gauche", "左腕")."""
    base = strip_namespace(name)
    left = "左" in base or any(t in _LEFT for t in _tokens(base))
    right = "右" in base or any(t in _RIGHT for t in _tokens(base))
    return "L" if left and not right else "R" if right and not left else None


def says_head(name: str) -> bool:
    """The name calls the joint the head (not its End Site, top or a face bone)."""
    tokens = _tokens(name)
    if any(t in _NOT_HEAD for t in tokens):
        return False
    return any(t in _HEAD for t in tokens) or any(c in name for c in _HEAD_CHARS)


# ------------------------------------------------------------------------------ nodes


def end_site_names(bvh: BVHData) -> list[str]:
    """Names for the End Sites of ``bvh`` (joint name + ``END_SITE``; the first per joint,
    none that would clash with a joint name), in ``bvh.end_sites`` order."""
    taken = {name_key(n) for n in bvh.names}
    out = []
    for j, _ in bvh.end_sites:
        name = bvh.names[j] + END_SITE
        if name_key(name) not in taken:
            taken.add(name_key(name))
            out.append(name)
    return out


def skeleton_nodes(bvh: BVHData) -> tuple[list[str], list[int]]:
    """Joint names plus ``end_site_names``, and each node's parent (-1: a root)."""
    names, parents = list(bvh.names), [int(p) for p in bvh.parents]
    wanted = set(end_site_names(bvh))
    for j, _ in bvh.end_sites:
        name = bvh.names[j] + END_SITE
        if name in wanted:
            wanted.discard(name)
            names.append(name)
            parents.append(j)
    return names, parents


def positions_with_end_sites(bvh: BVHData) -> tuple[list[str], np.ndarray]:
    """Joint names plus ``end_site_names`` and their world positions (T, J + E, 3)."""
    rot, pos = bvh.global_transforms()
    names, extra = list(bvh.names), []
    wanted = set(end_site_names(bvh))
    for j, offset in bvh.end_sites:
        name = bvh.names[j] + END_SITE
        if name in wanted:
            wanted.discard(name)
            names.append(name)
            extra.append(pos[:, j] + np.einsum("tij,j->ti", rot[:, j], offset))
    if extra:
        pos = np.concatenate([pos, np.stack(extra, axis=1)], axis=1)
    return names, pos


def pick_spine(below: list[int]) -> tuple[int, int]:
    """Two of several lower spine bones (pelvis side first): nearest to SMPL's 40% and 83%
    of pelvis-to-spine3. Hierarchy depth stands in for arc length: rigs space spine bones
    roughly evenly."""
    if len(below) == 2:
        return below[0], below[1]
    frac = [(k + 1) / (len(below) + 1) for k in range(len(below))]
    first = min(range(len(below) - 1), key=lambda k: abs(frac[k] - 0.40))
    second = min(range(first + 1, len(below)), key=lambda k: abs(frac[k] - 0.83))
    return below[first], below[second]


# --------------------------------------------------------------------------- the result


@dataclass
class StructureMapping:
    """What ``map_structure`` found.

    ``mapping``: SMPL joint -> node name (a joint, or an End Site ``name.end``; None:
    interpolated). ``inline``: the nodes recognised as helpers lying on a bone (twist, roll,
    split bones), skipped. ``sides``: how left and right were told ("geometry", or "names"
    when the names settled it). ``notes``: one line per decision worth reporting.
    """

    mapping: dict[str, str | None]
    inline: set[str] = field(default_factory=set)
    sides: str = "geometry"
    notes: list[str] = field(default_factory=list)
    _positions: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _tolerance: float = 0.0

    def same_place(self, a: str, b: str) -> bool:
        """Do nodes ``a`` and ``b`` sit at the same point (a zero-length bone apart)?"""
        pa, pb = self._positions.get(a), self._positions.get(b)
        if pa is None or pb is None:
            return a == b
        return float(np.median(np.linalg.norm(pa - pb, axis=-1))) <= self._tolerance


class Contradiction(MosaError):
    """The joint names contradict the skeleton's geometry (e.g. the arm named left is on the
    right): a mapping by those names would be wrong, not just incomplete."""


def _ambiguous(what: str) -> MosaError:
    return MosaError(f"cannot map the rig from its structure: {what}", MAPPING_FORMAT)


# ------------------------------------------------------------------------- the skeleton


class _Skeleton:
    """Nodes, their sampled positions (F, N, 3) and the tree measures mapping needs."""

    def __init__(self, names: list[str], parents: list[int], positions: np.ndarray, joints: int):
        self.names, self.parents, self.pos = names, parents, positions
        self.joints = joints  # nodes from this index on are End Sites
        n = len(names)
        self.children: list[list[int]] = [[] for _ in range(n)]
        for j, p in enumerate(parents):
            if p >= 0:
                self.children[p].append(j)
        self.length = np.zeros(n)
        for j, p in enumerate(parents):
            if p >= 0:
                self.length[j] = np.median(
                    np.linalg.norm(positions[:, j] - positions[:, p], axis=-1)
                )
        # parents come before children (joints in file order, End Sites after all joints)
        self.reach = np.zeros(n)
        for j in reversed(range(n)):
            p = parents[j]
            if p >= 0:
                self.reach[p] = max(self.reach[p], self.length[j] + self.reach[j])
        self.dist = np.zeros(n)  # path length from the root
        for j, p in enumerate(parents):
            if p >= 0:
                self.dist[j] = self.dist[p] + self.length[j]
        self.scale = float(self.dist.max()) if n else 0.0
        self.tolerance = COINCIDENT * self.scale

    def heavy(self, j: int) -> int | None:
        """The child of ``j`` with the longest reach (None for a leaf)."""
        kids = self.children[j]
        return max(kids, key=lambda c: self.length[c] + self.reach[c]) if kids else None

    def run(self, j: int) -> list[int]:
        """``j`` and the heavy children after it down to a tip."""
        out = [j]
        while (c := self.heavy(out[-1])) is not None:
            out.append(c)
        return out

    def branches(self, root: int) -> list[tuple[int, list[int], float]]:
        """Every branch below ``root`` as (node it leaves, its nodes, length), longest first;
        the main branch (from the root) comes first with an infinite length."""
        out = [(-1, self.run(root), np.inf)]
        for _, nodes, _ in iter(out):
            for j in nodes:
                for c in self.children[j]:
                    if c != self.heavy(j):
                        out.append((j, self.run(c), float(self.length[c] + self.reach[c])))
        return sorted(out, key=lambda b: -b[2])

    def ancestors(self, j: int) -> list[int]:
        out = []
        while self.parents[j] >= 0:
            j = self.parents[j]
            out.append(j)
        return out

    def lca(self, nodes: list[int]) -> int:
        paths = [[j, *self.ancestors(j)] for j in nodes]
        common = set(paths[0]).intersection(*paths[1:])
        return max(common, key=lambda j: self.dist[j])

    def path(self, top: int, tip: int) -> list[int]:
        """Nodes from below ``top`` down to its descendant ``tip`` (inclusive)."""
        up = [tip, *self.ancestors(tip)]
        return list(reversed(up[: up.index(top)]))

    def apart(self, a: int, b: int) -> float:
        """Median distance between two nodes over the frames."""
        return float(np.median(np.linalg.norm(self.pos[:, a] - self.pos[:, b], axis=-1)))

    def collapse(self, start: int, nodes: list[int]) -> list[int]:
        """``nodes`` without those on top of the node kept before them (``start`` first)."""
        out, last = [], start
        for j in nodes:
            if self.apart(j, last) > self.tolerance:
                out.append(j)
                last = j
        return out

    def branching(self, j: int) -> bool:
        """Fingers, toes or face bones leave ``j``: two or more children of some reach (a
        child on top of ``j`` counts with its children)."""
        kids, todo = [], list(self.children[j])
        while todo:
            c = todo.pop()
            if self.length[c] <= self.tolerance:
                todo.extend(self.children[c])
            elif self.reach[c] + self.length[c] > 2 * self.tolerance:
                kids.append(c)
        return len(kids) >= 2

    def bend(self, a: int, b: int, c: int) -> np.ndarray:
        """The angle (F,) in degrees between bones a->b and b->c."""
        u, v = self.pos[:, b] - self.pos[:, a], self.pos[:, c] - self.pos[:, b]
        nu, nv = np.linalg.norm(u, axis=-1), np.linalg.norm(v, axis=-1)
        cos = np.sum(u * v, axis=-1) / np.maximum(nu * nv, 1e-12)
        return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))

    def straight(self, start: int, chain: list[int]) -> tuple[set[int], bool]:
        """The in-line helper nodes of ``chain`` (interior joints followed by a joint, straight
        in every frame, nothing branching off) and whether the chain articulates (another
        node bends by more than 10 degrees over the frames: the clip moves this limb)."""
        inline, moves = set(), False
        for k in range(1, len(chain) - 1):
            bend = self.bend(chain[k - 1], chain[k], chain[k + 1])
            # a helper lies between two joints: a joint before an End Site is the limb's last
            helper = chain[k + 1] < self.joints and not self.branching(chain[k])
            if helper and bend.max() < INLINE_DEGREES:
                inline.add(chain[k])
            elif bend.max() - bend.min() > 10.0:
                moves = True
        return inline, moves


# ------------------------------------------------------------------------------ mapping


def _sample(positions: np.ndarray) -> np.ndarray:
    T = positions.shape[0]
    if T <= MAX_FRAMES:
        return np.asarray(positions, dtype=np.float64)
    return np.asarray(positions[np.linspace(0, T - 1, MAX_FRAMES).round().astype(int)], float)


def map_structure(bvh: BVHData, positions: np.ndarray | None = None) -> StructureMapping:
    """Map ``bvh``'s rig onto ``JOINT_NAMES`` from its hierarchy and geometry (see the module
    docstring). ``positions`` (T, J + E, 3): ``positions_with_end_sites(bvh)[1]`` if already
    computed. Raises ``MosaError`` naming what is ambiguous."""
    names, parents = skeleton_nodes(bvh)
    if positions is None:
        positions = positions_with_end_sites(bvh)[1]
    roots = [j for j in range(bvh.num_joints) if parents[j] < 0]
    if len(roots) > 1:
        listed = ", ".join(names[r] for r in roots)
        raise MosaError(
            f"the file holds {len(roots)} skeletons (ROOT {listed}): which one is the body?",
            "export one character per BVH file (one ROOT), or pass --mapping mapping.json "
            "naming the body's joints",
        )
    sk = _Skeleton(names, parents, _sample(positions), bvh.num_joints)
    if not sk.scale > 0:
        raise MosaError("the skeleton has zero size", "check the file's OFFSET values")
    legs, arms = _limbs(sk, roots[0])
    pelvis = sk.lca([legs[0][-1], legs[1][-1], arms[0][-1], arms[1][-1]])
    hub = sk.lca([arms[0][-1], arms[1][-1]])
    spine = sk.collapse(pelvis, sk.path(pelvis, hub))
    if not spine:
        raise _ambiguous(f"the arms and the legs both branch off '{names[pelvis]}'")
    out = StructureMapping(mapping=dict.fromkeys(JOINT_NAMES))
    out.mapping["pelvis"] = names[pelvis]
    out.mapping["spine3"] = names[hub]
    below = spine[:-1]
    if len(below) == 1:
        out.mapping["spine1"] = names[below[0]]
    elif len(below) >= 2:
        s1, s2 = pick_spine(below)
        out.mapping["spine1"], out.mapping["spine2"] = names[s1], names[s2]
    up = _unit(sk.pos[:, hub] - sk.pos[:, pelvis])
    leg_joints = [_leg(sk, pelvis, chain, up, out) for chain in legs]
    arm_joints = [_arm(sk, hub, chain, out) for chain in arms]
    _head(sk, pelvis, hub, sk.path(pelvis, hub), legs, arms, up, out)
    left_leg, left_arm = _sides(sk, leg_joints, arm_joints, up, out)
    for side, k in (("left", left_leg), ("right", 1 - left_leg)):
        for part, j in zip(("hip", "knee", "ankle", "foot"), leg_joints[k], strict=True):
            out.mapping[f"{side}_{part}"] = names[j]
    for side, k in (("left", left_arm), ("right", 1 - left_arm)):
        for part, j in zip(("collar", "shoulder", "elbow", "wrist"), arm_joints[k], strict=True):
            out.mapping[f"{side}_{part}"] = None if j is None else names[j]
    out._positions = {n: sk.pos[:, j] for j, n in enumerate(names)}
    out._tolerance = sk.tolerance
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _limbs(sk: _Skeleton, root: int) -> tuple[list[list[int]], list[list[int]]]:
    """The two legs and the two arms, each as its branch's nodes down to the tip."""
    branches = sk.branches(root)
    if len(branches) < 4:
        raise _ambiguous(
            f"found {len(branches)} limb-like chains, a body needs four (two legs, two arms)"
        )
    tips = [b[1][-1] for b in branches[:4]]
    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    depth = {p: sk.dist[sk.lca([tips[p[0]], tips[p[1]]])] for p in pairs}
    ranked = sorted(pairs, key=lambda p: -depth[p])
    arms = ranked[0]
    legs = tuple(k for k in range(4) if k not in arms)
    if depth[arms] - depth[legs] <= sk.tolerance:  # type: ignore[index]
        raise _ambiguous(
            "no two of the four longest chains meet above the others: cannot tell the arms "
            f"from the legs ({', '.join(sk.names[t] for t in tips)})"
        )
    chains = [[*reversed(sk.ancestors(t)), t] for t in tips]
    return [chains[k] for k in legs], [chains[k] for k in arms]


def _limb_chain(sk: _Skeleton, start: int, branch: list[int], what: str, out):
    """A limb's nodes below ``start`` (coincident and in-line helper nodes dropped) and the
    index of its end (ankle / wrist): the first node from the third on whose remaining chain
    is at most ``END_RATIO`` of the chain up to it."""
    chain = sk.collapse(start, branch[branch.index(start) + 1 :])
    inline, moves = sk.straight(start, chain)
    dist = np.array([sk.dist[j] for j in chain]) - sk.dist[start]
    end = next(
        (
            i
            for i in range(2, len(chain))
            if chain[i] not in inline
            and chain[i] < sk.joints  # the wrist / ankle is a joint, never an End Site
            and dist[-1] - dist[i] <= END_RATIO * (dist[i] - dist[0])
        ),
        None,
    )
    if end is None:
        raise _ambiguous(
            f"the {what} chain ending at '{sk.names[branch[-1]]}' has too few joints "
            f"({', '.join(sk.names[j] for j in chain)})"
        )
    drop = [j for j in chain[:end] if j in inline]
    if drop and not moves:
        raise _ambiguous(
            f"the {what} ending at '{sk.names[branch[-1]]}' does not bend in the clip: cannot "
            f"tell its joints from twist bones ({', '.join(sk.names[j] for j in chain)})"
        )
    out.inline.update(sk.names[j] for j in drop)
    kept = [j for j in chain if j not in drop]
    return kept, end - len(drop)


def _leg(sk: _Skeleton, pelvis: int, branch: list[int], up: np.ndarray, out) -> list[int]:
    """Hip, knee, ankle and toes of one leg."""
    chain, a = _limb_chain(sk, pelvis, branch, "leg", out)
    if a + 1 >= len(chain):
        raise _ambiguous(
            f"the leg ends at the ankle '{sk.names[chain[a]]}': no toe joint or End Site"
        )
    hip, knee, ankle, toe = chain[a - 2], chain[a - 1], chain[a], chain[a + 1]
    drop = np.median(np.sum(up * (sk.pos[:, ankle] - sk.pos[:, pelvis]), axis=-1))
    if drop > -0.3 * (sk.dist[ankle] - sk.dist[hip]):
        raise _ambiguous(
            f"the chain '{sk.names[hip]}' ... '{sk.names[ankle]}' does not hang below the "
            f"pelvis '{sk.names[pelvis]}' like a leg"
        )
    return [hip, knee, ankle, toe]


def _arm(sk: _Skeleton, hub: int, branch: list[int], out) -> list[int | None]:
    """Collar (None: interpolated), shoulder, elbow and wrist of one arm."""
    chain, w = _limb_chain(sk, hub, branch, "arm", out)
    collar = chain[0] if w - 2 > 0 else None
    return [collar, chain[w - 2], chain[w - 1], chain[w]]


def _head(sk, pelvis, hub, spine, legs, arms, up, out: StructureMapping) -> None:
    """Neck and head: the longest branch leaving the spine other than the limbs."""
    limb_nodes = {j for chain in legs + arms for j in chain}
    on_spine = set(spine)
    candidates = []
    for j in [pelvis, *spine]:
        for c in sk.children[j]:
            if c in limb_nodes:
                continue
            candidates.append((float(sk.length[c] + sk.reach[c]), j, c))
    candidates.sort(reverse=True)
    arm_length = min(sk.dist[chain[-1]] - sk.dist[hub] for chain in arms)
    heads = [c for c in candidates if c[1] in on_spine]
    if not heads:
        raise _ambiguous(f"no neck or head leaves the spine below '{sk.names[hub]}'")
    extra = [c for c in candidates if c is not heads[0] and c[0] >= EXTRA_LIMB * arm_length]
    if extra:
        raise _ambiguous(
            f"more chains than two legs, two arms and a head: '{sk.names[extra[0][2]]}' "
            f"(from '{sk.names[extra[0][1]]}') is as long as a limb"
        )
    _, attach, first = heads[0]
    chain = sk.collapse(attach, sk.run(first))
    chain = [j for j in chain if j < sk.joints]  # the head is a joint, not an End Site
    if not chain:
        raise _ambiguous(f"the head chain from '{sk.names[attach]}' has no joint")
    named = [k for k, j in enumerate(chain) if says_head(sk.names[j])]
    # the head: where face bones branch off, else the second joint (the neck's is first)
    k = next((i for i in range(1, len(chain)) if sk.branching(chain[i])), min(1, len(chain) - 1))
    if len(named) == 1 and named[0] != k:
        k = named[0]
        out.notes.append(f"head: '{sk.names[chain[k]]}', by its name")
    head, neck = chain[k], (chain[0] if k > 0 else None)  # the neck's base
    height = np.median(np.sum(up * (sk.pos[:, head] - sk.pos[:, hub]), axis=-1))
    if height <= 0:
        raise _ambiguous(f"the head candidate '{sk.names[head]}' is not above the upper spine")
    out.mapping["head"] = sk.names[head]
    out.mapping["neck"] = None if neck is None else sk.names[neck]


def _chain_side(sk: _Skeleton, joints: list[int | None]) -> str | None:
    votes = [name_side(sk.names[j]) for j in joints if j is not None]
    left, right = votes.count("L"), votes.count("R")
    return "L" if left > right else "R" if right > left else None


def _pick(geometry: float, names: tuple[str | None, str | None]) -> tuple[int | None, int | None]:
    """Which of two limbs is the left one: by geometry (a signed score, > 0: the first) and
    by names (their sides); None where one cannot tell."""
    geo = None if abs(geometry) < SIDE_CONFIDENCE else (0 if geometry > 0 else 1)
    a, b = names
    by_name = None
    if (a == "L" or b == "R") and not (a == "R" or b == "L"):
        by_name = 0
    elif (a == "R" or b == "L") and not (a == "L" or b == "R"):
        by_name = 1
    return geo, by_name


def _sides(sk, legs: list[list[int]], arms: list[list[int | None]], up, out) -> tuple[int, int]:
    """Indices of the left leg and the left arm."""
    hip0, hip1 = legs[0][0], legs[1][0]
    across = sk.pos[:, hip0] - sk.pos[:, hip1]
    forward = _unit(np.cross(across, up))
    p = sk.pos

    def facing(vectors: list[np.ndarray]) -> float:  # in [-1, 1], weighted by length
        return float(
            np.mean(
                [
                    np.sum(forward * v) / max(np.sum(np.linalg.norm(v, axis=-1)), 1e-12)
                    for v in vectors
                ]
            )
        )

    # Toes point forward in any pose (a foot turned out as in ballet says little); bent knees
    # point forward too, but a drawn or hyper-extended knee may not: the toes decide first.
    score = facing([p[:, toe] - p[:, ankle] for _, _, ankle, toe in legs])
    if abs(score) < SIDE_CONFIDENCE:
        score = facing([p[:, knee] - (p[:, hip] + p[:, ankle]) / 2 for hip, knee, ankle, _ in legs])
    geo, by_name = _pick(float(score), (_chain_side(sk, legs[0]), _chain_side(sk, legs[1])))
    if by_name is not None:
        left_leg = by_name
        if geo is not None and geo != by_name:
            out.sides = "names"
            out.notes.append("left/right: the names, which call the geometric right leg left")
    elif geo is not None:
        left_leg = geo
    else:
        raise _ambiguous(
            "cannot tell the left leg from the right: neither the toes nor the knees point "
            "clearly forward, and the names do not say"
        )
    hips = (hip0, hip1) if left_leg == 0 else (hip1, hip0)
    left_dir = _unit(sk.pos[:, hips[0]] - sk.pos[:, hips[1]])
    s0, s1 = arms[0][1], arms[1][1]
    apart = sk.pos[:, s0] - sk.pos[:, s1]
    side = np.median(np.sum(apart * left_dir, axis=-1)) / max(
        np.median(np.linalg.norm(apart, axis=-1)), 1e-12
    )
    geo, by_name = _pick(float(side), (_chain_side(sk, arms[0]), _chain_side(sk, arms[1])))
    if geo is not None and by_name is not None and geo != by_name:
        raise Contradiction(
            "cannot map the rig from its structure: the arms' names contradict the geometry "
            "(the arm named left is on the right leg's side)",
            MAPPING_FORMAT,
        )
    left_arm = geo if geo is not None else by_name
    if left_arm is None:
        raise _ambiguous("cannot tell the left arm from the right: the shoulders overlap")
    if geo is None:
        out.sides = "names"
    return left_leg, left_arm
