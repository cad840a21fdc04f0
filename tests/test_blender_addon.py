"""The Blender add-on: its zip (``mosa blender-addon``), and Debian's Blender running every
operator against a live ``mosa serve`` (the tiny pipeline) in one headless process
(tests/blender/addon_check.py); skipped when ``blender`` is not installed
(``apt-get install blender``; ``.ci/run`` installs it)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import pytest

from mosa.blender_addon import addon_files, bl_info, write_addon_zip
from mosa.cli import main
from mosa.errors import MosaError

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "tests" / "blender" / "addon_check.py"
BLENDER = shutil.which("blender")


# -- the zip ------------------------------------------------------------------------------------


def test_zip_holds_the_package_with_bl_info(tmp_path):
    path = write_addon_zip(tmp_path / "mosa_blender.zip")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        init = zf.read("mosa_blender/__init__.py").decode()
        for name in names:  # every module is Python Blender can compile
            ast.parse(zf.read(name).decode(), name)
    src = ROOT / "src" / "mosa_blender"
    assert sorted(names) == sorted(f"mosa_blender/{p.as_posix()}" for p in addon_files(src))
    assert {"mosa_blender/operators.py", "mosa_blender/client.py"} <= set(names)
    assert not any("__pycache__" in n for n in names)
    info = bl_info()
    assert tuple(info["blender"]) >= (3, 4, 0) and "bl_info" in init
    # the add-on needs nothing beyond Blender's Python: no numpy, torch or mosa imports
    for name in names:
        tree = ast.parse(zipfile.ZipFile(path).read(name).decode())
        for node in ast.walk(tree):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            )
            for m in mods:
                assert m.split(".")[0] not in {"numpy", "torch", "mosa", "scipy"}, (name, m)


def test_zip_is_reproducible_and_never_overwrites(tmp_path):
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    write_addon_zip(a)
    write_addon_zip(b)
    assert a.read_bytes() == b.read_bytes()
    a.write_bytes(b"user's file")
    with pytest.raises(MosaError, match="already exists"):
        write_addon_zip(a)
    assert a.read_bytes() == b"user's file"
    write_addon_zip(a, force=True)
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(MosaError, match=r"\.zip"):
        write_addon_zip(tmp_path / "addon.tar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "b.zip"]  # no temporaries


def test_cli_writes_the_zip(tmp_path, capsys):
    out = tmp_path / "addon.zip"
    assert main(["blender-addon", "-o", str(out)]) == 0
    assert zipfile.is_zipfile(out) and "Install" in capsys.readouterr().out
    assert main(["blender-addon", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and "Traceback" not in err
    assert main(["blender-addon", "-o", str(out), "--force"]) == 0


# -- Blender against a live server --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    """``mosa serve`` (uvicorn in a thread, the tiny pipeline) on a free loopback port."""
    torch = pytest.importorskip("torch")
    import uvicorn

    from mosa.loading import load
    from mosa.serve.app import create_app
    from tiny_models import write_tiny_pipeline

    torch.set_num_threads(1)
    pipe = load(write_tiny_pipeline(tmp_path_factory.mktemp("ckpt")), "cpu")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(pipe, batch_window_ms=0), log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def rig_json(shared_data, path: Path) -> Path:
    """A Rigify-named copy of the CMU rig (tests/rig_variants) as the add-on test's user
    armature: names, parents, bone heads and tails at rest, in Blender's axes (Z up), metres."""
    import numpy as np

    from mosa.motion.bvh import read_bvh
    from rig_variants import write_variant

    path.parent.mkdir(parents=True, exist_ok=True)
    bvh = read_bvh(write_variant(shared_data / "cmu" / "01_01.bvh", path.parent, "rigify"))
    heads = np.zeros((bvh.num_joints, 3))
    for j, p in enumerate(bvh.parents):
        heads[j] = bvh.offsets[j] + (heads[p] if p >= 0 else 0.0)
    heads = heads[:, [0, 2, 1]] * [1, -1, 1] * 0.056  # Y up -> Z up; CMU's units -> ~1.7 m
    tails = heads + [0.0, 0.0, 0.05]  # a bone never has zero length
    for j, p in enumerate(bvh.parents):
        if p >= 0 and np.linalg.norm(heads[j] - heads[p]) > 1e-3:
            tails[p] = heads[j]
    skel = {"names": list(bvh.names), "parents": [int(p) for p in bvh.parents],
            "heads": heads.tolist(), "tails": tails.tolist()}  # fmt: skip
    path.write_text(json.dumps(skel))
    return path


