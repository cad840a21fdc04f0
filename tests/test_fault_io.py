"""Simulated OS faults while writing (issue 16): a full disk, a read-only folder, names too
long, a parent that is a file, an output that is a folder, SIGTERM mid-render and what
``kill -9`` leaves. Every one is a ``WriteError`` (a ``MosaError`` and an ``OSError``) that
names the file asked for, never a temporary, and no partial file is left under any name.

A full disk is the kernel's own: the temporary is made a link to ``/dev/full``, where every
write fails with ENOSPC (ffmpeg's too).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mosa.io as mio
from mosa.errors import MosaError
from mosa.io import WriteError, atomic_path, check_writable, remove_leftovers
from mosa.motion.io import convert, write_motion

FULL = Path("/dev/full")


@pytest.fixture(scope="module")
def joints(hml_sample):
    return np.load(hml_sample / "012314_new_joints.npy")[:24].astype(np.float32)


@pytest.fixture
def full_disk(monkeypatch):
    """Every temporary ``atomic_path`` makes is a link to /dev/full: writes fail with ENOSPC."""
    if not FULL.exists():
        pytest.skip("no /dev/full on this system")
    made = []

    def make_temp(path: Path) -> Path:
        prefix, suffix = mio._temp_prefix(path)
        tmp = path.parent / f"{prefix}{os.getpid()}-fulldisk{suffix}"
        tmp.symlink_to(FULL)
        made.append(tmp)
        return tmp

    monkeypatch.setattr(mio, "_make_temp", make_temp)
    return made


def _assert_clean(folder: Path, *allowed: str) -> None:
    left = sorted(p.name for p in folder.iterdir() if p.name not in allowed)
    assert not left, f"left behind: {left}"


@pytest.mark.parametrize("name", ["out.bvh", "out.npy", "out.gif", "out.mp4"])
def test_a_full_disk_names_the_output_and_leaves_nothing(name, joints, tmp_path, full_disk):
    out = tmp_path / name
    with pytest.raises(WriteError) as e:
        write_motion(out, joints[: 6 if name.endswith((".gif", ".mp4")) else None])
    err = e.value
    assert isinstance(err, MosaError) and isinstance(err, OSError)
    assert err.errno == errno.ENOSPC and err.filename == str(out)
    assert f"'{out}'" in err.message and "No space left" in err.message
    assert "disk space" in err.hint and ".tmp" not in str(err)
    assert full_disk and not out.exists()
    _assert_clean(tmp_path)


def test_a_full_disk_in_convert_features(hml_sample, tmp_path, full_disk):
    out = tmp_path / "f.npy"
    with pytest.raises(WriteError, match="No space left"):
        convert(hml_sample / "012314_new_joint_vecs.npy", out, to="features")
    _assert_clean(tmp_path)


def test_failures_of_the_writer_itself_keep_their_type(tmp_path):
    """Only errors about writing the output become WriteError; others pass unchanged."""
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "x.txt"):
        (tmp_path / "missing-input.txt").read_text()
    _assert_clean(tmp_path)
    with pytest.raises(WriteError, match="Input/output error"), atomic_path(tmp_path / "y.txt"):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    _assert_clean(tmp_path)


def test_name_too_long(joints, tmp_path):
    out = tmp_path / ("x" * 300 + ".npy")
    for call in (lambda: check_writable(out), lambda: write_motion(out, joints)):
        with pytest.raises(WriteError) as e:
            call()
        assert e.value.errno == errno.ENAMETOOLONG and "shorter" in e.value.hint
    _assert_clean(tmp_path)


def test_a_long_name_that_fits_gets_a_temporary_that_fits_too(joints, tmp_path):
    """The temporary adds ~20 characters to the name: it is cut so a 250-byte name works."""
    out = tmp_path / ("y" * 246 + ".npy")
    write_motion(out, joints)
    assert np.load(out).shape == joints.shape
    _assert_clean(tmp_path, out.name)


def test_a_parent_that_is_a_file(joints, tmp_path):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "sub" / "out.bvh"
    with pytest.raises(WriteError) as e:
        write_motion(out, joints)
    assert e.value.errno == errno.ENOTDIR and f"'{out}'" in e.value.message
    _assert_clean(tmp_path, "file")


def test_an_output_that_is_a_folder(joints, tmp_path):
    (tmp_path / "isdir.bvh").mkdir()
    with pytest.raises(WriteError) as e:
        write_motion(tmp_path / "isdir.bvh", joints)
    assert "Is a directory" in e.value.message and "isdir.bvh'" in e.value.message
    assert ".tmp" not in str(e.value) and "folder" in e.value.hint
    _assert_clean(tmp_path, "isdir.bvh")
    assert not list((tmp_path / "isdir.bvh").iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder(joints, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(WriteError) as e:
            write_motion(ro / "out.npy", joints)
        assert e.value.errno in (errno.EACCES, errno.EROFS)
        assert not list(ro.iterdir())
    finally:
        ro.chmod(0o755)


def test_a_read_only_file_system(joints, tmp_path, monkeypatch):
    """EROFS from the temporary's creation (as on a read-only mount, also for root)."""

    def read_only(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path.parent / ".x.tmp"))

    monkeypatch.setattr(mio, "_make_temp", read_only)
    with pytest.raises(WriteError) as e:
        write_motion(tmp_path / "out.bvh", joints)
    assert e.value.errno == errno.EROFS and "read-only" in e.value.hint
    assert "out.bvh'" in e.value.message and ".x.tmp" not in str(e.value)


