"""HTTP API of ``mosa serve`` on the tiny random pipeline: shapes, 422s, 503, batching, edit."""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from tiny_models import K, write_tiny_pipeline

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from mosa.cli import serve as cli_serve  # noqa: E402
from mosa.errors import MosaError  # noqa: E402
from mosa.loading import load  # noqa: E402
from mosa.serve.app import create_app  # noqa: E402
from mosa.serve.batcher import MicroBatcher, QueueFull  # noqa: E402

# tiny_sar: min_tokens 10, max_tokens 49; tiny_vae downsamples time by 4; 20 fps
MIN_S, MAX_S = 10 * 4 / 20, 49 * 4 / 20


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    torch.set_num_threads(1)
    return load(write_tiny_pipeline(tmp_path_factory.mktemp("ckpt")), "cpu")


@pytest.fixture
def client(pipe):
    with TestClient(create_app(pipe)) as c:
        yield c


def _counting(monkeypatch, pipe, delay: float = 0.0, fail: list | None = None) -> list[int]:
    """Wrap ``Pipeline.generate_requests``: record batch sizes, optionally sleep or raise once."""
    calls: list[int] = []
    real = pipe.generate_requests

    def wrapped(requests, *args, **kw):
        calls.append(len(requests))
        if delay:
            time.sleep(delay)
        if fail:
            raise fail.pop()
        return real(requests, *args, **kw)

    monkeypatch.setattr(pipe, "generate_requests", wrapped)
    return calls


# -- generate ------------------------------------------------------------------------------------


def test_generate_shapes_seeds_and_bvh(client, pipe):
    r = client.post(
        "/api/generate",
        json={"text": "a person  walks forward", "seconds": 3.0, "seed": 11, "num_samples": 2},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == "a person walks forward"  # whitespace normalised
    assert [s["seed"] for s in body["samples"]] == [11, 12]
    for s in body["samples"]:
        joints = np.asarray(s["joints"])
        assert joints.shape == (60, 22, 3)  # 3 s * 20 fps, a multiple of the 4-frame unit
        assert s["fps"] == 20 and s["frames"] == 60 and s["seconds"] == pytest.approx(3.0)
        assert s["bvh"].startswith("HIERARCHY\nROOT pelvis")
        assert "Frames: 60" in s["bvh"] and "Frame Time: 0.05" in s["bvh"]
        assert "previews" not in s
    # the server's motions are the library's: same seeds, same text, same length
    ref = pipe.generate("a person walks forward", seconds=3.0, seed=11, num_samples=2)
    for s, m in zip(body["samples"], ref, strict=True):
        np.testing.assert_allclose(np.asarray(s["joints"]), m.joints, atol=6e-5)


def test_generate_estimated_length_and_random_seed(client):
    r = client.post("/api/generate", json={"text": "a person jumps", "bvh": False})
    assert r.status_code == 200, r.text
    s = r.json()["samples"][0]
    assert "bvh" not in s
    assert MIN_S <= s["seconds"] <= MAX_S and s["frames"] % 4 == 0
    assert 0 <= s["seed"] < 2**31


def test_previews_coarse_to_fine(client):
    body = {"text": "a person waves", "seconds": 2.4, "seed": 3, "previews": True}
    r = client.post("/api/generate", json=body)
    s = r.json()["samples"][0]
    prev, joints = np.asarray(s["previews"]), np.asarray(s["joints"])
    assert prev.shape == (K, 48, 22, 3)
    # all K scales decode to the final motion; fewer scales give something else
    np.testing.assert_allclose(prev[-1], joints, atol=2e-3)
    assert np.abs(prev[0] - joints).max() > 1e-2


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"text": ""}, "empty"),
        ({"text": "   "}, "empty"),
        ({"text": "x" * 301, "seconds": 3}, "300"),
        ({"text": "a person walks", "seconds": 30}, "range"),
        ({"text": "a person walks", "seconds": 0.5}, "range"),
        ({"text": "a person walks", "seconds": 3, "num_samples": 9}, "num_samples"),
        ({"text": "a person walks", "seconds": 3, "num_samples": 0}, "num_samples"),
        ({"text": "a person walks", "seconds": 3, "cfg": -1}, "cfg"),
        ({"text": "a person walks", "seconds": 3, "seed": -5}, "seed"),
        ({"text": "a person walks", "seconds": "long"}, "seconds"),
        ({"seconds": 3}, "text"),
    ],
)
def test_generate_rejects_bad_input(client, body, needle):
    r = client.post("/api/generate", json=body)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, str) and needle in detail
    assert r.json()["hint"]


