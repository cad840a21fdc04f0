"""BVH parsing, forward kinematics, retargeting onto the 22-joint body, and export."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mosa.errors import MosaError
from mosa.motion.bvh import read_bvh, save_bvh, write_bvh
from mosa.motion.retarget import auto_mapping, load_bvh, resample
from mosa.motion.skeleton import JOINT_NAMES

J = JOINT_NAMES.index
FEET = [J("left_ankle"), J("right_ankle"), J("left_foot"), J("right_foot")]
BANDAI_CLIPS = ("dataset-1_walk-left_tired_001.bvh", "dataset-1_dash_proud_001.bvh")

# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def bandai_dir(shared_data: Path, tmp_path_factory) -> Path:
    """Two Bandai-Namco clips streamed out of the archive (they are near its start)."""
    out = tmp_path_factory.mktemp("bandai")
    wanted = set(BANDAI_CLIPS)
    archive = shared_data / "bandai-namco" / "bandai-namco-motion.tar.xz"
    with tarfile.open(archive, "r|xz") as tf:
        for member in tf:
            name = Path(member.name).name
            if name in wanted:
                (out / name).write_bytes(tf.extractfile(member).read())
                wanted.discard(name)
                if not wanted:
                    break
    assert not wanted, f"clips not found in the archive: {wanted}"
    return out


@pytest.fixture(scope="session")
def cmu_file(shared_data: Path) -> Path:
    return shared_data / "cmu" / "01_01.bvh"


@pytest.fixture(scope="session")
def iclone_file(shared_data: Path) -> Path:
    return shared_data / "cmu-iclone" / "002_01.bvh"


# A 3-joint chain: root with 6 channels (Z X Y), a 3-channel joint in another order (X Y Z)
# and a 3-channel joint (Z Y X) ending in an End Site. Windows line endings, tabs and
# scientific notation on purpose.
TINY_3CH = "\r\n".join(
    [
        "HIERARCHY",
        "ROOT Root",
        "{",
        "\tOFFSET 0 0 0",
        "\tCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
        "\tJOINT A",
        "\t{",
        "\t\tOFFSET 0 10 0",
        "\t\tCHANNELS 3 Xrotation Yrotation Zrotation",
        "\t\tJOINT B",
        "\t\t{",
        "\t\t\tOFFSET 0.0 5.0e0 0.0",
        "\t\t\tCHANNELS 3 Zrotation Yrotation Xrotation",
        "\t\t\tEnd Site",
        "\t\t\t{",
        "\t\t\t\tOFFSET 0 1 0",
        "\t\t\t}",
        "\t\t}",
        "\t}",
        "}",
        "MOTION",
        "Frames:\t3",
        "Frame Time: 0.05",
        "1 2 3  0 0 0  0 0 0  0 0 0",
        "1 2 3  90 0 0  90 0 0  0 0 0",
        "0 0 0  9.0e1 9.0E+01 0  0 0 0  0 0 0",
        "",
    ]
)


def _write(tmp_path: Path, text: str, name: str = "clip.bvh") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


# ------------------------------------------------------------------- parsing and FK


def test_three_channel_fk_matches_hand_computation(tmp_path):
    data = read_bvh(_write(tmp_path, TINY_3CH))
    assert data.names == ["Root", "A", "B"]
    assert list(data.parents) == [-1, 0, 1]
    assert data.frame_time == pytest.approx(0.05) and data.num_frames == 3
    assert len(data.end_sites) == 1 and data.end_sites[0][0] == 2
    pos = data.global_positions()
    # Frame 0: no rotation, root at (1, 2, 3): the offsets stack up along +Y.
    np.testing.assert_allclose(pos[0], [[1, 2, 3], [1, 12, 3], [1, 17, 3]], atol=1e-9)
    # Frame 1: root turns 90 deg about Z, so A's offset (0,10,0) becomes (-10,0,0); A turns
    # 90 deg about X, so B's offset (0,5,0) becomes (0,0,5) in A's frame, which Rz leaves as is.
    np.testing.assert_allclose(pos[1], [[1, 2, 3], [-9, 2, 3], [-9, 2, 8]], atol=1e-9)
    # Frame 2: root Z=90 then X=90, intrinsic: Rz(90) Rx(90) (0,10,0) = Rz(90) (0,0,10)
    # = (0,0,10) (extrinsic order would give (-10,0,0)); B adds (0,0,5) the same way.
    np.testing.assert_allclose(pos[2], [[0, 0, 0], [0, 0, 10], [0, 0, 15]], atol=1e-9)


def test_six_channel_positions_replace_offsets(tmp_path):
    text = "\n".join(
        [
            "HIERARCHY",
            "ROOT joint_Root",
            "{",
            "  OFFSET 0 0 0",
            "  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
            "  JOINT Child",
            "  {",
            "    OFFSET 0 99 0",
            "    CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
            "    End Site",
            "    {",
            "      OFFSET 0 0 0",
            "    }",
            "  }",
            "}",
            "MOTION",
            "Frames: 2",
            "Frame Time: 0.0333333",
            "5 0 0 0 0 0   0 10 0 0 0 0",
            "5 0 0 0 0 90  0 0 10 0 0 0",
        ]
    )
    pos = read_bvh(_write(tmp_path, text)).global_positions()
    # The child's position channels (0,10,0), not its OFFSET (0,99,0), place it.
    np.testing.assert_allclose(pos[0], [[5, 0, 0], [5, 10, 0]], atol=1e-9)
    # Ry(90) takes (0,0,10) to (10,0,0): x' = x cos + z sin.
    np.testing.assert_allclose(pos[1], [[5, 0, 0], [15, 0, 0]], atol=1e-9)


def _line_of(text: str, needle: str) -> int:
    """1-based number of the first line containing ``needle``."""
    return next(i + 1 for i, ln in enumerate(text.splitlines()) if needle in ln)


def _malformed_cases():
    lines = TINY_3CH.split("\r\n")
    frame1 = "1 2 3  90 0 0  90 0 0  0 0 0"
    yield "truncated hierarchy", "\n".join(lines[:12]), len(lines[:12]), "truncated"
    yield "truncated frames", "\n".join(lines[:-2]), _line_of(TINY_3CH, frame1), "truncated"
    wrong = TINY_3CH.replace(frame1, "1 2 3  90 0 0  90 0 0  0 0")
    yield "channel count", wrong, _line_of(TINY_3CH, frame1), "11 values"
    bad = TINY_3CH.replace(frame1, "1 2 3  90 0 0  abc 0 0  0 0 0")
    yield "non-numeric", bad, _line_of(TINY_3CH, frame1), "'abc'"
    more = TINY_3CH.replace("Frames:\t3", "Frames:\t2")
    yield "frames mismatch", more, _line_of(TINY_3CH, "9.0e1"), "Frames: 2"
    zero = "\n".join(lines[: lines.index("MOTION") + 1] + ["Frames: 0", "Frame Time: 0.05"])
    yield "zero frames", zero, _line_of(zero, "Frames: 0"), "zero frames"
    offset = TINY_3CH.replace("OFFSET 0 10 0", "OFFSET 0 10")
    yield "short offset", offset, _line_of(TINY_3CH, "OFFSET 0 10 0"), "OFFSET"
    chans = TINY_3CH.replace("CHANNELS 3 Xrotation", "CHANNELS 2 Xrotation")
    yield "channels count", chans, _line_of(TINY_3CH, "CHANNELS 3 Xrotation"), "CHANNELS"


@pytest.mark.parametrize("case", list(_malformed_cases()), ids=lambda c: c[0])
def test_malformed_bvh_names_file_and_line(tmp_path, case):
    _, text, line, words = case
    path = _write(tmp_path, text)
    with pytest.raises(MosaError) as err:
        read_bvh(path)
    message = str(err.value)
    assert str(path) in message and f"line {line}:" in message and words in message
    assert err.value.hint  # every error says how to fix it


def test_missing_file_and_unknown_rig(tmp_path):
    with pytest.raises(MosaError, match="not found"):
        read_bvh(tmp_path / "nope.bvh")
    # The tiny chain has no legs or arms: the message lists what is missing and how to map.
    with pytest.raises(MosaError) as err:
        load_bvh(_write(tmp_path, TINY_3CH))
    message = str(err.value)
    for joint in ("pelvis", "left_hip", "left_wrist", "head"):
        assert joint in message
    assert "JSON" in err.value.hint and "Root" in err.value.hint


# ----------------------------------------------------------------------- retargeting


def _check_body(joints: np.ndarray) -> None:
    """Checks that hold for any human clip, computed independently of the loader."""
    assert joints.dtype == np.float32 and joints.shape[1:] == (22, 3)
    assert np.isfinite(joints).all()
    y = joints[..., 1]
    # Feet on the floor: lowest foot joint at 0, and in most frames a foot is near it.
    assert y[:, FEET].min() == pytest.approx(0.0, abs=1e-5)
    assert np.median(y[:, FEET].min(axis=1)) < 0.1
    # Head above pelvis above the feet, in (almost) every frame.
    assert np.mean(y[:, J("head")] > y[:, J("pelvis")]) > 0.95
    assert np.mean(y[:, J("pelvis")] > y[:, FEET].max(axis=1)) > 0.95
    # Size: the head joint sits at the skull base, 0.1-0.25 m below the crown of a
    # 1.4-2.0 m person, so its standing height is 1.2-1.9 m.
    assert 1.2 < np.median(y[:, J("head")]) < 1.9
    # Left is left: with the body's left (left_hip - right_hip) as +X and up as +Y the
    # facing direction is +Z = X x Y. Whenever a foot is planted its toes point that way,
    # and a bent knee sticks out that way from the hip-ankle line. A mirror flips both.
    across = joints[:, J("left_hip")] - joints[:, J("right_hip")]
    facing = np.cross(across, [0.0, 1.0, 0.0])
    for side in ("left", "right"):
        hip, knee = joints[:, J(f"{side}_hip")], joints[:, J(f"{side}_knee")]
        ankle, toe = joints[:, J(f"{side}_ankle")], joints[:, J(f"{side}_foot")]
        planted = toe[:, 1] < 0.05
        assert planted.mean() > 0.2
        assert np.mean(np.sum(facing * (toe - ankle), axis=-1)[planted] > 0) > 0.8
        bend = knee - (hip + ankle) / 2
        bent = np.linalg.norm(bend, axis=-1) > 0.03
        assert np.mean(np.sum(facing * bend, axis=-1)[bent] > 0) > 0.8


def test_cmu_loads_at_20fps(cmu_file):
    motion = load_bvh(cmu_file)
    assert motion.rig == "cmu" and motion.source_fps == 120 and motion.source_frames == 2752
    assert motion.unit == "cmu" and motion.up_axis == "+Y" and not motion.mirrored
    # 2752 frames at 120 fps last 2751/120 s; at 20 fps that is 458.5 intervals -> 459 frames.
    assert motion.joints.shape == (459, 22, 3) and motion.fps == 20
    assert len(motion.source_joint_names) == 31
    _check_body(motion.joints)


def test_bandai_clips_load(bandai_dir):
    for name in BANDAI_CLIPS:
        motion = load_bvh(bandai_dir / name)
        assert motion.rig == "bandai_namco" and motion.unit == "cm" and not motion.mirrored
        assert motion.source_fps == 30
        expected = int(np.floor((motion.source_frames - 1) * 20 / 30)) + 1
        assert motion.joints.shape == (expected, 22, 3)
        assert motion.mapping["spine2"] is None  # two spine bones only: spine2 interpolated
        spine = motion.joints[:, [J("spine1"), J("spine2"), J("spine3")]]
        np.testing.assert_allclose(spine[:, 1], spine[:, [0, 2]].mean(axis=1), atol=1e-6)
        _check_body(motion.joints)


def test_name_matcher_agrees_with_presets(cmu_file, bandai_dir):
    for path in (cmu_file, bandai_dir / BANDAI_CLIPS[0]):
        data = read_bvh(path)
        preset = load_bvh(path).mapping
        assert auto_mapping(data.names, data.parents, data.global_positions()[0]) == preset


ICLONE_MAPPING = {
    "pelvis": "CC_Base_Hip", "spine1": "CC_Base_Waist", "spine2": "CC_Base_Spine01",
    "spine3": "CC_Base_Spine02", "neck": "CC_Base_NeckTwist01", "head": "CC_Base_Head",
    **{
        f"{side}_{smpl}": f"CC_Base_{s}_{cc}"
        for side, s in (("left", "L"), ("right", "R"))
        for smpl, cc in (
            ("hip", "Thigh"), ("knee", "Calf"), ("ankle", "Foot"), ("foot", "ToeBase"),
            ("collar", "Clavicle"), ("shoulder", "Upperarm"), ("elbow", "Forearm"),
            ("wrist", "Hand"),
        )
    },
}  # fmt: skip


def test_iclone_rig_is_matched_by_name(iclone_file):
    motion = load_bvh(iclone_file)
    assert motion.rig == "auto" and motion.mapping == ICLONE_MAPPING
    assert len(motion.source_joint_names) == 101  # RL_BoneRoot + the 100 CC_Base bones
    assert motion.source_fps == 60 and motion.source_frames == 171
    assert motion.joints.shape == (int(170 * 20 / 60) + 1, 22, 3) and motion.unit == "cm"
    _check_body(motion.joints)


def _rotate_whole_file(data, rot: np.ndarray):
    """Turn a parsed BVH's world by ``rot`` (3x3) by changing its root channels only."""
    cols = data.channel_columns()[0]
    channels = data.channels[0]
    pos = [cols[channels.index(c)] for c in ("Xposition", "Yposition", "Zposition")]
    ang = [cols[i] for i, c in enumerate(channels) if c.endswith("rotation")]
    seq = "".join(c[0] for c in channels if c.endswith("rotation"))
    root = Rotation.from_euler(seq, data.motion[:, ang], degrees=True)
    turned = Rotation.from_matrix(rot) * root
    data.motion[:, ang] = turned.as_euler(seq, degrees=True)
    data.motion[:, pos] = data.motion[:, pos] @ rot.T
    data.offsets[0] = rot @ data.offsets[0]
    return data


