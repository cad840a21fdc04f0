"""One builder for many corpora: CMU (Daz rig), DeepMimic, AnimatedDrawings, users' folders.

The pieces come from the shared extra-mocap tarball (one streaming pass, cached per process).
"""

from __future__ import annotations

import atexit
import csv
import functools
import json
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import BANDAI_TAKES, SHARED_DATA
from mosa.data import cmu
from mosa.data.actions import actions_in, bandai_actions
from mosa.data.build import build_dataset, clip_names, stratified_split, windows
from mosa.data.captions import clip_captions
from mosa.data.corpora import discover, label_captions, read_caption_file
from mosa.data.dataset import MotionDataset, read_split, read_texts
from mosa.errors import MosaError
from mosa.motion.bvh import read_bvh
from mosa.motion.retarget import handedness, load_bvh
from mosa.motion.skeleton import JOINT_NAMES

J = JOINT_NAMES.index
FEET = [J("left_ankle"), J("right_ankle"), J("left_foot"), J("right_foot")]
EXTRA_TAR = SHARED_DATA / "extra-mocap" / "extra-mocap.tar.xz"
PIECES = (
    "cmu-daz/CMU-INDEX.md",
    "cmu-daz/kitml_captions.json",
    "cmu-daz/07/07_01.bvh",  # walk, 2.6 s
    "cmu-daz/08/08_01.bvh",  # walk with a KIT-ML sentence
    "cmu-daz/13/13_11.bvh",  # forward jump, 3.5 s
    "cmu-daz/13/13_30.bvh",  # jumping jacks, side twists, squats, jog: 20.5 s
    "cmu-daz/09/09_01.bvh",  # run, 1.2 s: too short
    "deepmimic/humanoid3d_character.txt",
    "deepmimic/humanoid3d_walk.txt",  # wrap, 1.27 s
    "deepmimic/humanoid3d_kick.txt",  # none, 1.53 s
    "deepmimic/humanoid3d_backflip.txt",  # wrap, 1.75 s at 16 fps
    "animated-drawings/cmu1_jumping_jacks.bvh",
    "animated-drawings/fair1_wave_hello.bvh",
)


@functools.cache
def extra_mocap() -> Path:
    """A folder with ``PIECES`` of the extra-mocap tarball, laid out as in the tarball."""
    root = Path(tempfile.mkdtemp(prefix="mosa-extra-"))
    atexit.register(shutil.rmtree, root, True)
    wanted = {f"extra-mocap/{p}" for p in PIECES}
    with tarfile.open(EXTRA_TAR, "r|xz") as tar:
        for member in tar:
            if member.name in wanted:
                target = root / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                wanted.discard(member.name)
                if not wanted:
                    break
    assert not wanted, f"not in the tarball: {wanted}"
    return root / "extra-mocap"


@pytest.fixture(scope="session")
def extra() -> Path:
    return extra_mocap()


def _body_checks(joints: np.ndarray) -> None:
    """Feet on the floor, head above the pelvis, knees and toes forward (left is left)."""
    y = joints[..., 1]
    assert y[:, FEET].min() == pytest.approx(0.0, abs=1e-5)
    assert np.median(y[:, FEET].min(axis=1)) < 0.06
    assert np.mean(y[:, J("head")] > y[:, J("pelvis")] + 0.3) > 0.95
    assert handedness(joints) > 0.25


# ----------------------------------------------------------------------------------------------
# Rigs: Daz, AnimatedDrawings


def test_daz_rig_imports_with_toes_from_end_sites(extra):
    path = extra / "cmu-daz" / "07" / "07_01.bvh"
    motion = load_bvh(path, start_frame=cmu.rest_pose_frames(read_bvh(path)))
    assert motion.rig == "daz" and motion.unit == "cm" and motion.up_axis == "+Y"
    assert motion.mapping["left_foot"] == "lFoot.end" and motion.mapping["left_hip"] == "lThigh"
    assert motion.mapping["spine2"] is None and motion.mapping["right_shoulder"] == "rShldr"
    _body_checks(motion.joints)
    # the toe sits 12.7 cm in front of the ankle, as the file's End Site offset says
    toe = np.linalg.norm(
        motion.joints[:, J("left_foot")] - motion.joints[:, J("left_ankle")], axis=-1
    )
    np.testing.assert_allclose(toe, 0.127, atol=0.002)