def test_kill_9_leftovers_are_removed_by_the_next_write(joints, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    stale = [
        tmp_path / f".out.{dead}-abcd1234.tmp.npy",  # a gone process's
        tmp_path / f".other.v2.{dead}-abcd_234.tmp.bvh",  # another file's
        tmp_path / f".ckpt.{dead}-abcd1234.tmp",  # a checkpoint folder's (atomic_dir)
        tmp_path / ".out.zz9_ab12.tmp.npy",  # mosa 0.1's naming, an hour old
    ]
    live = tmp_path / f".out.{os.getppid()}-abcd1234.tmp.npy"  # a running writer's
    young = tmp_path / ".out.zz9_ab13.tmp.npy"  # mosa 0.1's, maybe still being written
    mine = [tmp_path / ".out.npy.txt", tmp_path / "notes.tmp"]  # not mosa's temporaries
    for p in (*stale, live, young, *mine):
        p.mkdir() if p.suffix == ".tmp" and "ckpt" in p.name else p.write_bytes(b"partial")
    old = time.time() - 2 * 3600
    os.utime(stale[-1], (old, old))
    write_motion(tmp_path / "out.npy", joints)
    assert not any(p.exists() for p in stale)
    assert live.exists() and young.exists() and all(p.exists() for p in mine)
    assert remove_leftovers(tmp_path) == []


_RENDER = """
import signal, sys, numpy as np
from mosa.motion import render
real = render._write_mp4
def slow(path, frames, size, fps):
    def paced():
        for i, f in enumerate(frames):
            if i == 3:
                print("writing", flush=True)
            yield f
    real(path, paced(), size, fps)
render._write_mp4 = slow
from mosa.cli import main
sys.exit(main(["render", sys.argv[1], "-o", sys.argv[2]]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_during_a_render_leaves_no_temporary(sig, hml_sample, tmp_path):
    src = tmp_path / "in.npy"
    np.save(src, np.tile(np.load(hml_sample / "012314_new_joints.npy"), (20, 1, 1)))
    out = tmp_path / "out" / "o.mp4"
    proc = subprocess.Popen([sys.executable, "-c", _RENDER, str(src), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "writing"
    assert any(p.name.startswith(".o.") for p in out.parent.iterdir())  # mid-write
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert f"stopped by {signal.Signals(sig).name}" in err and "Traceback" not in err
    assert not list(out.parent.iterdir())
