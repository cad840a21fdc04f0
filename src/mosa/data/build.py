"""``mosa data build``: the Bandai-Namco motion corpus -> a HumanML3D-layout dataset folder.

Output layout (the same as HumanML3D's, so every HumanML3D tool reads it)::

    out/new_joints/NAME.npy       (T, 22, 3) float32, joints recovered from the features
    out/new_joint_vecs/NAME.npy   (T, 263) float32 features at 20 fps
    out/texts/NAME.txt            caption#word/POS ...#start#end, one caption a line
    out/Mean.npy, out/Std.npy     (263,) from the train split, std averaged per feature group
    out/{train,val,test,all}.txt  clip names, one a line
    out/manifest.json             counts, settings and the fingerprint; written last
    out/raw/                      the extracted archive (when the source is a .tar.xz)

Each take is loaded once; its mirrored copy ``M`` + NAME is made from the joints, as HumanML3D
does. A build whose manifest has the same fingerprint is up to date and is skipped.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tarfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

import mosa
from mosa.data.captions import caption_tokens, clip_captions, parse_clip_name, text_line
from mosa.data.splits import mirror_name, split_by_group, with_mirrors, write_splits
from mosa.errors import MosaError
from mosa.io import atomic_path, atomic_write_text
from mosa.motion.skeleton import FPS

BUILD_VERSION = 1  # bump when the output of a build changes for the same settings
SOURCE_HINT = "pass bandai-namco-motion.tar.xz or the folder extracted from it"


@dataclass(frozen=True)
class BuildConfig:
    """Settings that determine the output; all of them enter the fingerprint."""

    seed: int = 0
    min_len: int = 40  # clips with fewer feature frames (at 20 fps) are skipped
    fps: float = FPS
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test within a content
    mirror: bool = True


# ----------------------------------------------------------------------------------------------
# Mean / std with HumanML3D's per-group weighting


def feature_groups(dim: int) -> list[slice]:
    """The 7 feature groups of a HumanML3D-style vector of size ``dim`` = 12 J - 1.

    root angular velocity (1), root linear velocity (2), root height (1), ric (3 (J-1)),
    rotations (6 (J-1)), local velocities (3 J), foot contacts (4). 263 -> J = 22, 251 -> J = 21.
    """
    if (dim + 1) % 12:
        raise MosaError(
            f"feature size {dim} is not a HumanML3D layout (12 * joints - 1)",
            "use 263-d (22 joints) or 251-d (21 joints, KIT-ML) features",
        )
    j = (dim + 1) // 12
    sizes = [1, 2, 1, 3 * (j - 1), 6 * (j - 1), 3 * j, 4]
    bounds = np.cumsum([0, *sizes])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def group_std(std: np.ndarray) -> np.ndarray:
    """Replace each feature's std by the mean std of its group (HumanML3D's cal_mean_variance).

    Features of one group then share one scale, so normalising keeps their relative sizes
    (e.g. a joint that barely moves is not blown up to unit variance). (D,) -> (D,).
    """
    out = np.array(std, dtype=np.float64, copy=True)
    for part in feature_groups(out.shape[-1]):
        out[part] = out[part].mean()
    return out


@dataclass
class RunningStats:
    """Count, mean and sum of squared deviations, mergeable (Chan et al.) in float64."""

    n: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray) -> RunningStats:
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(0)
        return cls(len(x), mean, ((x - mean) ** 2).sum(0))

    def merge(self, other: RunningStats) -> RunningStats:
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        return RunningStats(n, mean, m2)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.n)


def mean_std(arrays: Iterable[np.ndarray | RunningStats]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and group-weighted std over all frames of ``arrays`` [(T_i, D)] -> (D,), (D,) float32.

    Equal to stacking every frame, ``x.mean(0)`` and ``group_std(x.std(0))``, without holding all
    frames in memory at once.
    """
    total: RunningStats | None = None
    for item in arrays:
        stats = item if isinstance(item, RunningStats) else RunningStats.of(item)
        total = stats if total is None else total.merge(stats)
    if total is None or total.n == 0:
        raise MosaError("no motion frames to compute Mean/Std from", "check the train split")
    std = group_std(total.std)
    return total.mean.astype(np.float32), std.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Source: a .tar.xz (extracted under out/raw) or a folder


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_clip_file(path: Path) -> bool:
    return path.suffix.lower() == ".bvh" and path.stem.startswith("dataset-")