def test_bad_json_and_server_survives(client):
    r = client.post(
        "/api/generate", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert client.get("/api/health").json()["status"] == "ok"
    ok = client.post("/api/generate", json={"text": "a person walks", "seconds": 2})
    assert ok.status_code == 200


def test_model_failure_is_500_and_next_request_works(pipe, monkeypatch):
    _counting(monkeypatch, pipe, fail=[RuntimeError("boom")])
    with TestClient(create_app(pipe), raise_server_exceptions=False) as c:
        r = c.post("/api/generate", json={"text": "a person walks", "seconds": 2})
        assert r.status_code == 500 and "boom" in r.json()["detail"]
        r = c.post("/api/generate", json={"text": "a person walks", "seconds": 2})
        assert r.status_code == 200


# -- batching and back-pressure ------------------------------------------------------------------


def _post_all(c: TestClient, bodies: list[dict]) -> list:
    with ThreadPoolExecutor(len(bodies)) as ex:
        return list(ex.map(lambda b: c.post("/api/generate", json=b), bodies))


def test_concurrent_requests_share_generator_calls(pipe, monkeypatch):
    calls = _counting(monkeypatch, pipe)
    app = create_app(pipe, max_batch=16, batch_window_ms=300)
    bodies = [  # own text, length, seed and cfg each: one generator call can take them all
        {"text": f"a person walks {i} steps", "seconds": 2 + 0.4 * i, "seed": 100 + i,
         "cfg": [1.0, 2.0, 3.5][i % 3]}
        for i in range(8)
    ]  # fmt: skip
    with TestClient(app) as c:
        responses = _post_all(c, bodies)
        stats = c.get("/api/health").json()["stats"]
    assert [r.status_code for r in responses] == [200] * 8
    assert len(calls) < 8 and sum(calls) == 8, calls
    assert stats["generator_calls"] == len(calls) and stats["requests"] == 8
    assert stats["largest_batch"] > 1
    # each motion is what it would be alone: batching does not mix seeds, texts or lengths
    for b, r in zip(bodies, responses, strict=True):
        [alone] = pipe.generate(b["text"], seconds=b["seconds"], seed=b["seed"], cfg=b["cfg"])
        np.testing.assert_allclose(np.asarray(r.json()["samples"][0]["joints"]), alone.joints,
                                   atol=6e-5)  # fmt: skip


def test_max_batch_one_runs_one_by_one(pipe, monkeypatch):
    calls = _counting(monkeypatch, pipe)
    bodies = [{"text": "a person runs", "seconds": 2, "seed": i} for i in range(4)]
    with TestClient(create_app(pipe, max_batch=1, batch_window_ms=50)) as c:
        assert all(r.status_code == 200 for r in _post_all(c, bodies))
    assert calls == [1, 1, 1, 1]


def test_full_queue_answers_503_with_retry_after(pipe, monkeypatch):
    calls = _counting(monkeypatch, pipe, delay=1.0)
    app = create_app(pipe, max_batch=1, batch_window_ms=0, queue_size=1)
    with TestClient(app) as c:
        bodies = [{"text": "a person bows", "seconds": 2, "seed": i} for i in range(5)]
        responses = _post_all(c, bodies)
        codes = sorted(r.status_code for r in responses)
        assert 200 in codes and 503 in codes, codes
        for r in responses:
            if r.status_code == 503:
                assert int(r.headers["Retry-After"]) >= 1
                assert "busy" in r.json()["detail"]
        assert c.get("/api/health").json()["stats"]["rejected"] == codes.count(503)
        # once drained, the server takes requests again
        again = c.post("/api/generate", json={"text": "a person bows", "seconds": 2})
        assert again.status_code == 200
    assert len(calls) == codes.count(200) + 1


def test_batcher_groups_items_and_isolates_errors():
    """The batcher alone: a window collects items, a failing batch fails only its items."""
    seen: list[list[int]] = []

    def process(items):
        seen.append(list(items))
        return [ValueError("odd") if x % 2 else x * 10 for x in items]

    async def main():
        b = MicroBatcher(process, max_batch=3, window_s=0.2, queue_size=10)
        b.start()
        try:
            res = await asyncio.gather(*(b.submit(i) for i in range(6)), return_exceptions=True)
            solo = await b.submit(4, batchable=False)
        finally:
            await b.stop()
        return res, solo

    res, solo = asyncio.run(main())
    assert [len(s) for s in seen] == [3, 3, 1]
    assert res[0] == 0 and res[2] == 20 and res[4] == 40 and solo == 40
    assert all(isinstance(res[i], ValueError) for i in (1, 3, 5))


def test_batcher_queue_full():
    gate = threading.Event()

    def process(items):
        gate.wait(5)
        return list(items)

    async def main():
        b = MicroBatcher(process, max_batch=1, window_s=0, queue_size=1)
        b.start()
        first = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0.05)  # the worker holds item 1
        second = asyncio.ensure_future(b.submit(2))  # waits in the queue
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull) as info:
            await b.submit(3)
        gate.set()
        out = await asyncio.gather(first, second)
        await b.stop()
        return out, info.value.retry_after

    out, retry = asyncio.run(main())
    assert out == [1, 2] and retry >= 1


