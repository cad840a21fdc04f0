"""How well any rig maps onto the 22 joints: renamed copies and nameless real rigs.

For a Bandai-Namco clip and the CMU 31-joint file, every variant of ``tests/rig_variants.py``
(Rigify, Unreal, Unity, Mixamo with and without ``mixamorig:``, Biped, German, Japanese,
``joint_N``, shuffled child order, twist and finger bones) is imported with ``load_bvh`` and
compared with the original's import; then every real rig in ``../shared`` is imported with
its names stripped to ``joint_N`` (the structure alone) and compared with its import by
preset or names. Prints a markdown table: how each was mapped and the joint error (max and
mean over joints and frames, in mm).

    python benchmarks/rig_mapping.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from mosa.errors import MosaError
from mosa.motion.retarget import load_bvh

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from rig_variants import VARIANTS, write_nameless, write_variant  # noqa: E402

BANDAI_TAKE = "dataset-1_walk-left_angry_001.bvh"
EXTRA = {
    "cmu-daz/01/01_01.bvh": "Daz 43-joint CMU conversion",
    "animated-drawings/cmu1_jumping_jacks.bvh": "AnimatedDrawings cmu1 (CMU ASF names)",
    "animated-drawings/fair1_wave_hello.bvh": "AnimatedDrawings fair1 (Z-up)",
    "animated-drawings/rokoko_jesse_dance.bvh": "Rokoko suit, 59 joints",
}


def _extract(archive: Path, wanted: dict[str, Path], prefix: str = "") -> None:
    with tarfile.open(archive, "r|xz") as tar:
        for member in tar:
            rel = member.name.removeprefix(prefix)
            for key, out in wanted.items():
                if rel.endswith(key) and not out.exists():
                    out.write_bytes(tar.extractfile(member).read())
            if all(p.exists() for p in wanted.values()):
                return
    missing = [k for k, p in wanted.items() if not p.exists()]
    raise MosaError(f"{archive}: not found in the archive: {missing}", "check --shared")


def _row(name: str, path: Path, reference: np.ndarray) -> str:
    try:
        motion = load_bvh(path)
    except MosaError as e:
        return f"| {name} | error: {e.message[:80]} | | |"
    d = np.linalg.norm(motion.joints.astype(np.float64) - reference, axis=-1) * 1000
    return f"| {name} | {motion.rig} | {d.max():.3f} | {d.mean():.3f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bandai = folder / BANDAI_TAKE
        _extract(args.shared / "bandai-namco" / "bandai-namco-motion.tar.xz", {BANDAI_TAKE: bandai})
        extra = {k: folder / k.replace("/", "_") for k in EXTRA}
        _extract(args.shared / "extra-mocap" / "extra-mocap.tar.xz", extra, "extra-mocap/")
        sources = {"Bandai-Namco": bandai, "CMU 31-joint": args.shared / "cmu" / "01_01.bvh"}
        print("| copy | mapped by | max error (mm) | mean error (mm) |")
        print("|---|---|---|---|")
        for label, src in sources.items():
            reference = load_bvh(src).joints.astype(np.float64)
            for variant in VARIANTS:
                path = write_variant(src, folder, variant)
                print(_row(f"{label}, {variant}", path, reference))
        real = {**sources, "Character Creator 100-joint": args.shared / "cmu-iclone" / "002_01.bvh"}
        real |= {label: extra[k] for k, label in EXTRA.items()}
        for label, src in real.items():
            reference = load_bvh(src).joints.astype(np.float64)
            path = write_nameless(src, folder / f"nameless_{src.name}")
            print(_row(f"{label}, names stripped to joint_N", path, reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
