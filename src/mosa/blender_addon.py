"""The Blender add-on's installable zip (``mosa blender-addon``).

The add-on is the package ``mosa_blender``, shipped beside ``mosa`` (plain Python that runs in
Blender's own interpreter: no torch, no numpy). This module only finds its files and zips them
as Blender's "Install..." button expects: one folder ``mosa_blender/`` holding the package. It
never imports the add-on (that needs ``bpy``).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import zipfile
from pathlib import Path

from mosa.errors import MosaError
from mosa.io import atomic_path, check_writable

ADDON = "mosa_blender"
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)  # fixed: the same add-on gives the same zip


def addon_dir() -> Path:
    """The folder of the installed ``mosa_blender`` package."""
    spec = importlib.util.find_spec(ADDON)
    if spec is None or not spec.submodule_search_locations:
        raise MosaError(
            f"the add-on package '{ADDON}' is not installed beside mosa",
            "reinstall mosa (pip install -e . from the repository, or the wheel)",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def addon_files(folder: Path | None = None) -> list[Path]:
    """The add-on's source files (``*.py``, sorted), relative to its folder."""
    folder = addon_dir() if folder is None else folder
    return sorted(
        p.relative_to(folder) for p in folder.rglob("*.py") if "__pycache__" not in p.parts
    )


def bl_info(folder: Path | None = None) -> dict:
    """The add-on's ``bl_info`` (read as Blender does, without running the module)."""
    folder = addon_dir() if folder is None else folder
    tree = ast.parse((folder / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "bl_info" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise MosaError(f"{folder / '__init__.py'} has no bl_info", "reinstall mosa")


def write_addon_zip(path: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the installable zip to ``path`` (atomically); ``MosaError`` if ``path`` exists
    and ``force`` is false. Returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise MosaError(
            f"{path}: the add-on is a .zip file", f"give a name ending in .zip, e.g. {ADDON}.zip"
        )
    if (path.exists() or path.is_symlink()) and not force:
        raise MosaError(f"{path} already exists", "pass --force to replace it, or another name")
    check_writable(path)
    folder = addon_dir()
    files = addon_files(folder)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            info = zipfile.ZipInfo(f"{ADDON}/{rel.as_posix()}", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, (folder / rel).read_bytes())
    return path
