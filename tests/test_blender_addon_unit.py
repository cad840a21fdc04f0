"""The Blender add-on's plain-Python parts, without Blender: kinematics against mosa's own
BVH solver and scipy, the inputs' checks, the HTTP client against a small local server."""

from __future__ import annotations

import http.server
import json
import math
import random
import socket
import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mosa.motion import bvh as mosa_bvh
from mosa.motion import skeleton
from mosa_blender import inputs
from mosa_blender import kinematics as K
from mosa_blender.client import Client, ServerError, ServerStatus, check_url, first_motion


def _random_rotation(rng: random.Random, max_angle: float = 2.0) -> K.Mat:
    axis = K.unit((rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, 1)))
    return K.axis_angle(axis, rng.uniform(-max_angle, max_angle))


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


@pytest.fixture(scope="module")
def hml_joints(hml_sample) -> np.ndarray:
    """A real HumanML3D motion (170, 22, 3), metres, Y up."""
    return np.load(hml_sample / "012314_new_joints.npy").astype(np.float64)


# -- the skeleton and the axes ------------------------------------------------------------------


def test_skeleton_matches_mosa():
    assert K.JOINT_NAMES == skeleton.JOINT_NAMES and K.PARENTS == skeleton.PARENTS
    for j, d in mosa_bvh._REST_DIRECTION.items():
        assert np.allclose(K._REST_DIRECTIONS[j], d), j


def test_axes_are_a_rotation_and_invert():
    m = _arr([K.to_blender(e) for e in np.eye(3)]).T  # columns: images of mosa's axes
    assert np.allclose(m @ m.T, np.eye(3)) and np.isclose(np.linalg.det(m), 1.0)
    assert K.to_blender((0, 1, 0)) == (0, 0, 1)  # up is up
    assert K.to_blender((0, 0, 1)) == (0, -1, 0)  # mosa's forward (+Z): Blender's front (-Y)
    p = (0.3, -1.2, 2.5)
    assert K.from_blender(K.to_blender(p)) == p


def test_rest_offsets_are_mosas(hml_joints):
    mine = _arr(K.rest_offsets(K.motion_to_blender(hml_joints.tolist())))
    ref = _arr([K.to_blender(o) for o in mosa_bvh.rest_offsets(hml_joints)])
    assert np.allclose(mine, ref, atol=1e-9)
    with pytest.raises(ValueError):
        K.rest_offsets([])


# -- the solver ---------------------------------------------------------------------------------


def test_solver_inverts_forward_kinematics_of_a_rigid_skeleton(hml_joints):
    rng = random.Random(0)
    offsets = K.rest_offsets(K.motion_to_blender(hml_joints.tolist()))
    T = 30
    rotations = [[_random_rotation(rng) for _ in range(K.NUM_JOINTS)] for _ in range(T)]
    roots = [(rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(0.5, 1)) for _ in range(T)]
    points = K.forward(rotations, roots, offsets)
    solved = K.solve(points, offsets)
    assert np.abs(_arr(K.forward(solved, roots, offsets)) - _arr(points)).max() < 1e-9
    # the hubs' rotations are determined by their children: recovered exactly
    for t in range(T):
        for j in (0,):
            assert np.allclose(solved[t][j], rotations[t][j], atol=1e-9)


def test_solver_poses_real_motion_like_mosas_bvh(hml_joints):
    """On HumanML3D's rigid skeleton both reproduce the motion; with noise the add-on's fit is
    about as good as mosa's own BVH writer's."""
    motion = K.motion_to_blender(hml_joints.tolist())
    offsets = K.rest_offsets(motion)
    mine = _arr(K.forward(K.solve(motion, offsets), [f[0] for f in motion], offsets))
    assert np.linalg.norm(mine - _arr(motion), axis=-1).max() < 1e-5

    noisy = hml_joints + np.random.default_rng(0).normal(0, 0.01, hml_joints.shape)
    motion = K.motion_to_blender(noisy.tolist())
    offsets = K.rest_offsets(motion)
    mine = _arr(K.forward(K.solve(motion, offsets), [f[0] for f in motion], offsets))
    mine_err = np.linalg.norm(mine - _arr(motion), axis=-1).mean()
    data = mosa_bvh.skeleton_bvh(noisy, scale=1.0)
    ref_err = np.linalg.norm(data.global_positions() - noisy, axis=-1).mean()
    assert mine_err < 1.5 * ref_err + 1e-3, (mine_err, ref_err)


