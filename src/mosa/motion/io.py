"""Read and write motions by file extension (``mosa convert``, ``generate -o``, ``edit``).

In memory a motion is a ``(T, 22, 3)`` float32 array of joint positions in metres, Y up,
at 20 fps, in the joint order of ``mosa.motion.skeleton``. On disk:

- ``.bvh``: any rig ``mosa.motion.retarget.load_bvh`` can map onto the 22 joints (read);
  written with ``mosa.motion.bvh.save_bvh`` on an SMPL-named skeleton, or on a character's
  own rig (``save_generated(..., rig=)``, ``motion.rig_out``);
- ``.npy``: ``(T, 22, 3)`` joints, or ``(T, 263)`` HumanML3D feature vectors (not
  normalised), told apart by shape; always 20 fps (read and write);
- ``.mp4`` / ``.gif``: a stick-figure animation (write only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mosa import limits
from mosa.errors import MosaError
from mosa.io import atomic_path
from mosa.motion.skeleton import FEATURE_DIM, FPS, NUM_JOINTS

READ_EXTENSIONS = (".bvh", ".npy")
WRITE_EXTENSIONS = (".bvh", ".npy", ".mp4", ".gif")
KINDS = ("joints", "features")

_NPY_SHAPES = f"(T, {NUM_JOINTS}, 3) joint positions or (T, {FEATURE_DIM}) HumanML3D features"


@dataclass
class MotionFile:
    """A motion read from disk.

    joints: ``(T, 22, 3)`` float32, metres, Y up, at ``fps`` (20 for everything mosa reads).
    source_kind: ``"bvh"``, ``"joints"`` or ``"features"``: what the file held.
    features: the ``(T, 263)`` feature rows when the file held features (``joints`` is
        recovered from them, one frame per row), else None.
    """

    joints: np.ndarray
    fps: float
    source_kind: str
    features: np.ndarray | None = None
    path: Path | None = None

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])


# ----------------------------------------------------------------------------- reading


def read_motion(path: str | Path, *, mapping=None) -> MotionFile:
    """Read a ``.bvh`` or ``.npy`` motion file (see the module docstring for the layouts).

    mapping: a joint mapping for BVH files whose skeleton is not recognised automatically;
        passed through to ``mosa.motion.retarget.load_bvh``.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in READ_EXTENSIONS:
        raise MosaError(
            f"cannot read motion from '{path}': unknown extension '{path.suffix}'",
            f"mosa reads {', '.join(READ_EXTENSIONS)} motion files",
        )
    if not path.is_file():
        if path.is_dir():
            raise MosaError(f"'{path}' is a folder, not a motion file", "pass a .bvh or .npy file")
        if path.exists():
            raise MosaError(f"'{path}' is not a regular file", "pass a .bvh or .npy file")
        raise MosaError(f"motion file not found: '{path}'", "check the path")
    limits.check_file_size(path)
    if ext == ".bvh":
        return _read_bvh(path, mapping)
    if mapping is not None:
        raise MosaError(
            f"a joint mapping was given for '{path.name}', but mappings apply to BVH files only",
            "drop the mapping for .npy input",
        )
    return _read_npy(path)


def _read_bvh(path: Path, mapping) -> MotionFile:
    # Imported here: BVH parsing and retargeting are not needed for .npy files.
    from mosa.motion.retarget import load_bvh

    motion = load_bvh(path, mapping=mapping)
    joints = _as_joints(motion.joints, f"'{path}'")
    check_frames(len(joints), f"'{path}'")
    return MotionFile(joints, float(getattr(motion, "fps", FPS)), "bvh", None, path)


def _read_npy(path: Path) -> MotionFile:
    arr = _load_array(path)
    if arr.ndim == 3 and arr.shape[1:] == (NUM_JOINTS, 3) and arr.shape[0] >= 1:
        joints = _as_joints(arr, f"'{path}'")
        return MotionFile(joints, FPS, "joints", None, path)
    if arr.ndim == 2 and arr.shape[1] == FEATURE_DIM and arr.shape[0] >= 1:
        features = arr.astype(np.float32)
        _check_finite(features, f"'{path}'")
        from mosa.motion.features import recover_joints

        joints = _as_joints(_to_numpy(recover_joints(features)), f"joints recovered from '{path}'")
        return MotionFile(joints, FPS, "features", features, path)
    raise MosaError(
        f"'{path}' holds an array of shape {tuple(arr.shape)}, which is not a motion",
        f"a motion .npy holds {_NPY_SHAPES} (float, 20 fps)",
    )