def test_daz_rest_pose_frames_are_dropped(extra):
    bvh = read_bvh(extra / "cmu-daz" / "07" / "07_01.bvh")
    assert np.abs(bvh.motion[0, 3:6]).max() == 0  # the conversion's rest pose
    start = cmu.rest_pose_frames(bvh)
    assert 1 <= start <= 12
    kept = load_bvh(bvh.path, fps=None, start_frame=start)
    assert kept.joints.shape[0] == bvh.num_frames - start and kept.source_frames == 317
    # with the rest pose left in, the first frames swing the feet 5 cm off their later level
    whole = load_bvh(bvh.path, fps=None)
    low = lambda m: m.joints[:, FEET, 1].min(axis=1)  # noqa: E731
    assert abs(low(kept)[0] - np.median(low(kept))) < abs(low(whole)[0] - np.median(low(whole)))


def test_true_frame_rate_doubles_the_frames_of_a_60_fps_trial(extra):
    path = extra / "cmu-daz" / "13" / "13_11.bvh"
    header = load_bvh(path, start_frame=4)
    true = load_bvh(path, start_frame=4, source_fps=60)
    assert header.source_fps == 120 and true.source_fps == 60
    # each frame lasts 1/60 s instead of 1/120 s: twice the duration, twice the 20 fps frames
    n = header.source_frames - 4
    assert len(header.joints) == (n - 1) // 6 + 1 and len(true.joints) == (n - 1) // 3 + 1
    assert cmu.true_fps(120, 60) == 60 and cmu.true_fps(60, 120) is None
    assert cmu.true_fps(120, 120) is None and cmu.true_fps(120, None) is None


@pytest.mark.parametrize(
    "name, rig, up",
    [("cmu1_jumping_jacks", "cmu_asf", "+Y"), ("fair1_wave_hello", "animated_drawings", "+Z")],
)
def test_animated_drawings_rigs(extra, name, rig, up):
    motion = load_bvh(extra / "animated-drawings" / f"{name}.bvh")
    assert motion.rig == rig and motion.up_axis == up and not motion.mirrored
    _body_checks(motion.joints)
    j = motion.joints
    if name == "fair1_wave_hello":  # the right hand waves: up by the head, the left hangs
        assert (j[:, J("right_wrist"), 1] - j[:, J("head"), 1]).max() > -0.2
        assert (j[:, J("left_wrist"), 1] < j[:, J("left_shoulder"), 1]).all()
    else:  # jumping jacks: both wrists go above the head
        for side in ("left", "right"):
            assert (j[:, J(f"{side}_wrist"), 1] > j[:, J("head"), 1]).mean() > 0.2


# ----------------------------------------------------------------------------------------------
# Captions and actions


def test_cmu_descriptions_read_as_english():
    rng = np.random.default_rng(0)
    caps = cmu.take_captions(cmu.english("jumping jacks, side twists, bend over, squats"), rng, 6)
    assert len(caps) >= 3
    for c in caps:
        assert re.fullmatch(r"[a-z][a-z ,'-]+\.", c), c
        assert "jumping jacks" in c and "bends over" in c and re.search(r"squats\.$", c), c
        assert re.search(r"(does side twists|twists from side to side)", c), c
    basket = cmu.take_captions(cmu.english("basketball - forward dribble"), rng, 3)
    assert all("dribbles a basketball" in c and c.count("basketball") == 1 for c in basket)
    assert cmu.english("run/jog").phrases == [("runs", "jogs")]
    assert cmu._phrase("stretch arms") == ("stretches arms",)  # not in the table: conjugated


def test_window_captions_never_claim_every_action():
    rng = np.random.default_rng(0)
    several = cmu.english("jumping jacks, side twists, squats, jog")
    for c in cmu.window_captions(several, rng):
        assert c.startswith(cmu.WINDOW_PREFIX) or "jumping" not in c
    assert any("exercises" in c for c in cmu.window_captions(several, rng))
    single = cmu.english("climb ladder")
    assert all("ladder" in c for c in cmu.window_captions(single, rng))
    assert cmu.holds_for_windows("A person walks forward.")
    assert not cmu.holds_for_windows("A person hops 4 times, turns around and hops back.")


def test_kit_sentences_are_filtered(extra):
    good, rejected = cmu.read_kit(extra / "cmu-daz" / "kitml_captions.json")
    assert [r["trial"] for r in rejected] == ["13_07"] and "spam" in rejected[0]["reason"]
    assert good["08_01"] == ["A person is slowly and casually walking forward with swinging arms."]
    assert cmu.kit_reject_reason("walks") == "too short"
    assert "not English" in cmu.kit_reject_reason("Eine Person geht langsam vorwärts.")
    assert cmu.kit_reject_reason("Person taking a hand shower") is None


