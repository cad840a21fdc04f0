"""Generating onto any rig: the rig's own skeleton, axes and units, bone directions of the 22
joints, feet on the floor at the character's size, extra joints at rest, clear errors."""

import json
from dataclasses import replace

import numpy as np
import pytest

from mosa.errors import MosaError
from mosa.motion.bvh import read_bvh, write_bvh
from mosa.motion.io import save_generated
from mosa.motion.retarget import resample
from mosa.motion.rig_out import leg_length, retarget_to_rig, rig_frame, rig_joints
from mosa.motion.skeleton import PARENTS

LIMBS = (4, 5, 7, 8, 18, 19, 20, 21)  # knees, ankles, elbows, wrists: bones from their parents


@pytest.fixture(scope="module")
def cmu_rig(shared_data):
    """The CMU skeleton in its rest pose (3 frames of zeros)."""
    bvh = read_bvh(shared_data / "cmu" / "01_01.bvh")
    return replace(bvh, motion=np.zeros((3, bvh.motion.shape[1])))


@pytest.fixture(scope="module")
def motion(shared_data):
    return np.load(shared_data / "humanml3d-sample" / "012314_new_joints.npy")[:60]


def _dirs(j, bones=LIMBS):
    b = j[:, list(bones)] - j[:, [PARENTS[k] for k in bones]]
    return b / np.linalg.norm(b, axis=-1, keepdims=True)


def _z_up_metres(bvh):
    """The same rig with Z up and offsets in metres."""
    turn = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # y -> z
    k = 0.0254 / 0.45
    ends = [(j, turn @ o * k) for j, o in bvh.end_sites]
    return replace(bvh, offsets=bvh.offsets @ turn.T * k, end_sites=ends)


def test_limbs_follow_the_motion_on_the_rig(cmu_rig, motion):
    out = retarget_to_rig(motion, cmu_rig, 20.0)
    assert out.names == cmu_rig.names and out.channels == cmu_rig.channels
    assert np.array_equal(out.offsets, cmu_rig.offsets) and out.frame_time == cmu_rig.frame_time
    assert out.num_frames == len(resample(motion, 20.0, 120.0))
    frame, _ = rig_frame(cmu_rig)
    got = rig_joints(out, frame)
    want = resample(motion.astype(np.float64), 20.0, 120.0)
    cos = np.sum(_dirs(got) * _dirs(want), -1)
    assert cos.min() > 1 - 1e-9
    # the character's size: root height scaled by its leg over the motion's, feet on the floor
    k = leg_length(rig_frame(cmu_rig)[1]) / leg_length(motion)
    assert np.median(got[:, 0, 1]) == pytest.approx(k * np.median(want[:, 0, 1]), rel=0.05)
    assert got[:, [7, 8, 10, 11], 1].min() == pytest.approx(k * want[:, [7, 8, 10, 11], 1].min())
    # joints outside the 22 (fingers, thumbs) keep their rest rotation
    cols = out.channel_columns()
    for name in ("LeftFingerBase", "LThumb", "RThumb"):
        assert np.abs(out.motion[:, cols[out.names.index(name)]]).max() < 1e-9


def test_z_up_and_units_are_the_rigs_own(cmu_rig, motion):
    a = retarget_to_rig(motion, cmu_rig, 20.0)
    zr = _z_up_metres(cmu_rig)
    b = retarget_to_rig(motion, zr, 20.0)
    fa, fb = rig_frame(cmu_rig)[0], rig_frame(zr)[0]
    assert fb.up_axis == "+Z" and fb.unit_scale == 1.0
    np.testing.assert_allclose(rig_joints(b, fb), rig_joints(a, fa), atol=1e-6)
    assert np.abs(b.global_positions()).max() < 5  # metres, not centimetres


def test_save_generated_on_a_rig_file(cmu_rig, motion, tmp_path):
    rig = tmp_path / "character.bvh"
    write_bvh(rig, cmu_rig)
    out = save_generated(tmp_path / "out.bvh", motion, rig=rig, foot_lock=False)
    assert read_bvh(out).names == cmu_rig.names
    with pytest.raises(MosaError, match=r"\.bvh"):
        save_generated(tmp_path / "out.npy", motion, rig=rig)
    with pytest.raises(MosaError, match="must be a .bvh file") as e:
        save_generated(tmp_path / "out.bvh", motion, rig=tmp_path / "character.fbx")
    assert "Export" in e.value.hint


def _cut(bvh, drop):
    """``bvh`` without the joints whose names contain any of ``drop`` (and their subtrees)."""
    keep = []
    for j, n in enumerate(bvh.names):
        p = bvh.parents[j]
        if not any(d in n for d in drop) and (p < 0 or p in keep):
            keep.append(j)
    index = {j: i for i, j in enumerate(keep)}
    cols = bvh.channel_columns()
    return replace(
        bvh, names=[bvh.names[j] for j in keep],
        parents=np.array([index.get(int(bvh.parents[j]), -1) for j in keep]),
        offsets=bvh.offsets[keep], channels=[bvh.channels[j] for j in keep],
        motion=bvh.motion[:, np.concatenate([cols[j] for j in keep])],
        end_sites=[(index[j], o) for j, o in bvh.end_sites if j in index],
    )  # fmt: skip


def test_bad_rigs_name_the_fix(cmu_rig, motion, tmp_path):
    legless = _cut(cmu_rig, ("Leg", "Foot", "Toe", "HipJoint"))
    with pytest.raises(MosaError, match="left_hip") as e:
        retarget_to_rig(motion, legless)
    assert "mapping" in e.value.hint
    two = replace(
        cmu_rig, parents=np.where(np.arange(cmu_rig.num_joints) == 1, -1, cmu_rig.parents)
    )
    with pytest.raises(MosaError, match="2 root joints") as e:
        retarget_to_rig(motion, two)
    assert "one ROOT" in e.value.hint
    bad = tmp_path / "map.json"
    bad.write_text(json.dumps({"left_hip": "LeftThigh"}))
    with pytest.raises(MosaError, match="LeftThigh"):
        retarget_to_rig(motion, cmu_rig, mapping=bad)