def check_frames(frames: int, what: str) -> None:
    """``MosaError`` for a motion longer than ``MOSA_MAX_FRAMES``."""
    limits.check("MOSA_MAX_FRAMES", frames, f"{what} has {frames:,} frames")


def _check_header(path: Path) -> None:
    """Check a .npy's header before loading it: a header may claim any shape, and numpy
    allocates what it claims (a 100-byte file asking for terabytes)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                return  # np.load gives the error
            offset = f.tell()
    except (ValueError, OSError, EOFError, SyntaxError, TypeError):
        return  # not a plain .npy (an .npz, a broken header): np.load names the problem
    if dtype.hasobject or dtype.kind not in "fiu":
        raise MosaError(
            f"'{path}' holds {dtype} data, expected numbers",
            f"a motion .npy holds {_NPY_SHAPES} as floats",
        )
    if shape:
        check_frames(int(shape[0]), f"'{path}'")
    need = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    have = path.stat().st_size - offset
    if need > have:
        raise MosaError(
            f"'{path}' is truncated: its header asks for {need:,} bytes of data, the file "
            f"holds {max(have, 0):,}",
            "is the file complete? save it again with numpy.save",
        )


def _load_array(path: Path) -> np.ndarray:
    """``np.load`` without pickle; every failure becomes a MosaError naming the file."""
    _check_header(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:  # pickled object arrays, bad headers
        raise MosaError(
            f"'{path}' is not a plain numeric .npy array ({e})",
            f"save the motion with numpy.save from a float array of shape {_NPY_SHAPES}",
        ) from e
    except (OSError, EOFError, SyntaxError, TypeError) as e:
        raise MosaError(f"cannot read '{path}' as .npy: {e}", "is the file complete?") from e
    if not isinstance(arr, np.ndarray):  # an .npz archive under a .npy name
        arr.close()
        raise MosaError(
            f"'{path}' is an .npz archive, not a single .npy array",
            f"save one array of shape {_NPY_SHAPES} with numpy.save",
        )
    if arr.dtype.kind not in "fiu":
        raise MosaError(
            f"'{path}' holds {arr.dtype} data, expected numbers",
            f"a motion .npy holds {_NPY_SHAPES} as floats",
        )
    return arr


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_finite(arr: np.ndarray, what: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr.reshape(len(arr), -1)))[0, 0]
        raise MosaError(
            f"{what} contains NaN or infinite values (first at frame {bad})",
            "fix or regenerate the motion",
        )


def _as_joints(joints, what: str) -> np.ndarray:
    """Validate a ``(T, 22, 3)`` joint array and return it as float32."""
    arr = np.asarray(_to_numpy(joints), dtype=np.float32)
    if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3) or arr.shape[0] < 1:
        raise MosaError(
            f"{what}: joints of shape {tuple(arr.shape)}, expected (T, {NUM_JOINTS}, 3)",
            "pass joint positions in metres, Y up, in the 22-joint HumanML3D order",
        )
    _check_finite(arr, what)
    return arr


# ----------------------------------------------------------------------------- writing


def write_motion(
    path: str | Path,
    joints: np.ndarray,
    *,
    fps: float = FPS,
    kind: str = "joints",
    caption: str | None = None,
) -> Path:
    """Write ``(T, 22, 3)`` joints to ``path``; the format follows the extension.

    kind: for ``.npy`` only: ``"joints"`` writes ``(T, 22, 3)`` float32, ``"features"``
        writes ``(T - 1, 263)`` HumanML3D features. caption: title of ``.mp4`` / ``.gif``.
    The file is written atomically. Returns ``path``.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITE_EXTENSIONS:
        raise MosaError(
            f"cannot write motion to '{path}': unknown extension '{path.suffix}'",
            f"mosa writes {', '.join(WRITE_EXTENSIONS)} motion files",
        )
    if kind not in KINDS:
        raise MosaError(f"unknown motion kind '{kind}'", f"use one of {', '.join(KINDS)}")
    if kind == "features" and ext != ".npy":
        raise MosaError(
            f"features can only be written to .npy, not '{path.name}'",
            "give an output path ending in .npy, or write joints",
        )
    joints = _as_joints(joints, "motion to write")
    if ext == ".npy":
        return _write_npy(path, joints, fps, kind)
    if ext == ".bvh":
        from mosa.motion.bvh import save_bvh

        save_bvh(path, joints, fps)  # atomic itself
        return path
    from mosa.motion.render import render_motions

    return render_motions([joints], path, fps=fps, caption=caption)


