"""HumanML3D motion features against the released HumanML3D sample files.

References are independent of our code: the sample .npy files were produced by HumanML3D's own
motion_representation script (012314_new_joints.npy = recover_from_ric(012314_new_joint_vecs)),
and the quaternion tests use closed forms.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mosa.errors import MosaError
from mosa.motion import quaternion as Q
from mosa.motion.features import (
    extract_features,
    facing_direction,
    foot_contacts,
    local_joints,
    mirror_joints,
    recover_joints,
    recover_root,
    uniform_skeleton,
)
from mosa.motion.skeleton import (
    CONTACT_SLICE,
    FEATURE_DIM,
    JOINT_NAMES,
    MIRROR_INDEX,
    PARENTS,
    RAW_OFFSETS,
    RIC_SLICE,
    ROOT_SLICE,
    ROT_SLICE,
    TARGET_OFFSETS,
    VEL_SLICE,
)

PARTS = {"root": ROOT_SLICE, "ric": RIC_SLICE, "rot": ROT_SLICE, "vel": VEL_SLICE}
# HumanML3D smooths the facing direction with a Gaussian of sigma 20 frames (radius 80): features
# closer than that to the end of a clip depend on frames a truncated copy no longer has.
SMOOTH_RADIUS = 80


@pytest.fixture(scope="module")
def vecs_012314(hml_sample):
    return np.load(hml_sample / "012314_new_joint_vecs.npy")


@pytest.fixture(scope="module")
def joints_012314(hml_sample):
    return np.load(hml_sample / "012314_new_joints.npy")


@pytest.fixture(scope="module")
def vecs_000612(hml_sample):
    return np.load(hml_sample / "000612_new_joint_vecs.npy")


def _max_err(a: np.ndarray, b: np.ndarray, part: slice) -> float:
    return float(np.abs(a[:, part] - b[:, part]).max())


def _bone_lengths(joints: np.ndarray) -> np.ndarray:
    parents = np.array(PARENTS)
    return np.linalg.norm(joints[..., 1:, :] - joints[..., parents[1:], :], axis=-1)


def _yrot(joints: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    m = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return joints @ m.T


# ----------------------------------------------------------------------------------------------
# Skeleton constants


def test_target_offsets_match_released_joints(joints_012314):
    lengths = _bone_lengths(joints_012314.astype(np.float64))  # (T, 21)
    target = np.linalg.norm(TARGET_OFFSETS[1:], axis=-1)
    assert np.abs(lengths - target).max() < 1e-5
    # Each offset points along HumanML3D's unit rest direction.
    np.testing.assert_allclose(TARGET_OFFSETS[1:] / target[:, None], RAW_OFFSETS[1:], atol=1e-7)
    assert np.all(TARGET_OFFSETS[0] == 0)


# ----------------------------------------------------------------------------------------------
# Recovery


def test_recover_reproduces_released_joints(vecs_012314, joints_012314):
    assert vecs_012314.shape == (170, FEATURE_DIM) and joints_012314.shape == (170, 22, 3)
    rec = recover_joints(vecs_012314)
    assert isinstance(rec, np.ndarray) and rec.dtype == np.float32 and rec.shape == (170, 22, 3)
    err_mm = np.abs(rec - joints_012314).max() * 1000
    assert err_mm < 0.01  # float32 noise; HumanML3D computed the file the same way


def test_recover_torch_matches_numpy_and_batches(vecs_000612, vecs_012314):
    a = vecs_000612[:170].astype(np.float32)
    b = vecs_012314
    ref_a, ref_b = recover_joints(a), recover_joints(b)
    batch = torch.from_numpy(np.stack([a, b]))
    out = recover_joints(batch)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 170, 22, 3)
    np.testing.assert_allclose(out[0].numpy(), ref_a, atol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), ref_b, atol=1e-6)
    two_dims = recover_joints(batch.reshape(1, 2, 170, FEATURE_DIM).expand(3, 2, 170, FEATURE_DIM))
    assert two_dims.shape == (3, 2, 170, 22, 3)
    np.testing.assert_allclose(two_dims[2, 1].numpy(), ref_b, atol=1e-6)
    # float64 stays float64
    assert recover_joints(vecs_000612).dtype == np.float64


def test_recover_root_agrees_with_joints(vecs_012314):
    quat, root = recover_root(vecs_012314)
    assert quat.shape == (170, 4) and root.shape == (170, 3)
    np.testing.assert_allclose(root, recover_joints(vecs_012314)[:, 0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(quat, axis=-1), 1.0, atol=1e-6)
    # The rotation is about Y only and starts at the identity.
    assert np.all(quat[:, [1, 3]] == 0) and np.allclose(quat[0], [1, 0, 0, 0])
    # Its half-angle integrates the angular velocity channel.
    half = np.arctan2(quat[:, 2], quat[:, 0])
    np.testing.assert_allclose(np.diff(half), vecs_012314[:-1, 0], atol=1e-5)


def test_recover_gradients():
    torch.manual_seed(0)
    x = (0.1 * torch.randn(2, 4, FEATURE_DIM, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(recover_joints, (x,), eps=1e-6, atol=1e-6)
    x32 = torch.randn(3, 5, FEATURE_DIM, requires_grad=True)
    recover_joints(x32).square().sum().backward()
    assert x32.grad is not None and torch.isfinite(x32.grad).all()
    assert x32.grad[..., RIC_SLICE].abs().sum() > 0 and x32.grad[..., 0].abs().sum() > 0


def test_recover_rejects_bad_shape():
    with pytest.raises(MosaError, match="263"):
        recover_joints(np.zeros((10, 262)))
    with pytest.raises(MosaError):
        recover_joints(np.zeros(263))


# ----------------------------------------------------------------------------------------------
# Extraction


def test_extract_reproduces_released_features(joints_012314, vecs_012314):
    # new_joints lost the last frame of the original clip, so we get one feature frame less.
    feats = extract_features(joints_012314)
    assert feats.shape == (169, FEATURE_DIM) and feats.dtype == np.float32
    ref = vecs_012314[: len(feats)]
    # Contacts do not depend on the smoothing: all 169 frames agree exactly.
    assert np.array_equal(feats[:, CONTACT_SLICE], ref[:, CONTACT_SLICE])
    # Away from the clip's end, every part matches to float32 precision.
    far = slice(0, len(feats) - SMOOTH_RADIUS)
    for name, part in PARTS.items():
        assert _max_err(feats[far], ref[far], part) < 2e-5, name
    # Near the end, the missing last frame shifts the smoothed facing slightly.
    assert _max_err(feats, ref, ROOT_SLICE) < 1e-3
    assert _max_err(feats, ref, RIC_SLICE) < 1e-2
    assert _max_err(feats, ref, VEL_SLICE) < 1e-3
    assert _max_err(feats, ref, ROT_SLICE) < 3e-2


def test_round_trip_000612(vecs_000612):
    x = vecs_000612
    feats = extract_features(recover_joints(x))
    assert feats.shape == (len(x) - 1, FEATURE_DIM)
    # HumanML3D's angular-velocity sign glitch sits at frame 142 of this clip (facing crosses
    # -Z): the stored value has the wrong sign between its positive neighbours...
    assert x[141, 0] > 0.03 and x[142, 0] < -0.03 and x[143, 0] > 0.03
    # ...so recovered joints turn the wrong way from then on. Up to the smoothing radius before
    # it the round trip is exact.
    early = slice(0, 142 - SMOOTH_RADIUS)
    for name, part in {**PARTS, "contact": CONTACT_SLICE}.items():
        assert _max_err(feats[early], x[early], part) < 2e-5, name


def test_round_trip_000612_with_glitch_undone(vecs_000612):
    # Undo the glitch before recovering: the true motion comes back, and extracting it again
    # reproduces every frame of the released file, the glitch included.
    x = vecs_000612
    fixed = x.copy()
    fixed[142, 0] *= -1
    feats = extract_features(recover_joints(fixed))
    ref = x[: len(feats)]
    assert np.array_equal(feats[:, CONTACT_SLICE], ref[:, CONTACT_SLICE])
    assert feats[142, 0] == pytest.approx(x[142, 0], abs=1e-5)
    far = slice(0, len(feats) - SMOOTH_RADIUS)
    for name, part in PARTS.items():
        assert _max_err(feats[far], ref[far], part) < 2e-5, name
    assert _max_err(feats, ref, ROOT_SLICE) < 1e-3
    assert _max_err(feats, ref, RIC_SLICE) < 1e-2
    assert _max_err(feats, ref, VEL_SLICE) < 1e-3


def test_extract_invariant_to_placement(joints_012314):
    j = joints_012314.astype(np.float64)
    moved = _yrot(j, 2.1) + np.array([3.0, 0.5, -7.0])
    np.testing.assert_allclose(extract_features(moved), extract_features(j), atol=2e-5)


def test_extract_invariant_to_body_scale(joints_012314):
    # uniform_skeleton rescales the bones and the root path: a twice-as-large copy of the
    # motion gives the same features.
    j = joints_012314.astype(np.float64)
    np.testing.assert_allclose(extract_features(2 * j), extract_features(j), atol=2e-5)


def _symmetric_offsets() -> np.ndarray:
    """TARGET_OFFSETS with each left/right bone pair set to the pair's mean length."""
    lengths = np.linalg.norm(TARGET_OFFSETS, axis=-1)
    sym = lengths[list(MIRROR_INDEX)] / 2 + lengths / 2
    return RAW_OFFSETS * sym[:, None]


