"""Random JSON into every POST route of ``mosa serve``: a client's mistake is a 4xx, never a 5xx.

Hypothesis sends three kinds of bodies through starlette's TestClient to the tiny random
pipeline: anything JSON can hold (and bytes that are not JSON), and bodies shaped like real
requests with some fields replaced by anything, so that many reach the model. The server
must answer every one with a status below 500 (422 with a message and a hint for mistakes).
``MOSA_FUZZ_API_EXAMPLES`` sets the examples per test (default 40).
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
import torch

from tiny_models import write_tiny_pipeline

pytest.importorskip("fastapi")
hypothesis = pytest.importorskip("hypothesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mosa.loading import load  # noqa: E402
from mosa.serve.app import create_app  # noqa: E402

EXAMPLES = int(os.environ.get("MOSA_FUZZ_API_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ROUTES = ("/api/generate", "/api/edit", "/api/extend", "/api/sequence", "/api/bvh")  # every POST


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    torch.set_num_threads(1)
    pipe = load(write_tiny_pipeline(tmp_path_factory.mktemp("ckpt")), "cpu")
    app = create_app(pipe)
    assert {r.path for r in app.routes if "POST" in getattr(r, "methods", ())} == set(ROUTES)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def source(hml_sample) -> np.ndarray:
    return np.load(hml_sample / "012314_new_joints.npy").astype(np.float64)  # (170, 22, 3)


def _post(client, path: str, body=None, raw: bytes | None = None, ctype="application/json"):
    if raw is None:
        raw = json.dumps(body, allow_nan=True).encode()  # NaN / Infinity as Python's json reads
    r = client.post(path, content=raw, headers={"content-type": ctype})
    assert r.status_code < 500, (path, raw[:500], r.status_code, r.text[:500])
    if r.status_code == 422:
        answer = r.json()
        assert isinstance(answer["detail"], str) and answer["detail"] and answer["hint"]
    elif r.status_code == 200:
        assert r.json()["bvh" if path == "/api/bvh" else "samples"]
    return r


# anything JSON holds: huge integers, NaN and infinities, odd text (lone surrogates included)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.integers(-(2**80), 2**80) | st.floats()
    | st.text(max_size=12) | st.sampled_from(["\ud800", "a\x00b", "\u202e", "🙂" * 50, ""])
)  # fmt: skip
ANY = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


_RARELY = st.integers(0, 9).map(lambda i: i == 9)  # Hypothesis draws small numbers most


def _field(draw, valid, p_any: int = 15):
    """``valid`` mostly; anything JSON holds ``p_any`` percent of the time."""
    return draw(ANY) if draw(st.integers(0, 99)) >= 100 - p_any else draw(valid)


TEXT = st.sampled_from(["a person walks", "someone kicks", "a person  jumps twice"]) | st.text(
    min_size=1, max_size=40
)
SEED = (
    st.none()
    | st.integers(0, 2**31)
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([2**63 - 8, 2**63 - 1, 2**63, 2**64])
)


@st.composite
def generate_bodies(draw):
    body = {
        "text": _field(draw, TEXT),
        "seconds": _field(draw, st.none() | st.floats(0, 6) | st.integers(-1, 20)),
        "seed": _field(draw, SEED),
        # few samples: 8 samples of 10 s with previews take seconds on a CPU (that works too)
        "num_samples": _field(draw, st.sampled_from([1, 2, 3, 0, -1, 9])),
        "cfg": _field(draw, st.none() | st.floats(-2, 1e6)),
        "previews": _field(draw, st.booleans()),
        "bvh": _field(draw, st.booleans()),
    }
    drop = draw(st.sets(st.sampled_from(sorted(body)), max_size=3)) if draw(_RARELY) else ()
    return {k: v for k, v in body.items() if k not in drop}


@st.composite
def edit_bodies(draw, source: np.ndarray):
    first = draw(st.integers(0, 60))
    joints = source[first : first + 200 - draw(st.integers(0, 198))]
    scale = draw(st.sampled_from([1.0, 1.0, 1.0, 0.0, 1e-6, 1e4, 1e30, -1.0]))
    shift = draw(st.sampled_from([0.0, 0.0, 5.0, -1e5]))
    joints = (joints * scale + shift).round(4).tolist()
    a = draw(st.integers(0, len(joints) - 1))
    b = min(len(joints), a + 12 + draw(st.integers(0, 80)))  # spans of 12+ frames mostly
    body = {
        "joints": _field(draw, st.just(joints)),
        "text": _field(draw, TEXT),
        "start": _field(draw, st.just(a / 20) | st.floats()),  # 20 fps: the span in seconds
        "end": _field(draw, st.just(b / 20) | st.floats()),
        "seed": _field(draw, SEED),
    }
    drop = draw(st.sets(st.sampled_from(sorted(body)), max_size=1)) if draw(_RARELY) else ()
    return {k: v for k, v in body.items() if k not in drop}


def _joints(draw, source: np.ndarray, most: int = 200) -> list:
    first = draw(st.integers(0, 60))
    joints = source[first : first + most - draw(st.integers(0, most - 2))]
    scale = draw(st.sampled_from([1.0, 1.0, 1.0, 0.0, 1e-6, 1e4, 1e30, -1.0]))
    return (joints * scale).round(4).tolist()


@st.composite
def extend_bodies(draw, source: np.ndarray):
    body = {
        "joints": _field(draw, st.just(_joints(draw, source))),
        "text": _field(draw, TEXT),
        "seconds": _field(draw, st.floats(-1, 12) | st.sampled_from([0.1, 0.5, 2.0])),
        "seed": _field(draw, SEED),
        "bvh": _field(draw, st.booleans()),
    }
    drop = draw(st.sets(st.sampled_from(sorted(body)), max_size=1)) if draw(_RARELY) else ()
    return {k: v for k, v in body.items() if k not in drop}


@st.composite
def sequence_bodies(draw):
    n = draw(st.integers(0, 4))
    body = {
        "texts": _field(draw, st.lists(TEXT | st.just(""), min_size=n, max_size=n)),
        "seconds": _field(
            draw, st.none() | st.lists(st.floats(0, 6) | st.integers(-1, 12), max_size=5)
        ),
        "seed": _field(draw, SEED),
        "cfg": _field(draw, st.none() | st.floats(-2, 1e6)),
        "bvh": _field(draw, st.booleans()),
    }
    drop = draw(st.sets(st.sampled_from(sorted(body)), max_size=2)) if draw(_RARELY) else ()
    return {k: v for k, v in body.items() if k not in drop}


@FUZZ
@given(path=st.sampled_from(ROUTES), body=ANY)
def test_any_json_is_answered_below_500(client, path, body):
    _post(client, path, body)


@FUZZ
@given(
    path=st.sampled_from(ROUTES),
    raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
    ctype=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
)
def test_bytes_that_are_not_json_are_answered_below_500(client, path, raw, ctype):
    _post(client, path, raw=raw, ctype=ctype)


@FUZZ
@given(body=generate_bodies())
def test_generate_bodies_are_answered_below_500(client, body):
    _post(client, "/api/generate", body)


@FUZZ
@given(data=st.data())
def test_edit_bodies_are_answered_below_500(client, source, data):
    _post(client, "/api/edit", data.draw(edit_bodies(source)))


@FUZZ
@given(data=st.data())
def test_extend_bodies_are_answered_below_500(client, source, data):
    _post(client, "/api/extend", data.draw(extend_bodies(source)))


@FUZZ
@given(body=sequence_bodies())
def test_sequence_bodies_are_answered_below_500(client, body):
    _post(client, "/api/sequence", body)


@FUZZ
@given(data=st.data())
def test_bvh_bodies_are_answered_below_500(client, source, data):
    joints = _field(data.draw, st.just(_joints(data.draw, source)))
    _post(client, "/api/bvh", {"joints": joints})


def test_the_server_logged_no_crash(client, caplog):
    """After the fuzzing above, a plain request still works and nothing was logged as failed."""
    with caplog.at_level(logging.ERROR, logger="mosa.serve"):
        r = _post(client, "/api/generate", {"text": "a person walks", "seconds": 2, "seed": 1})
    assert r.status_code == 200 and not caplog.records