def _write_npy(path: Path, joints: np.ndarray, fps: float, kind: str) -> Path:
    if abs(fps - FPS) > 1e-6:
        raise MosaError(
            f".npy motions are {FPS:g} fps, got a motion at {fps:g} fps for '{path.name}'",
            "resample the motion to 20 fps first, or write .bvh, which stores its frame rate",
        )
    if kind == "features":
        if len(joints) < 2:
            raise MosaError(
                f"features need at least 2 frames, the motion has {len(joints)}",
                "write joints instead",
            )
        from mosa.motion.features import extract_features

        array = _to_numpy(extract_features(joints)).astype(np.float32)
    else:
        array = joints
    _save_npy(path, array)
    return path


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)


def convert(src: str | Path, dst: str | Path, *, to: str = "joints", mapping=None) -> MotionFile:
    """Read ``src`` and write it to ``dst`` (format by extension); returns what was read.

    to: ``"joints"`` or ``"features"``, the layout of a ``.npy`` output. Features read from
    a feature file and written as features are copied unchanged (no lossy round trip).
    """
    motion = read_motion(src, mapping=mapping)
    dst = Path(dst)
    if to == "features" and motion.features is not None and dst.suffix.lower() == ".npy":
        _save_npy(dst, motion.features)
    else:
        write_motion(dst, motion.joints, fps=motion.fps, kind=to, caption=Path(src).name)
    return motion


def output_paths(output: Path, count: int) -> list[Path]:
    """``out.bvh`` for one motion, ``out_000.bvh``, ``out_001.bvh``, ... for several."""
    if count == 1:
        return [output]
    width = max(3, len(str(count - 1)))
    return [output.with_name(f"{output.stem}_{i:0{width}d}{output.suffix}") for i in range(count)]


# ------------------------------------------------------------------------ generated motion


def prepare_generated(
    joints: np.ndarray, features: np.ndarray | None = None, *, foot_lock: bool = True
) -> np.ndarray:
    """Generated joints ``(T, 22, 3)`` as they are exported: on one fitted skeleton (constant
    bone lengths, ``motion.fit``) and, with ``foot_lock``, with the feet that the generator's
    contact features (``features (T, 263)``; guessed from the joints' speed when None) put on
    the floor locked (``motion.footlock``). Returns float32."""
    from mosa.motion.fit import fit_motion
    from mosa.motion.footlock import contacts_from_features, contacts_from_joints
    from mosa.motion.footlock import foot_lock as lock

    out = fit_motion(_as_joints(joints, "motion to write")).joints
    if foot_lock and len(out) > 1:
        if features is not None:
            contacts = contacts_from_features(_to_numpy(features), len(out))
        else:
            contacts = contacts_from_joints(out)
        out = lock(out, contacts)
    return out.astype(np.float32)


def save_generated(
    path: str | Path,
    joints: np.ndarray,
    *,
    fps: float = FPS,
    features: np.ndarray | None = None,
    rig=None,
    mapping=None,
    foot_lock: bool = True,
    caption: str | None = None,
) -> Path:
    """Write a generated motion (``prepare_generated``) by extension; ``.npy`` and ``.bvh`` hold
    the same positions. ``rig``: a character's BVH (path or ``BVHData``) to write the motion on
    (``motion.rig_out.retarget_to_rig``; ``path`` must end in .bvh; ``mapping`` maps the rig's
    joints when they are not recognised); None or ``"smpl"``: mosa's 22-joint skeleton."""
    path = Path(path)
    if isinstance(rig, str) and rig.lower() == "smpl":
        rig = None
    if rig is not None:
        from mosa.motion.rig_out import load_rig

        rig = load_rig(rig)  # MosaError naming the fix for a non-BVH rig
        if path.suffix.lower() != ".bvh":
            raise MosaError(
                f"a motion on a character's rig is written as BVH, not '{path.name}'",
                "give an output path ending in .bvh, or drop --rig",
            )
    prepared = prepare_generated(joints, features, foot_lock=foot_lock)
    if rig is None:
        return write_motion(path, prepared, fps=fps, caption=caption)
    from mosa.motion.bvh import write_bvh
    from mosa.motion.rig_out import retarget_to_rig

    write_bvh(path, retarget_to_rig(prepared, rig, fps, mapping=mapping))
    return path