# -- info, page, edit ----------------------------------------------------------------------------


def test_health_and_examples(client):
    h = client.get("/api/health").json()
    m = h["model"]
    assert h["status"] == "ok" and m["fps"] == 20 and m["num_scales"] == K
    assert m["min_seconds"] == pytest.approx(MIN_S) and m["max_seconds"] == pytest.approx(MAX_S)
    assert m["length_estimator"] is True and m["defaults"]["cfg"] == 2.0  # pipeline.json
    assert m["edit_defaults"]["cfg"] == 5.0  # EDIT_DEFAULTS
    assert h["queue"] == {"depth": 0, "size": 64, "max_batch": 16, "batch_window_ms": 10.0}
    assert len(h["skeleton"]["names"]) == 22 and h["skeleton"]["parents"][0] == -1
    ex = client.get("/api/examples").json()["examples"]
    assert len(ex) >= 4 and all(isinstance(t, str) and 0 < len(t) <= 300 for t in ex)


def test_page_static_files_and_docs(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="generate"' in page.text and "/static/app.js" in page.text
    js = client.get("/static/app.js").text
    assert "./vendor/three.module.min.js" in js
    orbit = client.get("/static/vendor/OrbitControls.js").text
    assert "from './three.module.min.js'" in orbit and "from 'three'" not in orbit
    three = client.get("/static/vendor/three.module.min.js")
    assert three.status_code == 200 and "REVISION" in three.text
    assert client.get("/static/vendor/LICENSE-three").status_code == 200
    assert "/api/generate" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    # offline: no CDN references
    assert "http://" not in page.text + js and "https://" not in page.text + js


def test_edit_keeps_the_motion_outside_the_span(client, hml_sample):
    source = np.load(hml_sample / "012314_new_joints.npy").astype(np.float32)  # (170, 22, 3)
    body = {"joints": source.tolist(), "text": "a person kicks", "start": 3.0, "end": 5.0}
    r = client.post("/api/edit", json={**body, "seed": 4})
    if r.status_code == 501:
        pytest.skip("mosa.edit.edit_span not available: " + r.json()["detail"])
    assert r.status_code == 200, r.text
    s = r.json()["samples"][0]
    out = np.asarray(s["joints"])
    assert s["seed"] == 4 and s["bvh"].startswith("HIERARCHY")
    assert out.shape[1:] == (22, 3) and abs(len(out) - len(source)) <= 4
    # frames before the span (minus the cross-fade) are the frames sent (0.1 mm JSON rounding)
    np.testing.assert_allclose(out[:50], source[:50], atol=6e-5)
    assert np.abs(out[60:100] - source[60:100]).max() > 0.01


def test_edit_takes_any_length_up_to_the_frame_limit(client, hml_sample, monkeypatch):
    clip = np.load(hml_sample / "012314_new_joints.npy").round(4)
    source = np.concatenate([clip, clip[::-1], clip])[:500]  # 25 s, longer than one window
    body = {"joints": source.tolist(), "text": "a person waves", "start": 20.0, "end": 22.0,
            "seed": 1}  # fmt: skip
    r = client.post("/api/edit", json=body)
    assert r.status_code == 200, r.text
    out = np.asarray(r.json()["samples"][0]["joints"])
    assert len(out) == len(source)
    np.testing.assert_allclose(out[:380], source[:380], atol=6e-5)  # kept: the frames sent
    monkeypatch.setenv("MOSA_MAX_FRAMES", "400")
    r = client.post("/api/edit", json=body)
    assert r.status_code == 422 and "500 frames (need 2-400" in r.text


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"joints": [[[0.0, 0.0]] * 22] * 50}, "shape"),
        ({"joints": [[[0.0, 0.0, 0.0]] * 21] * 50}, "shape"),
        ({"text": ""}, "empty"),
        ({"start": 5.0, "end": 3.0}, "span"),
        ({"start": 0.0, "end": 40.0}, "span"),
        ({"joints": [[[0.0, 0.0, 0.0]] * 22] * 50}, "legs of no length"),
    ],
)
def test_edit_rejects_bad_input(client, hml_sample, body, needle):
    source = np.load(hml_sample / "012314_new_joints.npy")[:80].round(3).tolist()
    full = {"joints": source, "text": "a person kicks", "start": 1.0, "end": 2.0, **body}
    r = client.post("/api/edit", json=full)
    if r.status_code == 501:
        pytest.skip("mosa.edit.edit_span not available")
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_arguments_and_checks(pipe):
    parser = argparse.ArgumentParser()
    cli_serve.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.max_batch, args.batch_window_ms, args.queue_size) == (
        "127.0.0.1", 8000, 16, 10.0, 64,
    )  # fmt: skip
    with pytest.raises(MosaError, match="--port"):
        cli_serve.run(parser.parse_args(["--port", "0"]))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(MosaError, match="cannot listen"):
            cli_serve.run(parser.parse_args(["--port", str(port)]))
    with pytest.raises(MosaError, match="--max-batch"):
        create_app(pipe, max_batch=0)
    with pytest.raises(MosaError, match="--queue-size"):
        create_app(pipe, queue_size=0)


