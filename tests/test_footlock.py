"""Foot lock: contact feet stop sliding, bone lengths stay, other joints do not move."""

import numpy as np

from mosa.eval.foot_skating import foot_skating
from mosa.motion.fit import bone_length_spread, fit_motion
from mosa.motion.footlock import (
    FootLockConfig,
    contacts_from_features,
    contacts_from_joints,
    foot_lock,
    lock_targets,
)
from mosa.motion.skeleton import CONTACT_SLICE


def _walkish(hml_sample):
    joints = np.load(hml_sample / "012314_new_joints.npy").astype(np.float64)
    return fit_motion(joints).joints


def test_lock_targets_hold_and_fade():
    T = 20
    track = np.zeros((T, 3))
    step = np.full(T, 0.01)
    step[[0, 9, 15]] = 0.0  # frames 9 and 15 are the stillest of their contact runs
    track[:, 0] = np.cumsum(step)
    on, low = np.zeros(T, bool), np.zeros(T, bool)
    on[8:12] = True
    low[7:13] = True  # the lock covers the low frames around the contacts
    target, w = lock_targets(track, on, low, FootLockConfig(blend=3))
    assert (w[7:13] == 1).all() and w[0] == 0 and w[-1] == 0
    assert 0 < w[5] < w[6] < 1 and 0 < w[14] < w[13] < 1  # fades in, fades out
    assert np.allclose(target[7:13], track[9])  # one pin: the stillest contact frame
    on[14:16], low[13:17] = True, True  # a second plant on one stretch: the pin glides
    target, w = lock_targets(track, on, low, FootLockConfig(blend=3))
    assert np.allclose(target[14:16], track[15]) and np.allclose(target[8:12], track[9])
    assert track[9, 0] < target[12, 0] < target[13, 0] < track[15, 0]


def test_locked_feet_do_not_slide_and_bones_keep_length(hml_sample):
    joints = _walkish(hml_sample)
    # contacts where a foot joint is slow (HumanML3D's rule, at 0.5 m/s) and near the floor
    contacts = contacts_from_joints(joints, speed=0.5)
    for c, j in enumerate((7, 10, 8, 11)):
        contacts[:, c] &= joints[:, j, 1] - joints[:, j, 1].min() < 0.05
    assert contacts.sum() > 20
    out = foot_lock(joints, contacts)
    assert bone_length_spread(out) < 1e-6
    moved = np.abs(out - joints).max(axis=(0, 2)) > 1e-9
    assert set(np.flatnonzero(moved)) <= {4, 5, 7, 8, 10, 11}  # knees, ankles, toes only
    for c, j in enumerate((7, 10, 8, 11)):  # inside contact runs the joint is still
        on = contacts[:, c]
        both = on[1:] & on[:-1]
        step = np.linalg.norm(np.diff(out[:, j], axis=0), axis=-1)[both]
        raw = np.linalg.norm(np.diff(joints[:, j], axis=0), axis=-1)[both]
        assert step.mean() < 0.25 * raw.mean(), j
    assert foot_skating(out).skate_speed < foot_skating(joints).skate_speed


def test_contacts_from_features():
    f = np.zeros((5, 263), np.float32)
    f[2, CONTACT_SLICE] = [1, 0, 0.7, 0.2]
    c = contacts_from_features(f, 6)
    assert c.shape == (6, 4) and c[2].tolist() == [True, False, True, False]
    assert not c[5].any()  # the last row held for the extra frame
