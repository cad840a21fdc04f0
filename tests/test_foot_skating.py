"""MDM-style foot skating against a direct reference computation on known inputs."""

import numpy as np
import pytest

from mosa.eval.foot_skating import foot_skating, summarize


def _reference(joints, fps=20.0, height=0.05, speed=0.5, window=5):
    """GMD/OmniControl's calculate_skating_ratio, written out loop by loop."""
    feet = joints[:, [10, 11]]
    T = len(feet)
    v = np.zeros((T - 1, 2))
    for t in range(T - 1):
        for f in range(2):
            d = feet[t + 1, f] - feet[t, f]
            v[t, f] = np.hypot(d[0], d[2]) * fps
    avg = np.zeros_like(v)
    half = window // 2
    for t in range(T - 1):  # zero padding outside, centred window
        for f in range(2):
            avg[t, f] = sum(v[s, f] for s in range(t - half, t + half + 1) if 0 <= s < T - 1)
            avg[t, f] /= window
    on = (feet[:-1, :, 1] < height) & (feet[1:, :, 1] < height)
    skate = on & (v > speed) & (avg > speed)
    return avg[on].mean(), skate.any(axis=1).mean()


def test_matches_the_reference_on_random_motion():
    rng = np.random.default_rng(0)
    joints = rng.normal(size=(60, 22, 3)) * 0.05
    joints[..., 1] = np.abs(joints[..., 1])  # heights around the 5 cm threshold
    s = foot_skating(joints)
    speed, ratio = _reference(joints)
    assert s.skate_speed == pytest.approx(speed)
    assert s.ratio == pytest.approx(ratio)


def test_known_cases():
    T = 40
    still = np.zeros((T, 22, 3))
    assert foot_skating(still).skate_speed == 0.0 and foot_skating(still).ratio == 0.0
    sliding = still.copy()
    sliding[:, [10, 11], 2] = np.arange(T)[:, None] * 0.05  # 1 m/s at 20 fps, on the floor
    s = foot_skating(sliding)
    assert s.ratio == 1.0
    # the moving average is 1 m/s inside and tapers at the zero-padded ends
    assert s.skate_speed == pytest.approx((T - 1 - 2 * 0.6) / (T - 1), rel=1e-6)
    flying = sliding.copy()
    flying[:, [10, 11], 1] = 0.2  # the same slide in the air is no skating
    assert foot_skating(flying).floor_steps == 0 and foot_skating(flying).ratio == 0.0
    lifted = sliding.copy()
    lifted[..., 1] += 1.0
    assert foot_skating(lifted).ratio == 0.0
    assert foot_skating(lifted, floor="lowest").ratio == 1.0
    summary = summarize([foot_skating(still), s])
    assert summary["motions"] == 2 and summary["skate_speed_median"] > 0
