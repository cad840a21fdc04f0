"""Property-based tests of the BVH parser and writer (issue 16): random hierarchies and frame
data round-trip, forward kinematics agrees with a plain per-frame reference, and no input,
however broken, raises anything but ``MosaError``.

The default Hypothesis profile ("ci", tests/conftest.py) runs a bounded number of examples;
``HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_fuzz_*.py`` searches far longer.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from mosa.errors import MosaError  # noqa: E402
from mosa.motion.bvh import (  # noqa: E402
    POSITION_CHANNELS,
    ROTATION_CHANNELS,
    BVHData,
    read_bvh,
    write_bvh,
)

NAME = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:.-", min_size=1,
               max_size=12)  # fmt: skip
VALUE = st.floats(-360, 360, allow_nan=False, width=32)


@st.composite
def hierarchies(draw, max_joints: int = 10) -> BVHData:
    """A random BVH: joints in depth-first order (as ``write_bvh`` lists them), one or more
    roots, any subset and order of channels per joint, End Sites on some joints."""
    n = draw(st.integers(1, max_joints))
    parents, path = [-1], [0]  # path: the ancestors of the last joint, itself included
    for j in range(1, n):
        another_root = draw(st.integers(0, 9)) == 0
        parent = -1 if another_root else path[draw(st.integers(0, len(path) - 1))]
        parents.append(parent)
        path = path[: path.index(parent) + 1] + [j] if parent >= 0 else [j]
    names = draw(st.lists(NAME, min_size=n, max_size=n, unique_by=str.lower))
    all_channels = POSITION_CHANNELS + ROTATION_CHANNELS
    channels = [
        tuple(draw(st.permutations(all_channels))[: draw(st.integers(0, 6))]) for _ in range(n)
    ]
    offsets = np.array(draw(st.lists(st.tuples(VALUE, VALUE, VALUE), min_size=n, max_size=n)))
    frames = draw(st.integers(1, 6))
    width = sum(len(c) for c in channels)
    motion = np.array(
        draw(st.lists(VALUE, min_size=frames * width, max_size=frames * width)), dtype=np.float64
    ).reshape(frames, width)
    ends = [(j, np.array(draw(st.tuples(VALUE, VALUE, VALUE)))) for j in range(n)
            if draw(st.booleans())]  # fmt: skip
    frame_time = draw(st.sampled_from([1 / 120, 1 / 60, 1 / 30, 0.05, 1 / 24]))
    return BVHData(names, np.array(parents), offsets.astype(np.float64), channels, frame_time,
                   motion, ends)  # fmt: skip


def _write(data: BVHData) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fuzzbvh"))
    path = folder / "x.bvh"
    write_bvh(path, data)
    return path


@given(hierarchies())
def test_write_then_read_gives_the_same_file(data):
    back = read_bvh(_write(data))
    assert back.names == data.names
    assert back.parents.tolist() == data.parents.tolist()
    assert back.channels == [tuple(c) for c in data.channels]
    np.testing.assert_allclose(back.offsets, data.offsets, atol=1e-5)
    np.testing.assert_allclose(back.motion, data.motion, atol=1e-5)
    assert back.frame_time == pytest.approx(data.frame_time, abs=1e-8)
    # the writer lists a joint's End Sites after its children (one per joint here): by joint
    got, want = (
        sorted(back.end_sites, key=lambda e: e[0]),
        sorted(data.end_sites, key=lambda e: e[0]),
    )
    assert [j for j, _ in got] == [j for j, _ in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def _reference_positions(data: BVHData) -> np.ndarray:
    """Forward kinematics one frame and one joint at a time, with scipy's rotations."""
    cols = data.channel_columns()
    out = np.zeros((data.num_frames, data.num_joints, 3))
    for t in range(data.num_frames):
        g_rot, g_pos = [None] * data.num_joints, [None] * data.num_joints
        for j, p in enumerate(data.parents):
            local_t, seq, angles = np.array(data.offsets[j], dtype=np.float64), "", []
            for name, c in zip(data.channels[j], cols[j], strict=True):
                if name in POSITION_CHANNELS:
                    local_t[POSITION_CHANNELS.index(name)] = data.motion[t, c]
                else:
                    seq += name[0]
                    angles.append(data.motion[t, c])
            r = Rotation.from_euler(seq, angles, degrees=True).as_matrix() if seq else np.eye(3)
            if p < 0:
                g_rot[j], g_pos[j] = r, local_t
            else:
                g_rot[j], g_pos[j] = g_rot[p] @ r, g_pos[p] + g_rot[p] @ local_t
            out[t, j] = g_pos[j]
    return out


