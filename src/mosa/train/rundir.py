"""A training run's folder: one writer at a time, no run overwritten by mistake, no leftovers.

``open_run(out, resume=..., force=...)``, called by every trainer before it writes:

- refuses a folder that already holds a run (``last/``, ``best/``, ``metrics.csv``, ...)
  unless ``resume`` (continue it) or ``force`` (delete the run's own files, start afresh);
- locks the folder (``out/.mosa.lock``, ``flock``: released by the kernel however the process
  ends, ``kill -9`` included), so a second run into the same folder stops with a clear error
  instead of both writing ``last/``;
- then, holding the lock, removes the temporaries a killed run left (``.last.<random>.tmp/``,
  ``.metrics.<pid>-<random>.tmp.csv``, ...): only mosa's own temporary names, only the run's
  files, and never those of a process that is still alive.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from mosa.errors import MosaError
from mosa.io import ORPHAN_SECONDS, age_seconds, pid_alive, sweep_leftovers
from mosa.train.state import CORRUPT_LAST, LAST_COPIES, remove_path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, leftovers of pid-less names age out
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".mosa.lock"
# what ``Trainer`` writes into a run folder (config.json is rewritten at every start)
TRAINER_FILES = (*LAST_COPIES, CORRUPT_LAST, "best", "best.old", "metrics.csv")
# temporaries of mosa.io (atomic_path: ".<stem>.<pid>-<8>.tmp<suffix>", atomic_dir:
# ".<name>.<8>.tmp"); older versions wrote no pid
_RUN_STEMS = {"last", "best", "metrics", "config", "log", "test_metrics"}
_CHECKPOINT_STEMS = {"pipeline", "config"}  # written into a checkpoint folder after the swap


def existing_run(out: str | os.PathLike, files: Sequence[str] = TRAINER_FILES) -> list[str]:
    """The names of ``files`` present in ``out`` (folders with a trailing ``/``)."""
    out = Path(out)
    found = []
    for name in files:
        p = out / name
        if p.exists() or p.is_symlink():
            found.append(f"{name}/" if p.is_dir() else name)
    return found


class RunFolder:
    """What ``open_run`` did: ``notes`` to show the user; ``close()`` releases the lock."""

    def __init__(self, out: Path, lock_fd: int | None, notes: list[str]):
        self.out, self._fd, self.notes = out, lock_fd, notes

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_run(
    out: str | os.PathLike,
    *,
    resume: bool,
    force: bool,
    is_main: bool = True,
    files: Sequence[str] = TRAINER_FILES,
    can_resume: bool = True,
) -> RunFolder:
    """Check and claim ``out`` for a training run (see the module docstring).

    ``files``: what the trainer writes there (what makes a folder hold a run, and what
    ``force`` deletes); ``can_resume``: whether the trainer has a ``--resume`` (the message
    offers it). Processes other than the main one only check.
    """
    out = Path(out)
    if resume and force:
        raise MosaError(
            "--resume and --force contradict each other",
            "--resume continues the run in the folder, --force starts a fresh one: pass one",
        )
    if out.exists() and not out.is_dir():
        raise MosaError(f"--out {out} is a file", "pass a folder for the run")
    found = existing_run(out, files)
    if found and not resume and not force:
        options = "pass --resume to continue it, --force to start a fresh run there" if (
            can_resume) else "pass --force to start a fresh run there"  # fmt: skip
        raise MosaError(
            f"a training run already exists in {out} ({', '.join(found)})",
            f"{options} (deleting it), or choose a new --out",
        )
    if not is_main:
        return RunFolder(out, None, [])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MosaError(
            f"cannot create --out {out}: {exc.strerror}", "choose a folder you can write to"
        ) from exc
    fd = _lock(out)
    try:
        notes = []
        removed = remove_temp_leftovers(out, locked=fd is not None)
        if removed:
            notes.append(
                f"removed {len(removed)} temporary file(s) an interrupted run left in {out}"
            )
        if force and found:
            for name in files:
                remove_path(out / name)
            notes.append(f"--force: deleted the previous run in {out} ({', '.join(found)})")
    except BaseException:
        RunFolder(out, fd, []).close()
        raise
    return RunFolder(out, fd, notes)


def _lock(out: Path) -> int | None:
    """An fd holding an exclusive lock on ``out/.mosa.lock`` (None where flock is missing)."""
    if fcntl is None:
        return None
    path = out / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise MosaError(
            f"cannot write to --out {out}: {exc.strerror}", "choose a folder you can write to"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        except OSError:
            holder = ""
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise MosaError(
            f"another training run is writing to {out}{who}",
            "wait for it to finish (or stop it), or choose another --out",
        ) from None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _stale(entry: os.DirEntry, pid: int | None, locked: bool) -> bool:
    if pid is not None:
        # our own pid: ours from before a fork, or reused: not a writer now
        return pid == os.getpid() or not pid_alive(pid)
    if locked:
        return True  # no other mosa run can be writing here: we hold the folder's lock
    try:
        return age_seconds(entry) > ORPHAN_SECONDS
    except OSError:
        return False


def _sweep(folder: Path, stems: set[str] | None, locked: bool) -> list[Path]:
    return sweep_leftovers(folder, lambda entry, pid: _stale(entry, pid, locked), stems)


def remove_temp_leftovers(out: str | os.PathLike, locked: bool = True) -> list[Path]:
    """Delete the temporaries killed writers left in the run folder ``out``: in ``out`` (of
    ``last/``, ``best/``, ``metrics.csv``, ...), in its checkpoint folders and in
    ``out/cache``. ``locked``: the caller holds ``out``'s lock. Returns what was removed."""
    out = Path(out)
    removed = _sweep(out, _RUN_STEMS, locked)
    for name in (*LAST_COPIES, "best", "best.old"):
        if (out / name).is_dir():
            removed += _sweep(out / name, _CHECKPOINT_STEMS, locked)
    if (out / "cache").is_dir():
        removed += _sweep(out / "cache", None, locked)
    return removed