def test_extract_of_mirror_is_mirrored(joints_012314):
    # HumanML3D's target skeleton is slightly asymmetric (left shin 43.2 cm, right 42.6 cm),
    # so mirroring commutes with the features only on a symmetric body and target.
    sym = _symmetric_offsets()
    j = uniform_skeleton(joints_012314, sym)
    f = extract_features(j, target_offsets=sym)
    fm = extract_features(mirror_joints(j), target_offsets=sym)
    swap = list(MIRROR_INDEX)
    flip = np.array([-1.0, 1.0, 1.0])
    ric, ric_m = f[:, RIC_SLICE].reshape(-1, 21, 3), fm[:, RIC_SLICE].reshape(-1, 21, 3)
    ric_full = np.concatenate([np.zeros_like(ric[:, :1]), ric], axis=1)
    np.testing.assert_allclose(ric_m, (ric_full[:, swap] * flip)[:, 1:], atol=2e-5)
    vel, vel_m = f[:, VEL_SLICE].reshape(-1, 22, 3), fm[:, VEL_SLICE].reshape(-1, 22, 3)
    np.testing.assert_allclose(vel_m, vel[:, swap] * flip, atol=2e-5)
    np.testing.assert_allclose(fm[:, 0], -f[:, 0], atol=2e-5)  # turning the other way
    np.testing.assert_allclose(fm[:, 1:4], f[:, 1:4] * np.array([-1, 1, 1]), atol=2e-5)
    contacts = f[:, CONTACT_SLICE]
    assert np.array_equal(fm[:, CONTACT_SLICE], contacts[:, [2, 3, 0, 1]])


