"""Shared fixtures: where ../shared/data lives, tiny deterministic settings."""

from __future__ import annotations

import os
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


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    yield
