"""``mosa data build``: motion corpora -> one HumanML3D-layout dataset folder.

Sources (any number, see ``mosa.data.corpora``): the Bandai-Namco tarball or folder, the
extra-mocap tarball (CMU trials on the Daz rig, DeepMimic clips, AnimatedDrawings examples)
or its folder or any of its sub-folders, and folders of the user's own BVH files with a
``captions.csv`` / ``captions.json`` (or actions named in the file names). Tarballs are
extracted under ``out/raw/``.

Output layout (the same as HumanML3D's, so every HumanML3D tool reads it)::

    out/new_joints/NAME.npy       (T, 22, 3) float32, joints recovered from the features
    out/new_joint_vecs/NAME.npy   (T, 263) float32 features at 20 fps
    out/texts/NAME.txt            caption#word/POS ...#start#end, one caption a line
    out/actions.json              {NAME: [canonical action names]} (``mosa.data.actions``)
    out/Mean.npy, out/Std.npy     (263,) from the train split, std averaged per feature group
    out/{train,val,test,all}.txt  clip names, one a line
    out/manifest.json             counts, sources, licences, skipped files; written last
    out/raw/                      the extracted archives

Each take is loaded once. Takes longer than 9.8 s (other than Bandai-Namco's, kept whole as
before) are cut into consecutive windows of equal length, 4.9-9.8 s each, named
``NAME_w1``, ``NAME_w2``...; how their captions stay honest is in ``mosa.data.cmu``. Every
clip gets a mirrored copy ``M`` + NAME made from the joints, as HumanML3D does, with left and
right swapped in its captions. Splits are drawn per take, stratified by action: Bandai-Namco
takes by their content label as before, other takes by their rarest action, so an action
with 3 takes has one in val and one in test; the windows and mirrors of a take stay in its
split. A build whose manifest has the same fingerprint is up to date and is skipped.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tarfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

import mosa
from mosa.data import cmu
from mosa.data.captions import (
    caption_tokens,
    clip_captions,
    parse_clip_name,
    swap_left_right,
    text_line,
)
from mosa.data.corpora import (
    KIT_CITATION,
    LICENCE_IDS,
    LICENCES,
    Discovery,
    Take,
    discover,
    repeated,
)
from mosa.data.splits import (
    SPLITS,
    mirror_name,
    split_by_group,
    split_counts,
    stable_seed,
    write_splits,
)
from mosa.errors import MosaError
from mosa.io import atomic_path, atomic_write_text
from mosa.motion.skeleton import FPS

BUILD_VERSION = 2  # bump when the output of a build changes for the same settings
SOURCE_HINT = (
    "pass bandai-namco-motion.tar.xz, extra-mocap.tar.xz, a folder extracted from them, or a "
    "folder of BVH files with a captions.csv (file,caption)"
)
ACTIONS_FILE = "actions.json"
CAPTION_POLICY = (
    "takes over max_len frames are cut into consecutive equal windows; a window gets the "
    "take's captions only when the take shows one action; a window of a take listing several "
    "actions gets captions true of any part of it (the category or an umbrella such as 'a "
    "person exercises', and 'part of a take in which ...'), never the claim that it shows all "
    "of them; KIT-ML sentences go to whole takes, or to windows of one-action takes when they "
    "name no sequence or count"
)


@dataclass(frozen=True)
class BuildConfig:
    """Settings that determine the output; all of them enter the fingerprint."""

    seed: int = 0
    min_len: int = 40  # clips with fewer feature frames (at 20 fps) are skipped
    fps: float = FPS
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train, val, test within a group
    mirror: bool = True
    max_len: int = 196  # longer takes (not Bandai-Namco's) are cut into windows of <= 9.8 s


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
# Sources: tarballs (extracted under out/raw) and folders

_TEXT_SUFFIXES = (".csv", ".json", ".md", ".txt")  # caption files, DeepMimic clips, indexes


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _folder_digest(path: Path) -> tuple[str, int]:
    """Digest of a folder's motion and text files: BVH by name and size, text by content."""
    h, size = hashlib.sha256(), 0
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        suffix = p.suffix.lower()
        if suffix not in (".bvh", *_TEXT_SUFFIXES):
            continue
        stat = p.stat()
        size += stat.st_size
        mark = str(stat.st_size) if suffix == ".bvh" else _file_digest(p)
        h.update(f"{p.relative_to(path).as_posix()}\0{mark}\n".encode())
    return h.hexdigest(), size