def test_actions_from_text_and_bandai_labels():
    assert actions_in("a person does jumping jacks, then walks backwards") == [
        "walk backwards",
        "jumping jacks",
    ]
    assert actions_in("someone raises their left hand") == ["raise hands"]
    assert actions_in("a person raises a leg above hip height") == []
    assert bandai_actions("walk-turn-right") == ["walk", "turn"]
    assert bandai_actions("walk-back") == ["walk backwards"]
    assert bandai_actions("byebye") == ["wave"] and bandai_actions("dash") == ["run"]
    assert bandai_actions("walk-left") == ["walk"] and bandai_actions("guide") == []
    assert label_captions("wave_hello_02", 0)[0].endswith("waves hello.")
    assert label_captions("01_02", 0) == []


# ----------------------------------------------------------------------------------------------
# Windows and splits


def test_windows_by_hand():
    assert windows(150, 196) == [(0, 151)]
    assert windows(196, 196) == [(0, 197)]
    assert windows(197, 196) == [(0, 99), (98, 197)]  # 2 x 98 feature frames
    assert windows(410, 196) == [(0, 137), (136, 273), (272, 409)]  # 136 each, 2 dropped
    assert clip_names("cmu_13_30", 1) == ["cmu_13_30"]
    assert clip_names("cmu_13_30", 2) == ["cmu_13_30_w1", "cmu_13_30_w2"]


def test_stratified_split_puts_rare_actions_in_test():
    takes = {f"walk{i:02d}": ["walk"] for i in range(30)}
    takes |= {"cart1": ["cartwheel"], "cart2": ["cartwheel", "walk"], "cart3": ["cartwheel"]}
    takes |= {"flip1": ["flip"], "flip2": ["flip"], "none1": [], "none2": []}
    assign = stratified_split(takes, seed=0)
    assert set(assign) == set(takes)
    assert sorted(assign[f"cart{i}"] for i in (1, 2, 3)) == ["test", "train", "val"]
    assert assign["flip1"] == assign["flip2"] == "train"  # 2 takes: both train
    walk = [assign[n] for n, a in takes.items() if "walk" in a]
    assert walk.count("test") == walk.count("val") == 3  # 10% of 31, with cart2 counted
    assert stratified_split(dict(reversed(list(takes.items()))), seed=0) == assign
    assert stratified_split(takes, seed=1) != assign


# ----------------------------------------------------------------------------------------------
# Builds


@pytest.fixture(scope="session")
def merged(tiny_tar, tmp_path_factory) -> tuple[Path, dict]:
    """Bandai-Namco (tiny tar) + the extra-mocap pieces, one build."""
    out = tmp_path_factory.mktemp("merged") / "data"
    manifest = build_dataset([tiny_tar, extra_mocap()], out, workers=1, progress=False)
    return out, manifest


def _texts(out: Path, name: str) -> list[str]:
    return [t.caption for t in read_texts(out / "texts" / f"{name}.txt")]


def test_merged_build_holds_every_corpus(merged):
    out, manifest = merged
    counts = manifest["counts"]
    assert set(counts["sources"]) == {"bandai-namco", "cmu", "deepmimic", "animated-drawings"}
    assert counts["sources"]["bandai-namco"]["clips"] == 8  # 4 takes + mirrors, as alone
    assert manifest["licences"]["bandai-namco"].startswith("CC BY-NC 4.0")
    assert "MIT" in manifest["licences"]["deepmimic"] and manifest["citations"]
    assert manifest["skipped_short"] == ["cmu_09_01", "dataset-1_run_normal_001"]
    names = read_split(out, "all")
    assert sum(counts["sources"][k]["clips"] for k in counts["sources"]) == len(names)
    for name in names:  # every clip has features, joints, captions and actions
        assert np.load(out / "new_joint_vecs" / f"{name}.npy").shape[1] == 263
        assert 40 <= len(np.load(out / "new_joints" / f"{name}.npy")) <= 196 or name.startswith(
            ("dataset-", "Mdataset-")
        )
        assert read_texts(out / "texts" / f"{name}.txt")
    actions = json.loads((out / "actions.json").read_text())
    assert set(actions) == set(names)
    assert actions["dataset-1_walk-left_sad_001"] == ["walk"]
    assert actions["dataset-1_bow_normal_001"] == ["bow"]
    assert actions["ad_cmu1_jumping_jacks"] == ["jumping jacks"]
    assert actions["deepmimic_backflip"] == ["flip"] and "kick" in actions["deepmimic_kick"]
    assert counts["actions"]["walk"]["clips"] == sum("walk" in a for a in actions.values())
    assert manifest["clips"]["cmu_07_01"]["licence"] == "CMU-free-research-and-commercial"
    ds = MotionDataset(out, "train", random_crop=False, seed=0)
    assert ds.feature_dim == 263 and len(ds) > 10