def test_swing_turns_a_onto_b_even_when_opposite():
    rng = random.Random(1)
    for _ in range(20):
        a = K.unit((rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, 1)))
        b = K.unit((rng.gauss(0, 1), rng.gauss(0, 1), rng.gauss(0, 1)))
        for target in (b, K.scale(a, -1.0), a):
            r = K.swing(a, target)
            assert np.allclose(K.apply(r, a), target, atol=1e-9)
            assert np.allclose(_arr(r).reshape(3, 3) @ _arr(r).reshape(3, 3).T, np.eye(3))


def test_quaternions_match_scipy():
    rng = random.Random(2)
    for _ in range(50):
        m = _random_rotation(rng, math.pi)
        w, x, y, z = K.to_quaternion(m)
        ref = Rotation.from_matrix(_arr(m).reshape(3, 3)).as_quat()  # x, y, z, w
        ref = ref if ref[3] >= 0 else -ref
        assert np.allclose((x, y, z, w), ref, atol=1e-9)
        assert np.allclose(K.from_quaternion((w, x, y, z)), m, atol=1e-9)
    assert np.allclose(K.from_quaternion((2.0, 0, 0, 0)), K.IDENTITY)  # normalised first


def test_bone_channels_round_trip_and_stay_on_one_hemisphere():
    rng = random.Random(3)
    T = 40
    rest = [_random_rotation(rng, math.pi) for _ in range(K.NUM_JOINTS)]
    # a slow turn through half-turns: naive quaternions would flip sign on the way
    rotations = [[K.axis_angle(K.unit((1, 2, 3)), 0.3 * t + j) for j in range(K.NUM_JOINTS)]
                 for t in range(T)]  # fmt: skip
    roots = [(0.1 * t, 0.0, 0.9) for t in range(T)]
    head = (0.0, 0.02, 0.95)
    quats, locs = K.bone_channels(rotations, roots, rest, head)
    for series in quats:
        assert all(
            sum(a * b for a, b in zip(p, q, strict=True)) > 0
            for p, q in zip(series, series[1:], strict=False)
        )
    back, back_roots = K.channel_rotations(quats, locs, rest, head)
    assert np.abs(_arr(back) - _arr(rotations)).max() < 1e-9
    assert np.abs(_arr(back_roots) - _arr(roots)).max() < 1e-12
    # a pose bone's rotation is in its bone's frame: P = B^T L B
    b, l = _arr(rest[5]).reshape(3, 3), _arr(rotations[7][5]).reshape(3, 3)
    assert np.allclose(K.from_quaternion(quats[5][7]), (b.T @ l @ b).ravel())
    # continuing after a given frame starts on its hemisphere
    after = [tuple(-c for c in q[-1]) for q in quats]
    more, _ = K.bone_channels(rotations[-1:], roots[-1:], rest, head, after)
    assert all(
        sum(a * b for a, b in zip(m[0], p, strict=True)) > 0
        for m, p in zip(more, after, strict=True)
    )


def test_bone_tails_are_never_zero(hml_joints):
    offsets = K.rest_offsets(K.motion_to_blender(hml_joints.tolist()))
    tails = K.bone_tails(offsets)
    assert min(K.norm(t) for t in tails) > 0.01
    assert np.allclose(tails[4], offsets[7])  # the knee's bone points at the ankle
    rest = K.rest_positions(offsets)
    assert abs(rest[7][2]) < 1e-9 and rest[0][2] > 0.7  # ankles on the floor, pelvis up


def test_resample_keeps_duration_and_interpolates():
    frames = [[(float(t), 2.0 * t, 0.0)] * K.NUM_JOINTS for t in range(80)]  # 4 s at 20 fps
    assert K.resample(frames, 20.0, 20.0) == frames
    at30 = K.resample(frames, 20.0, 30.0)
    assert len(at30) == 120
    for k in (0, 1, 2, 3, 57, 118):
        t = k * 20 / 30
        assert np.allclose(at30[k][3], (t, 2 * t, 0.0))
    assert len(K.resample(frames, 20.0, 24.0)) == 96
    back = K.resample(at30, 30.0, 20.0)
    assert len(back) == 80 and np.allclose(_arr(back)[:-1], _arr(frames)[:-1])


