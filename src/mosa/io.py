"""Atomic file writing: a crash or a bad input never leaves a half-written file behind.

A file is written to a temporary beside it, ``.<stem>.<pid>-<random>.tmp<suffix>``, and renamed
onto its name when complete. A failed write (a full disk, a read-only folder, a name too long)
raises ``WriteError``, a ``MosaError`` (and an ``OSError``, errno kept) that names the file the
caller asked for, never the temporary. SIGTERM and SIGHUP end the ``mosa`` command line with the
temporary removed (``mosa.cli.main``); what ``kill -9`` leaves behind is removed by the next
write of the same file, once its process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Container, Iterator
from pathlib import Path

from mosa.errors import MosaError

# errors that say the write itself failed, whichever file the OS names
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
_NAME_MAX = 255
# a leftover whose writer cannot be told (no pid in its name) is removed after this long
ORPHAN_SECONDS = 3600.0


class WriteError(MosaError, OSError):
    """Writing ``filename`` failed (``errno`` as the OS gave it); message and hint name the
    file the caller asked for."""

    def __init__(
        self, message: str, hint: str | None = None, *, errno: int | None = None, filename=None
    ):
        MosaError.__init__(self, message, hint)
        self.errno = errno
        self.strerror = os.strerror(errno) if errno else None
        self.filename = None if filename is None else str(filename)


def write_error(path: str | os.PathLike, exc: OSError) -> WriteError:
    """``exc``, met while writing ``path``, as a ``WriteError`` naming ``path`` with a hint."""
    path = Path(path)
    code = exc.errno
    reason = exc.strerror or (os.strerror(code) if code else str(exc))
    hints = {
        errno.ENOSPC: "free some disk space or write somewhere else",
        errno.EDQUOT: "free some space in your quota or write somewhere else",
        errno.EFBIG: "the file system cannot hold a file this large: write somewhere else",
        errno.EROFS: "the file system is read-only: write somewhere else",
        errno.EACCES: "you may not write there: choose a folder you can write to",
        errno.EPERM: "you may not write there: choose a folder you can write to",
        errno.ENAMETOOLONG: "use a shorter file name",
        errno.EISDIR: "that name is a folder: give a file name, e.g. out.bvh",
        errno.ENOTDIR: "a part of the path is a file, not a folder: choose another folder",
        errno.EEXIST: "a part of the path is a file, not a folder: choose another folder",
    }
    return WriteError(
        f"cannot write '{path}': {reason}",
        hints.get(code, "check the output path and the disk"),
        errno=code,
        filename=path,
    )


def name_max(folder: Path) -> int:
    """Longest file name (bytes) the file system holding ``folder`` (or its nearest existing
    ancestor) allows."""
    for p in (folder, *folder.parents):
        if p.is_dir():
            try:
                return int(os.pathconf(p, "PC_NAME_MAX"))
            except (OSError, ValueError):
                return _NAME_MAX
    return _NAME_MAX


def check_writable(path: str | os.PathLike) -> Path:
    """``WriteError`` now for an output ``path`` that cannot be written (before slow work):
    a folder by that name, a parent that is a file, a read-only or forbidden folder, a name
    too long. Creates nothing."""
    path = Path(path)

    def fail(code: int) -> WriteError:
        return write_error(path, OSError(code, os.strerror(code), str(path)))

    if len(os.fsencode(path.name)) > name_max(path.parent):
        raise fail(errno.ENAMETOOLONG)
    if path.is_dir():
        raise fail(errno.EISDIR)
    for folder in path.parents:
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                raise fail(errno.ENOTDIR)
            if not os.access(folder, os.W_OK | os.X_OK):
                code = errno.EACCES
                with contextlib.suppress(OSError):
                    if os.statvfs(folder).f_flag & os.ST_RDONLY:
                        code = errno.EROFS
                raise fail(code)
            break
    return path


def _temp_prefix(path: Path) -> tuple[str, str]:
    """``(prefix, suffix)`` of the temporaries of ``path``: ``.<stem>.<pid>-`` (the stem cut
    so the whole name fits the file system) and ``.tmp<suffix>``."""
    suffix = f".tmp{path.suffix}"
    room = name_max(path.parent) - len(os.fsencode(suffix)) - len(f"..{os.getpid()}-") - 8
    stem = path.stem
    while len(os.fsencode(stem)) > max(room, 1):
        stem = stem[:-1]
    return f".{stem}.", suffix


# mosa's temporaries: ".<stem>.<pid>-<8 random>.tmp<suffix>" (mosa <= 0.1: no "<pid>-")
_TEMP = re.compile(r"\.(?P<stem>.+)\.(?:(?P<pid>\d+)-)?[a-z0-9_]{8}\.tmp(?P<suffix>\.[^.]*)?")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running (True when it cannot be asked)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or not a pid we can ask about): leave it
    return True


def age_seconds(entry: os.DirEntry) -> float:
    """Seconds since ``entry`` was last modified."""
    return time.time() - entry.stat(follow_symlinks=False).st_mtime


Stale = Callable[[os.DirEntry, "int | None"], bool]


def sweep_leftovers(
    folder: str | os.PathLike, is_stale: Stale, stems: Container[str] | None = None
) -> list[Path]:
    """Remove the temporaries in ``folder`` (mosa's names, ``_TEMP``; with ``stems`` only
    those of these target names) for which ``is_stale(entry, pid)`` holds; ``pid`` is the
    writer's, None for mosa 0.1's names. Returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.fullmatch(entry.name)
        if not m or (stems is not None and m["stem"] not in stems):
            continue
        try:
            if is_stale(entry, None if m["pid"] is None else int(m["pid"])):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def _writer_gone(entry: os.DirEntry, pid: int | None) -> bool:
    if pid is not None:
        return pid != os.getpid() and not pid_alive(pid)
    return age_seconds(entry) > ORPHAN_SECONDS


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries in ``folder`` that killed writers (``kill -9``, a power cut)
    left: those whose process is gone, and those of mosa 0.1 (no pid in the name) older than
    an hour. Returns what was removed."""
    return sweep_leftovers(folder, _writer_gone)


_CLEANED: set[str] = set()  # folders this process has cleaned (once each: a folder may hold
# tens of thousands of files, written one by one)


def _clean_once(folder: Path) -> None:
    key = os.path.abspath(folder)
    if key not in _CLEANED:
        _CLEANED.add(key)
        remove_leftovers(folder)


def _is_write_failure(exc: OSError, tmp: Path) -> bool:
    """Whether ``exc`` from inside an atomic write is about writing the temporary (not, say,
    about reading an input while producing the output)."""
    names = {str(n) for n in (exc.filename, getattr(exc, "filename2", None)) if n is not None}
    if any(n == str(tmp) or n.startswith(f"{tmp}{os.sep}") for n in names):
        return True
    return not names and exc.errno in _WRITE_ERRNOS


def _make_temp(path: Path) -> Path:
    prefix, suffix = _temp_prefix(path)
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary keeps the target's suffix so writers that choose a format by extension
    (matplotlib, imageio, numpy) behave as for the real name. On error it is removed, and a
    failed write raises ``WriteError`` naming ``path``.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        try:
            check_writable(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            _clean_once(path.parent)
            tmp = _make_temp(path)
        except WriteError:
            raise
        except OSError as exc:
            raise write_error(path, exc) from exc
        try:
            yield tmp
        except OSError as exc:
            if _is_write_failure(exc, tmp):
                raise write_error(path, exc) from exc
            raise
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
            os.replace(tmp, path)
        except OSError as exc:
            raise write_error(path, exc) from exc
    finally:
        if tmp is not None and (tmp.exists() or tmp.is_symlink()):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` as a whole.

    Used for checkpoint folders: a kill at any moment leaves either the old folder or the new
    one, never a mix (the old one is moved aside to ``<path>.old`` for the swap and deleted).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _clean_once(path.parent)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
        )
    except OSError as exc:
        raise write_error(path, exc) from exc
    old = path.with_name(path.name + ".old")
    try:
        try:
            yield tmp
        except OSError as exc:
            if _is_write_failure(exc, tmp):
                raise write_error(path, exc) from exc
            raise
        try:
            if path.exists():
                if old.exists():
                    shutil.rmtree(old)
                os.replace(path, old)
            os.replace(tmp, path)
            if old.exists():
                shutil.rmtree(old)
        except OSError as exc:
            raise write_error(path, exc) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def resolve_checkpoint_dir(path: str | os.PathLike) -> Path:
    """Return ``path``, or its ``.old`` twin if a kill interrupted the swap in ``atomic_dir``."""
    path = Path(path)
    old = path.with_name(path.name + ".old")
    if not path.exists() and old.exists():
        return old
    return path
