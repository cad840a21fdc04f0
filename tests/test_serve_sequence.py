"""``POST /api/sequence`` and ``POST /api/extend`` on the tiny random pipeline: the response
contract the Blender add-on reads, the library's motions, and 422s with a hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tiny_models import write_tiny_pipeline

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from mosa import edit as E  # noqa: E402
from mosa.edit.on_rig import take_scale  # noqa: E402
from mosa.loading import load  # noqa: E402
from mosa.serve.app import create_app  # noqa: E402
from mosa.serve.engine import MAX_SEQUENCE_PARTS  # noqa: E402

TEXTS = ["a person walks forward", "a person waves with the right hand", "a person bows"]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.set_num_threads(1)
    return load(write_tiny_pipeline(tmp_path_factory.mktemp("ckpt")), "cpu")


@pytest.fixture(scope="module")
def client(pipe):
    with TestClient(create_app(pipe)) as c:
        yield c


# -- sequence ----------------------------------------------------------------------------------


def test_sequence_response_contract(client, pipe):
    body = {"texts": TEXTS, "seconds": [3, 2.1, 2], "seed": 7, "cfg": None}
    r = client.post("/api/sequence", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["text"] == " / ".join(TEXTS)
    [s] = data["samples"]
    joints = np.asarray(s["joints"])
    assert joints.shape == (142, 22, 3) and s["fps"] == 20 and s["frames"] == 142
    assert s["seed"] == 7 and s["bvh"].startswith("HIERARCHY") and "Frames: 142" in s["bvh"]
    parts = data["parts"]
    assert [(p["text"], p["start"], p["end"], p["seed"]) for p in parts] == [
        (TEXTS[0], 0.0, 3.0, 7), (TEXTS[1], 3.0, 5.1, 8), (TEXTS[2], 5.1, 7.1, 9),
    ]  # fmt: skip
    assert "vocabulary" in data and all("vocabulary" in p for p in parts)
    # the server's take is the library's
    ref = E.sequence(pipe, TEXTS, [3, 2.1, 2], seed=7)
    np.testing.assert_allclose(joints, ref.joints, atol=1e-4)


def test_sequence_defaults_and_no_bvh(client):
    r = client.post("/api/sequence", json={"texts": TEXTS[:2], "bvh": False})
    assert r.status_code == 200, r.text
    data = r.json()
    [s] = data["samples"]
    assert "bvh" not in s and 0 <= s["seed"] < 2**31
    parts = data["parts"]
    assert parts[0]["start"] == 0 and parts[0]["end"] == parts[1]["start"]
    assert parts[1]["end"] == pytest.approx(s["seconds"])
    assert all(2.0 <= p["end"] - p["start"] <= 9.8 for p in parts)  # the length estimator's


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"texts": []}, "texts"),
        ({"texts": ["a person walks", ""]}, "part 2 is empty"),
        ({"texts": TEXTS, "seconds": [3, 2]}, "2 seconds value(s) for 3 part(s)"),
        ({"texts": TEXTS, "seconds": [3, 1, 2]}, "shorter than the generator's minimum"),
        ({"texts": TEXTS, "seconds": [3, 20, 2]}, "longer than"),
        ({"texts": TEXTS, "seed": -1}, "seed"),
        ({"texts": TEXTS, "seed": 1.5}, "seed"),
        ({"texts": TEXTS, "cfg": -1.0}, "cfg"),
        ({"texts": ["a walk"] * (MAX_SEQUENCE_PARTS + 1)}, f"at most {MAX_SEQUENCE_PARTS}"),
        ({"texts": "a person walks"}, "texts"),
    ],
)
def test_sequence_bad_input_is_422_with_a_hint(client, body, needle):
    r = client.post("/api/sequence", json=body)
    assert r.status_code == 422, r.text
    data = r.json()
    assert needle in data["detail"] and data["hint"]


# -- extend ------------------------------------------------------------------------------------


def test_extend_response_contract(client, pipe, hml_sample):
    source = np.load(hml_sample / "012314_new_joints.npy")[:121].astype(np.float32)
    r = client.post("/api/extend", json={"joints": source.tolist(), "text": TEXTS[1],
                                         "seconds": 2.0, "seed": 3})  # fmt: skip
    assert r.status_code == 200, r.text
    data = r.json()
    [s] = data["samples"]
    out = np.asarray(s["joints"])
    assert data["text"] == TEXTS[1] and s["seed"] == 3 and s["bvh"].startswith("HIERARCHY")
    assert out.shape == (160, 22, 3)  # 120 feature frames + 40 generated
    assert data["generated"] == {"start": 6.0, "end": 8.0}
    ref = E.extend(pipe, source, TEXTS[1], 2.0, seed=3)
    src = source.astype(np.float64)
    on_source = E.edit_on_joints(ref, [E.Take(src, take_scale(src))])
    np.testing.assert_allclose(out, on_source, atol=1e-4)  # the edit, given back on the source
    # kept frames are the frames sent (0.1 mm JSON rounding)
    np.testing.assert_allclose(out[:100], source[:100], atol=6e-5)


def test_extend_takes_motions_longer_than_the_generator(client):
    take = client.post("/api/sequence", json={"texts": TEXTS * 2, "seconds": [2] * 6,
                                              "seed": 1, "bvh": False}).json()  # fmt: skip
    joints = take["samples"][0]["joints"]
    assert len(joints) == 240  # 12 s: longer than the tiny generator's 9.8 s
    r = client.post("/api/extend", json={"joints": joints, "text": "a person bows",
                                         "seconds": 2, "seed": 0})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["samples"][0]["frames"] == 239 + 40 + (-(239 + 40)) % 4


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"joints": [[[0.0, 0.0]] * 22] * 50}, "shape"),
        ({"joints": [[[0.0, 0.0, 0.0]] * 22]}, "frames"),
        ({"text": ""}, "empty"),
        ({"seconds": 0}, "seconds"),
        ({"seconds": 30}, "at most 9.8"),
        ({"seed": -2}, "seed"),
    ],
)
def test_extend_bad_input_is_422_with_a_hint(client, hml_sample, body, needle):
    source = np.load(hml_sample / "012314_new_joints.npy")[:80].round(3).tolist()
    full = {"joints": source, "text": "a person bows", "seconds": 2.0, **body}
    r = client.post("/api/extend", json=full)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"] and r.json()["hint"]


def test_health_lists_the_new_endpoints(client):
    m = client.get("/api/health").json()["model"]
    assert m["sequence"] and m["extend"] and m["max_sequence_parts"] == MAX_SEQUENCE_PARTS
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/sequence" in paths and "/api/extend" in paths


def test_sequence_onto_a_rig_sent_as_bvh(client, shared_data, tmp_path):
    """``rig_bvh`` on a sequence: the take's BVH is on the character's skeleton, as for
    /api/generate (the Blender add-on's Sequence on the user's own armature)."""
    from mosa.motion.bvh import parse_bvh, read_bvh
    from rig_variants import write_variant

    rig_path = write_variant(shared_data / "cmu" / "01_01.bvh", tmp_path, "unreal")
    rig = read_bvh(rig_path)
    body = {"texts": ["a person walks forward", "a person waves"], "seconds": [2, 2],
            "seed": 4, "rig_bvh": rig_path.read_text()}  # fmt: skip
    r = client.post("/api/sequence", json=body)
    assert r.status_code == 200, r.text
    out = parse_bvh(r.json()["samples"][0]["bvh"])
    assert out.names == rig.names and np.array_equal(out.offsets, rig.offsets)
    assert out.num_frames == (80 - 1) * 6 + 1  # 4 s at 20 fps, resampled to the rig's 120
    bad = client.post("/api/sequence", json={**body, "rig_bvh": "HIERARCHY\nROOT a\n{"})
    assert bad.status_code == 422 and "rig_bvh" in bad.json()["detail"]