def test_z_up_file_is_turned_to_y_up(iclone_file, tmp_path):
    # The iClone clip is Y-up once its root rotation applies; turning its world +90 deg about
    # X makes it Z-up (y -> z, z -> -y). Loading must undo exactly that turn.
    data = _rotate_whole_file(read_bvh(iclone_file), Rotation.from_euler("x", 90, True).as_matrix())
    write_bvh(tmp_path / "zup.bvh", data)
    z_up = load_bvh(tmp_path / "zup.bvh")
    assert z_up.up_axis == "+Z" and not z_up.mirrored
    np.testing.assert_allclose(z_up.joints, load_bvh(iclone_file).joints, atol=1e-4)


def _renamed(text: str, names: dict[str, str]) -> str:
    """Rename joints in BVH text (whole names on ROOT/JOINT lines)."""
    out = []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) == 2 and tokens[0] in ("ROOT", "JOINT") and tokens[1] in names:
            line = line.replace(tokens[1], names[tokens[1]])
        out.append(line)
    return "\n".join(out) + "\n"


def test_json_mapping_for_unknown_rig(bandai_dir, tmp_path):
    path = bandai_dir / BANDAI_CLIPS[0]
    original = load_bvh(path)
    data = read_bvh(path)
    # Names that say nothing about the body: neither a preset nor the matcher can map them;
    # the skeleton's structure does (tests/test_rigmap.py), and a JSON mapping still rules.
    opaque = {n: f"bone{k:02d}" for k, n in enumerate(data.names)}
    renamed = _write(tmp_path, _renamed(path.read_text(), opaque), "opaque.bvh")
    by_structure = load_bvh(renamed)
    assert by_structure.rig == "structure"
    np.testing.assert_allclose(by_structure.joints, original.joints, atol=1e-6)
    mapping = {
        smpl: (None if src is None else opaque[src]) for smpl, src in original.mapping.items()
    }
    mapping_file = tmp_path / "map.json"
    mapping_file.write_text(json.dumps(mapping, indent=1))
    motion = load_bvh(renamed, mapping=mapping_file)
    assert motion.rig == "custom" and motion.mapping == mapping
    np.testing.assert_allclose(motion.joints, original.joints, atol=1e-6)
    # A dict works the same; a wrong source name is reported with the close matches.
    assert np.allclose(load_bvh(renamed, mapping=mapping).joints, original.joints, atol=1e-6)
    with pytest.raises(MosaError, match="bone99"):
        load_bvh(renamed, mapping={**mapping, "head": "bone99"})
    broken = tmp_path / "broken.json"
    broken.write_text('{\n "pelvis": "bone01",\n "head" "bone05"\n}\n')
    with pytest.raises(MosaError, match="line 3"):
        load_bvh(renamed, mapping=broken)
    with pytest.raises(MosaError, match="preset"):
        load_bvh(renamed, mapping="not-a-preset")


