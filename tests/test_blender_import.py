"""Exported BVH in a real Blender: generated motion, an edit on the CMU rig, and a motion
retargeted onto a Rigify-named rig are imported with Blender's own BVH importer (one headless
Blender launch for all three) and its world joint positions compared with mosa's."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tests.tiny_models import write_tiny_pipeline

import mosa
from mosa.edit.modes import edit_span
from mosa.edit.on_rig import save_edit
from mosa.motion.bvh import read_bvh
from mosa.motion.io import read_motion, save_generated
from mosa.motion.skeleton import JOINT_NAMES

SCRIPT = Path(__file__).parent / "blender_import" / "import_bvh.py"
STEP = 7  # every 7th frame: all joints, a few hundred frames per file
# CMU joint -> Rigify deform bone (".L"/".R" for Left/Right)
RIGIFY = {
    "Hips": "DEF-spine", "LowerBack": "DEF-spine.001", "Spine": "DEF-spine.002",
    "Spine1": "DEF-spine.003", "Neck": "DEF-spine.004", "Neck1": "DEF-spine.005",
    "Head": "DEF-spine.006",
}  # fmt: skip
for side, s in (("Left", "L"), ("Right", "R")):
    RIGIFY |= {
        f"{s}HipJoint": f"DEF-pelvis.{s}", f"{side}UpLeg": f"DEF-thigh.{s}",
        f"{side}Leg": f"DEF-shin.{s}", f"{side}Foot": f"DEF-foot.{s}",
        f"{side}ToeBase": f"DEF-toe.{s}", f"{side}Shoulder": f"DEF-shoulder.{s}",
        f"{side}Arm": f"DEF-upper_arm.{s}", f"{side}ForeArm": f"DEF-forearm.{s}",
        f"{side}Hand": f"DEF-hand.{s}", f"{side}FingerBase": f"DEF-palm.01.{s}",
        f"{side}HandIndex1": f"DEF-f_index.01.{s}", f"{s}Thumb": f"DEF-thumb.01.{s}",
    }  # fmt: skip
MAPPING = {"pelvis": "DEF-spine", "spine1": "DEF-spine.002", "spine2": None,
           "spine3": "DEF-spine.003", "neck": "DEF-spine.005", "head": "DEF-spine.006",
           "left_collar": None, "right_collar": None}  # fmt: skip
for side, s in (("left", "L"), ("right", "R")):
    MAPPING |= {
        f"{side}_hip": f"DEF-thigh.{s}", f"{side}_knee": f"DEF-shin.{s}",
        f"{side}_ankle": f"DEF-foot.{s}", f"{side}_foot": f"DEF-toe.{s}",
        f"{side}_shoulder": f"DEF-upper_arm.{s}", f"{side}_elbow": f"DEF-forearm.{s}",
        f"{side}_wrist": f"DEF-hand.{s}",
    }  # fmt: skip


def _blender() -> str:
    exe = shutil.which("blender")
    if exe is None:
        pytest.skip("Blender is not installed (Debian: apt-get install blender); .ci/run does")
    try:
        subprocess.run([exe, "--version"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"Blender cannot run here: {e}")
    return exe


def _rigify_rig(src: Path, dst: Path) -> Path:
    """A copy of the CMU take renamed to Rigify's deform bones (names in the HIERARCHY only)."""
    text = src.read_text()
    head, motion = text.split("MOTION", 1)
    for old, new in RIGIFY.items():
        head = re.sub(rf"\b(ROOT|JOINT) {re.escape(old)}\s*$", rf"\1 {new}", head, flags=re.M)
    lines = motion.strip().splitlines()
    dst.write_text(head + "MOTION\nFrames: 2\n" + lines[1] + "\n" + "\n".join(lines[2:4]) + "\n")
    return dst


def _frames(got: dict, path: Path) -> tuple[np.ndarray, list[int]]:
    """Which of Blender's sampled frames are frames of the file (its scene may run longer)."""
    n = read_bvh(path).num_frames
    keep = [i for i, f in enumerate(got["frames"]) if f < n]
    return np.asarray(keep), [got["frames"][i] for i in keep]


def _mosa_positions(path: Path, frames: list[int]) -> tuple[list[str], np.ndarray]:
    data = read_bvh(path)
    return data.names, data.global_positions()[frames]


def test_blender_imports_what_mosa_exports(shared_data, tmp_path):
    exe = _blender()
    pipe = mosa.load(write_tiny_pipeline(tmp_path / "tiny"), "cpu")
    [m] = pipe.generate("a person walks forward", frames=120, seed=3)
    gen_bvh = save_generated(tmp_path / "gen.bvh", m.joints, features=m.features)
    gen_npy = save_generated(tmp_path / "gen.npy", m.joints, features=m.features)
    cmu = shared_data / "cmu" / "01_01.bvh"
    src = read_motion(cmu)
    edit = save_edit(edit_span(pipe, src, "a person waves", 3, 5, seed=1), tmp_path / "edit.bvh",
                     [src])  # fmt: skip
    rig = _rigify_rig(cmu, tmp_path / "rigify_character.bvh")
    (tmp_path / "map.json").write_text(json.dumps(MAPPING))
    rigged = save_generated(tmp_path / "rigify.bvh", m.joints, features=m.features, rig=rig,
                            mapping=tmp_path / "map.json")  # fmt: skip
    out = tmp_path / "blender.json"
    files = [gen_bvh, edit, rigged]
    cmd = [exe, "-b", "--factory-startup", "--python-exit-code", "1", "--python", str(SCRIPT),
           "--", str(out), str(STEP), *map(str, files)]  # fmt: skip
    proc = subprocess.run(["nice", "-n", "5", *cmd], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    worst = {}
    for path in files:
        got = result[str(path)]
        keep, frames = _frames(got, path)
        names, want = _mosa_positions(path, frames)
        blender = np.stack([np.asarray(got["joints"][n])[keep] for n in names], axis=1)
        err = np.linalg.norm(blender - want, axis=-1)  # file units (cm)
        worst[path.name] = float(err.max())
        assert err.max() < 0.01, (path.name, names[int(err.max(axis=0).argmax())], err.max())
    # generated motion: Blender's joints against mosa's own .npy joints, every joint
    got = result[str(gen_bvh)]
    names = read_bvh(gen_bvh).names
    keep, frames = _frames(got, gen_bvh)
    blender = np.stack([np.asarray(got["joints"][n])[keep] for n in JOINT_NAMES], axis=1) / 100
    npy = np.load(gen_npy)[frames]
    per_joint = np.linalg.norm(blender - npy, axis=-1).max(axis=0) * 1000  # mm
    assert per_joint.max() < 10.0, dict(zip(JOINT_NAMES, per_joint.round(2), strict=True))
    assert set(names) == set(JOINT_NAMES)
    print(f"Blender vs mosa: {worst} (file units); generated vs .npy max "
          f"{per_joint.max():.4f} mm")  # fmt: skip
