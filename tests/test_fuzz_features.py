"""Property-based tests of the feature code and the motion readers (issue 16): random arrays
into ``recover_joints``/``extract_features``/``read_motion`` and random prompts into
``check_text`` give a result or a ``MosaError``, never another exception.

Bounded by the Hypothesis profile (tests/conftest.py; ``HYPOTHESIS_PROFILE=thorough`` for more).
"""

from __future__ import annotations

import contextlib
import tempfile
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from mosa.errors import MosaError  # noqa: E402
from mosa.motion.features import extract_features, recover_joints  # noqa: E402
from mosa.motion.io import read_motion  # noqa: E402
from mosa.requests import MAX_TEXT_CHARS, check_text  # noqa: E402

FEATURE_VALUES = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@given(hnp.arrays(np.float32, st.tuples(st.integers(0, 12), st.just(263)), elements=FEATURE_VALUES))
def test_recover_joints_takes_any_number_of_frames(features):
    joints = recover_joints(features)
    assert isinstance(joints, np.ndarray) and joints.dtype == np.float32
    assert joints.shape == (len(features), 22, 3)
    if len(features):
        np.testing.assert_array_equal(joints[0, 0], [0, features[0, 3], 0])  # starts at the origin
    t = recover_joints(torch.from_numpy(features))
    assert isinstance(t, torch.Tensor) and t.shape == joints.shape


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6)))
def test_recover_joints_of_other_shapes_is_a_mosa_error(arr):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            out = recover_joints(arr)
        except MosaError as exc:
            assert "263" in exc.message
        else:
            assert arr.shape[-1] == 263 and out.shape == (*arr.shape[:-1], 22, 3)


@given(hnp.arrays(np.float32, st.tuples(st.integers(0, 8), st.just(22), st.just(3)),
                  elements=st.floats(-3, 3, allow_nan=False, width=32)))  # fmt: skip
def test_extract_features_gives_finite_features_or_a_mosa_error(joints):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            feats = extract_features(joints)
        except MosaError as exc:
            assert exc.hint
        else:
            assert feats.shape == (len(joints) - 1, 263) and feats.dtype == np.float32
            assert np.isfinite(feats).all()


@given(st.sampled_from(["nan", "inf", "zeros", "huge"]), st.integers(2, 6))
def test_extract_features_of_degenerate_motions(kind, frames):
    joints = {"nan": np.full((frames, 22, 3), np.nan), "inf": np.full((frames, 22, 3), np.inf),
              "zeros": np.zeros((frames, 22, 3)),
              "huge": np.full((frames, 22, 3), 1e300)}[kind]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(MosaError):
            extract_features(joints)


DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int16, np.int64, np.uint8,
                          np.bool_, np.complex64, "U3", "S2"])  # fmt: skip
SHAPES = st.one_of(
    st.tuples(st.integers(0, 5), st.just(22), st.just(3)),
    st.tuples(st.integers(0, 5), st.just(263)),
    hnp.array_shapes(min_dims=0, max_dims=3, max_side=5),
)


@given(DTYPES, SHAPES, st.sampled_from([0.0, 1.0, np.nan, np.inf, 1e30]))
def test_read_motion_of_any_npy_is_a_motion_or_a_mosa_error(dtype, shape, fill):
    path = Path(tempfile.mkdtemp(prefix="fuzznpy")) / "m.npy"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        arr = np.full(shape, fill if np.dtype(dtype).kind in "fc" else 1).astype(dtype)
    np.save(path, arr)
    try:
        m = read_motion(path)
    except MosaError as exc:
        assert str(path) in exc.message
    else:
        assert m.joints.ndim == 3 and m.joints.shape[1:] == (22, 3) and len(m.joints) >= 1
        assert np.isfinite(m.joints).all()


@given(st.binary(max_size=200))
def test_read_motion_of_garbage_npy_is_a_mosa_error(blob):
    path = Path(tempfile.mkdtemp(prefix="fuzznpy")) / "g.npy"
    path.write_bytes(b"\x93NUMPY" + blob if blob[:1] == b"\x01" else blob)
    with contextlib.suppress(MosaError):
        read_motion(path)


@given(st.one_of(st.text(max_size=400), st.binary(max_size=10), st.none(), st.integers()))
def test_check_text_returns_clean_text_or_a_mosa_error(text):
    try:
        out = check_text(text)
    except MosaError as exc:
        assert exc.message.startswith("prompt") and exc.hint
    else:
        assert out == " ".join(str(text).split()) and 0 < len(out) <= MAX_TEXT_CHARS
        assert not any(unicodedata.category(c) == "Cc" for c in out)
        assert any(unicodedata.category(c)[0] in "LN" for c in out)