def describe_source(source: str | os.PathLike) -> dict:
    """Kind, size and a content digest of a source (the tar's bytes, or the folder's files)."""
    path = Path(source).expanduser()
    if not path.exists():
        raise MosaError(f"dataset source {path} does not exist", SOURCE_HINT)
    if path.is_dir():
        digest, size = _folder_digest(path)
        return {"path": str(path.resolve()), "kind": "folder", "bytes": size, "digest": digest}
    if not tarfile.is_tarfile(path):
        raise MosaError(f"dataset source {path} is neither a folder nor a tar archive", SOURCE_HINT)
    return {
        "path": str(path.resolve()),
        "kind": "tar",
        "bytes": path.stat().st_size,
        "digest": _file_digest(path),
    }


def _as_sources(sources: str | os.PathLike | Sequence[str | os.PathLike]) -> list:
    if isinstance(sources, (str, os.PathLike)):
        return [sources]
    sources = list(sources)
    if not sources:
        raise MosaError("no dataset source given", SOURCE_HINT)
    return sources


def _marker(raw: Path, source: dict) -> Path:
    return raw / f".extracted-{Path(source['path']).name}.json"


def _top_entries(tar: tarfile.TarFile) -> list[str]:
    names = {PurePosixPath(m.name).parts[0] for m in tar.getmembers() if m.name.strip("./")}
    return sorted(n for n in names if n not in (".", ".."))


def _claimed(raw: Path, source: dict) -> set[str]:
    """Top-level entries of raw/ extracted from other archives."""
    out: set[str] = set()
    for marker in raw.glob(".extracted-*.json"):
        if marker != _marker(raw, source):
            try:
                out.update(json.loads(marker.read_text()).get("entries", []))
            except (OSError, json.JSONDecodeError):
                continue
    return out


def extract_source(source: dict, raw: Path) -> list[Path]:
    """Extract a tar source into ``raw`` (once: a marker holds its digest and entries) and
    return the top-level folders it holds there. Several archives share ``raw``."""
    marker = _marker(raw, source)
    if marker.exists():
        try:
            done = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            done = {}
        entries = [raw / e for e in done.get("entries", [])]
        if done.get("digest") == source["digest"] and all(e.exists() for e in entries):
            return entries
    raw.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(source["path"], "r:*") as tar:
            entries = _top_entries(tar)
            clash = sorted(set(entries) & _claimed(raw, source))
            if clash:
                raise MosaError(
                    f"{source['path']} extracts {clash} into {raw}, as another source does",
                    "pass each archive once; rename one of them if they differ",
                )
            for entry in entries:
                target = raw / entry
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
            tar.extractall(raw, filter="data")  # "data" refuses absolute paths and links out
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise MosaError(f"cannot extract {source['path']}: {exc}", SOURCE_HINT) from exc
    (raw / ".extracted").unlink(missing_ok=True)  # the marker of mosa 0.x builds
    atomic_write_text(marker, json.dumps({"digest": source["digest"], "entries": entries}))
    return [raw / e for e in entries]


def _source_roots(info: dict, out: Path, progress: bool) -> list[Path]:
    if info["kind"] != "tar":
        return [Path(info["path"])]
    if progress:
        print(f"extracting {info['path']} into {out / 'raw'}")
    return extract_source(info, out / "raw")