# -- inputs -------------------------------------------------------------------------------------


def test_inputs():
    assert inputs.check_text("  a  person\nwalks ") == "a person walks"
    for bad in ("", "   ", "x" * 301):
        with pytest.raises(inputs.InputError):
            inputs.check_text(bad)
    assert inputs.check_seconds(0.0) is None and inputs.check_seconds(4) == 4.0
    assert inputs.check_seed(-1) is None and inputs.check_seed(7) == 7
    with pytest.raises(inputs.InputError):
        inputs.check_seed(2**31)
    # frames 20-40 of an action keyed 1-60 at 20 fps: [0.95 s, 2.0 s)
    assert inputs.span_seconds(1, 60, 20, 40, 20.0) == (0.95, 2.0)
    assert inputs.span_seconds(1, 60, 1, 60, 20.0) == (0.0, 3.0)
    with pytest.raises(inputs.InputError, match="empty"):
        inputs.span_seconds(1, 60, 40, 20, 20.0)
    with pytest.raises(inputs.InputError, match="outside"):
        inputs.span_seconds(1, 60, 0, 20, 20.0)
    assert inputs.split_texts("walk | turn around\nwave|") == ["walk", "turn around", "wave"]
    with pytest.raises(inputs.InputError):
        inputs.split_texts(" | ")
    assert inputs.split_seconds("", 2) is None
    assert inputs.split_seconds("2 | 3.5", 2) == [2.0, 3.5]
    for bad in ("2", "2 | x", "2 | -1"):
        with pytest.raises(inputs.InputError):
            inputs.split_seconds(bad, 2)
    taken = {"walk.mosa.001"}
    assert inputs.next_action_name("walk", taken) == "walk.mosa.002"
    assert inputs.next_action_name("walk.mosa.001", set()) == "walk.mosa.001"
    assert inputs.next_action_name("walk.mosa.004", taken) == "walk.mosa.002"


# -- the client ---------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    bodies: list = []

    def log_message(self, *args):
        pass

    def _send(self, code: int, payload, raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (the timeout)
            pass

    def do_GET(self):
        if self.path == "/api/health":
            self._send(200, {"status": "ok", "model": {"checkpoint": "tiny"}})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.bodies.append((self.path, body))
        if self.path == "/api/generate":
            if not body["text"]:
                self._send(422, {"detail": "the prompt is empty", "hint": "type a prompt"})
            else:
                joints = [[[0.0, 1.0, float(t)]] * 22 for t in range(3)]
                self._send(200, {"samples": [{"joints": joints, "fps": 20.0, "seed": 5}]})
        elif self.path == "/api/edit":
            self._send(200, {}, raw=b"<html>not json</html>")
        elif self.path == "/api/extend":
            time.sleep(1.0)
            self._send(200, {"samples": []})
        elif self.path == "/api/busy":
            self._send(503, {"detail": "the server is busy", "hint": "retry shortly"})
        else:
            self._send(404, {"detail": "Not Found"})


@pytest.fixture(scope="module")
def fake_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_requests_and_answers(fake_server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # a local server skips proxies
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    c = Client(fake_server + "/", timeout=5)
    assert c.url == fake_server and c.health()["model"]["checkpoint"] == "tiny"
    joints, fps = first_motion(c.generate("walk", 4.0, 3))
    assert fps == 20.0 and len(joints) == 3 and joints[2][0] == [0.0, 1.0, 2.0]
    path, body = _Handler.bodies[-1]
    assert path == "/api/generate"
    assert body == {"text": "walk", "seconds": 4.0, "seed": 3, "num_samples": 1, "bvh": False}
    with pytest.raises(ServerError, match="refused the request: the prompt is empty") as e:
        c.generate("", None, None)
    assert "hint: type a prompt" in str(e.value) and e.value.status == 422
    with pytest.raises(ServerError, match="has no /api/sequence: it is an older mosa"):
        c.sequence(["a", "b"], [2.0, 2.0], None)
    assert _Handler.bodies[-1] == (
        "/api/sequence",
        {"texts": ["a", "b"], "seconds": [2.0, 2.0], "seed": None, "bvh": False},
    )
    with pytest.raises(ServerError, match="did not answer JSON"):
        c.edit([[[0, 0, 0]] * 22] * 2, "jump", 0.0, 0.1, None)
    with pytest.raises(ServerError, match="busy"):
        c._request("POST", "/api/busy", {})
    with pytest.raises(ServerError, match="did not answer"):
        Client(fake_server, timeout=0.2).extend([[[0, 0, 0]] * 22] * 2, "sit", 1.0, None)
    with pytest.raises(ServerError, match="holds no motion"):
        first_motion({"samples": []})


def test_client_without_a_server():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ServerError, match="no mosa server answers at") as e:
        Client(url, timeout=2).generate("walk", None, None)
    assert "mosa serve --checkpoint" in str(e.value) and e.value.status is None
    for bad in ("", "127.0.0.1:8000", "ftp://host/"):
        with pytest.raises(ServerError, match="not an http address"):
            check_url(bad)


def test_server_status_checks_in_the_background(fake_server):
    status = ServerStatus(every=60.0, timeout=2.0)
    down = f"http://127.0.0.1:{_free_port()}"
    assert status.state(fake_server) is None and status.state(down) is None  # checking
    deadline = time.monotonic() + 10
    while (status.state(fake_server) is None or status.state(down) is None) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.02)
    assert status.state(fake_server) == (True, "connected (tiny)")
    ok, message = status.state(down)
    assert not ok and "no mosa server answers" in message
    status.record(down, True, "connected")
    assert status.state(down) == (True, "connected")


