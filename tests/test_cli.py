"""The `mosa` command line: real runs, exit codes, and no tracebacks for user mistakes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mosa.cli import EXIT_USER_ERROR, build_parser, main
from mosa.motion import load_bvh


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the console entry point in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "mosa.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_data_build_render_and_convert_end_to_end(tiny_tar, shared_data, tmp_path):
    out = tmp_path / "bandai"
    proc = run_cli("data", "build", "--source", str(tiny_tar), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"clips {manifest['counts']['clips']}" in proc.stdout

    clip = out / "new_joints" / "dataset-1_bow_normal_001.npy"
    gif = tmp_path / "bow.gif"
    proc = run_cli("render", str(clip), "-o", str(gif), "--caption", "a person bows")
    assert proc.returncode == 0, proc.stderr
    assert gif.read_bytes()[:6] in (b"GIF89a", b"GIF87a")

    cmu = tmp_path / "cmu.npy"
    proc = run_cli("convert", str(shared_data / "cmu" / "01_01.bvh"), str(cmu))
    assert proc.returncode == 0, proc.stderr
    joints = np.load(cmu)
    source = load_bvh(shared_data / "cmu" / "01_01.bvh")
    assert joints.shape == source.joints.shape and joints.shape[1:] == (22, 3)
    np.testing.assert_allclose(joints, source.joints, atol=1e-6)
    assert f"{len(joints)} frames" in proc.stdout


def test_convert_to_features_and_back_to_bvh(hml_sample, tmp_path):
    feats = tmp_path / "f.npy"
    assert main(["convert", str(hml_sample / "012314_new_joints.npy"), str(feats), "--to",
                 "features"]) == 0  # fmt: skip
    assert np.load(feats).shape == (169, 263)
    bvh = tmp_path / "f.bvh"
    assert main(["convert", str(feats), str(bvh)]) == 0
    assert load_bvh(bvh).joints.shape == (169, 22, 3)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["convert", "missing.bvh", "out.npy"], "not found"),
        (["convert", "{sample}", "out.txt"], ".txt"),
        (["render", "{sample}", "-o", "out.avi"], ".avi"),
        (["render", "{sample}", "-o", "out.gif", "--titles", "a", "b"], "titles"),
        (["data", "build", "--source", "missing.tar.xz", "--out", "x"], "missing.tar.xz"),
    ],
)
def test_user_mistakes_exit_2_with_a_message(args, needle, hml_sample, tmp_path, capsys):
    args = [a.format(sample=hml_sample / "012314_new_joints.npy") for a in args]
    args = [str(tmp_path / a) if a.startswith(("out", "x")) else a for a in args]
    assert main(args) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("mosa: error:") and needle in err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_bad_bvh_through_the_real_console_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 0\n  CHANNELS 6 Xposition\n")
    proc = run_cli("convert", str(bad), str(tmp_path / "bad.npy"))
    assert proc.returncode == EXIT_USER_ERROR
    assert "bad.bvh" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad.npy").exists()


def test_help_lists_the_subcommands():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("data", "render", "convert", "train", "eval"):
        assert command in proc.stdout


def test_only_the_named_command_module_is_imported():
    code = (
        "import sys; from mosa.cli import build_parser; "
        "build_parser(['convert', 'a.bvh', 'b.npy']); print('mosa.pipeline' in sys.modules); "
        "p = build_parser(['train', 'gen', '--help']); print('mosa.cli.train_gen' in sys.modules, "
        "'mosa.cli.train_vae' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "True", "False"]
    # a lazily registered command still gets its full flags when named
    args = build_parser(["generate", "hi", "-o", "x.bvh"]).parse_args(
        ["generate", "hi", "-o", "x.bvh", "--seed", "3"]
    )
    assert args.seed == 3 and callable(args.func)