def _discover_source(info: dict, out: Path, seed: int, rates, progress: bool) -> Discovery:
    """All takes of one source; a source with no motion at all is an error."""
    found = Discovery()
    for root in _source_roots(info, out, progress):
        if root.is_dir():
            found.extend(discover(root, seed=seed, rates=rates))
    if not found.takes and not found.skipped:
        raise MosaError(
            f"no motion found in {info['path']}: no Bandai-Namco BVH files "
            "(dataset-N_content_style_take.bvh), no CMU, DeepMimic or AnimatedDrawings folder "
            "and no other BVH files",
            SOURCE_HINT,
        )
    return found


def _read_rates(path: str | os.PathLike | None) -> tuple[dict[str, float], dict | None]:
    """True CMU frame rates from ``CMU_data.csv`` and a description of the table."""
    if path is None:
        return {}, None
    path = Path(path).expanduser()
    if not path.is_file():
        raise MosaError(f"CMU frame-rate table {path} does not exist", "pass CMU_data.csv")
    _, rates = cmu.read_csv_table(path)
    if not rates:
        hint = "pass CMU_data.csv (columns Subject, Trial #, framerate)"
        raise MosaError(f"{path} lists no frame rates", hint)
    return rates, {"path": str(path.resolve()), "digest": _file_digest(path), "trials": len(rates)}


# ----------------------------------------------------------------------------------------------
# Per-take work (runs in worker processes: top-level, picklable arguments and results)


@dataclass
class ClipResult:
    """One written clip (a whole take or a window of it) and its mirror."""

    name: str
    frames: int = 0  # feature frames of the clip (and of its mirror)
    stats: RunningStats | None = None
    mirror_stats: RunningStats | None = None


@dataclass
class TakeResult:
    name: str
    clips: list[ClipResult] = field(default_factory=list)
    frames: int = 0  # feature frames of the whole take
    skipped: bool = False  # too short
    error: str | None = None
    info: dict = field(default_factory=dict)  # source rate used, frames dropped, cycles


@dataclass(frozen=True)
class TakeTask:
    take: Take
    out: str
    min_len: int
    fps: float
    mirror: bool
    max_len: int