def test_engine_runs_mixed_cfg_in_one_call(pipe, monkeypatch):
    from mosa.serve.engine import Engine

    calls = _counting(monkeypatch, pipe)
    engine = Engine(pipe)
    jobs = [
        engine.generate_job("a person walks", seconds=2.0, seed=1, cfg=1.0, num_samples=2),
        engine.generate_job("a person jumps", seconds=2.4, seed=5, cfg=3.0, previews=True),
    ]
    [a, b] = engine.process(jobs)
    assert calls == [3] and engine.generator_calls == 1
    assert [m.seed for m in a.motions] == [1, 2] and a.previews == [None, None]
    assert b.previews[0].shape == (K, 48, 22, 3)
    [alone] = pipe.generate("a person jumps", seconds=2.4, seed=5, cfg=3.0)
    np.testing.assert_allclose(b.motions[0].joints, alone.joints, atol=1e-5)
    np.testing.assert_allclose(b.previews[0][-1], alone.joints, atol=2e-3)


# -- one seed rule for generate and edit (the library's: mosa.requests.check_seed) -------------


@pytest.mark.parametrize(
    ("seed", "ok"),
    [(0, True), (2**31, True), (2**63 - 1, True), (-5, False), (2**63, False), (2**64, False),
     (10**30, False), (True, False), (1.5, False), (2.0, False), ("7", False)],
)  # fmt: skip
def test_generate_and_edit_share_one_seed_rule(client, hml_sample, seed, ok):
    source = np.load(hml_sample / "012314_new_joints.npy")[:80].round(3).tolist()
    edit = {"joints": source, "text": "a person kicks", "start": 1.0, "end": 2.0, "seed": seed}
    answers = [
        client.post("/api/generate", json={"text": "a person walks", "seconds": 2, "seed": seed}),
        client.post("/api/edit", json=edit),
    ]
    for r in answers:
        assert r.status_code == (200 if ok else 422), r.text
        if ok:
            assert r.json()["samples"][0]["seed"] == seed
        else:
            assert "seed" in r.json()["detail"]
    # motion i of a request uses seed + i: all of them must fit
    r = client.post("/api/generate", json={"text": "a walk", "seconds": 2, "seed": 2**63 - 1,
                                           "num_samples": 2})  # fmt: skip
    assert r.status_code == 422 and "seed" in r.json()["detail"]


