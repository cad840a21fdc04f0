"""scripts/make_edit_examples.py (over mosa.eval.edit_report / edit_examples) on the tiny random
pipeline: files, table, CLI commands."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from mosa import edit as E
from mosa.cli import main as mosa_main
from mosa.cli.edit import add_arguments as add_edit_arguments
from mosa.edit.on_rig import save_edit
from mosa.eval import edit_acceptance as A
from mosa.eval import edit_examples as X
from mosa.eval import edit_report as R
from mosa.eval import kinematics
from mosa.eval.evaluator import Evaluator, EvaluatorConfig, TextMotionEvaluator
from mosa.loading import load
from mosa.motion.features import facing_direction, recover_joints
from mosa.motion.io import read_motion
from mosa.requests import EDIT_DEFAULTS
from tiny_models import write_tiny_pipeline

REPO_ROOT = Path(__file__).resolve().parents[1]
GIF_FPS, WIDTH, CELL = 4.0, 64, 40
COLUMNS = [
    "example", "mode", "frames", "generated (s)", "MPJPE outside (mm)", "raw decode (mm)",
    "recon. (mm)", "MPJPE pass", "seam peak (m/s)", "source p95 (m/s)", "seam ratio",
    "seam pass", "seam / peak elsewhere", "text dist. edit", "text dist. ref.", "text pass",
    "kinematic pass", "gen. travel (m)", "wrist over head (m)",
]  # fmt: skip


def _load_script():
    path = REPO_ROOT / "scripts" / "make_edit_examples.py"
    spec = importlib.util.spec_from_file_location("make_edit_examples", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


S = _load_script()


class RandomVectors:
    """Random 300-d word vectors: the evaluator only needs to run, not to be right."""

    dim = 300

    def vector(self, word):
        seed = int.from_bytes(word.encode(), "little") % 2**32
        return np.random.default_rng(seed).standard_normal(300).astype(np.float32)


def tiny_evaluator() -> Evaluator:
    cfg = EvaluatorConfig(movement_hidden=16, movement_dim=16, motion_hidden=24,
                          text_hidden=20, embed_dim=8, dropout=0.0)  # fmt: skip
    model = TextMotionEvaluator(cfg).eval()
    return Evaluator(model, np.zeros(263, np.float32), np.ones(263, np.float32), RandomVectors())


# A: 199 feature frames, B: 170 (20 fps); the tiny generator makes 40..196 frames.
# Every text has a kinematic rule (S.CHECKS), so every row has a kinematic figure.
EXAMPLES = (
    X.Example("span", "span", "a person bows", ("b",), start=1.0, end=2.5),
    X.Example("extend", "extend", "a person walks forward", ("b",), after=1.0),
    X.Example("lead_in", "lead_in", "a person waves with the right hand", ("b",), before=0.5),
    X.Example("inbetween", "inbetween", "a person stops and bows", ("a", "b"), seconds=1.0,
              crop=True),
    X.Example("outpaint", "outpaint", "a person runs forward", ("b",), before=0.5, after=0.5),
)  # fmt: skip
PROBES = (X.Example("probe", "lead_in", "a person jumps", ("b",), before=1.0, note="a try"),)
# Output frames, rounded up to multiples of 4 by the first generated part: span 20 kept +
# (30 + 2) + 120 kept = 172; extend 170 + (20 + 2) = 192; lead-in 10 + 170 = 180; in-between
# 199 + (20 + 3) + 170 = 392 (longer than the generator's 196: it sees a window of it, so
# --crop has nothing to do); outpaint (10 + 2) + 170 + 10 = 192.
GENERATED_FRAMES = {"span": 30, "extend": 22, "lead_in": 10, "inbetween": 23, "outpaint": 22}
TOTAL_FRAMES = {"span": 170, "extend": 192, "lead_in": 180, "inbetween": 392, "outpaint": 192}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_pipeline(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def pipe(ckpt):
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test setting
    return load(ckpt, device="cpu")


@pytest.fixture(scope="module")
def paths(hml_sample):
    return {"a": hml_sample / "000612_new_joint_vecs.npy",
            "b": hml_sample / "012314_new_joint_vecs.npy"}  # fmt: skip


@pytest.fixture(scope="module")
def made(pipe, paths, ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("editing")
    rows = R.make_edit_examples(
        pipe, EXAMPLES, paths, out, seed=3, evaluator=tiny_evaluator(), gif_fps=GIF_FPS,
        width=WIDTH, cell=CELL, command="python scripts/make_edit_examples.py --test",
        cli_extra=["--checkpoint", str(ckpt), "--device", "cpu"], more_seeds=1, probes=PROBES,
        checks=S.CHECKS,
    )  # fmt: skip
    return out, rows


def test_pass_rates_by_hand(made):
    out, rows = made
    a = [
        {"example": "x", "mpjpe_pass": True, "seam_pass": True, "seam_ratio": 1.0},
        {"example": "y", "mpjpe_pass": True, "seam_pass": False, "seam_ratio": 2.0},
    ]
    b = [{"example": "x", "mpjpe_pass": True, "seam_pass": False, "seam_ratio": 3.0},
         {"example": "y", "mpjpe_pass": False, "seam_pass": False, "seam_ratio": 4.0}]  # fmt: skip
    got = X.pass_rates([a, b], [0, 1])
    assert got[0] == {"example": "x", "seeds": [0, 1], "mpjpe_passed": 2, "seam_passed": 1,
                      "seam_ratio_median": 2.0, "seam_ratio_max": 3.0}  # fmt: skip
    assert got[1]["mpjpe_passed"] == 1 and got[1]["seam_passed"] == 0
    # the module's run: seeds 3 and 4, seed 3's counts agree with acceptance.json
    rates = json.loads((out / "acceptance_seeds.json").read_text())
    assert [r["example"] for r in rates] == [r["example"] for r in rows]
    for rate, row in zip(rates, rows, strict=True):
        assert rate["seeds"] == [3, 4]
        assert rate["seam_passed"] >= int(row["seam_pass"]) and rate["seam_passed"] <= 2
        assert rate["seam_ratio_max"] >= row["seam_ratio"]
    assert "### Over 2 seeds (3-4)" in (out / "README.md").read_text()


def test_probes_are_measured_on_every_seed(made, pipe, paths):
    """Probes run on all seeds (the rendered one too), are not rendered, and their rates
    agree with measuring them by hand; a text with no kinematic rule has no such figure."""
    out, _ = made
    assert not (out / "probe.gif").exists()
    [rate] = json.loads((out / "probes_seeds.json").read_text())
    rows = [X.measure_example(pipe, PROBES[0], paths, sd, tiny_evaluator(), S.CHECKS)
            for sd in (3, 4)]  # fmt: skip
    assert rate["seeds"] == [3, 4] and rate["text"] == "a person jumps"
    assert rate["seam_passed"] == sum(r["seam_pass"] for r in rows)
    assert rate["seam_ratio_max"] == pytest.approx(max(r["seam_ratio"] for r in rows))
    assert "kinematic_passed" not in rate and "kinematic_pass" not in rows[0]
    readme = (out / "README.md").read_text()
    tried = readme[readme.index("### Other texts tried") :]
    assert "| probe | a person jumps |  |" in tried and tried.splitlines()[6].endswith("| a try |")
    assert rate["note"] == "a try"


def _edit(joints: np.ndarray, segments) -> SimpleNamespace:
    return SimpleNamespace(joints=joints, fps=20.0, segments=segments)


def test_kinematic_check_by_hand(hml_sample):
    """A pose carried forward at 1 m/s on generated frames and standing on kept ones: the walk
    rule passes on a lone generated part and fails when another generated part stands."""
    pose = np.load(hml_sample / "012314_new_joints.npy")[0]
    face = facing_direction(pose[None])[0]
    step = np.array([face[0], 0.0, face[1]]) * 1.0 / 20  # 1 m/s at 20 fps
    moving = np.arange(21)[:, None, None] * step
    joints = np.concatenate([pose + moving, np.repeat(pose[None] + moving[-1], 20, axis=0)])
    gen, kept = E.Segment("generated", 0, 21), E.Segment("kept", 21, 41, 0, 0)
    got = A.kinematic_check("a person walks forward", _edit(joints, [gen, kept]), S.CHECKS)
    assert got["kinematic_rule"] == S.CHECKS["a person walks forward"][0]
    assert got["kinematic_parts"][0]["forward_m"] == pytest.approx(1.0, abs=1e-6)
    assert got["kinematic_pass"] is True
    standing = E.Segment("generated", 21, 41)
    got = A.kinematic_check("a person walks forward", _edit(joints, [gen, standing]), S.CHECKS)
    assert [p["forward_m"] for p in got["kinematic_parts"]] == pytest.approx([1.0, 0.0], abs=1e-6)
    assert got["kinematic_pass"] is False
    # 0.4 m/s is under the walk's 0.5 m/s; the bow rule looks at the head instead
    slow = np.concatenate([pose + moving * 0.4, pose[None].repeat(20, axis=0)])
    got = A.kinematic_check("a person walks forward", _edit(slow, [gen]), S.CHECKS)
    assert got["kinematic_pass"] is False
    bow = A.kinematic_check("a person bows", _edit(joints, [gen]), S.CHECKS)
    assert bow["kinematic_pass"] is False
    assert A.kinematic_check("a person jumps", _edit(joints, [gen]), S.CHECKS) == {}


def test_bow_is_measured_from_the_kept_neighbours(hml_sample):
    """``head_below_kept_m``: the lower kept neighbour's head height minus the part's lowest;
    a part between a tall and a short neighbour does not count the difference as a bow."""
    pose = np.load(hml_sample / "012314_new_joints.npy")[0]
    joints = np.repeat(pose[None], 30, axis=0)
    joints[20:, :, 1] -= 0.3  # B stands 30 cm lower than A
    joints[10:20, :, 1] -= np.linspace(0.0, 0.3, 10)[:, None]  # the part goes from A to B
    fig = A.part_figures(joints, 10, 20, 20.0)
    assert fig["head_below_kept_m"] == pytest.approx(0.0, abs=1e-6)
    assert fig["head_drop_m"] > 0.25  # what describe alone would have called a bow
    joints[14, kinematics.HEAD, 1] -= 0.2  # a real dip below B's height
    fig = A.part_figures(joints, 10, 20, 20.0)
    assert fig["head_below_kept_m"] == pytest.approx(0.2 + 0.3 * 4 / 9 - 0.3, abs=1e-6)
    joints[15, kinematics.HEAD, 1] -= 0.3
    gen = E.Segment("generated", 10, 20)
    bow = A.kinematic_check("a person bows", _edit(joints, [gen]), S.CHECKS)
    assert bow["kinematic_pass"] is True
    # a lead-in has only the kept frame after it
    fig = A.part_figures(joints, 0, 10, 20.0)
    assert fig["head_below_kept_m"] == pytest.approx(0.0, abs=1e-6)


def test_files_are_written(made):
    out, rows = made
    for ex in EXAMPLES:
        with Image.open(out / f"{ex.name}.gif") as im:
            assert im.format == "GIF"
            seconds = TOTAL_FRAMES[ex.mode] / 20
            assert im.n_frames == round(seconds * GIF_FPS)
            assert im.size[0] >= 2 * WIDTH
    with Image.open(out / "contact_sheet.png") as im:  # the size render.py documents
        assert im.size == (6 * CELL, 2 * len(EXAMPLES) * (CELL + CELL // 5))
    assert json.loads((out / "acceptance.json").read_text()) == json.loads(json.dumps(rows))


def test_lengths_and_figures(made):
    _, rows = made
    assert [r["example"] for r in rows] == [e.name for e in EXAMPLES]
    for r in rows:
        assert r["frames"] == TOTAL_FRAMES[r["mode"]]
        assert r["generated_s"] == pytest.approx(GENERATED_FRAMES[r["mode"]] / 20)
        numbers = [v for v in r.values() if isinstance(v, float)]
        assert len(numbers) >= 12 and all(math.isfinite(v) for v in numbers)
        assert r["mpjpe_pass"] == (r["mpjpe_outside_mm"] <= r["recon_mpjpe_mm"] + 10.0)
        assert r["seam_ratio"] == pytest.approx(r["seam_peak_speed"] / r["source_p95_speed"])
        assert r["seam_pass"] == (r["seam_ratio"] <= 1.5)
        assert r["text_pass"] == (r["text_dist_edited"] < r["text_dist_source"])
        # the kinematic rule on the row's own figures, one per generated part
        rule, ok = S.CHECKS[r["text"]]
        n_parts = 2 if r["mode"] == "outpaint" else 1
        assert r["kinematic_rule"] == rule and len(r["kinematic_parts"]) == n_parts
        secs = (GENERATED_FRAMES[r["mode"]] - 1) / 20
        if n_parts == 1:
            assert r["kinematic_pass"] == bool(ok(r["kinematic_parts"][0], secs))
        # kept frames are the source's own features away from the seams: close to it
        assert r["mpjpe_outside_mm"] < r["mpjpe_outside_decoded_mm"]


def test_readme_table(made):
    out, rows = made
    text = (out / "README.md").read_text()
    figures = text[: text.index("### Over")]  # the seed table follows
    lines = [ln for ln in figures.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == COLUMNS
    body = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    assert [b[0] for b in body] == [e.name for e in EXAMPLES]
    for cells in body:
        assert len(cells) == len(COLUMNS)
        for name, cell in zip(COLUMNS, cells, strict=True):
            if name.endswith("pass"):
                assert cell in ("yes", "no")
            elif name not in ("example", "mode"):
                assert math.isfinite(float(cell))
    for ex in EXAMPLES:
        assert f"![{ex.name}]({ex.name}.gif)" in text


def test_readme_command_reproduces_the_edit(made, pipe, paths, tmp_path):
    _, rows = made
    [row] = [r for r in rows if r["example"] == "span"]
    argv = shlex.split(row["cli"])
    assert argv[:2] == ["mosa", "edit"] and argv[-2:] == ["-o", "span.bvh"]
    assert argv[argv.index("--start") + 1 : argv.index("--start") + 4] == ["1", "--end", "2.5"]
    out = tmp_path / "span.npy"
    assert mosa_main([*argv[1:-1], str(out)]) == 0
    got = read_motion(out).joints
    assert len(got) == row["frames"]
    # the CLI makes the very motion the script measured and rendered, written as the CLI
    # writes an edit (save_edit: on the source's own skeleton, feet locked)
    m, _ = X.run_example(pipe, EXAMPLES[0], paths, seed=3)
    ref_out = save_edit(m, tmp_path / "ref.npy", [read_motion(paths["b"])])
    np.testing.assert_array_equal(got, read_motion(ref_out).joints)
    np.testing.assert_allclose(got[m.kept], m.joints[m.kept], atol=1e-4)
    # and its first frames (kept, before the span at 1.0 s) are exactly the source's
    ref = recover_joints(np.load(paths["b"]))
    np.testing.assert_allclose(got[:15], ref[:15], atol=1e-4)


def test_before_track_and_marks(made, pipe, paths):
    out, _ = made
    m, feats = X.run_example(pipe, EXAMPLES[0], paths, seed=3)
    track = X.before_track(m, feats, "span")
    ref = recover_joints(np.load(paths["b"]))  # span 1.0-2.5 s keeps frames 0-19 and 50-169
    np.testing.assert_allclose(track[:20], ref[:20], atol=1e-5)
    np.testing.assert_allclose(track[50:], ref[50:], atol=1e-5)  # the take keeps its length
    np.testing.assert_allclose(track[20:50], ref[20:50], atol=1e-5)  # what the span replaced
    # the edit's panel is framed in orange exactly while generated frames (1.0-2.5 s) play
    with Image.open(out / "span.gif") as im:
        orange = []
        for k in range(im.n_frames):
            im.seek(k)
            r, g, b = im.convert("RGB").getpixel((WIDTH + 2, im.size[1] // 2))
            orange.append(r > 200 and 100 < g < 180 and b < 80)
    t = np.arange(len(orange)) / GIF_FPS
    assert orange == [bool(1.0 <= s < 2.5) for s in t]


def test_missing_source_is_a_user_error(tmp_path, capsys):
    code = S.main(["--data", str(tmp_path), "--examples", "span_walk", "--evaluator", "none"])
    assert code == 2
    assert "source motion not found" in capsys.readouterr().err


def test_sampling_about_names_the_edit_guidance(pipe):
    text = R.sampling_about(pipe)
    assert f"guidance {EDIT_DEFAULTS['cfg']:g} (plain generation: 2)" in text
    assert f"top-p {pipe.edit_defaults['top_p']}" in text


def test_cli_names_a_context_that_is_not_the_default():
    ex = X.Example("x", "extend", "a person waves", ("b",), after=1.0)
    assert "--context" not in ex.cli(["b.npy"], "x.bvh")
    argv = shlex.split(X.Example("x", "extend", "w", ("b",), after=1.0, context=2.0).cli(
        ["b.npy"], "x.bvh"))  # fmt: skip
    assert argv[argv.index("--context") + 1] == "2"
    argv = shlex.split(X.Example("x", "span", "w", ("b",), 1, 2, context=None).cli(["b"], "x"))
    assert argv[argv.index("--context") + 1] == "all"
    # and the CLI reads them back
    parser = argparse.ArgumentParser()
    add_edit_arguments(parser)
    assert parser.parse_args(argv[2:]).context is None


def test_resample_and_frames_at():
    """``resample``: linear in time, frame k at k / fps_out; ``frames_at``: nearest frame."""
    from mosa.motion.marks import frames_at, resample

    joints = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((1, 22, 3), np.float32)
    got = resample(joints, 20.0, 10.0)  # every other frame
    assert got.shape == (2, 22, 3) and got[:, 0, 0].tolist() == [0.0, 2.0]
    got = resample(joints, 20.0, 40.0)  # half steps, the last frame held
    assert got[:, 0, 0].tolist() == pytest.approx([0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4])
    mask = np.array([False, False, True, True, False])
    assert frames_at(mask, 20.0, 3, 10.0).tolist() == [False, True, False]
    assert frames_at(mask, 20.0, 4, 10.0).tolist() == [False, True, False, False]


def test_checkpoint_about_and_titles(ckpt, tmp_path):
    """The README's checkpoint line names the folder as typed (and the generator's step when
    its config records one); GIF titles drop the Bandai-Namco ``dataset-N_`` prefix."""
    cfg = json.loads((Path(ckpt) / "sar" / "config.json").read_text())
    step = cfg.get("meta", {}).get("step")
    got = R.checkpoint_about(Path(ckpt), "cpu", 2)
    assert got.startswith(f"Checkpoint: `{R.shown_path(Path(ckpt))}`")
    assert got.endswith("; device cpu, 2 CPU thread(s).")
    assert ("(generator step" in got) == (step is not None)
    missing = R.checkpoint_about(tmp_path / "nothing", "cuda", 1)
    assert "generator step" not in missing and "device cuda, 1 CPU thread(s)" in missing
    assert R.short_name(Path("x/dataset-2_walk_active_006.npy")) == "walk_active_006"
    assert R.short_name(Path("01_01.bvh")) == "01_01"