def test_extract_rejects_bad_input(joints_012314):
    with pytest.raises(MosaError, match=r"\(T, 22, 3\)"):
        extract_features(np.zeros((10, 24, 3)))
    with pytest.raises(MosaError, match="frame"):
        extract_features(joints_012314[:1])
    bad = joints_012314.copy()
    bad[3, 5] = np.nan
    with pytest.raises(MosaError, match="NaN"):
        extract_features(bad)
    collapsed = joints_012314.copy()
    collapsed[7, 4] = collapsed[7, 1]  # left knee on the left hip
    with pytest.raises(MosaError, match="left_knee"):
        extract_features(collapsed)


def test_foot_contacts_threshold():
    # Hand-made: feet move 4 cm per frame (0.0016 m^2 < 0.002) then 5 cm (0.0025 m^2).
    j = np.zeros((4, 22, 3))
    j[:, 7, 0] = [0.0, 0.04, 0.08, 0.13]  # left ankle
    j[:, 11, 2] = [0.0, 0.05, 0.05, 0.05]  # right foot
    c = foot_contacts(j, 0.002)
    expected = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [0, 1, 1, 1]], dtype=np.float32)
    assert np.array_equal(c, expected)


def test_uniform_skeleton(joints_012314):
    j = joints_012314.astype(np.float64)
    # Already on the target skeleton: unchanged.
    np.testing.assert_allclose(uniform_skeleton(j), j, atol=1e-5)
    # A body with 1.5x longer bones: bone lengths come back to the target, directions stay,
    # the root path shrinks by the leg ratio (1 / 1.5).
    big = 1.5 * j
    out = uniform_skeleton(big)
    target = np.linalg.norm(TARGET_OFFSETS[1:], axis=-1)
    np.testing.assert_allclose(_bone_lengths(out), np.broadcast_to(target, (170, 21)), atol=1e-6)
    np.testing.assert_allclose(out[:, 0], j[:, 0], atol=1e-6)
    parents = np.array(PARENTS)
    d_in = big[:, 1:] - big[:, parents[1:]]
    d_out = out[:, 1:] - out[:, parents[1:]]
    cos = (d_in * d_out).sum(-1) / np.linalg.norm(d_in, axis=-1) / np.linalg.norm(d_out, axis=-1)
    assert cos.min() > 1 - 1e-9


