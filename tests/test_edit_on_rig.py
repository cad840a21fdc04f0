"""Edits back on the source take: kept frames exact, generated ones on the rig, the take
where it was, frame count and rate of the source."""

import numpy as np
import pytest
from tests.tiny_models import write_tiny_pipeline

import mosa
from mosa.cli import edit as cli_edit
from mosa.edit.modes import edit_span, inbetween, outpaint
from mosa.edit.on_rig import check_edit_rig, edit_on_joints, edit_on_rig, save_edit, take_of
from mosa.errors import MosaError
from mosa.motion.bvh import read_bvh
from mosa.motion.io import read_motion, write_motion


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    root = write_tiny_pipeline(tmp_path_factory.mktemp("tiny"))
    return mosa.load(root, "cpu")


@pytest.fixture(scope="module")
def cmu(shared_data):
    path = shared_data / "cmu" / "01_01.bvh"
    return path, read_motion(path), read_bvh(path)


def test_span_edit_keeps_the_take_exactly(pipe, cmu, tmp_path):
    path, src, bvh = cmu
    m = edit_span(pipe, src, "a person waves", 3, 5, seed=1)
    out = save_edit(m, tmp_path / "out.bvh", [src])
    got = read_bvh(out)  # through the file: what an animator gets
    assert got.names == bvh.names and got.channels == bvh.channels
    assert np.array_equal(got.offsets, bvh.offsets) and got.frame_time == bvh.frame_time
    assert got.num_frames == bvh.num_frames  # 2,752 at 120 fps
    a, b = 3 * 120, 5 * 120  # the span at the take's rate
    assert np.array_equal(got.motion[:a], bvh.motion[:a])  # every channel value
    assert np.array_equal(got.motion[b:, 6:], bvh.motion[b:, 6:])  # all but the root's
    assert not np.array_equal(got.motion[a:b], bvh.motion[a:b])
    # the root after the span is moved rigidly: its path keeps its shape and height
    pa, pb = got.motion[b:, :3], bvh.motion[b:, :3]
    np.testing.assert_allclose(pa[:, 1], pb[:, 1], atol=1e-5)
    da = np.linalg.norm(np.diff(pa[:, [0, 2]], axis=0), axis=-1)
    db = np.linalg.norm(np.diff(pb[:, [0, 2]], axis=0), axis=-1)
    np.testing.assert_allclose(da, db, atol=1e-4)
    # no pop where the rig goes from kept to generated frames and back
    pos = got.global_positions()
    step = np.linalg.norm(np.diff(pos, axis=0), axis=-1).max(axis=1)
    typical = np.percentile(step, 99)
    for s in (a - 1, b - 1):
        assert step[s] < 2 * typical + 0.5, s


def test_extra_joints_carry_the_kept_pose(pipe, cmu):
    _, src, bvh = cmu
    m = edit_span(pipe, src, "a person waves", 3, 5, seed=1)
    out = edit_on_rig(m, [take_of(src, bvh)])
    col = bvh.channel_columns()[bvh.names.index("LThumb")]
    a, b = 360, 600
    gen = out.motion[a:b][:, col]
    lo = np.minimum(bvh.motion[a - 1, col], bvh.motion[b, col]) - 1e-6
    hi = np.maximum(bvh.motion[a - 1, col], bvh.motion[b, col]) + 1e-6
    assert ((gen >= lo) & (gen <= hi)).all()  # between the kept poses, not snapped to rest
    assert np.abs(gen - bvh.motion[a - 1, col]).max() > 0 or (lo == hi).all()


def test_extend_lead_in_and_inbetween_keep_the_frames(pipe, cmu):
    _, src, bvh = cmu
    take = take_of(src, bvh)
    m = outpaint(pipe, src, "a walk", 0, 1, seed=1)
    ext = edit_on_rig(m, [take])
    assert np.array_equal(ext.motion[: bvh.num_frames], bvh.motion)  # all of the take
    # then the generated part at 120 fps, from the take's last frame to the edit's end
    end = (len(m.joints) - 1 - (bvh.num_frames - 1) / 6) * 6
    assert ext.num_frames - bvh.num_frames == int(np.floor(end + 1e-6))
    lead = edit_on_rig(outpaint(pipe, src, "a walk", 1, 0, seed=1), [take])
    assert np.array_equal(lead.motion[-bvh.num_frames :, 6:], bvh.motion[:, 6:])
    mid = edit_on_rig(inbetween(pipe, src, src, "a turn", 1, seed=1), [take, take])
    assert np.array_equal(mid.motion[: bvh.num_frames - 6], bvh.motion[: bvh.num_frames - 6])
    assert np.array_equal(mid.motion[-bvh.num_frames + 6 :, 6:], bvh.motion[6:, 6:])


def test_joint_sources_keep_their_own_positions(pipe, cmu, tmp_path):
    _, src, _ = cmu
    short = read_motion(write_motion(tmp_path / "s.npy", src.joints[:121]))
    m = edit_span(pipe, short, "a person jumps", 2, 3.5, seed=1)
    out = edit_on_joints(m, [take_of(short)])
    assert out.shape == (121, 22, 3)
    assert np.array_equal(out[:40], short.joints[:40])  # bit for bit, not re-encoded
    after = out[70:] - out[70:, :1]  # after the span: the same poses, moved rigidly
    want = short.joints[70:] - short.joints[70:, :1]
    yaw = np.arctan2(after[..., 0], after[..., 2]) - np.arctan2(want[..., 0], want[..., 2])
    np.testing.assert_allclose(np.linalg.norm(after, axis=-1), np.linalg.norm(want, axis=-1),
                               atol=1e-5)  # fmt: skip
    assert np.ptp(np.angle(np.exp(1j * yaw[:, 1:]))) < 1e-4  # one rotation for all


def test_rig_flag(pipe, cmu, tmp_path, shared_data):
    path, src, bvh = cmu
    m = edit_span(pipe, src, "a person waves", 3, 5, seed=1)
    out = save_edit(m, tmp_path / "smpl.bvh", [src], rig="smpl")
    assert read_bvh(out).num_frames == len(m.joints)  # mosa's skeleton at 20 fps
    with pytest.raises(MosaError, match="unknown rig"):
        save_edit(m, tmp_path / "x.bvh", [src], rig="robot")
    # the CLI checks --rig with the same function before loading anything
    assert cli_edit.check_edit_rig is check_edit_rig
    with pytest.raises(MosaError, match="generate --rig") as e:
        save_edit(m, tmp_path / "x.bvh", [src], rig="character.bvh")
    assert "--rig smpl" in e.value.hint
    assert not (tmp_path / "x.bvh").exists()
