"""Bounded work for any input (issue 16): every limit of ``mosa.limits`` stops a small input
that would cost hours or gigabytes, names the limit and the variable that raises it, and the
variable does raise it."""

from __future__ import annotations

import numpy as np
import pytest

from mosa import limits
from mosa.errors import MosaError
from mosa.motion.bvh import read_bvh, save_bvh
from mosa.motion.io import read_motion
from mosa.motion.render import render_motions
from mosa.requests import read_prompts


@pytest.fixture(scope="module")
def bvh_text(hml_sample, tmp_path_factory):
    """A 200-frame BVH of the 22-joint body at 20 fps."""
    j = np.load(hml_sample / "012314_new_joints.npy")
    path = tmp_path_factory.mktemp("bvh") / "ok.bvh"
    save_bvh(path, np.concatenate([j, j[:30]]))
    return path.read_text()


def _frame_time(text: str, value: str) -> str:
    line = next(ln for ln in text.splitlines() if ln.startswith("Frame Time:"))
    return text.replace(line, f"Frame Time: {value}")


@pytest.mark.parametrize("value", ["1000", "10000", "1e30"])
def test_a_huge_frame_time_is_refused_before_any_work(bvh_text, tmp_path, value):
    """200 frames of 1000 s would be 3,980,001 frames at 20 fps (1 GB, 6 GB of memory)."""
    path = tmp_path / "slow.bvh"
    path.write_text(_frame_time(bvh_text, value))
    for read in (read_bvh, read_motion):
        with pytest.raises(MosaError) as e:
            read(path)
        assert "MOSA_MAX_FRAMES" in str(e.value) and "Frame Time" in e.value.hint
        assert str(path) in e.value.message and "at 20 fps" in e.value.message


def test_the_frame_limit_can_be_raised(bvh_text, tmp_path, monkeypatch):
    path = tmp_path / "slow.bvh"
    path.write_text(_frame_time(bvh_text, "0.5"))  # 99.5 s: 1991 frames at 20 fps
    monkeypatch.setenv("MOSA_MAX_FRAMES", "1000")
    with pytest.raises(MosaError, match="1,991 frames at 20 fps; the limit is 1,000 frames") as e:
        read_bvh(path)
    assert "MOSA_MAX_FRAMES=2000" in e.value.hint
    monkeypatch.setenv("MOSA_MAX_FRAMES", "2000")
    assert read_bvh(path).num_frames == 200
    monkeypatch.setenv("MOSA_MAX_FRAMES", "lots")
    with pytest.raises(MosaError, match="MOSA_MAX_FRAMES='lots' is not a positive number"):
        read_bvh(path)


def test_joints_and_joint_frames(tmp_path, monkeypatch):
    n = 40
    lines = ["HIERARCHY", "ROOT r", "{", "OFFSET 0 0 0", "CHANNELS 3 Xposition Yposition Zposition"]
    lines += [f"JOINT j{i} {{ OFFSET 0 1 0 CHANNELS 0" for i in range(n)]
    lines += ["}"] * n + ["}", "MOTION", "Frames: 3", "Frame Time: 0.05"] + ["0 0 0"] * 3
    # braces on JOINT lines need their own lines: "JOINT j { OFFSET ..." is not one line's worth
    text = "\n".join(lines).replace(" { OFFSET 0 1 0 CHANNELS 0", "\n{\nOFFSET 0 1 0\nCHANNELS 0")
    path = tmp_path / "many.bvh"
    path.write_text(text)
    assert read_bvh(path).num_joints == n + 1
    monkeypatch.setenv("MOSA_MAX_JOINTS", "10")
    with pytest.raises(MosaError, match="MOSA_MAX_JOINTS"):
        read_bvh(path)
    monkeypatch.delenv("MOSA_MAX_JOINTS")
    monkeypatch.setenv("MOSA_MAX_JOINT_FRAMES", "100")
    with pytest.raises(MosaError, match="41 joints x 3 frames = 123 joint-frames"):
        read_bvh(path)


def test_file_size(tmp_path, monkeypatch, hml_sample):
    monkeypatch.setenv("MOSA_MAX_FILE_MB", "0.01")
    with pytest.raises(MosaError, match="MOSA_MAX_FILE_MB") as e:
        read_motion(hml_sample / "012314_new_joints.npy")
    assert "MB" in e.value.message
    (tmp_path / "p.txt").write_text("a person walks\n" * 1000)
    with pytest.raises(MosaError, match="MOSA_MAX_FILE_MB"):
        read_prompts(tmp_path / "p.txt")


def test_an_npy_header_asking_for_terabytes(tmp_path):
    """A 128-byte file whose header claims (10**9, 22, 3): refused before numpy allocates."""
    path = tmp_path / "huge.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**9, 22, 3)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
    with pytest.raises(MosaError, match="MOSA_MAX_FRAMES"):
        read_motion(path)
    header["shape"] = (100, 22, 3)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(b"\0" * 64)
    with pytest.raises(MosaError, match="truncated"):
        read_motion(path)


def test_prompt_lines(tmp_path, monkeypatch):
    (tmp_path / "p.txt").write_text("a person walks\n" * 30)
    assert len(read_prompts(tmp_path / "p.txt")) == 30
    monkeypatch.setenv("MOSA_MAX_PROMPTS", "20")
    with pytest.raises(MosaError, match="MOSA_MAX_PROMPTS"):
        read_prompts(tmp_path / "p.txt")


def test_render_panels_and_gif_memory(monkeypatch, tmp_path):
    joints = np.zeros((3, 22, 3), np.float32)
    joints[:, :, 1] = np.linspace(0, 1.7, 22)
    monkeypatch.setenv("MOSA_MAX_PANELS", "2")
    with pytest.raises(MosaError, match="3 motions to render.*MOSA_MAX_PANELS"):
        render_motions([joints] * 3, tmp_path / "x.mp4")
    monkeypatch.setenv("MOSA_MAX_GIF_MB", "0.1")
    with pytest.raises(MosaError, match="MOSA_MAX_GIF_MB") as e:
        render_motions([joints], tmp_path / "x.gif")
    assert ".mp4" in e.value.hint
    assert not list(tmp_path.iterdir())


def test_round_up():
    assert [limits.round_up(x) for x in (1, 3, 72_001, 3_980_001)] == [1, 5, 100_000, 5_000_000]