# ----------------------------------------------------------------------------------------------
# Normalisation and mirroring


def test_mean_std_normalisation(hml_sample, vecs_012314):
    mean, std = np.load(hml_sample / "Mean.npy"), np.load(hml_sample / "Std.npy")
    assert mean.shape == (FEATURE_DIM,) and std.shape == (FEATURE_DIM,)
    assert np.all(std > 0)
    x = vecs_012314
    back = (x - mean) / std * std + mean
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-6)


def test_mirror_joints(joints_012314):
    j = joints_012314
    m = mirror_joints(j)
    np.testing.assert_array_equal(mirror_joints(m), j)
    assert m.shape == j.shape
    left_hip, right_hip = JOINT_NAMES.index("left_hip"), JOINT_NAMES.index("right_hip")
    left_wrist, right_wrist = JOINT_NAMES.index("left_wrist"), JOINT_NAMES.index("right_wrist")
    # The clip starts facing +Z, so the body's left (left hip) is on +X.
    assert j[0, left_hip, 0] > 0.03
    np.testing.assert_array_equal(m[:, right_hip], j[:, left_hip] * np.array([-1, 1, 1]))
    np.testing.assert_array_equal(m[:, left_wrist], j[:, right_wrist] * np.array([-1, 1, 1]))
    assert m[0, right_hip, 0] < -0.03
    # Pelvis stays itself, mirrored.
    np.testing.assert_array_equal(m[:, 0], j[:, 0] * np.array([-1, 1, 1]))


# ----------------------------------------------------------------------------------------------
# Quaternions