def windows(n_features: int, max_len: int) -> list[tuple[int, int]]:
    """Joint-frame ranges [start, stop) of the clips of a take with ``n_features`` feature
    frames: the whole take when it fits in ``max_len``, else ceil(n / max_len) consecutive
    windows of equal length (one feature frame fewer than joint frames; neighbours share a
    joint frame). A leftover of fewer frames than windows is dropped at the end."""
    if n_features <= max_len:
        return [(0, n_features + 1)]
    n = -(-n_features // max_len)
    size = n_features // n
    return [(k * size, (k + 1) * size + 1) for k in range(n)]


def clip_names(take: str, n: int) -> list[str]:
    """Names of the ``n`` clips of a take: the take's own when whole, else ``take_wK``."""
    return [take] if n == 1 else [f"{take}_w{k + 1}" for k in range(n)]


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def _write_motion(out: Path, name: str, features: np.ndarray) -> RunningStats:
    from mosa.motion.features import recover_joints

    _save_npy(out / "new_joint_vecs" / f"{name}.npy", features.astype(np.float32))
    _save_npy(out / "new_joints" / f"{name}.npy", recover_joints(features).astype(np.float32))
    return RunningStats.of(features)


def load_take(take: Take, fps: float, min_seconds: float) -> tuple[np.ndarray, dict]:
    """Joints (T, 22, 3) of a take at ``fps`` and what was done to read it."""
    if take.reader == "deepmimic":
        from mosa.motion.deepmimic import load_deepmimic

        m = load_deepmimic(take.path, take.character, fps, min_seconds=min_seconds)
        info = {"source_fps": m.source_fps, "cycles": m.cycles, "padded_s": m.padded_seconds}
        return m.joints, info
    from mosa.motion.bvh import read_bvh
    from mosa.motion.retarget import retarget_bvh, snap_fps

    bvh = read_bvh(take.path)
    start = cmu.rest_pose_frames(bvh) if take.rest_pose else 0
    header = snap_fps(bvh.fps)
    true = cmu.true_fps(header, take.table_fps)
    m = retarget_bvh(bvh, fps=fps, source_fps=true, start_frame=start)
    info = {"source_fps": m.source_fps, "header_fps": header, "dropped_frames": start}
    info["rig"] = m.rig
    return m.joints, info


def process_take(task: TakeTask) -> TakeResult:
    """Load one take, write its clips' features and joints (and mirrors'). Never raises."""
    take = task.take
    try:
        from mosa.motion.features import extract_features, mirror_joints

        min_seconds = (task.min_len + 1.5) / task.fps
        joints, info = load_take(take, task.fps, min_seconds)
        joints = np.asarray(joints, dtype=np.float32)
        result = TakeResult(take.name, frames=max(len(joints) - 1, 0), info=info)
        if len(joints) < task.min_len + 1:  # features have one frame fewer than joints
            result.skipped = True
            return result
        spans = windows(len(joints) - 1, task.max_len if take.window else len(joints))
        for name, (a, b) in zip(clip_names(take.name, len(spans)), spans, strict=True):
            features = extract_features(joints[a:b])
            if not np.isfinite(features).all():
                return TakeResult(take.name, error="non-finite features", info=info)
            clip = ClipResult(name, frames=len(features))
            clip.stats = _write_motion(Path(task.out), name, features)
            if task.mirror:
                mirrored = extract_features(mirror_joints(joints[a:b]))
                clip.mirror_stats = _write_motion(Path(task.out), mirror_name(name), mirrored)
            result.clips.append(clip)
        return result
    except Exception as exc:  # one bad file must not kill a 10-minute build: report it
        return TakeResult(take.name, error=f"{type(exc).__name__}: {exc}")


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _run_takes(tasks: Sequence[TakeTask], workers: int, progress: bool) -> Iterator[TakeResult]:
    bar = tqdm(total=len(tasks), unit="take", desc="build", disable=not progress)
    try:
        if workers <= 1:
            for task in tasks:
                yield process_take(task)
                bar.update()
            return
        # spawn: safe with torch and threads, and the same on every platform
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for result in pool.imap_unordered(process_take, tasks, chunksize=2):
                yield result
                bar.update()
    finally:
        bar.close()


# ----------------------------------------------------------------------------------------------
# The build


def fingerprint(config: BuildConfig, sources: Sequence[dict], rates: dict | None = None) -> str:
    """Digest of everything that determines the output."""
    payload = {
        "build_version": BUILD_VERSION,
        "mosa_version": mosa.__version__,
        "config": asdict(config),
        "source": [s["digest"] for s in sources],
        "rates": rates["digest"] if rates else None,
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
    needed = ["Mean.npy", "Std.npy", "train.txt", "val.txt", "test.txt", "all.txt", ACTIONS_FILE]
    if not all((out / f).exists() for f in needed):
        return None
    n_clips = manifest.get("counts", {}).get("clips")
    if n_clips != sum(1 for _ in (out / "new_joint_vecs").glob("*.npy")):
        return None  # files were deleted since: rebuild
    return manifest


def _write_texts(out: Path, captions: dict[str, list[str]]) -> int:
    """Write every clip's captions, POS-tagged (each distinct caption once). Returns the count."""
    names = sorted(captions)
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


@dataclass
class Clip:
    """A written clip: its take, frames, captions, actions and statistics."""

    name: str
    take: Take
    frames: int
    captions: list[str]
    actions: list[str]
    stats: RunningStats | None
    mirrored: bool = False


def _clip_captions(take: Take, clip: str, n_clips: int, info: dict, seed: int) -> list[str]:
    if take.corpus == "bandai-namco":
        return clip_captions(clip, seed)
    captions = list(take.captions if n_clips == 1 else take.window_captions)
    if take.event:
        captions = repeated(captions, int(info.get("cycles", 1)))
    return [" ".join(c.replace("#", " ").split()) for c in captions]


def _clips_of(take: Take, result: TakeResult, seed: int, mirror: bool) -> list[Clip]:
    """The clips of a take (and their mirrors) with captions and actions."""
    n = len(result.clips)
    actions = list(take.actions if n == 1 else take.window_actions)
    out = []
    for c in result.clips:
        captions = _clip_captions(take, c.name, n, result.info, seed)
        out.append(Clip(c.name, take, c.frames, captions, actions, c.stats))
        if mirror:
            if take.corpus == "bandai-namco":
                swapped = clip_captions(mirror_name(c.name), seed)
            else:
                swapped = [swap_left_right(t) for t in captions]
            out.append(Clip(mirror_name(c.name), take, c.frames, swapped, actions,
                            c.mirror_stats, mirrored=True))  # fmt: skip
    return out


def stratified_split(
    actions: dict[str, Sequence[str]], seed: int = 0, ratios=(0.8, 0.1, 0.1)
) -> dict[str, str]:
    """Split takes ``{name: actions}`` so that every action is stratified, rarest first.

    For each action, from the rarest up, the takes showing it should split as
    ``split_counts`` says (3 takes: one each to train, val and test); takes an earlier
    (rarer) action placed count towards that, the others are drawn in an order seeded by
    (seed, action), test first. Takes with no action are split by ``split_by_group``.
    """
    counts = Counter(a for acts in actions.values() for a in set(acts))
    assign: dict[str, str] = {}
    for action in sorted(counts, key=lambda a: (counts[a], a)):
        members = sorted(n for n, acts in actions.items() if action in acts)
        want = dict(zip(SPLITS, split_counts(len(members), ratios), strict=True))
        have = Counter(assign[n] for n in members if n in assign)
        rng = np.random.default_rng(stable_seed("split", seed, action))
        free = [n for n in (members[i] for i in rng.permutation(len(members))) if n not in assign]
        for split in ("test", "val"):
            for _ in range(max(want[split] - have[split], 0)):
                if free:
                    assign[free.pop(0)] = split
        assign |= {n: "train" for n in free}
    rest = [n for n in actions if n not in assign]
    return assign | split_by_group(rest, lambda n: "none", seed=seed, ratios=ratios)


def _assign(clips: Sequence[Clip], seed: int, ratios) -> dict[str, str]:
    """Split of each clip: its take's. Bandai-Namco takes are stratified by content label as
    before (the same split as a Bandai-only build); the others by ``stratified_split``."""
    takes = {c.take.name: c.take for c in clips}
    bandai = [n for n, t in takes.items() if t.corpus == "bandai-namco"]
    by_take = split_by_group(bandai, lambda n: parse_clip_name(n).group, seed=seed, ratios=ratios)
    others = {n: t.actions for n, t in takes.items() if t.corpus != "bandai-namco"}
    by_take |= stratified_split(others, seed, ratios)
    return {c.name: by_take[c.take.name] for c in clips}


def _counts(clips: Iterable[Clip], fps: float) -> dict:
    clips = list(clips)
    n_frames = sum(c.frames for c in clips)
    return {"clips": len(clips), "frames": n_frames, "seconds": round(n_frames / fps, 2)}


def _grouped(clips: Sequence[Clip], key, fps: float) -> dict:
    by: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        for k in key(c):
            by[k].append(c)
    return {k: _counts(v, fps) for k, v in sorted(by.items())}


def _bandai_label(c: Clip):
    return parse_clip_name(c.name) if c.take.corpus == "bandai-namco" else None


def _summary(clips: Sequence[Clip], assign: dict[str, str], fps: float) -> dict:
    total = _counts(clips, fps)
    total["hours"] = round(total["seconds"] / 3600, 3)
    total["mirrored"] = sum(c.mirrored for c in clips)
    bandai = [c for c in clips if c.take.corpus == "bandai-namco"]
    return {
        **total,
        "splits": {
            s: _counts([c for c in clips if assign[c.name] == s], fps)
            for s in ("train", "val", "test")
        },  # fmt: skip
        "sources": _grouped(clips, lambda c: [c.take.corpus], fps),
        "actions": _grouped(clips, lambda c: c.actions or ["(none)"], fps),
        "contents": _grouped(bandai, lambda c: [_bandai_label(c).content], fps),
        "styles": _grouped(bandai, lambda c: [_bandai_label(c).style], fps),
    }


@dataclass
class _Collected:
    """What the workers returned, sorted into kept clips and reported problems."""

    clips: list[Clip] = field(default_factory=list)
    skipped_short: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    rates: dict[str, dict] = field(default_factory=dict)  # takes read at a corrected rate


def _collect(tasks: Sequence[TakeTask], workers: int, progress: bool, seed: int) -> _Collected:
    takes = {t.take.name: t.take for t in tasks}
    got = _Collected()
    for r in sorted(_run_takes(tasks, workers, progress), key=lambda r: r.name):
        take = takes[r.name]
        if r.error:
            got.failed[r.name] = f"{take.path}: {r.error}"
        elif r.skipped:
            got.skipped_short.append(r.name)
        else:
            got.clips += _clips_of(take, r, seed, tasks[0].mirror)
        if r.info.get("header_fps") and r.info["source_fps"] != r.info["header_fps"]:
            got.rates[r.name] = {"header": r.info["header_fps"], "used": r.info["source_fps"]}
    return got


def _unique_takes(found: Discovery) -> list[Take]:
    """Takes with distinct names; a later file whose clip name is taken is skipped."""
    seen: dict[str, Take] = {}
    for take in found.takes:
        if take.name in seen:
            found.skipped[take.path] = (
                f"a clip named {take.name} comes already from {seen[take.name].path}"
            )
        else:
            seen[take.name] = take
    return list(seen.values())


def _tasks(takes: Sequence[Take], out: Path, config: BuildConfig) -> list[TakeTask]:
    # biggest files first, so the pool does not wait on one long take at the end
    order = sorted(takes, key=lambda t: -Path(t.path).stat().st_size)
    return [
        TakeTask(t, str(out), config.min_len, config.fps, config.mirror, config.max_len)
        for t in order
    ]


def _report(found: Discovery, got: _Collected) -> None:
    for path, reason in sorted(found.skipped.items()):
        print(f"warning: skipped {path}: {reason}")
    for name, error in got.failed.items():
        print(f"warning: {name} failed: {error}")


def _write_outputs(out: Path, got: _Collected, config: BuildConfig) -> dict:
    """Texts, actions.json, Mean/Std, splits; returns the split of every clip."""
    assign = _assign(got.clips, config.seed, config.ratios)
    n_captions = _write_texts(out, {c.name: c.captions for c in got.clips})
    table = {c.name: c.actions for c in sorted(got.clips, key=lambda c: c.name)}
    atomic_write_text(out / ACTIONS_FILE, json.dumps(table, indent=0) + "\n")
    mean, std = mean_std(c.stats for c in got.clips if assign[c.name] == "train")
    _save_npy(out / "Mean.npy", mean)
    _save_npy(out / "Std.npy", std)
    write_splits(out, assign)
    _remove_stale(out, set(assign))
    return {"assign": assign, "captions": n_captions, "dim": int(mean.shape[0])}


def _manifest(ctx: dict, found: Discovery, got: _Collected, written: dict) -> dict:
    config, infos = ctx["config"], ctx["infos"]
    clips = got.clips
    corpora = sorted({c.take.corpus for c in clips})
    takes = {c.take.name for c in clips}
    return {
        "format": "humanml3d",
        "fingerprint": ctx["fp"],
        "build_version": BUILD_VERSION,
        "mosa_version": mosa.__version__,
        "config": asdict(config),
        "seed": config.seed,
        "source": infos[0] if len(infos) == 1 else {"kind": "several", "sources": len(infos)},
        "sources": infos,
        "corpora": found.corpora,
        "fps": config.fps,
        "feature_dim": written["dim"],
        "counts": {
            "takes_found": len(found.takes),
            "takes_kept": len(takes),
            "skipped_short": len(got.skipped_short),
            "failed": len(got.failed),
            "skipped_files": len(found.skipped),
            "unlabelled_bvh": len(found.unlabelled),
            "captions": written["captions"],
            **_summary(clips, written["assign"], config.fps),
        },
        "licences": {k: LICENCES[k] for k in corpora},
        "citations": [KIT_CITATION] if any("kit-ml" in c.take.captions_from for c in clips) else [],
        "caption_policy": CAPTION_POLICY,
        "frame_rates": {"table": ctx["rates"], "corrected": got.rates},
        "skipped_short": got.skipped_short,
        "failed": got.failed,
        "skipped": dict(sorted(found.skipped.items())),
        "kit_rejected": found.kit_rejected,
        "clips": {
            c.name: {
                "corpus": c.take.corpus,
                "licence": LICENCE_IDS[c.take.corpus],
                "take": c.take.name,
                "captions_from": c.take.captions_from,
                "take_actions": list(c.take.actions),  # a window's own are in actions.json
            }
            for c in sorted(clips, key=lambda c: c.name)
        },
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "build_seconds": round(time.time() - ctx["start"], 1),
    }


def _build(ctx: dict, progress: bool, workers: int) -> dict:
    out, config = ctx["out"], ctx["config"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # from here on the folder is not finished
    found = Discovery()
    for info in ctx["infos"]:
        found.extend(_discover_source(info, out, config.seed, ctx["rate_table"], progress))
    tasks = _tasks(_unique_takes(found), out, config)
    got = _collect(tasks, workers, progress, config.seed) if tasks else _Collected()
    _report(found, got)
    if not got.clips:
        raise MosaError(
            f"no usable clip in {', '.join(i['path'] for i in ctx['infos'])} "
            f"({len(got.skipped_short)} too short, {len(got.failed)} failed, "
            f"{len(found.skipped)} files skipped)",
            "check that the BVH files load with `mosa.motion.retarget.load_bvh`",
        )
    written = _write_outputs(out, got, config)
    manifest = _manifest(ctx, found, got, written)
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write_text(out / "manifest.json", text)
    return json.loads(text)  # the same plain-JSON object a later no-op run returns


def build_dataset(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
    force: bool = False,
    min_len: int = 40,
    cmu_rates: str | os.PathLike | None = None,
) -> dict:
    """Build one HumanML3D-layout dataset from one or more corpora; return the manifest.

    ``sources``: a path or a sequence of paths: tarballs (extracted into ``out/raw``) or
    folders (see ``mosa.data.corpora``). ``cmu_rates``: ``CMU_data.csv``, whose frame rates
    correct CMU trials captured at 60 fps under a 120 fps header (a ``CMU_data.csv`` inside a
    CMU folder is read too). A second call with the same sources and settings returns the
    existing manifest without doing anything, unless ``force``. A failed build leaves no
    manifest, and removes ``out`` when it created it.
    """
    start = time.time()
    out = Path(out).expanduser()
    config = BuildConfig(seed=seed, min_len=min_len)
    infos = [describe_source(s) for s in _as_sources(sources)]
    rate_table, rates = _read_rates(cmu_rates)
    fp = fingerprint(config, infos, rates)
    if not force and (manifest := _up_to_date(out, fp)) is not None:
        print(f"{out} is up to date (fingerprint {fp}); rebuild with --force (force=True)")
        return manifest
    ctx = {"out": out, "config": config, "infos": infos, "fp": fp, "start": start}
    ctx |= {"rates": rates, "rate_table": rate_table}
    created = not out.exists()
    try:
        return _build(ctx, progress, workers)
    except BaseException:
        if created and out.exists():
            shutil.rmtree(out)  # a failed build leaves no half-made folder behind
        raise