def _rig_names(left: dict[str, str], centre: dict[str, str], sides: tuple[str, str]):
    """SMPL joint -> a rig's name, from the left side's names (``sides`` = (left, right))."""
    out = dict(centre)
    for part, name in left.items():
        out[f"left_{part}"] = name
        out[f"right_{part}"] = name.replace(*sides)
    return out


PARTS = ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist")
RIGS = {
    # Mixamo, with its namespace prefix: a preset.
    "mixamo": _rig_names(
        dict(zip(PARTS, ("LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "LeftShoulder",
                         "LeftArm", "LeftForeArm", "LeftHand"), strict=True)),
        dict(pelvis="Hips", spine1="Spine", spine2="Spine1", spine3="Spine2", neck="Neck",
             head="Head"),
        ("Left", "Right"),
    ),
    # Unreal mannequin and 3ds Max Biped (names with spaces): found by the name matcher.
    "auto": _rig_names(
        dict(zip(PARTS, ("thigh_l", "calf_l", "foot_l", "ball_l", "clavicle_l", "upperarm_l",
                         "lowerarm_l", "hand_l"), strict=True)),
        dict(pelvis="pelvis", spine1="spine_01", spine2="spine_02", spine3="spine_03",
             neck="neck_01", head="head"),
        ("_l", "_r"),
    ),
    "biped": _rig_names(
        dict(zip(PARTS, ("Bip01 L Thigh", "Bip01 L Calf", "Bip01 L Foot", "Bip01 L Toe0",
                         "Bip01 L Clavicle", "Bip01 L UpperArm", "Bip01 L Forearm",
                         "Bip01 L Hand"), strict=True)),
        dict(pelvis="Bip01 Pelvis", spine1="Bip01 Spine", spine2="Bip01 Spine1",
             spine3="Bip01 Spine2", neck="Bip01 Neck", head="Bip01 Head"),
        (" L ", " R "),
    ),
}  # fmt: skip


