"""The seam join of motion editing (``edit.offset_join``) on synthetic poses with a known offset.

Derivation of the bound checked here. A generated frame's bone ``b`` is
``R(r_b(t)) d_b(t) * l_b(t)``: the decode's unit direction ``d_b`` turned by the rotation
vector ``r_b(t) = sum_s w_s(t) r_sb`` (``r_sb``: the shortest arc from the decode's direction
to the source's at seam ``s``, angle ``theta_sb``) with length ``l_b(t) = l_dec,b(t) + sum_s
w_s(t) dl_sb``; the root sits at the decode's height plus ``sum_s w_s(t) dh_s``. Between two
frames, rotations are isometries and ``|R(r) d - R(r') d| <= |r - r'|`` (the exponential map
of SO(3) does not stretch), so a bone moves by at most
``l |d(t+1) - d(t)| + |l_dec(t+1) - l_dec(t)| + sum_s |dw_s| (theta_sb l + |dl_sb|)``, with
``l`` the largest length on the way. Down a joint's chain, plus the root, for a decode that
holds still (``d``, ``l_dec`` constant):

    |joint_j(t+1) - joint_j(t)| <= sum_s |dw_s| size_sj,
    size_sj = |dh_s| + sum over the bones b from the root to j of (theta_sb l_b + |dl_sb|),

and ``|dw_s| <= SMOOTHSTEP_SLOPE / window_s`` (the steepest slope of ``3 x^2 - 2 x^3`` is 1.5
at ``x = 1/2``). ``offset_join`` picks ``window_s = ceil(1.5 size_s fps / (budget speed))``
(``size_s = max_j size_sj``), clipped to ``[min_window, max_window]`` and to the run, so
unclipped, no joint moves faster than ``budget * speed`` m/s more than the decode does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mosa import edit as E
from mosa.motion.features import local_joints, recover_joints, recover_root
from mosa.motion.quaternion import qrot
from mosa.motion.skeleton import NUM_JOINTS, PARENTS, RIC_SLICE, VEL_SLICE

FPS = 20.0
BONE_PARENTS = list(PARENTS[1:])


@pytest.fixture(scope="module")
def clip(hml_sample):
    """Real HumanML3D features, (170, 263)."""
    return np.load(hml_sample / "012314_new_joint_vecs.npy").astype(np.float64)


def _bones(joints):
    b = joints[..., 1:, :] - joints[..., BONE_PARENTS, :]
    length = np.linalg.norm(b, axis=-1)
    return b / length[..., None], length


def _fk(height, bones):
    """Local joints (22, 3) from a root height and bone vectors (21, 3)."""
    out = np.zeros((NUM_JOINTS, 3))
    out[0, 1] = height
    for j in range(1, NUM_JOINTS):
        out[j] = out[PARENTS[j]] + bones[j - 1]
    return out


def _features(joints, frames, velocity=(0.0, 0.0)):
    """``frames`` feature frames holding the local pose ``joints (22, 3)``, moving forward at
    ``velocity`` (x, z) per frame; rotations and joint velocities 0."""
    f = np.zeros((frames, 263))
    f[:, 1:3] = velocity
    f[:, 3] = joints[0, 1]
    f[:, RIC_SLICE] = joints[1:].reshape(-1)
    return f


def _axes(dirs):
    """A unit axis perpendicular to each bone direction (21, 3)."""
    other = np.where(np.abs(dirs[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    n = np.cross(dirs, other)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def _turned(pose, alpha, stretch, dh):
    """``pose`` with every bone turned by ``alpha`` about an axis perpendicular to it, bone
    lengths scaled by 1 + stretch * (-1, 0, 1, -1, ...) and the root raised by ``dh``.
    Returns the pose and, per bone, the axis (21, 3) and the lengths (21,)."""
    dirs, length = _bones(pose)
    axes = _axes(dirs)
    new_dirs = Rotation.from_rotvec(axes * alpha).apply(dirs)
    new_len = length * (1 + stretch * (np.arange(21) % 3 - 1))
    return _fk(pose[0, 1] + dh, new_dirs * new_len[:, None]), axes, new_len


def _smoothstep(x):
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def _chain_size(theta, length, dlen, dh):
    """size_j of the module docstring for every joint, (22,)."""
    out = np.zeros(NUM_JOINTS)
    out[0] = abs(dh)
    for j in range(1, NUM_JOINTS):
        out[j] = out[PARENTS[j]] + theta[j - 1] * length[j - 1] + abs(dlen[j - 1])
    return out


def _jumps(features):
    """(T-1, 22) per-frame displacement of each joint in the world."""
    return np.linalg.norm(np.diff(recover_joints(features), axis=0), axis=-1)


# -------------------------------------------------------------------------------- seams


def test_seams_and_weights_by_hand():
    kept = np.array([1, 1, 1, 1, 1, 1, 0, 0, 1, 1], bool)
    seams = E.find_seams(kept)
    assert [(s.frame, s.step, s.reach) for s in seams] == [(5, 1, 3), (8, -1, 3)]
    for s in seams:
        s.window = 3
    w = E.seam_weights(len(kept), seams)
    a, b = 20 / 27, 7 / 27  # 1 - smoothstep(1/3), 1 - smoothstep(2/3)
    np.testing.assert_allclose(w[0], [0, 0, 0, 0, 0, 1, a, b, 0, 0], atol=1e-12)
    np.testing.assert_allclose(w[1], [0, 0, 0, 0, 0, 0, b, a, 1, 0], atol=1e-12)
    # open runs (nothing kept beyond them) and several runs
    kept = np.array([0, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0], bool)
    got = [(s.frame, s.step, s.reach) for s in E.find_seams(kept)]
    assert got == [(2, -1, 0), (4, 1, 2), (6, -1, 2), (7, 1, 0)]
    assert E.find_seams(np.ones(5, bool)) == []


@pytest.mark.parametrize("window", [1, 4, 9])
def test_two_seams_of_a_run_share_it(window):
    kept = np.r_[np.ones(10), np.zeros(8), np.ones(10)].astype(bool)
    seams = E.find_seams(kept)
    for s in seams:
        s.window = min(window, s.reach)
    w = E.seam_weights(len(kept), seams)
    assert w[0, 18] == 0 and w[1, 9] == 0  # each seam leaves the other's kept frame alone
    assert w[0, 9] == 1 and w[1, 18] == 1
    assert (w.sum(0)[~kept] <= 1 + 1e-12).all()
    steps = np.abs(np.diff(w[:, 9:19], axis=1)).max(1)  # from one kept frame to the other
    assert (steps <= E.SMOOTHSTEP_SLOPE / np.array([s.window for s in seams]) + 1e-12).all()


# -------------------------------------------------------------------------------- one seam


@pytest.mark.parametrize(
    ("alpha", "stretch", "dh"),
    [(0.0, 0.0, 0.0), (0.05, 0.0, 0.0), (0.3, 0.05, 0.02), (0.6, 0.1, 0.04), (2.5, 0.1, 0.04)],
)
def test_one_seam_applies_the_known_offset_and_decays(clip, alpha, stretch, dh):
    pose = local_joints(clip[:1])[0]  # the source's pose P, held
    dec_pose, axes, dec_len = _turned(pose, alpha, stretch, dh)  # the decode's pose Q, held
    src_dirs, src_len = _bones(pose)
    T, k, speed, budget = 100, 29, 2.0, 0.5
    kept = np.arange(T) <= k  # keep 0..29, generate 30..99 (an extension)
    source, decoded = _features(pose, T), _features(dec_pose, T)
    out, weights, seams = E.offset_join(source, decoded, kept, speed=speed, budget=budget, fps=FPS)

    # the offset's size and the window it needs, from the known offset
    theta = np.full(21, alpha)  # each bone turned about an axis perpendicular to it
    size = _chain_size(theta, np.maximum(src_len, dec_len), src_len - dec_len, dh)
    need = math.ceil(E.SMOOTHSTEP_SLOPE * size.max() * FPS / (budget * speed))
    n = int(np.clip(need, E.DEFAULT_BLEND, E.MAX_WINDOW))
    [s] = seams
    assert (s.frame, s.step, s.window) == (k, 1, n)
    assert s.size == pytest.approx(size.max(), rel=1e-6)

    # kept frames are the source's; the weight is 1 - smoothstep(d / n) after the seam
    np.testing.assert_array_equal(out[kept], source[kept].astype(np.float32))
    d = np.arange(T) - k
    w = np.where(kept, 1.0, 1 - _smoothstep(d / n))
    np.testing.assert_allclose(weights, w, atol=1e-6)

    # every generated frame: each bone turned back towards P's by w * alpha, the blended
    # length; the whole offset at the seam, none from n frames on (Q exactly)
    got = local_joints(out)
    for t in range(k + 1, T):
        dirs = Rotation.from_rotvec(axes * alpha * (1 - w[t])).apply(src_dirs)
        want = _fk(dec_pose[0, 1] + w[t] * (pose[0, 1] - dec_pose[0, 1]),
                   dirs * (dec_len + w[t] * (src_len - dec_len))[:, None])  # fmt: skip
        np.testing.assert_allclose(got[t], want, atol=2e-5)
    np.testing.assert_allclose(_bones(got[k + 1 :])[1], (dec_len + w[k + 1 :, None]
                               * (src_len - dec_len)), atol=2e-5)  # fmt: skip
    np.testing.assert_allclose(got[k + n :], dec_pose[None].repeat(T - k - n, 0), atol=2e-5)
    np.testing.assert_array_equal(out[k + n :], decoded[k + n :].astype(np.float32))

    # continuity: no joint moves more than the bound of the module docstring in one frame
    jumps = _jumps(out)  # (T-1, 22), world (the root does not travel here)
    bound = E.SMOOTHSTEP_SLOPE / n * size + 1e-5
    assert (jumps <= bound[None]).all()
    if need <= E.MAX_WINDOW:  # the window was long enough: within the speed budget
        assert jumps.max() * FPS <= budget * speed + 1e-4
    if size.max() > 0:  # a plain paste of the decode after the source breaks the bound
        pasted = np.where(kept[:, None], source, decoded)
        assert (_jumps(pasted)[k] > bound).any()


def test_seam_reference_extrapolates_the_generated_side():
    """At each seam's kept frame: 2 d(k + step) - d(k + 2 step), or d(k + step) when the
    run is one frame; a decode linear in time is continued exactly."""
    T = 12
    decoded = np.arange(T, dtype=np.float64)[:, None] * np.linspace(1, 2, 263)[None]
    decoded[4] += 50.0  # the kept frame's own decode is far off: not used
    kept = np.ones(T, bool)
    kept[5:9] = False  # run 5..8, seams at 4 (+1) and 9 (-1)
    kept[10] = False  # a one-frame run, seams at 9 (+1) and 11 (-1)
    seams = E.find_seams(kept)
    assert [(s.frame, s.step) for s in seams] == [(4, 1), (9, -1), (9, 1), (11, -1)]
    ref = E.seam_reference(decoded, kept, seams)
    line = np.linspace(1, 2, 263)
    np.testing.assert_allclose(ref[0], 4 * line)  # 2 d(5) - d(6)
    np.testing.assert_allclose(ref[1], 9 * line)  # 2 d(8) - d(7)
    np.testing.assert_allclose(ref[2], decoded[10])  # one generated frame: d(10)
    np.testing.assert_allclose(ref[3], decoded[10])


def test_a_decode_that_jumps_at_the_seam_does_not_jump_the_output(clip):
    """The decode of the kept frame k (pose A, where the pasted and the generated latents
    meet) differs from the generated frames (pose B, held): the offset is measured against
    B, so the first generated frame is the kept pose and no joint jumps more than the
    bound; measured against A, the output would jump by the A-B difference."""
    pose = local_joints(clip[:1])[0]
    a_pose, _, _ = _turned(pose, 0.6, 0.1, 0.05)
    b_pose, _, _ = _turned(pose, 0.2, 0.0, 0.0)
    T, k = 60, 29
    kept = np.arange(T) <= k
    source = _features(pose, T)
    decoded = _features(b_pose, T)
    decoded[: k + 1] = _features(a_pose, k + 1)
    out, _, [s] = E.offset_join(source, decoded, kept, speed=2.0, fps=FPS)
    got = local_joints(out)
    # the kept pose, but for the share 1 - w(1) of the offset already decayed
    assert np.abs(got[k + 1] - pose).max() <= _smoothstep(1 / s.window) * s.size + 1e-6
    held = _features(b_pose, T)  # the same join with a decode that holds B throughout
    same, _, _ = E.offset_join(source, held, kept, speed=2.0, fps=FPS)
    np.testing.assert_allclose(out[k + 1 :], same[k + 1 :], atol=1e-6)
    pasted_a = np.where(kept[:, None], source, decoded + (source[k] - decoded[k]))
    assert _jumps(out)[k].max() < 0.2 * _jumps(pasted_a)[k].max()


def test_window_follows_blend_and_clips(clip):
    pose = local_joints(clip[:1])[0]
    kept = np.arange(60) < 30
    small, _, _ = _turned(pose, 0.1, 0.0, 0.0)
    big, _, _ = _turned(pose, 1.0, 0.0, 0.0)
    src = _features(pose, 60)

    def window(dec, **kw):
        return E.offset_join(src, _features(dec, 60), kept, speed=1.0, **kw)[2][0].window

    assert window(pose) == E.DEFAULT_BLEND  # no offset: the shortest window
    assert window(pose, min_window=9) == 9  # --blend sets it
    assert E.DEFAULT_BLEND < window(small) < window(big) == E.MAX_WINDOW
    assert window(big, max_window=25) == 25
    assert window(small, budget=0.25) > window(small)  # a smaller budget: a longer window
    # a short run between kept parts: the window stops at the kept frame across it
    kept = np.r_[np.ones(30), np.zeros(6), np.ones(24)].astype(bool)
    seams = E.offset_join(src, _features(big, 60), kept, speed=1.0)[2]
    assert [s.window for s in seams] == [7, 7]


# -------------------------------------------------------------------------------- two seams


def test_a_short_run_between_two_kept_poses_matches_both(clip):
    left = local_joints(clip[:1])[0]
    right = local_joints(clip[100:101])[0]  # another pose of the clip for the kept part after
    dec_pose, _, dec_len = _turned(left, 0.7, 0.1, 0.03)
    T, a, b = 40, 15, 23  # generate 15..22: 8 frames
    kept = (np.arange(T) < a) | (np.arange(T) >= b)
    source = np.where((np.arange(T) < a)[:, None], _features(left, T), _features(right, T))
    decoded = _features(dec_pose, T)
    out, weights, seams = E.offset_join(source, decoded, kept, speed=1.0, fps=FPS)
    assert [(s.frame, s.step, s.window) for s in seams] == [(a - 1, 1, 9), (b, -1, 9)]
    np.testing.assert_array_equal(out[kept], source[kept].astype(np.float32))
    # the two weights are a partition of the run: together, the whole run is corrected
    np.testing.assert_allclose(weights, 1.0, atol=1e-6)

    sizes = []
    dec_dirs, _ = _bones(dec_pose)
    for pose in (left, right):
        dirs, length = _bones(pose)
        theta = np.arccos(np.clip(np.sum(dirs * dec_dirs, -1), -1, 1))
        sizes.append(_chain_size(theta, np.maximum(length, dec_len), length - dec_len,
                                 pose[0, 1] - dec_pose[0, 1]))  # fmt: skip
    assert [s.size for s in seams] == pytest.approx([z.max() for z in sizes], rel=1e-6)
    bound = E.SMOOTHSTEP_SLOPE / 9 * (sizes[0] + sizes[1]) + 1e-5
    got = local_joints(out)
    jumps = np.linalg.norm(np.diff(got, axis=0), axis=-1)  # root-relative: kept B is re-anchored
    assert (jumps[a - 1 : b] <= bound[None]).all()  # every step from the last kept A frame on
    pasted = local_joints(np.where(kept[:, None], source, decoded))
    assert (np.linalg.norm(pasted[a] - pasted[a - 1], axis=-1) > bound).any()
    # bones: lengths blend from A's through the decode's to B's, no frame shortens them more
    lengths = _bones(got)[1]
    lo = np.minimum.reduce([_bones(left)[1], _bones(right)[1], dec_len])
    hi = np.maximum.reduce([_bones(left)[1], _bones(right)[1], dec_len])
    assert (lengths >= lo - 1e-5).all() and (lengths <= hi + 1e-5).all()


# -------------------------------------------------------------------------------- root


def test_root_carries_its_velocity_across_the_seam(clip):
    pose = local_joints(clip[:1])[0]
    T, k = 60, 19
    kept = np.arange(T) <= k
    source = _features(pose, T, velocity=(0.0, 0.06))  # walking forward at 1.2 m/s
    decoded = _features(pose, T)  # standing still, same pose
    out, weights, [s] = E.offset_join(source, decoded, kept, speed=1.0, fps=FPS)
    assert s.window == E.DEFAULT_BLEND  # no pose offset: the shortest window
    np.testing.assert_allclose(out[:, 2], 0.06 * weights, atol=1e-7)  # velocity fades out
    _, root = recover_root(out)
    step = np.linalg.norm(np.diff(root, axis=0), axis=-1)
    np.testing.assert_allclose(step[: k + 1], 0.06, atol=1e-6)  # the source's own steps
    assert (np.abs(np.diff(step)) <= 0.06 * E.SMOOTHSTEP_SLOPE / s.window + 1e-6).all()
    assert step[k + s.window :].max() < 1e-7  # then the decode: still
    pasted = recover_root(np.where(kept[:, None], source, decoded))[1]
    assert np.abs(np.diff(np.linalg.norm(np.diff(pasted, axis=0), axis=-1))).max() > 0.05


# -------------------------------------------------------------------------------- real features


def test_real_motions_keep_consistent_channels(clip):
    src, dec = clip[:100], clip[70:170]  # two stretches of a real clip as source and decode
    kept = (np.arange(100) < 20) | (np.arange(100) >= 90)
    out, weights, seams = E.offset_join(src, dec, kept, fps=FPS)
    np.testing.assert_array_equal(out[kept], src[kept].astype(np.float32))
    untouched = (weights == 0) & (np.r_[weights[1:], 0] == 0)  # velocities: to the next frame
    assert untouched.any()
    np.testing.assert_array_equal(out[untouched], dec[untouched].astype(np.float32))
    np.testing.assert_array_equal(out[~kept, -4:], dec[~kept, -4:].astype(np.float32))
    # the joint velocity channels follow the corrected positions (the decode's are exact)
    rot_q, _ = recover_root(out.astype(np.float64))
    joints = recover_joints(out.astype(np.float64))
    vel = qrot(np.repeat(rot_q[:-1, None], NUM_JOINTS, 1), joints[1:] - joints[:-1])
    gen = np.flatnonzero(~kept)
    np.testing.assert_allclose(out[gen, VEL_SLICE], vel[gen].reshape(len(gen), -1), atol=1e-4)
    # the seams: the first and last generated poses are near the kept ones next to them
    ref = np.linalg.norm(local_joints(src[[19]]) - local_joints(dec[[19]]), axis=-1).max()
    near = np.linalg.norm(local_joints(out[[20]]) - local_joints(src[[19]]), axis=-1).max()
    assert near < 0.5 * ref
