"""Shared fixtures: where ../shared/data lives, tiny deterministic settings."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("MOSA_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


SHARED_DATA = _shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder holding bandai-namco/, humanml3d-sample/, cmu/, cmu-iclone/."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; set MOSA_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture(scope="session")
def hml_sample(shared_data: Path) -> Path:
    return shared_data / "humanml3d-sample"


# tiny models run fastest on one thread; set here too so module/session fixtures, which run
# before the per-test fixture below, use it as well
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield


BANDAI_TAKES = (
    "dataset-1_walk-left_angry_001",
    "dataset-1_walk-left_happy_001",
    "dataset-1_walk-left_sad_001",
    "dataset-1_bow_normal_001",
    "dataset-1_run_normal_001",  # 24 frames at 30 fps: too short, skipped
)


@pytest.fixture(scope="session")
def tiny_tar(shared_data, tmp_path_factory) -> Path:
    """A tar.xz of 5 real Bandai-Namco takes (set 1 comes first in the archive: fast to find)."""
    folder = tmp_path_factory.mktemp("bn")
    wanted = {f"{t}.bvh" for t in BANDAI_TAKES}
    found = []
    with tarfile.open(shared_data / "bandai-namco" / "bandai-namco-motion.tar.xz") as tar:
        for member in tar:
            if Path(member.name).name in wanted:
                (folder / Path(member.name).name).write_bytes(tar.extractfile(member).read())
                found.append(member.name)
                if len(found) == len(wanted):
                    break
    assert len(found) == len(wanted)
    out = folder / "tiny.tar.xz"
    with tarfile.open(out, "w:xz") as tar:
        for name in sorted(wanted):
            tar.add(
                folder / name, arcname=f"dataset/Bandai-Namco-Research-Motiondataset-1/data/{name}"
            )
    return out


# Hypothesis profiles for the fuzz tests (tests/test_fuzz_*.py): "ci" (the default) runs a
# bounded number of examples so the suite stays fast; for a long search run
#     HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_fuzz_*.py
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the fuzz tests skip themselves without Hypothesis
    pass
else:
    _common = {  # no .hypothesis/ folder in the repository; slow shared CI machines
        "deadline": None,
        "database": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }
    settings.register_profile("ci", max_examples=30, **_common)
    settings.register_profile("thorough", max_examples=1000, **_common)
    settings.register_profile("dev", max_examples=10, **_common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
