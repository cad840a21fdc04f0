"""Motion representation: the 22-joint body, HumanML3D 263-d features, BVH for any rig.

from mosa.motion import extract_features, recover_joints, load_bvh, save_bvh
"""

from mosa.motion.bvh import read_bvh, save_bvh
from mosa.motion.features import extract_features, mirror_joints, recover_joints
from mosa.motion.retarget import ImportedMotion, load_bvh

__all__ = [
    "ImportedMotion",
    "extract_features",
    "load_bvh",
    "mirror_joints",
    "read_bvh",
    "recover_joints",
    "save_bvh",
]
