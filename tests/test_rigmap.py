"""Mapping any humanoid rig onto the 22 joints: presets, names, and the structure."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mosa.cli import main
from mosa.errors import MosaError
from mosa.motion.bvh import BVHData, read_bvh, write_bvh
from mosa.motion.retarget import PRESETS, auto_mapping, load_bvh
from mosa.motion.rigmap import map_structure, name_side
from mosa.motion.skeleton import JOINT_NAMES
from rig_variants import VARIANTS, write_nameless, write_variant

TARGET_MM = 5.0
BANDAI_TAKE = "dataset-1_walk-left_angry_001.bvh"
EXTRA = (
    "cmu-daz/01/01_01.bvh",
    "animated-drawings/cmu1_jumping_jacks.bvh",
    "animated-drawings/fair1_wave_hello.bvh",
    "animated-drawings/rokoko_jesse_dance.bvh",
)


@pytest.fixture(scope="session")
def bandai_clip(tiny_tar, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rigmap_bn") / BANDAI_TAKE
    with tarfile.open(tiny_tar) as tar:
        member = next(m for m in tar if m.name.endswith(BANDAI_TAKE))
        out.write_bytes(tar.extractfile(member).read())
    return out


@pytest.fixture(scope="session")
def extra_rigs(shared_data, tmp_path_factory) -> dict[str, Path]:
    """The Daz, AnimatedDrawings (CMU-ASF, fair1) and Rokoko clips, streamed out of the archive."""
    folder, found = tmp_path_factory.mktemp("rigmap_extra"), {}
    with tarfile.open(shared_data / "extra-mocap" / "extra-mocap.tar.xz", "r|xz") as tar:
        for member in tar:
            rel = member.name.removeprefix("extra-mocap/")
            if rel in EXTRA:
                found[rel] = folder / rel.replace("/", "_")
                found[rel].write_bytes(tar.extractfile(member).read())
                if len(found) == len(EXTRA):
                    break
    assert len(found) == len(EXTRA)
    return found


@pytest.fixture(scope="session")
def sources(bandai_clip, shared_data) -> dict[str, Path]:
    return {"bandai_namco": bandai_clip, "cmu": shared_data / "cmu" / "01_01.bvh"}


def _errors_mm(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    assert a.shape == b.shape
    d = np.linalg.norm(a.astype(np.float64) - b, axis=-1) * 1000
    return float(d.max()), float(d.mean())


# --------------------------------------------------------------------- renamed copies


@pytest.mark.parametrize("source", ["bandai_namco", "cmu"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_renamed_and_reboned_copies_import_like_the_original(source, variant, sources, tmp_path):
    original = load_bvh(sources[source])
    path = write_variant(sources[source], tmp_path, variant)
    assert read_bvh(path).names != read_bvh(sources[source]).names
    motion = load_bvh(path)
    worst, mean = _errors_mm(motion.joints, original.joints)
    assert worst <= TARGET_MM and mean <= TARGET_MM, (worst, mean)
    assert not motion.mirrored
    naming = VARIANTS[variant][0]
    if naming in ("joint_n", "german", "japanese"):  # names that no matcher reads
        assert motion.rig == "structure"


def test_twist_bones_named_like_their_bone_are_skipped(sources, tmp_path):
    # Rigify's split bones ("thigh.L.001" halfway down the thigh) read as the thigh by name;
    # the structure sees a joint straight in every frame and keeps the real hip.
    path = write_variant(sources["bandai_namco"], tmp_path, "rigify_inline_twist")
    data = read_bvh(path)
    by_name = auto_mapping(data.names, data.parents, data.global_positions()[0])
    assert by_name["left_hip"] == "thigh.L.001"
    motion = load_bvh(path)
    assert motion.mapping["left_hip"] == "thigh.L" and motion.mapping["right_elbow"] == "forearm.R"
    structure = map_structure(data)
    assert {"thigh.L.001", "forearm.R.001", "upper_arm.L.001"} <= structure.inline


# ------------------------------------------------------------ every real rig, nameless


def _real_rigs(sources, extra_rigs, shared_data) -> dict[str, Path]:
    return {
        **sources,
        "character_creator": shared_data / "cmu-iclone" / "002_01.bvh",
        **{rel.split("/")[-1]: path for rel, path in extra_rigs.items()},
    }


def test_every_real_rig_maps_from_its_structure_alone(sources, extra_rigs, shared_data, tmp_path):
    for name, path in _real_rigs(sources, extra_rigs, shared_data).items():
        original = load_bvh(path)
        assert original.rig != "structure"  # a preset or the name matcher, as before
        nameless = load_bvh(write_nameless(path, tmp_path / f"{name}.bvh"))
        assert nameless.rig == "structure"
        worst, mean = _errors_mm(nameless.joints, original.joints)
        assert worst <= TARGET_MM, (name, worst, mean)
        # the same joints, named joint_<file index>
        index = {n: k for k, n in enumerate(read_bvh(path).names)}
        for smpl, src in original.mapping.items():
            got = nameless.mapping[smpl]
            if src is None or got is None:
                assert src == got, (name, smpl)
            elif not src.endswith(".end"):
                assert got == f"joint_{index[src]}" or worst == 0.0, (name, smpl, src, got)


def test_imports_by_preset_and_names_are_unchanged(sources, extra_rigs, shared_data):
    # Rigs a preset or the name matcher maps keep that mapping: load_bvh equals an explicit
    # mapping to the same joints (the structure only checks them).
    for path in _real_rigs(sources, extra_rigs, shared_data).values():
        motion = load_bvh(path)
        if motion.rig in PRESETS:
            assert motion.mapping == load_bvh(path, mapping=motion.rig).mapping
        explicit = load_bvh(path, mapping=motion.mapping)
        np.testing.assert_array_equal(motion.joints, explicit.joints)


def test_names_settle_a_mirrored_file_as_the_name_matcher_does(sources, tmp_path):
    # Every left/right name swapped: the names call the geometric right leg left, as a
    # left-handed export does. Structure and names then agree to follow the names, and the
    # loader flags the clip mirrored (X negated) exactly as for a preset.
    src = sources["bandai_namco"]
    swapped = {
        n: n.replace("_L", "_T").replace("_R", "_L").replace("_T", "_R")
        for n in read_bvh(src).names
    }
    text = _rename(src.read_text(), swapped)
    path = tmp_path / "swapped.bvh"
    path.write_text(text)
    preset = load_bvh(path)
    assert preset.rig == "bandai_namco" and preset.mirrored
    german = {n: n.replace("_L", "_links").replace("_R", "_rechts") for n in swapped.values()}
    german = {k: v.replace("Hips", "Becken").replace("Spine", "Rumpf") for k, v in german.items()}
    path = tmp_path / "swapped_german.bvh"
    path.write_text(_rename(text, {k: german[k] for k in german}))
    data = read_bvh(path)
    assert map_structure(data).sides == "names"
    motion = load_bvh(path)
    assert motion.mirrored
    assert _errors_mm(motion.joints, preset.joints)[0] <= TARGET_MM


def test_side_words():
    for left in ("shoulder.L", "thigh_l", "lShin", "LeftArm", "Bip01 L Calf", "Oberarm_links",
                 "bras_gauche", "左腕", "mixamorig:LeftHand", "CC_Base_L_Foot"):  # fmt: skip
        assert name_side(left) == "L", left
    for right in ("hand.R", "calf_r", "RightUpLeg", "Unterarm_rechts", "右ひざ", "pie_derecho"):
        assert name_side(right) == "R", right
    for centre in ("Hips", "lowerback", "Spine1", "joint_17", "Hals", "頭", "Root"):
        assert name_side(centre) is None, centre


# --------------------------------------------------------------------------- bad input


def _rename(text: str, names: dict[str, str]) -> str:
    out = []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) == 2 and tokens[0] in ("ROOT", "JOINT") and tokens[1] in names:
            line = line.replace(tokens[1], names[tokens[1]])
        out.append(line)
    return "\n".join(out) + "\n"


def _subset(data: BVHData, keep: list[int]) -> BVHData:
    """``data`` with only the joints ``keep`` (each one's parent kept too, or none: a root)."""
    index = {j: k for k, j in enumerate(keep)}
    cols = data.channel_columns()
    return BVHData(
        names=[data.names[j] for j in keep],
        parents=np.array([index.get(int(data.parents[j]), -1) for j in keep]),
        offsets=data.offsets[keep],
        channels=[data.channels[j] for j in keep],
        frame_time=data.frame_time,
        motion=data.motion[:, np.concatenate([cols[j] for j in keep])],
        end_sites=[(index[j], o) for j, o in data.end_sites if j in index],
    )


def _nameless(sources, tmp_path) -> Path:
    return write_variant(sources["bandai_namco"], tmp_path, "joint_n")


def test_a_rig_without_legs_says_what_is_missing(sources, tmp_path):
    data = read_bvh(_nameless(sources, tmp_path))
    legs = {
        j
        for j, n in enumerate(read_bvh(sources["bandai_namco"]).names)
        if "Leg" in n or "Foot" in n or "Toes" in n
    }
    write_bvh(
        tmp_path / "nolegs.bvh", _subset(data, [j for j in range(data.num_joints) if j not in legs])
    )
    with pytest.raises(MosaError) as err:
        load_bvh(tmp_path / "nolegs.bvh")
    message = str(err.value)
    assert "left_hip" in message and "limb" in message and "two legs" in message
    assert "--mapping" in err.value.hint and "joint_0" in err.value.hint


def test_two_root_hierarchies_are_refused(sources, tmp_path):
    data = read_bvh(_nameless(sources, tmp_path))
    n = data.num_joints
    two = BVHData(
        names=data.names + [f"copy_{k}" for k in range(n)],
        parents=np.concatenate([data.parents, np.where(data.parents < 0, -1, data.parents + n)]),
        offsets=np.concatenate([data.offsets, data.offsets]),
        channels=data.channels * 2,
        frame_time=data.frame_time,
        motion=np.concatenate([data.motion, data.motion], axis=1),
    )
    write_bvh(tmp_path / "two.bvh", two)
    with pytest.raises(MosaError, match="2 skeletons") as err:
        load_bvh(tmp_path / "two.bvh")
    assert "one ROOT" in err.value.message + err.value.hint or "ROOT" in str(err.value)
    # Names a preset knows, but the legs cut off into a second hierarchy: still refused.
    named = read_bvh(sources["bandai_namco"])
    thighs = [named.names.index("UpperLeg_L"), named.names.index("UpperLeg_R")]
    named.parents[thighs] = -1
    write_bvh(tmp_path / "split.bvh", named)
    with pytest.raises(MosaError, match="ROOT hierarchies") as err:
        load_bvh(tmp_path / "split.bvh")
    assert "one skeleton" in err.value.hint


def test_a_mapping_naming_missing_joints_lists_them_all(sources, tmp_path):
    path = sources["bandai_namco"]
    mapping = dict(load_bvh(path).mapping)
    mapping |= {"head": "Haed", "left_knee": "Knee_L"}
    with pytest.raises(MosaError) as err:
        load_bvh(path, mapping=mapping)
    assert (
        "'Haed' (for head)" in err.value.message and "'Knee_L' (for left_knee)" in err.value.message
    )
    assert "Head" in err.value.hint  # the closest spelling
    file = tmp_path / "map.json"
    file.write_text(json.dumps({"head": "joint_99"}))
    with pytest.raises(MosaError, match="joint_99") as err:
        load_bvh(path, mapping=file)
    assert "JSON" in err.value.hint


def test_names_contradicting_the_geometry_are_refused(sources, tmp_path):
    # The arms' left/right names swapped, the legs' not: a name mapping would cross the arms.
    src = sources["bandai_namco"]
    arms = ("Shoulder", "UpperArm", "LowerArm", "Hand")
    swap = {f"{a}_{s}": f"{a}_{t}" for a in arms for s, t in (("L", "R"), ("R", "L"))}
    names = {n: swap.get(n, n).replace("_L", ".L").replace("_R", ".R") for n in read_bvh(src).names}
    path = tmp_path / "crossed.bvh"
    path.write_text(_rename(src.read_text(), names))
    with pytest.raises(MosaError, match="contradict") as err:
        load_bvh(path)
    assert "--mapping" in err.value.hint


def test_degenerate_rigs(sources, tmp_path):
    data = read_bvh(_nameless(sources, tmp_path))
    data.offsets[:] = 0.0
    data.motion[:] = 0.0
    write_bvh(tmp_path / "flat.bvh", data)
    with pytest.raises(MosaError, match="zero size"):
        load_bvh(tmp_path / "flat.bvh")
    one = _subset(read_bvh(sources["bandai_namco"]), [0])
    write_bvh(tmp_path / "one.bvh", one)
    with pytest.raises(MosaError, match="zero size") as err:  # one joint: no bones at all
        load_bvh(tmp_path / "one.bvh")
    assert err.value.hint


def test_a_static_straight_limb_with_helpers_is_ambiguous(sources, tmp_path):
    # One frame with straight arms and in-line twist bones: elbow or twist? Refused, not guessed.
    path = write_variant(sources["bandai_namco"], tmp_path, "joint_n_twist_fingers_shuffled")
    data = read_bvh(path)
    rest = BVHData(data.names, data.parents, data.offsets, data.channels, data.frame_time,
                   data.motion[:1].copy(), data.end_sites)  # fmt: skip
    for j, ch in enumerate(data.channels):  # zero every rotation: the rest pose
        cols = data.channel_columns()[j]
        for c, name in zip(cols, ch, strict=True):
            if name.endswith("rotation"):
                rest.motion[:, c] = 0.0
    try:
        result = map_structure(rest)
    except MosaError as e:
        assert "--mapping" in e.hint
    else:  # if it maps, the mapped joints must be the original's, never a twist bone
        assert not (set(result.mapping.values()) & result.inline)


def test_convert_cli_takes_a_renamed_rig(sources, tmp_path):
    path = write_variant(sources["bandai_namco"], tmp_path, "rigify")
    assert main(["convert", str(path), str(tmp_path / "out.npy")]) == 0
    joints = np.load(tmp_path / "out.npy")
    original = load_bvh(sources["bandai_namco"]).joints
    assert joints.shape[1:] in ((22, 3), (263,))
    if joints.shape[1:] == (22, 3):
        assert _errors_mm(joints, original)[0] <= TARGET_MM


def test_every_smpl_joint_is_mapped_or_interpolable(sources, tmp_path):
    result = map_structure(read_bvh(_nameless(sources, tmp_path)))
    assert set(result.mapping) == set(JOINT_NAMES)
    assert all(v is not None for k, v in result.mapping.items() if k not in ("spine2",))