@pytest.fixture(scope="module")
def blender_run(server_url, shared_data, tmp_path_factory):
    if BLENDER is None:
        pytest.skip("blender not found (apt-get install blender: Debian's 3.4)")
    tmp = tmp_path_factory.mktemp("blender")
    zip_path = write_addon_zip(tmp / "mosa_blender.zip")
    out = tmp / "results.json"
    rig = rig_json(shared_data, tmp / "rig" / "rig.json")
    env = {**os.environ, "BLENDER_USER_SCRIPTS": str(tmp / "scripts"),
           "BLENDER_USER_CONFIG": str(tmp / "config"), "PYTHONPATH": ""}  # fmt: skip
    cmd = [BLENDER, "-b", "--factory-startup", "--python-exit-code", "1",
           "--python", str(CHECK), "--", "--zip", str(zip_path), "--url", server_url,
           "--down-url", f"http://127.0.0.1:{_free_port()}", "--out", str(out),
           "--rig-json", str(rig)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    log = proc.stdout + proc.stderr
    assert out.exists(), f"Blender wrote no results (exit {proc.returncode}):\n{log[-4000:]}"
    results = json.loads(out.read_text())
    assert "crash" not in results, results["crash"] + "\n" + log[-3000:]
    assert proc.returncode == 0, log[-4000:]
    results["log"] = log
    results["scripts"] = str(tmp / "scripts")
    return results


def _ok(step: dict) -> None:
    assert step.get("result") == ["FINISHED"], step.get("error")


def _skip_if_missing(step: dict, endpoint: str) -> None:
    if "has no /api/" + endpoint in step.get("error", ""):
        pytest.skip(f"the server has no /api/{endpoint} yet")


def test_addon_installs_from_the_zip(blender_run):
    assert blender_run["default_url"] == "http://127.0.0.1:8000"
    assert blender_run["installed_from"].startswith(blender_run["scripts"])
    assert blender_run["panel_registered"] and blender_run["unregistered"]
    assert "Traceback" not in blender_run["log"], blender_run["log"][-3000:]


def test_generate_makes_an_armature_and_an_action(blender_run):
    g = blender_run["generate"]
    _ok(g)
    assert g["type"] == "ARMATURE" and g["armatures"] == 1  # the cube was selected
    T = g["server_frames"]  # 4 s at 20 fps, every bone and the root keyed on every frame
    assert T == 80
    assert g["curves"] == 22 * 4 + 3 and g["keys_per_curve"] == [T]
    assert (g["first"], g["last"], g["frames"]) == (10, 10 + T - 1, T)
    assert len(g["moving_bones"]) >= 15 and "pelvis" in g["moving_bones"]
    assert g["fake_user"]
    j = g["joints"]
    assert j["compared_frames"] == T
    # Blender poses the bones exactly as the add-on's kinematics says (float32 keys)...
    assert j["max_fk_error_m"] < 1e-4, j
    # ...the pelvis exactly where the server put it; the tiny random model's bones stretch,
    # so the other joints only roughly (the shipped model: a few mm, docs/blender.md)
    assert j["max_pelvis_error_m"] < 1e-4, j
    assert j["mean_error_m"] < 0.1, j


def test_second_generate_adds_an_action(blender_run):
    g, first = blender_run["generate2"], blender_run["generate"]
    _ok(g)
    assert g["armatures"] == 1 and g["action"] != first["action"]
    assert g["first_action_kept"] and g["first_action_fake_user"]
    assert (g["first"], g["frames"]) == (1, 60)


def test_regenerate_replaces_only_the_range(blender_run):
    r = blender_run["regenerate"]
    _ok(r)
    assert r["action"] == r["source"] + ".mosa.001"
    assert r["source_unchanged"]  # the animator's action is untouched
    assert r["outside_equal"] and r["outside_keys"] == 91 * (60 - 21)
    assert r["inside_keys"] == 91 * 21 and r["inside_changed"] > r["inside_keys"] // 2
    assert (r["first"], r["last"], r["frames"]) == (1, 60, 60)


def test_extend_adds_frames_after_the_action(blender_run):
    e = blender_run["extend"]
    _skip_if_missing(e, "extend")
    _ok(e)
    assert e["action"] == blender_run["regenerate"]["action"].replace(".001", ".002")
    assert e["outside_equal"] and e["outside_keys"] == 91 * e["source_frames"]
    assert (e["first"], e["frames"]) == (1, e["source_frames"] + 40)


def test_sequence_makes_one_take_with_markers(blender_run):
    s = blender_run["sequence"]
    _skip_if_missing(s, "sequence")
    _ok(s)
    assert s["first"] == 1 and 100 <= s["frames"] <= 140  # 3 x 2 s (+- the joins)
    names = [m[0] for m in s["markers"]]
    assert names == ["a person walks forward", "a person turns around", "a person waves"]
    frames = [m[1] for m in s["markers"]]
    assert frames[0] == 1 and frames == sorted(frames)


def test_generate_onto_the_users_own_armature(blender_run, server_url):
    """With the user's armature selected, the motion is a new action on it, posed as the
    server's retargeting onto its skeleton says (the same request's BVH, FK'd by mosa)."""
    import urllib.request

    import numpy as np

    from mosa.motion.bvh import parse_bvh
    from mosa_blender.rig_bvh import bvh_name

    o = blender_run["own_rig"]
    _ok(o)
    assert o["armatures_added"] == 0 and (o["first"], o["frames"]) == (1, 40)
    legs_arms = {"hips", "thigh.L", "shin.R", "foot.L", "upper_arm.R", "forearm.L"}
    assert legs_arms <= set(o["moving_bones"]), o["moving_bones"]
    body = {"text": "a person walks forward", "seconds": 2.0, "seed": 6, "num_samples": 1,
            "bvh": True, "rig_bvh": o["rest_bvh"]}  # fmt: skip
    req = urllib.request.Request(
        server_url + "/api/generate",
        json.dumps(body).encode(),
        {"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        answer = parse_bvh(json.loads(r.read())["samples"][0]["bvh"], "answer")
    want = answer.global_positions()  # (T, J, 3) armature space, metres
    index = {n: k for k, n in enumerate(answer.names)}
    got = np.stack([np.asarray(o["heads"][b]) for b in o["heads"]], axis=1)
    cols = [index[bvh_name(b)] for b in o["heads"]]
    assert got.shape == want[:, cols].shape == (40, len(cols), 3)
    err = np.linalg.norm(got - want[:, cols], axis=-1)
    assert err.max() < 1e-4, err.max()  # every bone, every frame, four rotation modes
    s = blender_run["own_rig_sequence"]
    _ok(s)
    assert s["first"] == 1 and 70 <= s["frames"] <= 90 and s["action"] != o["action"]


def test_an_armature_that_cannot_be_used_is_reported(blender_run):
    e = blender_run["own_rig_empty"]
    assert "root bones" in e.get("error", "") and not e["traceback"], e
    assert e["actions_made"] == 0


def test_other_frame_rates_resample(blender_run):
    g = blender_run["generate30"]
    _ok(g)
    assert (g["first"], g["frames"]) == (1, 120)  # 4 s at 30 fps
    assert g["joints"]["compared_frames"] == 40  # the frames on the server's 20-fps grid
    assert g["joints"]["max_pelvis_error_m"] < 1e-4


def test_panels_draw_and_pass_their_fields_to_the_operators(blender_run):
    p = blender_run["panel"]

    def ops(rows, idname):
        return [r[2] for r in rows if r[0] == "operator" and r[1] == idname]

    [gen] = ops(p["VIEW3D_PT_mosa_generate"], "mosa.generate")
    assert gen == {"text": "a person bows", "seconds": 3.5, "seed": 11}
    [regen] = ops(p["VIEW3D_PT_mosa_edit"], "mosa.regenerate")
    assert {"text", "frame_start", "frame_end", "seed"} <= set(regen)
    assert ops(p["VIEW3D_PT_mosa_edit"], "mosa.extend")
    [seq] = ops(p["VIEW3D_PT_mosa_sequence"], "mosa.sequence")
    assert seq["texts"] == "a person walks | a person sits" and seq["seconds"] == "3 | 3"
    up = " ".join(r[1] for r in p["status_up"] if r[0] == "label")
    down = " ".join(r[1] for r in p["status_down"] if r[0] == "label")
    assert "Server: http://127.0.0.1:" in up and "No mosa server answers" not in up
    assert "No mosa server answers at" in down and "mosa serve --checkpoint" in down
    assert ops(p["status_down"], "mosa.check_server")


@pytest.mark.parametrize(
    ("name", "words"),
    [("empty_prompt", "prompt is empty"), ("empty_range", "is empty"),
     ("outside_range", "outside the action"), ("sequence_lengths", "one length per prompt"),
     ("extend_zero", "seconds to add"), ("server_down", "no mosa server answers"),
     ("server_down_regenerate", "no mosa server answers"),
     ("no_armature_regenerate", "select a mosa armature")],
)  # fmt: skip
def test_mistakes_are_reported_not_raised(blender_run, name, words):
    step = blender_run["errors"][name]
    assert "error" in step, step
    assert words in step["error"] and not step["traceback"], step["error"]
    assert blender_run["errors_actions_made"] == 0