@given(hierarchies(max_joints=6))
def test_forward_kinematics_matches_a_per_frame_reference(data):
    np.testing.assert_allclose(data.global_positions(), _reference_positions(data), atol=1e-6)
    rot, pos = data.global_transforms()
    assert rot.shape == (data.num_frames, data.num_joints, 3, 3)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3),
                               rot.shape), atol=1e-9)  # fmt: skip


MUTATIONS = st.sampled_from(["drop", "duplicate", "token", "truncate", "insert", "swap"])
JUNK = st.one_of(
    st.sampled_from(["{", "}", "ROOT", "JOINT", "End Site", "OFFSET", "CHANNELS", "MOTION",
                     "Frames:", "Frame Time:", "nan", "inf", "-", "1e999", "\u00b2", "\x00",
                     "CHANNELS 99", "Frames: 0", "Frame Time: -1", "Frame Time: 1e300"]),
    st.text(max_size=8),
)  # fmt: skip


@given(hierarchies(max_joints=5), st.lists(st.tuples(MUTATIONS, st.integers(0, 10**6), JUNK),
                                           min_size=1, max_size=4))  # fmt: skip
def test_broken_files_raise_mosa_errors_only(data, mutations):
    lines = _write(data).read_text().splitlines()
    for kind, at, junk in mutations:
        i = at % max(1, len(lines))
        if kind == "drop" and lines:
            del lines[i]
        elif kind == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif kind == "token" and lines:
            tokens = lines[i].split() or [""]
            tokens[at % len(tokens)] = junk
            lines[i] = " ".join(tokens)
        elif kind == "truncate":
            lines = lines[:i]
        elif kind == "insert":
            lines.insert(i, junk)
        elif kind == "swap" and len(lines) > 1:
            j = (i + 1) % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
    path = Path(tempfile.mkdtemp(prefix="fuzzbvh")) / "broken.bvh"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    try:
        out = read_bvh(path)
    except MosaError as exc:
        assert str(path) in exc.message and exc.hint
    else:
        assert out.motion.shape == (out.num_frames, sum(len(c) for c in out.channels))
        assert np.isfinite(out.motion).all()


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_mosa_errors_only(blob):
    path = Path(tempfile.mkdtemp(prefix="fuzzbvh")) / "blob.bvh"
    path.write_bytes(b"HIERARCHY\n" + blob if blob[:1] == b"R" else blob)
    with contextlib.suppress(MosaError):
        read_bvh(path)


def test_a_deep_chain_writes_and_reads(tmp_path):
    """A chain of 500 joints: no recursion limit in the writer (nor the parser)."""
    n = 500
    data = BVHData([f"j{i}" for i in range(n)], np.arange(-1, n - 1), np.ones((n, 3)),
                   [("Zrotation",)] * n, 0.05, np.zeros((2, n)))  # fmt: skip
    write_bvh(tmp_path / "deep.bvh", data)
    back = read_bvh(tmp_path / "deep.bvh")
    assert back.parents.tolist() == data.parents.tolist()
    assert back.global_positions()[0, -1].tolist() == pytest.approx([n, n, n])
    assert os.path.getsize(tmp_path / "deep.bvh") < 10 * 2**20