@pytest.mark.parametrize(
    "flags",
    [["--batch-window-ms", "nan"], ["--batch-window-ms", "inf"], ["--batch-window-ms", "-1"],
     ["--max-batch", "0"], ["--max-batch", "-4"], ["--queue-size", "0"]],
)  # fmt: skip
def test_cli_rejects_bad_batching_flags_before_loading(flags, monkeypatch):
    parser = argparse.ArgumentParser()
    cli_serve.add_arguments(parser)
    monkeypatch.setattr(cli_serve, "load_from_args", lambda args: pytest.fail("loaded a model"))
    with pytest.raises(MosaError, match=flags[0]):
        cli_serve.run(parser.parse_args(["--port", "8123", *flags]))


def test_generate_onto_a_rig_sent_as_bvh(client, shared_data, tmp_path):
    """``rig_bvh``: the BVH comes back on the character's skeleton (a Rigify-named CMU rig,
    recognised from its structure); a rig that cannot be mapped is a 422 naming the fix."""
    from dataclasses import replace

    from mosa.motion.bvh import format_bvh, parse_bvh, read_bvh
    from rig_variants import write_variant

    rig_path = write_variant(shared_data / "cmu" / "01_01.bvh", tmp_path, "rigify")
    rig = read_bvh(rig_path)
    body = {"text": "a person walks forward", "seconds": 2.0, "seed": 3,
            "rig_bvh": rig_path.read_text()}  # fmt: skip
    r = client.post("/api/generate", json=body)
    assert r.status_code == 200, r.text
    out = parse_bvh(r.json()["samples"][0]["bvh"])
    assert out.names == rig.names and np.array_equal(out.offsets, rig.offsets)
    # 40 frames at 20 fps, resampled to the rig's 120 fps: (40 - 1) * 6 + 1
    assert out.frame_time == pytest.approx(rig.frame_time) and out.num_frames == 235
    bad = client.post("/api/generate", json={**body, "rig_bvh": "HIERARCHY\nROOT a\n{"})
    assert bad.status_code == 422 and "rig_bvh" in bad.json()["detail"]
    # a rig the retargeting cannot pose is refused before generating, as --rig is
    still = replace(rig, channels=[tuple(c for c in ch if "position" in c) for ch in rig.channels])
    still = replace(still, motion=still.motion[:, : sum(len(c) for c in still.channels)])
    bad = client.post("/api/generate", json={**body, "rig_bvh": format_bvh(still)})
    assert bad.status_code == 422 and "no rotation channels" in bad.json()["detail"]