@pytest.mark.parametrize("rig", list(RIGS))
def test_other_rig_names_are_recognised(rig, smpl_joints, tmp_path):
    save_bvh(tmp_path / "mosa.bvh", smpl_joints, fps=20)
    names = RIGS[rig]
    prefix = "mixamorig:" if rig == "mixamo" else ""
    text = _renamed((tmp_path / "mosa.bvh").read_text(), {k: prefix + v for k, v in names.items()})
    motion = load_bvh(_write(tmp_path, text, f"{rig}.bvh"))
    assert motion.rig == ("mixamo" if rig == "mixamo" else "auto")
    assert motion.mapping == {k: prefix + names[k] for k in JOINT_NAMES}
    np.testing.assert_allclose(motion.joints, smpl_joints, atol=1e-4)


# ---------------------------------------------------------------------------- export


@pytest.fixture(scope="session")
def smpl_joints(hml_sample: Path) -> np.ndarray:
    """HumanML3D joints (T, 22, 3) of a real clip, floor at the lowest foot joint."""
    joints = np.load(hml_sample / "012314_new_joints.npy").astype(np.float64)
    return joints - [0.0, joints[:, FEET, 1].min(), 0.0]


def test_save_bvh_writes_a_standard_skeleton(smpl_joints, tmp_path):
    save_bvh(tmp_path / "out.bvh", smpl_joints, fps=20)
    data = read_bvh(tmp_path / "out.bvh")
    assert sorted(data.names) == sorted(JOINT_NAMES) and data.names[0] == "pelvis"
    assert len(data.channels[0]) == 6 and all(len(c) == 3 for c in data.channels[1:])
    ends = sorted(data.names[j] for j, _ in data.end_sites)
    assert ends == sorted(["head", "left_wrist", "right_wrist", "left_foot", "right_foot"])
    assert data.frame_time == pytest.approx(0.05) and data.num_frames == len(smpl_joints)
    # Centimetres: the thigh is ~0.39 m in HumanML3D's body, so ~39 in the file.
    thigh = np.linalg.norm(data.offsets[data.names.index("left_knee")])
    assert 35 < thigh < 45
    assert list(tmp_path.iterdir()) == [tmp_path / "out.bvh"]  # no temporary left behind


