"""Foot skating as the MDM line of work measures it (GMD / OmniControl's
``calculate_skating_ratio``, used with MDM's HumanML3D joints).

Per motion ``(T, 22, 3)`` metres, Y up, 20 fps, the two toe joints (10, 11):

- horizontal (XZ) speed between consecutive frames, ``|p[t+1] - p[t]|_xz * fps``, and its
  moving average over ``window`` (5) frames (``scipy.ndimage.uniform_filter1d``, zero-padded
  at the ends: ``mode="constant"``);
- a toe is on the floor for step t when its height is below ``height`` (5 cm) at both t and
  t + 1;
- a step skates when a toe on the floor moves faster than ``speed`` (0.5 m/s) both in that
  step and on the moving average;
- ``ratio``: the share of steps where either toe skates; ``skate_speed``: the mean of the
  averaged speed over the on-floor toe steps (m/s: how fast feet on the floor slide, the
  number this module reports first).

Heights are measured from the motion's floor (y = 0: mosa's joints stand on it; pass
``floor="lowest"`` to measure from the lowest toe point of the clip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import uniform_filter1d

TOES = (10, 11)
HEIGHT = 0.05
SPEED = 0.5
WINDOW = 5


@dataclass
class Skating:
    skate_speed: float  # m/s, mean averaged horizontal speed of toes on the floor
    ratio: float  # share of steps where a toe on the floor skates
    floor_steps: int  # toe steps on the floor (both toes counted)


def foot_skating(
    joints: np.ndarray,
    fps: float = 20.0,
    *,
    height: float = HEIGHT,
    speed: float = SPEED,
    window: int = WINDOW,
    floor: str | float = 0.0,
) -> Skating:
    """MDM-style foot skating of one motion ``(T, 22, 3)``; see the module docstring."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1] < max(TOES) + 1 or len(joints) < 2:
        raise ValueError(f"expected joints (T >= 2, 22, 3), got {joints.shape}")
    feet = joints[:, list(TOES)]  # (T, 2, 3)
    base = feet[..., 1].min() if floor == "lowest" else float(floor)
    h = feet[..., 1] - base  # (T, 2)
    v = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1) * fps  # (T - 1, 2)
    v_avg = uniform_filter1d(v, size=window, axis=0, mode="constant", origin=0)
    on = (h[:-1] < height) & (h[1:] < height)
    skating = on & (v > speed) & (v_avg > speed)
    ratio = float(np.any(skating, axis=1).mean())
    n = int(on.sum())
    return Skating(float(v_avg[on].mean()) if n else 0.0, ratio, n)


def summarize(values: list[Skating]) -> dict[str, float]:
    """Mean and median of ``skate_speed`` and ``ratio`` over motions (motions whose toes never
    touch the floor count for the ratio only)."""
    speeds = [s.skate_speed for s in values if s.floor_steps]
    ratios = [s.ratio for s in values]
    return {
        "motions": len(values),
        "skate_speed_mean": float(np.mean(speeds)) if speeds else 0.0,
        "skate_speed_median": float(np.median(speeds)) if speeds else 0.0,
        "ratio_mean": float(np.mean(ratios)) if ratios else 0.0,
        "ratio_median": float(np.median(ratios)) if ratios else 0.0,
    }