def test_bandai_clips_keep_their_captions_and_split(merged, tiny_tar, tmp_path):
    out, _ = merged
    alone = tmp_path / "alone"
    build_dataset(tiny_tar, alone, workers=1, progress=False)
    for take in BANDAI_TAKES[:4]:
        for name in (take, "M" + take):
            assert _texts(out, name) == _texts(alone, name) == clip_captions(name)
            np.testing.assert_array_equal(
                np.load(out / "new_joint_vecs" / f"{name}.npy"),
                np.load(alone / "new_joint_vecs" / f"{name}.npy"),
            )
    for split in ("train", "val", "test"):
        bandai = [n for n in read_split(out, split) if "dataset-" in n]
        assert bandai == read_split(alone, split)


def test_long_take_becomes_honest_windows(merged):
    out, manifest = merged
    names = read_split(out, "all")
    windows_ = [n for n in names if n.startswith("cmu_13_30")]
    assert windows_ == ["cmu_13_30_w1", "cmu_13_30_w2", "cmu_13_30_w3"]
    split = {n: s for s in ("train", "val", "test") for n in read_split(out, s)}
    assert len({split[n] for n in windows_ + ["M" + n for n in windows_]}) == 1  # one split
    actions = json.loads((out / "actions.json").read_text())
    for name in windows_:
        frames = len(np.load(out / "new_joint_vecs" / f"{name}.npy"))
        assert 98 <= frames <= 196  # 4.9-9.8 s
        for caption in _texts(out, name):  # "jumping jacks" only as part of the whole take
            assert caption.startswith(cmu.WINDOW_PREFIX) or "jumping" not in caption
        assert actions[name] == []
        assert "jumping jacks" in manifest["clips"][name]["take_actions"]
    # a short one-action take keeps the full description and its KIT-ML sentence
    assert "A person is slowly and casually walking forward with swinging arms." in _texts(
        out, "cmu_08_01"
    )
    assert manifest["clips"]["cmu_08_01"]["captions_from"] == "cmu-index+kit-ml"


def test_deepmimic_and_mirrored_captions(merged):
    out, _ = merged
    flips = _texts(out, "deepmimic_backflip")
    assert all(c.endswith("twice.") for c in flips)  # a 1.75 s flip played twice to last 2 s
    kick = _texts(out, "deepmimic_kick")
    assert any("right" in c for c in kick)
    mirrored = _texts(out, "Mdeepmimic_kick")
    assert mirrored == [c.replace("right", "left") for c in kick]
    assert len(np.load(out / "new_joint_vecs" / "deepmimic_kick.npy")) >= 40  # held ends
    wave = _texts(out, "Mad_fair1_wave_hello")
    assert any("left hand" in c for c in wave) and not any("right" in c for c in wave)


def test_second_merged_build_is_a_no_op(merged, tiny_tar, capsys):
    out, manifest = merged
    again = build_dataset([tiny_tar, extra_mocap()], out, workers=1, progress=False)
    assert again == manifest and "up to date" in capsys.readouterr().out


TINY_RIG = "\n".join(
    [
        "HIERARCHY",
        "ROOT Root",
        "{",
        "  OFFSET 0 0 0",
        "  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation",
        "  JOINT A",
        "  {",
        "    OFFSET 0 10 0",
        "    CHANNELS 3 Zrotation Xrotation Yrotation",
        "    End Site",
        "    {",
        "      OFFSET 0 1 0",
        "    }",
        "  }",
        "}",
        "MOTION",
        "Frames: 3",
        "Frame Time: 0.05",
        *["0 0 0 0 0 0 0 0 0"] * 3,
    ]
)


