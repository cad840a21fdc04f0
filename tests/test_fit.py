"""One skeleton per motion: fitted joints have constant bones, and the BVH holds the same
positions as the .npy."""

import numpy as np
import pytest

from mosa.motion.bvh import read_bvh, skeleton_bvh
from mosa.motion.fit import bone_length_spread, fit_motion, forward_kinematics
from mosa.motion.io import prepare_generated, save_generated
from mosa.motion.skeleton import JOINT_NAMES, PARENTS


def _stretchy(joints, seed=0):
    """``joints`` with every bone's length wobbling by up to 3 cm from frame to frame."""
    rng = np.random.default_rng(seed)
    out = np.array(joints, np.float64)
    for j in range(1, 22):
        p = PARENTS[j]
        bone = joints[:, j] - joints[:, p]
        k = 1 + rng.uniform(-0.1, 0.1, size=(len(joints), 1))
        out[:, j] = out[:, p] + bone * k
    return out


@pytest.fixture
def joints(hml_sample):
    return np.load(hml_sample / "012314_new_joints.npy").astype(np.float64)


def test_fit_makes_bones_constant_and_keeps_directions(joints):
    raw = _stretchy(joints)
    assert bone_length_spread(raw) > 0.02
    fit = fit_motion(raw)
    assert bone_length_spread(fit.joints) < 1e-9
    np.testing.assert_allclose(fit.joints[:, 0], raw[:, 0])  # the pelvis path as it is
    lengths = np.linalg.norm(raw[:, 1:] - raw[:, list(PARENTS[1:])], axis=-1)
    single = [b for b in range(21) if b + 1 not in (1, 2, 3, 12, 13, 14)]  # not hub children
    np.testing.assert_allclose(
        fit.bone_lengths()[single], np.median(lengths, axis=0)[single], atol=1e-9
    )
    # a single-child joint's bone aims at the motion's child joint (legs, arms: swing only)
    for j in (4, 5, 7, 8, 18, 19, 20, 21):
        p = PARENTS[j]
        a = raw[:, j] - fit.joints[:, p]
        b = fit.joints[:, j] - fit.joints[:, p]
        cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        assert cos.min() > 1 - 1e-9, j
    np.testing.assert_allclose(
        forward_kinematics(fit.offsets, fit.rotations, fit.root), fit.joints, atol=1e-12
    )


def test_npy_and_bvh_hold_the_same_positions(joints, tmp_path):
    raw = _stretchy(joints, seed=1)
    npy = save_generated(tmp_path / "m.npy", raw, foot_lock=False)
    bvh = save_generated(tmp_path / "m.bvh", raw, foot_lock=False)
    a = np.load(npy)
    data = read_bvh(bvh)  # joints in file (depth-first) order, centimetres
    b = data.global_positions()[:, [data.names.index(n) for n in JOINT_NAMES]] / 100.0
    assert np.abs(a - b).max() < 1e-5  # 6 decimals in the file
    assert bone_length_spread(a) < 1e-5
    # and the BVH of fitted joints finds the same skeleton again: FK is the fitted joints
    fitted = prepare_generated(raw, foot_lock=False)
    again = skeleton_bvh(fitted).global_positions() / 100.0
    np.testing.assert_allclose(again, fitted, atol=1e-5)