def _random_quats(n: int, seed: int = 0) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def test_qrot_closed_form():
    theta = 0.7
    q = np.array([np.cos(theta / 2), 0, np.sin(theta / 2), 0])  # about +Y
    np.testing.assert_allclose(Q.qrot(q, np.array([1.0, 0, 0])), [np.cos(0.7), 0, -np.sin(0.7)])
    q = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])  # 90 degrees about +Z
    np.testing.assert_allclose(Q.qrot(q, np.array([1.0, 0, 0])), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(Q.yrot_quat(np.array(theta)), [np.cos(0.35), 0, np.sin(0.35), 0])


def test_quaternion_algebra_matches_matrices():
    q, r = _random_quats(50, 1), _random_quats(50, 2)
    v = np.random.default_rng(3).normal(size=(50, 3))
    mq, mr = Q.quat_to_matrix(q), Q.quat_to_matrix(r)
    np.testing.assert_allclose(
        mq @ mq.transpose(0, 2, 1), np.broadcast_to(np.eye(3), mq.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(mq), 1.0, atol=1e-12)
    np.testing.assert_allclose(Q.qrot(q, v), (mq @ v[..., None])[..., 0], atol=1e-12)
    np.testing.assert_allclose(Q.quat_to_matrix(Q.qmul(q, r)), mq @ mr, atol=1e-12)
    np.testing.assert_allclose(Q.qrot(Q.qinv(q), Q.qrot(q, v)), v, atol=1e-12)
    # matrix -> quaternion gives back q up to sign (w >= 0)
    back = Q.matrix_to_quat(mq)
    np.testing.assert_allclose(back, q * np.sign(q[:, :1]), atol=1e-10)
    # 6D keeps the first two columns and comes back exactly
    d6 = Q.quat_to_cont6d(q)
    np.testing.assert_allclose(d6, np.concatenate([mq[..., 0], mq[..., 1]], -1), atol=1e-12)
    np.testing.assert_allclose(Q.cont6d_to_matrix(d6), mq, atol=1e-10)
    np.testing.assert_allclose(Q.cont6d_to_quat(d6), back, atol=1e-10)


def test_quaternion_torch_matches_numpy():
    q, r = _random_quats(20, 4), _random_quats(20, 5)
    v = np.random.default_rng(6).normal(size=(20, 3))
    tq, tr, tv = (torch.from_numpy(a) for a in (q, r, v))
    np.testing.assert_allclose(Q.qmul(tq, tr).numpy(), Q.qmul(q, r), atol=1e-12)
    np.testing.assert_allclose(Q.qrot(tq, tv).numpy(), Q.qrot(q, v), atol=1e-12)
    np.testing.assert_allclose(Q.qinv(tq).numpy(), Q.qinv(q))
    d6 = Q.quat_to_cont6d(q)
    np.testing.assert_allclose(
        Q.cont6d_to_matrix(torch.from_numpy(d6)).numpy(), Q.quat_to_matrix(q), atol=1e-10
    )


def test_qbetween():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    q = Q.qbetween(a, b)
    assert np.all(q[:, 0] >= 0)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(unit(Q.qrot(q, a)), unit(b), atol=1e-10)
    # Shortest arc: the rotation axis is perpendicular to both vectors.
    np.testing.assert_allclose((q[:, 1:] * a).sum(-1), 0, atol=1e-10)
    # Opposite vectors get a half turn, not NaN.
    v = np.array([[0.0, -1.0, 0.0], [1.0, 2.0, 3.0]])
    q = Q.qbetween(v, -v)
    assert np.isfinite(q).all()
    np.testing.assert_allclose(Q.qrot(q, v), -v, atol=1e-12)


def test_qfix():
    q = _random_quats(6, 8)
    q[1:] = q[0] + 0.01 * np.random.default_rng(9).normal(size=(5, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    flipped = q.copy()
    flipped[[2, 3, 5]] *= -1
    np.testing.assert_allclose(Q.qfix(flipped[:, None])[:, 0], q * np.sign(q[0] @ flipped[0]))


def test_local_joints_is_the_recovered_pose_without_its_trajectory(hml_sample):
    feats = np.load(hml_sample / "012314_new_joint_vecs.npy")
    world, local = recover_joints(feats), local_joints(feats)
    assert local.shape == world.shape
    assert np.all(local[:, 0, [0, 2]] == 0) and np.allclose(local[:, 0, 1], world[:, 0, 1])
    # a rigid motion per frame (rotation about Y + floor translation): distances between all
    # joint pairs and heights are unchanged
    pair = lambda j: np.linalg.norm(j[:, :, None] - j[:, None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(pair(local), pair(world), atol=1e-5)
    np.testing.assert_allclose(local[..., 1], world[..., 1], atol=1e-6)
    # and the pose faces +Z, as HumanML3D canonicalises it (frame 0 is the identity there)
    face = facing_direction(local)
    assert np.median(face[1:, 1]) > 0.95