@pytest.fixture
def user_folder(extra, tmp_path) -> Path:
    """A user's folder: two good files, a corrupt one, an unmappable rig, caption rows for a
    file that is not there and a file without a caption."""
    folder = tmp_path / "my-mocap"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(extra / "cmu-daz" / "07" / "07_01.bvh", folder / "stroll.bvh")
    shutil.copy(extra / "animated-drawings" / "cmu1_jumping_jacks.bvh", folder / "sub" / "jj.bvh")
    shutil.copy(extra / "animated-drawings" / "fair1_wave_hello.bvh", folder / "nocap.bvh")
    (folder / "broken.bvh").write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0\n")
    (folder / "blob.bvh").write_text(TINY_RIG + "\n")
    rows = [
        ("stroll.bvh", "A person strolls forward."),
        ("stroll.bvh", "someone walks slowly ahead"),
        ("sub/jj.bvh", "a person does jumping jacks."),
        ("broken.bvh", "a person walks."),
        ("blob.bvh", "a blob wobbles."),
        ("ghost.bvh", "a ghost floats by."),
    ]
    with open(folder / "captions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "caption"])
        writer.writerows(rows)
    return folder


def test_user_folder_with_bad_files_builds_the_rest(user_folder, tmp_path):
    out = tmp_path / "out"
    manifest = build_dataset(user_folder, out, workers=1, progress=False)
    names = read_split(out, "all")
    assert names == ["Muser_stroll", "Muser_sub_jj", "user_stroll", "user_sub_jj"]
    assert _texts(out, "user_stroll") == [
        "A person strolls forward.",
        "someone walks slowly ahead.",
    ]
    actions = json.loads((out / "actions.json").read_text())
    assert actions["user_stroll"] == ["walk"] and actions["user_sub_jj"] == ["jumping jacks"]
    skipped = manifest["skipped"]
    assert any("ghost.bvh" in k and "not a BVH file" in v for k, v in skipped.items())
    assert "no caption" in skipped["nocap.bvh"]
    failed = manifest["failed"]
    assert set(failed) == {"user_broken", "user_blob"}
    assert "cannot map the rig" in failed["user_blob"] and "broken.bvh" in failed["user_broken"]
    assert manifest["counts"]["sources"] == {"user": manifest["counts"]["sources"]["user"]}


def test_captions_json_and_file_name_labels(extra, tmp_path):
    folder = tmp_path / "json"
    folder.mkdir()
    shutil.copy(extra / "cmu-daz" / "07" / "07_01.bvh", folder / "a.bvh")
    (folder / "captions.json").write_text(json.dumps({"a": ["a man walks.", "he walks on"]}))
    assert read_caption_file(folder / "captions.json") == {"a": ["a man walks.", "he walks on."]}
    assert [t.captions for t in discover(folder).takes] == [("a man walks.", "he walks on.")]
    names = tmp_path / "names"
    names.mkdir()
    shutil.copy(extra / "cmu-daz" / "07" / "07_01.bvh", names / "slow_walk_03.bvh")
    shutil.copy(extra / "cmu-daz" / "07" / "07_01.bvh", names / "07_01.bvh")
    found = discover(names)
    assert [t.name for t in found.takes] == ["user_slow_walk_03"]
    assert all("walks" in c for c in found.takes[0].captions)
    assert "names no known action" in found.skipped["07_01.bvh"]


def test_frame_rate_table_corrects_a_trial(extra, tmp_path):
    folder = tmp_path / "cmu"
    (folder / "13").mkdir(parents=True)
    shutil.copy(extra / "cmu-daz" / "CMU-INDEX.md", folder / "CMU-INDEX.md")
    shutil.copy(extra / "cmu-daz" / "13" / "13_11.bvh", folder / "13" / "13_11.bvh")
    (tmp_path / "tables").mkdir()
    table = tmp_path / "tables" / "CMU_data.csv"
    table.write_text('"Subject","Trial #","Motion Description","framerate"\n13,11,"jump",60\n')
    plain = build_dataset(folder, tmp_path / "plain", workers=1, progress=False)
    fixed = build_dataset(folder, tmp_path / "fixed", workers=1, progress=False, cmu_rates=table)
    assert plain["frame_rates"]["corrected"] == {}
    assert fixed["frame_rates"]["corrected"] == {"cmu_13_11": {"header": 120.0, "used": 60.0}}
    n_plain = plain["counts"]["sources"]["cmu"]["frames"]
    n_fixed = fixed["counts"]["sources"]["cmu"]["frames"]
    assert n_fixed == pytest.approx(2 * n_plain, abs=4)  # twice as long: twice the frames
    assert fixed["fingerprint"] != plain["fingerprint"]


def test_failed_build_leaves_no_folder(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "walk.bvh").write_text("not a bvh\n")
    out = tmp_path / "out"
    with pytest.raises(MosaError, match="no usable clip"):
        build_dataset(folder, out, workers=1, progress=False)
    assert not out.exists()
    with pytest.raises(MosaError, match="does not exist"):
        build_dataset([folder, tmp_path / "nowhere"], out, progress=False)
    assert not out.exists()