def test_round_trip_is_within_a_centimetre(smpl_joints, cmu_file, tmp_path):
    save_bvh(tmp_path / "hml.bvh", smpl_joints, fps=20)
    back = load_bvh(tmp_path / "hml.bvh")
    assert back.rig == "mosa" and back.unit == "cm" and back.joints.shape == smpl_joints.shape
    error = np.linalg.norm(back.joints - smpl_joints, axis=-1)
    assert error.mean() < 0.01 and error.max() < 0.02
    # A retargeted clip stretches bones (interpolated joints): still under 1 cm on average.
    cmu = load_bvh(cmu_file).joints
    save_bvh(tmp_path / "cmu.bvh", cmu, fps=20)
    error = np.linalg.norm(load_bvh(tmp_path / "cmu.bvh").joints - cmu, axis=-1)
    assert error.mean() < 0.01


def test_mirrored_input_is_detected(smpl_joints, tmp_path):
    # Negating X turns the body into its mirror image (left side on the right).
    save_bvh(tmp_path / "mirror.bvh", smpl_joints * [-1.0, 1.0, 1.0], fps=20)
    back = load_bvh(tmp_path / "mirror.bvh")
    assert back.mirrored
    np.testing.assert_allclose(back.joints, smpl_joints, atol=1e-3)