# -- joining new frames to kept ones ------------------------------------------------------------


def _moved(motion, angle, shift, noise=0.0, seed=0):
    rng = random.Random(seed)
    c, s = math.cos(angle), math.sin(angle)
    return [[(c * p[0] - s * p[1] + shift[0] + rng.gauss(0, noise),
              s * p[0] + c * p[1] + shift[1] + rng.gauss(0, noise), p[2] + shift[2])
             for p in f] for f in motion]  # fmt: skip


def test_join_span_undoes_a_rigid_move(hml_joints):
    source = K.motion_to_blender(hml_joints[:60].tolist())
    edited = _moved(source, 0.7, (1.5, -0.4, 0.05))
    a, b = 20, 40
    for before, after in ((True, True), (True, False), (False, True)):
        joined = K.join_span(
            edited[a : b + 1],
            (edited[a - 1], source[a - 1]) if before else None,
            (edited[b + 1], source[b + 1]) if after else None,
        )
        assert np.abs(_arr(joined) - _arr(source[a : b + 1])).max() < 1e-9
    assert K.join_span(edited[a:b], None, None) == [[tuple(p) for p in f] for f in edited[a:b]]


def test_join_span_meets_the_kept_frames_at_both_seams(hml_joints):
    """Frames from a motion that drifts away from the source (turned, shifted and re-posed
    differently at each end) meet the kept frames as smoothly as the edited motion moves."""
    source = K.motion_to_blender(hml_joints[:60].tolist())
    drift = [_moved([f], 0.02 * t, (0.01 * t, 0.3, -0.04), noise=0.01, seed=t)[0]
             for t, f in enumerate(source)]  # fmt: skip
    a, b = 20, 40
    joined = K.join_span(drift[a : b + 1], (drift[a - 1], source[a - 1]),
                         (drift[b + 1], source[b + 1]))  # fmt: skip
    take = _arr(source[:a] + joined + source[b + 1 :])

    def step(m, i):  # mean joint displacement from frame i to i + 1
        return np.linalg.norm(m[i + 1] - m[i], axis=-1).mean()

    raw = _arr(source[:a] + drift[a : b + 1] + source[b + 1 :])
    for seam in (a - 1, b):
        assert step(take, seam) < 0.6 * step(raw, seam)
        assert step(take, seam) < 2.0 * step(_arr(drift), seam) + 0.005
    # without per-joint differences every frame is moved rigidly: no bone changes length
    rigid = [_moved([f], 0.05 * t, (0.02 * t, 0.3, -0.04))[0] for t, f in enumerate(source)]
    joined = K.join_span(rigid[a : b + 1], (rigid[a - 1], source[a - 1]),
                         (rigid[b + 1], source[b + 1]))  # fmt: skip

    def bones(m):
        m = _arr(m)
        return np.linalg.norm(m[:, 1:] - m[:, list(K.PARENTS[1:])], axis=-1)

    assert np.abs(bones(joined) - bones(rigid[a : b + 1])).max() < 1e-9