def describe_source(source: str | os.PathLike) -> dict:
    """Kind, size and a content digest of the source (the tar's bytes, or the folder's BVH list)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise MosaError(f"dataset source {path} does not exist", SOURCE_HINT)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".bvh")
        h = hashlib.sha256()
        for p in files:
            h.update(f"{p.relative_to(path).as_posix()}\0{p.stat().st_size}\n".encode())
        size = sum(p.stat().st_size for p in files)
        digest = h.hexdigest()
        return {"path": str(path.resolve()), "kind": "folder", "bytes": size, "digest": digest}
    if not tarfile.is_tarfile(path):
        raise MosaError(f"dataset source {path} is neither a folder nor a tar archive", SOURCE_HINT)
    return {
        "path": str(path.resolve()),
        "kind": "tar",
        "bytes": path.stat().st_size,
        "digest": _file_digest(path),
    }


def extract_source(source: dict, raw: Path) -> Path:
    """Extract a tar source into ``raw`` (once: a marker holds the digest) and return ``raw``."""
    marker = raw / ".extracted"
    if marker.exists() and marker.read_text().strip() == source["digest"]:
        return raw
    if raw.exists():
        shutil.rmtree(raw)
    raw.mkdir(parents=True)
    try:
        with tarfile.open(source["path"], "r:*") as tar:
            tar.extractall(raw, filter="data")  # "data" refuses absolute paths and links out
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise MosaError(f"cannot extract {source['path']}: {exc}", SOURCE_HINT) from exc
    atomic_write_text(marker, source["digest"] + "\n")
    return raw


def find_clips(root: Path, origin: str) -> tuple[dict[str, Path], list[str]]:
    """Bandai-Namco BVH files under ``root``: ({name: path}, [unlabelled BVH names])."""
    clips: dict[str, Path] = {}
    unlabelled: list[str] = []
    for path in sorted(root.rglob("*.bvh")):
        if not _is_clip_file(path):
            unlabelled.append(path.name)
            continue
        try:
            parse_clip_name(path.stem)
        except MosaError:
            unlabelled.append(path.name)
            continue
        if path.stem in clips:
            raise MosaError(
                f"two clips named {path.stem} in {origin}: {clips[path.stem]} and {path}",
                "keep one copy of each BVH file in the source",
            )
        clips[path.stem] = path
    if not clips:
        raise MosaError(
            f"no Bandai-Namco BVH files (dataset-N_content_style_take.bvh) found in {origin}",
            SOURCE_HINT,
        )
    return clips, unlabelled


# ----------------------------------------------------------------------------------------------
# Per-clip work (runs in worker processes: top-level, picklable arguments and results)


@dataclass
class ClipResult:
    name: str
    frames: int = 0  # feature frames of the clip (and of its mirror)
    skipped: bool = False
    error: str | None = None
    stats: RunningStats | None = None
    mirror_stats: RunningStats | None = None


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def _write_motion(out: Path, name: str, features: np.ndarray) -> RunningStats:
    from mosa.motion.features import recover_joints

    _save_npy(out / "new_joint_vecs" / f"{name}.npy", features.astype(np.float32))
    _save_npy(out / "new_joints" / f"{name}.npy", recover_joints(features).astype(np.float32))
    return RunningStats.of(features)


def process_clip(task: tuple[str, str, str, int, float, bool]) -> ClipResult:
    """Load one BVH, write its features and joints (and its mirror's). Never raises."""
    path, name, out, min_len, fps, mirror = task
    try:
        from mosa.motion.features import extract_features, mirror_joints
        from mosa.motion.retarget import load_bvh

        joints = np.asarray(load_bvh(path, fps=fps).joints, dtype=np.float32)
        if len(joints) < min_len + 1:  # features have one frame fewer than joints
            return ClipResult(name, frames=max(len(joints) - 1, 0), skipped=True)
        features = extract_features(joints)
        if not np.isfinite(features).all():
            return ClipResult(name, error="non-finite features")
        result = ClipResult(name, frames=len(features))
        result.stats = _write_motion(Path(out), name, features)
        if mirror:
            mirrored = extract_features(mirror_joints(joints))
            result.mirror_stats = _write_motion(Path(out), mirror_name(name), mirrored)
        return result
    except Exception as exc:  # one bad file must not kill a 10-minute build: report it
        return ClipResult(name, error=f"{type(exc).__name__}: {exc}")


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _run_clips(tasks: Sequence[tuple], workers: int, progress: bool) -> Iterator[ClipResult]:
    bar = tqdm(total=len(tasks), unit="clip", desc="build", disable=not progress)
    try:
        if workers <= 1:
            for task in tasks:
                yield process_clip(task)
                bar.update()
            return
        # spawn: safe with torch and threads, and the same on every platform
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for result in pool.imap_unordered(process_clip, tasks, chunksize=4):
                yield result
                bar.update()
    finally:
        bar.close()


# ----------------------------------------------------------------------------------------------
# The build


def fingerprint(config: BuildConfig, source: dict) -> str:
    """Digest of everything that determines the output."""
    payload = {
        "build_version": BUILD_VERSION,
        "mosa_version": mosa.__version__,
        "config": asdict(config),
        "source": source["digest"],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _up_to_date(out: Path, fp: str) -> dict | None:
    manifest_path = out / "manifest.json"
    if not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if manifest.get("fingerprint") != fp:
        return None
    needed = ["Mean.npy", "Std.npy", "train.txt", "val.txt", "test.txt", "all.txt"]
    if not all((out / f).exists() for f in needed):
        return None
    n_clips = manifest.get("counts", {}).get("clips")
    if n_clips != sum(1 for _ in (out / "new_joint_vecs").glob("*.npy")):
        return None  # files were deleted since: rebuild
    return manifest


def _write_texts(out: Path, names: Sequence[str], seed: int) -> int:
    """Captions for every clip, POS-tagged (each distinct caption once). Returns the count."""
    captions = {name: clip_captions(name, seed) for name in names}
    flat = [c for name in names for c in captions[name]]
    tokens = iter(caption_tokens(flat))
    for name in names:
        lines = [text_line(c, next(tokens)) for c in captions[name]]
        atomic_write_text(out / "texts" / f"{name}.txt", "\n".join(lines) + "\n")
    return len(flat)


def _remove_stale(out: Path, keep: set[str]) -> int:
    """Delete outputs of an earlier build that are not part of this one."""
    removed = 0
    for folder, suffix in (("new_joints", ".npy"), ("new_joint_vecs", ".npy"), ("texts", ".txt")):
        for path in (out / folder).glob(f"*{suffix}"):
            if path.stem not in keep:
                path.unlink()
                removed += 1
    return removed


def _counts(names: Sequence[str], frames: dict[str, int], fps: float) -> dict:
    n_frames = sum(frames[n] for n in names)
    return {"clips": len(names), "frames": n_frames, "seconds": round(n_frames / fps, 2)}


SUMMARY_KEYS = ("split", "content", "style")


def _summary(assign: dict[str, str], frames: dict[str, int], fps: float) -> dict:
    names = sorted(assign)
    by: dict[str, dict[str, list[str]]] = {k: defaultdict(list) for k in SUMMARY_KEYS}
    for name in names:
        label = parse_clip_name(name)
        by["split"][assign[name]].append(name)
        by["content"][label.content].append(name)
        by["style"][label.style].append(name)
    total = _counts(names, frames, fps)
    total["hours"] = round(total["seconds"] / 3600, 3)
    total["mirrored"] = sum(parse_clip_name(n).mirrored for n in names)
    return {
        **total,
        "splits": {s: _counts(by["split"][s], frames, fps) for s in ("train", "val", "test")},
        "contents": {k: _counts(v, frames, fps) for k, v in sorted(by["content"].items())},
        "styles": {k: _counts(v, frames, fps) for k, v in sorted(by["style"].items())},
    }


def build_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    force: bool = False,
    min_len: int = 40,
) -> dict:
    """Build a HumanML3D-layout dataset from the Bandai-Namco corpus; return the manifest.

    ``source`` is ``bandai-namco-motion.tar.xz`` (extracted into ``out/raw``) or a folder holding
    the ``dataset-N_*.bvh`` files. A second call with the same source and settings returns the
    existing manifest without doing anything, unless ``force``.
    """
    start = time.time()
    out = Path(out).expanduser()
    config = BuildConfig(seed=seed, min_len=min_len)
    source_info = describe_source(source)
    fp = fingerprint(config, source_info)
    if not force and (manifest := _up_to_date(out, fp)) is not None:
        print(f"{out} is up to date (fingerprint {fp}); rebuild with --force (force=True)")
        return manifest

    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # from here on the folder is not finished
    if source_info["kind"] == "tar":
        if progress:
            print(f"extracting {source_info['path']} into {out / 'raw'}")
        root = extract_source(source_info, out / "raw")
    else:
        root = Path(source_info["path"])
    clips, unlabelled = find_clips(root, source_info["path"])

    tasks = [(str(p), n, str(out), min_len, config.fps, config.mirror) for n, p in clips.items()]
    results = {r.name: r for r in _run_clips(tasks, workers, progress)}
    kept = sorted(n for n, r in results.items() if r.stats is not None)
    skipped = sorted(n for n, r in results.items() if r.skipped)
    failed = {n: r.error for n, r in sorted(results.items()) if r.error}
    for name, error in failed.items():
        print(f"warning: {name} failed: {error}")
    if not kept:
        raise MosaError(
            f"no usable clip in {source_info['path']} ({len(skipped)} too short, "
            f"{len(failed)} failed)",
            "check that the BVH files load with `mosa.motion.retarget.load_bvh`",
        )

    # Splits by take, stratified over contents; mirrors follow their take.
    assign = split_by_group(
        kept, lambda n: parse_clip_name(n).group, seed=seed, ratios=config.ratios
    )
    if config.mirror:
        assign = with_mirrors(assign, kept)
    frames = {n: results[n].frames for n in kept}
    stats = {n: results[n].stats for n in kept}
    if config.mirror:
        frames.update({mirror_name(n): results[n].frames for n in kept})
        stats.update({mirror_name(n): results[n].mirror_stats for n in kept})

    names = sorted(assign)
    n_captions = _write_texts(out, names, seed)
    mean, std = mean_std(stats[n] for n in names if assign[n] == "train")
    _save_npy(out / "Mean.npy", mean)
    _save_npy(out / "Std.npy", std)
    write_splits(out, assign)
    _remove_stale(out, set(names))

    manifest = {
        "format": "humanml3d",
        "fingerprint": fp,
        "build_version": BUILD_VERSION,
        "mosa_version": mosa.__version__,
        "config": asdict(config),
        "seed": seed,
        "source": {k: source_info[k] for k in ("path", "kind", "bytes", "digest")},
        "fps": config.fps,
        "feature_dim": int(mean.shape[0]),
        "counts": {
            "takes_found": len(clips),
            "takes_kept": len(kept),
            "skipped_short": len(skipped),
            "failed": len(failed),
            "unlabelled_bvh": len(unlabelled),
            "captions": n_captions,
            **_summary(assign, frames, config.fps),
        },
        "skipped_short": skipped,
        "failed": failed,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.time() - start, 1),
    }
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write_text(out / "manifest.json", text)
    return json.loads(text)  # the same plain-JSON object a later no-op run returns
