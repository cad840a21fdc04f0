"""DeepMimic clips -> the 22-joint body: forward kinematics, timing, loops, sanity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mosa.errors import MosaError
from mosa.eval.kinematics import describe
from mosa.motion.deepmimic import load_deepmimic, read_character
from mosa.motion.retarget import handedness
from mosa.motion.skeleton import JOINT_NAMES
from test_data_sources import extra_mocap

J = JOINT_NAMES.index
FEET = [J("left_ankle"), J("right_ankle"), J("left_foot"), J("right_foot")]


@pytest.fixture(scope="module")
def dm():
    return extra_mocap() / "deepmimic"


def _bone(joints: np.ndarray, a: str, b: str) -> np.ndarray:
    return np.linalg.norm(joints[:, J(a)] - joints[:, J(b)], axis=-1)


def test_character_file(dm):
    char = read_character(dm / "humanoid3d_character.txt")
    assert char.names[:3] == ["root", "chest", "neck"] and len(char.names) == 15
    assert char.types.count("revolute") == 4 and char.types.count("fixed") == 2
    assert char.row_size == 44  # dt, root 3 + 4, 8 spherical x 4, 4 revolute x 1
    assert char.attach[char.names.index("right_hip"), 2] > 0  # the right side is +Z


def test_walk_moves_forward_on_the_floor(dm):
    m = load_deepmimic(dm / "humanoid3d_walk.txt")
    j = m.joints
    assert j.shape == (int(np.floor(1.266616 * 20 + 1e-6)) + 1, 22, 3) and m.fps == 20
    assert m.source_fps == pytest.approx(30, abs=0.01) and m.loop == "wrap" and m.cycles == 1
    y = j[..., 1]
    assert y[:, FEET].min() == pytest.approx(0.0, abs=1e-6)  # feet on the floor
    assert np.median(y[:, FEET].min(axis=1)) < 0.03  # a foot is down in most frames
    assert (y[:, J("head")] > y[:, J("pelvis")] + 0.4).all()  # head above the pelvis
    assert 1.3 < np.median(y[:, J("head")]) < 1.6
    k = describe(j)
    assert 1.0 < k["forward_m"] < 1.5 and abs(k["turn_deg"]) < 30  # forward, along the face
    assert handedness(j) > 0.5  # knees and toes point forward: left is left
    # left is the body's +X (HumanML3D): the left hip is left of the right hip seen from behind
    across = j[:, J("left_hip")] - j[:, J("right_hip")]
    forward = np.cross(across, [0.0, 1.0, 0.0])
    travel = j[-1, 0] - j[0, 0]
    assert forward[0] @ travel > 0


def test_bones_keep_their_length_through_a_flip(dm):
    # the backflip is stored at 16 fps: slerped rotations keep every bone its length, where
    # interpolated positions would shorten the limbs mid-flip
    m = load_deepmimic(dm / "humanoid3d_backflip.txt")
    j = m.joints
    np.testing.assert_allclose(_bone(j, "left_hip", "left_knee"), 0.421546, atol=1e-5)
    np.testing.assert_allclose(_bone(j, "right_knee", "right_ankle"), 0.40987, atol=1e-5)
    np.testing.assert_allclose(_bone(j, "left_elbow", "left_wrist"), 0.258947, atol=1e-5)
    assert (j[:, J("head"), 1] < j[:, J("pelvis"), 1]).any()  # upside down at some point
    assert describe(j)["forward_m"] < -0.5  # a backflip lands behind


def test_short_clips_are_looped_or_held(dm):
    walk1 = load_deepmimic(dm / "humanoid3d_walk.txt")
    walk2 = load_deepmimic(dm / "humanoid3d_walk.txt", min_seconds=2.1)
    assert walk2.cycles == 2 and len(walk2.joints) >= 43
    # the second cycle starts where the first ended: it goes on forward, no jump at the seam
    assert describe(walk2.joints)["forward_m"] > 1.8 * describe(walk1.joints)["forward_m"]
    speed = np.linalg.norm(np.diff(walk2.joints, axis=0), axis=-1).max() * 20
    assert speed < 6.0
    kick = load_deepmimic(dm / "humanoid3d_kick.txt", min_seconds=2.1)
    assert kick.loop == "none" and kick.cycles == 1 and kick.padded_seconds > 0.5
    assert len(kick.joints) >= 42
    np.testing.assert_allclose(kick.joints[0], kick.joints[1], atol=1e-6)  # the held pose
    lift = kick.joints[:, J("right_foot"), 1].max() - kick.joints[:, J("left_foot"), 1].max()
    assert lift > 0.8  # the right leg kicks


def test_bad_clips_raise_clear_errors(dm, tmp_path):
    with pytest.raises(MosaError, match="no humanoid3d_character.txt"):
        bad = tmp_path / "clip.txt"
        bad.write_text(json.dumps({"Loop": "none", "Frames": [[0.1] * 44] * 3}))
        load_deepmimic(bad)
    short = tmp_path / "short.txt"
    short.write_text(json.dumps({"Loop": "none", "Frames": [[0.1] * 40] * 3}))
    with pytest.raises(MosaError, match="rows of 44 values"):
        load_deepmimic(short, dm / "humanoid3d_character.txt")
    (tmp_path / "junk.txt").write_text("{not json")
    with pytest.raises(MosaError, match="invalid JSON"):
        load_deepmimic(tmp_path / "junk.txt", dm / "humanoid3d_character.txt")
