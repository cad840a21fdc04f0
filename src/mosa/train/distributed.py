"""Seeding, device choice and the process group for ``mosa train``: torchrun's env vars
(``WORLD_SIZE``/``RANK``/``LOCAL_RANK``) join a group, gloo on CPU and NCCL on GPU."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from mosa.errors import MosaError


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    seed = int(seed) % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def step_seed(seed: int, rank: int, step: int) -> int:
    """A seed that depends only on (seed, rank, step), well mixed."""
    return int(np.random.SeedSequence([int(seed), int(rank), int(step)]).generate_state(1)[0])


def choose_device(name: str | None = None) -> torch.device:
    """``name`` if given (checked), else cuda when available, else cpu."""
    if not name or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MosaError(f"unknown device {name!r}", "use cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MosaError(f"device {name} requested but CUDA is not available", "use --device cpu")
    return device


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str | None = None) -> tuple[DistEnv, torch.device]:
    """Join the process group torchrun describes (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``).

    Without those variables this is a single process. NCCL on GPU (one device per local rank),
    gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv(), choose_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistEnv(rank, world, local), device


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
