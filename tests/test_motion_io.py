"""Motion files by extension: .npy joints / features, .bvh, .mp4 / .gif, and the errors."""

from __future__ import annotations

import pickle
import re
import types

import numpy as np
import pytest
from PIL import Image

from mosa.errors import MosaError
from mosa.motion import io as mio
from mosa.motion.io import MotionFile, convert, read_motion, write_motion
from mosa.motion.skeleton import JOINT_NAMES

LIMB_JOINTS = ("knee", "ankle", "foot", "shoulder", "elbow", "wrist")


@pytest.fixture(scope="module")
def sample_joints(hml_sample) -> np.ndarray:
    """HumanML3D's released joints of clip 012314: (170, 22, 3), canonical (face +Z, origin)."""
    return np.load(hml_sample / "012314_new_joints.npy")


def _bvh_frames(path) -> tuple[int, float]:
    text = path.read_text()
    frames = int(re.search(r"Frames:\s*(\d+)", text).group(1))
    frame_time = float(re.search(r"Frame Time:\s*([0-9.eE+-]+)", text).group(1))
    return frames, frame_time


def _align_y(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root-relative ``a`` turned about Y (one angle for the clip) to best match ``b``."""
    a = a - a[:, :1]
    b = b - b[:, :1]
    # 2D Procrustes on XZ: the angle maximising sum(b . R a)
    ax, az, bx, bz = a[..., 0], a[..., 2], b[..., 0], b[..., 2]
    theta = np.arctan2((az * bx - ax * bz).sum(), (ax * bx + az * bz).sum())
    c, s = np.cos(theta), np.sin(theta)
    out = a.copy()
    out[..., 0], out[..., 2] = c * ax + s * az, -s * ax + c * az
    return out


# ----------------------------------------------------------------------------- .npy


def test_joints_npy_round_trip(tmp_path, sample_joints):
    out = write_motion(tmp_path / "m.npy", sample_joints.astype(np.float64))
    raw = np.load(out)
    assert raw.dtype == np.float32 and raw.shape == (170, 22, 3)
    m = read_motion(out)
    assert isinstance(m, MotionFile)
    assert m.source_kind == "joints" and m.fps == 20.0 and m.features is None
    assert m.joints.dtype == np.float32 and m.num_frames == 170
    np.testing.assert_array_equal(m.joints, sample_joints.astype(np.float32))


def test_features_npy_recovers_released_joints(hml_sample, sample_joints):
    # HumanML3D released both the features and the joints recovered from them.
    m = read_motion(hml_sample / "012314_new_joint_vecs.npy")
    assert m.source_kind == "features" and m.features.shape == (170, 263)
    assert m.joints.shape == (170, 22, 3)
    np.testing.assert_allclose(m.joints, sample_joints, atol=1e-5)


def test_joints_to_features_to_joints(tmp_path, hml_sample, sample_joints):
    convert(hml_sample / "012314_new_joints.npy", tmp_path / "f.npy", to="features")
    feats = np.load(tmp_path / "f.npy")
    assert feats.shape == (169, 263) and feats.dtype == np.float32
    back = convert(tmp_path / "f.npy", tmp_path / "j.npy")
    assert back.source_kind == "features"
    joints = np.load(tmp_path / "j.npy")
    assert joints.shape == (169, 22, 3)
    err = np.abs(
        _align_y(joints, sample_joints[:169]) - (sample_joints[:169] - sample_joints[:169, :1])
    )
    assert err.max() < 1e-3  # within 1 mm
    # and the trajectory: the clip is canonical already, so the root path matches too
    np.testing.assert_allclose(joints[:, 0], sample_joints[:169, 0], atol=1e-3)


def test_features_to_features_is_a_copy(tmp_path, hml_sample):
    src = hml_sample / "012314_new_joint_vecs.npy"
    convert(src, tmp_path / "copy.npy", to="features")
    np.testing.assert_array_equal(np.load(tmp_path / "copy.npy"), np.load(src))


# ----------------------------------------------------------------------------- .bvh


def test_cmu_bvh_to_npy_to_bvh_round_trip(tmp_path, shared_data):
    src = shared_data / "cmu" / "01_01.bvh"
    n120, frame_time = _bvh_frames(src)
    assert frame_time == pytest.approx(1 / 120, rel=1e-3)
    m = convert(src, tmp_path / "a.npy")
    assert m.source_kind == "bvh" and m.fps == 20.0
    a = np.load(tmp_path / "a.npy")
    assert a.shape[1:] == (22, 3) and a.dtype == np.float32
    assert abs(a.shape[0] - n120 / 6) <= 2  # 120 fps -> 20 fps
    height = a[..., 1].max() - a[..., 1].min()
    assert 1.2 < height < 2.2  # a person in metres, Y up

    convert(tmp_path / "a.npy", tmp_path / "b.bvh")
    frames, ft = _bvh_frames(tmp_path / "b.bvh")
    assert frames == a.shape[0] and ft == pytest.approx(0.05, rel=1e-3)
    convert(tmp_path / "b.bvh", tmp_path / "c.npy")
    c = np.load(tmp_path / "c.npy")
    assert c.shape == a.shape
    err = np.linalg.norm(c - a, axis=-1)  # (T, 22)
    # The written skeleton is rigid: the joints hanging off the pelvis and spine3 move as one
    # body. CMU's rig bends its lower back between the hips and the spine, so the spine, neck
    # and head may move a few cm; the arms and legs come back within 1 cm.
    limbs = [i for i, n in enumerate(JOINT_NAMES) if n.split("_")[-1] in LIMB_JOINTS]
    assert len(limbs) == 12 and err[:, limbs].max() < 0.01
    assert err.mean() < 0.005 and err.max() < 0.05
    # Positions that came from the rigid skeleton survive a second round trip exactly.
    convert(tmp_path / "c.npy", tmp_path / "d.bvh")
    convert(tmp_path / "d.bvh", tmp_path / "e.npy")
    assert np.linalg.norm(np.load(tmp_path / "e.npy") - c, axis=-1).max() < 1e-3


def test_bvh_mapping_is_passed_through(tmp_path, monkeypatch):
    seen = {}

    def fake_load_bvh(path, mapping=None, fps=20.0):
        seen.update(path=path, mapping=mapping)
        return types.SimpleNamespace(joints=np.zeros((4, 22, 3)), fps=fps)

    import mosa.motion.retarget

    monkeypatch.setattr(mosa.motion.retarget, "load_bvh", fake_load_bvh)
    (tmp_path / "x.bvh").write_text("HIERARCHY\n")
    m = read_motion(tmp_path / "x.bvh", mapping={"Hips": "pelvis"})
    assert seen["mapping"] == {"Hips": "pelvis"} and seen["path"] == tmp_path / "x.bvh"
    assert m.source_kind == "bvh" and m.joints.shape == (4, 22, 3)
    write_motion(tmp_path / "y.npy", np.zeros((2, 22, 3)))
    with pytest.raises(MosaError, match="BVH files only"):
        read_motion(tmp_path / "y.npy", mapping={"Hips": "pelvis"})


# ----------------------------------------------------------------------------- video


def test_write_gif_and_mp4(tmp_path, sample_joints):
    import imageio_ffmpeg

    clip = sample_joints[:12]
    gif = write_motion(tmp_path / "m.gif", clip, caption="sample")
    with Image.open(gif) as im:
        assert im.n_frames == 12
    mp4 = write_motion(tmp_path / "m.mp4", clip)
    assert mp4.read_bytes()[4:8] == b"ftyp"
    assert imageio_ffmpeg.count_frames_and_secs(str(mp4))[0] == 12


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", ["m.txt", "m.fbx", "m"])
def test_unknown_extensions(tmp_path, name):
    (tmp_path / name).write_text("x")
    with pytest.raises(MosaError) as e:
        read_motion(tmp_path / name)
    assert ".bvh" in e.value.hint and ".npy" in e.value.hint
    with pytest.raises(MosaError) as e:
        write_motion(tmp_path / ("out_" + name), np.zeros((3, 22, 3)))
    assert all(x in e.value.hint for x in (".bvh", ".npy", ".mp4", ".gif"))


@pytest.mark.parametrize("shape", [(10, 22), (10, 66), (10, 21, 3), (10, 262), (263,), (0, 263)])
def test_bad_npy_shapes(tmp_path, shape):
    np.save(tmp_path / "bad.npy", np.zeros(shape, dtype=np.float32))
    with pytest.raises(MosaError) as e:
        read_motion(tmp_path / "bad.npy")
    assert str(shape) in e.value.message
    assert "(T, 22, 3)" in e.value.hint and "(T, 263)" in e.value.hint


def test_unreadable_npy(tmp_path):
    cases = {
        "obj.npy": lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True),
        "pickle.npy": lambda p: p.write_bytes(pickle.dumps(np.zeros((3, 22, 3)))),
        "garbage.npy": lambda p: p.write_bytes(b"\x93NUMPY\x01\x00garbage"),
        "empty.npy": lambda p: p.write_bytes(b""),
        "text.npy": lambda p: np.save(p, np.array(["walk"] * 3)),
    }
    for name, make in cases.items():
        make(tmp_path / name)
        with pytest.raises(MosaError, match=name):
            read_motion(tmp_path / name)
    np.savez(tmp_path / "arch.npz", a=np.zeros((3, 22, 3)))
    (tmp_path / "arch.npz").rename(tmp_path / "arch.npy")
    with pytest.raises(MosaError, match="npz"):
        read_motion(tmp_path / "arch.npy")
    with pytest.raises(MosaError, match="not found"):
        read_motion(tmp_path / "missing.npy")


def test_non_finite_values(tmp_path, hml_sample, sample_joints):
    j = sample_joints.copy()
    j[7, 3, 0] = np.nan
    np.save(tmp_path / "j.npy", j)
    with pytest.raises(MosaError, match="frame 7"):
        read_motion(tmp_path / "j.npy")
    f = np.load(hml_sample / "012314_new_joint_vecs.npy")
    f[5, 100] = np.inf
    np.save(tmp_path / "f.npy", f)
    with pytest.raises(MosaError, match="NaN or infinite"):
        read_motion(tmp_path / "f.npy")
    with pytest.raises(MosaError, match="NaN"):
        write_motion(tmp_path / "out.npy", j)
    assert not (tmp_path / "out.npy").exists()


def test_write_argument_errors(tmp_path, sample_joints):
    clip = sample_joints[:5]
    with pytest.raises(MosaError, match="kind"):
        write_motion(tmp_path / "a.npy", clip, kind="rotations")
    with pytest.raises(MosaError, match=r"\.npy"):
        write_motion(tmp_path / "a.bvh", clip, kind="features")
    with pytest.raises(MosaError, match="30 fps"):
        write_motion(tmp_path / "a.npy", clip, fps=30.0)
    with pytest.raises(MosaError, match=r"\(T, 22, 3\)"):
        write_motion(tmp_path / "a.npy", clip[:, :21])
    with pytest.raises(MosaError, match="2 frames"):
        write_motion(tmp_path / "a.npy", clip[:1], kind="features")
    assert not list(tmp_path.iterdir())


def test_failed_write_keeps_the_old_file(tmp_path, sample_joints, monkeypatch):
    out = write_motion(tmp_path / "a.npy", sample_joints[:5])
    before = out.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mio.np, "save", broken)
    with pytest.raises(RuntimeError):
        write_motion(out, sample_joints[:9])
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