def _bones(rng: random.Random) -> list:
    from mosa_blender.rig_bvh import RigBone

    heads = [(0.0, 0.0, 1.0), (0.1, 0.0, 0.9), (0.1, 0.0, 0.5), (-0.1, 0.0, 0.9), (0.0, 0.0, 1.4)]
    parents = [-1, 0, 1, 0, 0]
    names = ["hips", "thigh L", "shin.L", "thigh.R", "spine"]
    return [
        RigBone(n, p, h, K.add(h, (0.0, 0.0, 0.05)), _random_rotation(rng))
        for n, p, h in zip(names, parents, heads, strict=True)
    ]


def test_rest_bvh_is_a_bvh_of_the_armature():
    from mosa_blender import rig_bvh as RB

    bones = _bones(random.Random(0))
    text = RB.rest_bvh(bones, 24.0)
    data = mosa_bvh.parse_bvh(text, "rest")
    assert data.names == ["hips", "thigh_L", "shin.L", "thigh.R", "spine"]  # one token each
    assert data.num_frames == 1 and abs(data.fps - 24.0) < 1e-4  # Frame Time to 8 digits
    heads = data.global_positions()[0]
    np.testing.assert_allclose(heads, [b.head for b in bones], atol=1e-6)
    parsed = RB.parse_bvh(text)
    assert parsed.names == data.names and len(parsed.frames) == 1
    # at rest every bone's pose basis is the identity and the root sits on its rest head
    rotations, locations = RB.pose_channels(bones, parsed)
    for m in rotations[0]:
        np.testing.assert_allclose(m, K.IDENTITY, atol=1e-9)
    np.testing.assert_allclose(locations[0], (0.0, 0.0, 0.0), atol=1e-9)


def test_pose_basis_is_the_bvh_rotation_in_the_bone_frame():
    from mosa_blender import rig_bvh as RB

    rng = random.Random(1)
    bones = _bones(rng)
    parsed = RB.parse_bvh(RB.rest_bvh(bones, 20.0))
    row = [0.2, -0.1, 1.1, *[rng.uniform(-90, 90) for _ in range(3 + 3 * 4)]]
    motion = RB.BvhMotion(parsed.names, parsed.channels, parsed.offsets, 0.05, [row])
    rotations, locations = RB.pose_channels(bones, motion)
    for j, b in enumerate(bones):
        angles = row[3:6] if j == 0 else row[6 + 3 * (j - 1) : 9 + 3 * (j - 1)]
        local = Rotation.from_euler("ZXY", angles, degrees=True).as_matrix()
        rest = _arr(b.rest).reshape(3, 3)
        got = _arr(rotations[0][j]).reshape(3, 3)
        np.testing.assert_allclose(got, rest.T @ local @ rest, atol=1e-9)
    root_rest = _arr(bones[0].rest).reshape(3, 3)
    want = root_rest.T @ (np.array(row[:3]) - bones[0].head)
    np.testing.assert_allclose(locations[0], want, atol=1e-9)


def test_unusable_armatures_and_answers_are_refused():
    from mosa_blender import rig_bvh as RB

    bones = _bones(random.Random(2))
    two_roots = [*bones[:4], RB.RigBone("prop", -1, (1.0, 0, 0), (1.0, 0, 0.1), K.IDENTITY)]
    with pytest.raises(inputs.InputError, match="2 root bones"):
        RB.rest_bvh(two_roots, 20.0)
    with pytest.raises(inputs.InputError, match="0 root bones"):
        RB.rest_bvh([], 20.0)
    with pytest.raises(ValueError, match="MOTION"):
        RB.parse_bvh("HIERARCHY ROOT a { OFFSET 0 0 0 CHANNELS 3 Zrotation Xrotation Yrotation }")
    other = RB.parse_bvh(RB.rest_bvh(bones[:3], 20.0))
    with pytest.raises(ValueError, match="lacks the bones"):
        RB.pose_channels(bones, other)