def test_save_bvh_rejects_bad_input_without_writing(tmp_path):
    with pytest.raises(MosaError, match=r"\(T, 22, 3\)"):
        save_bvh(tmp_path / "bad.bvh", np.zeros((10, 21, 3)))
    assert not any(tmp_path.iterdir())


def test_resample_is_linear_in_time():
    # Positions moving at constant speed: resampling must land exactly on the line.
    t = np.arange(13) / 60.0  # 13 frames at 60 fps = 0.2 s
    x = np.stack([t * 3.0, t * -1.0, np.ones_like(t)], axis=-1)[:, None, :]
    out = resample(x, 60.0, 20.0)
    assert out.shape == (5, 1, 3)  # 0.2 s at 20 fps: frames at 0, 0.05, ..., 0.2
    t_out = np.arange(5) / 20.0
    np.testing.assert_allclose(out[:, 0, 0], t_out * 3.0, atol=1e-12)
    np.testing.assert_allclose(resample(x, 60.0, 25.0)[:, 0, 1], np.arange(6) / 25 * -1.0)


def test_write_bvh_exact_precision_keeps_every_value(cmu_file, tmp_path):
    from mosa.motion.bvh import read_bvh, write_bvh

    data = read_bvh(cmu_file)
    rng = np.random.default_rng(0)
    data.motion = data.motion[:20] + rng.normal(size=data.motion[:20].shape) * 1e-7
    write_bvh(tmp_path / "exact.bvh", data, precision=None)
    write_bvh(tmp_path / "six.bvh", data)
    assert np.array_equal(read_bvh(tmp_path / "exact.bvh").motion, data.motion)
    assert not np.array_equal(read_bvh(tmp_path / "six.bvh").motion, data.motion)
    assert np.array_equal(read_bvh(tmp_path / "exact.bvh").offsets, data.offsets)
