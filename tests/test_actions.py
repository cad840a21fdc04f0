"""mosa.eval.actions: every rule on synthetic motions built so the answer is known, the helper
signals of mosa.eval.kinematics, and the real-clip pass-rate table on a tiny dataset folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mosa.data.actions import ACTIONS
from mosa.errors import MosaError
from mosa.eval import actions as A
from mosa.eval.kinematics import Tracks, count_runs, describe, longest_run, swings
from mosa.motion.skeleton import BONE_LENGTHS, PARENTS, TARGET_OFFSETS

FPS = 20
UPPER = [3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21]  # spine and everything above it
L_ARM, R_ARM = (18, 20), (19, 21)  # elbow, wrist
UP, DOWN, FORWARD, LEFT = (0, 1, 0), (0, -1, 0), (0, 0, 1), (1, 0, 0)


# --- a puppet: poses by forward kinematics, motions as stacks of poses ------------------------


def pose(**bones) -> np.ndarray:
    """(22, 3) pose with the feet on the floor; ``bones`` maps joint index (as ``j4``) to the
    unit direction of its bone (from the parent), the rest stays in HumanML3D's rest pose."""
    offsets = TARGET_OFFSETS.astype(np.float64).copy()
    for key, direction in bones.items():
        j = int(key[1:])
        d = np.asarray(direction, dtype=np.float64)
        offsets[j] = d / np.linalg.norm(d) * BONE_LENGTHS[j]
    p = np.zeros((22, 3))
    for j in range(1, 22):
        p[j] = p[PARENTS[j]] + offsets[j]
    return p - [0.0, p[:, 1].min(), 0.0]


REST = pose()
SEATED = pose(j4=FORWARD, j5=FORWARD, j7=DOWN, j8=DOWN)  # thighs level, shins down
ARMS_UP = pose(j18=UP, j19=UP, j20=UP, j21=UP)


def hold(p: np.ndarray, seconds: float) -> np.ndarray:
    return np.repeat(p[None], int(round(seconds * FPS)), axis=0)


def blend(a: np.ndarray, b: np.ndarray, seconds: float) -> np.ndarray:
    w = np.linspace(0, 1, int(round(seconds * FPS)))[:, None, None]
    return (1 - w) * a + w * b


def seq(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate([p if p.ndim == 3 else p[None] for p in parts])


def time(m: np.ndarray) -> np.ndarray:
    return np.arange(len(m)) / FPS


def yaw(points: np.ndarray, deg: float) -> np.ndarray:
    """Rotate about +Y around the pelvis (positive: a turn to the left, +Z towards +X)."""
    a = np.radians(deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    c = points[0] * [1, 0, 1]
    return (points - c) @ rot.T + c


def yaw_all(motion: np.ndarray, deg: float) -> np.ndarray:
    """Rotate a whole motion about +Y around its first frame's pelvis (path and body)."""
    a = np.radians(deg)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    c = motion[0, 0] * [1, 0, 1]
    return (motion - c) @ rot.T + c


def pitch(points: np.ndarray, deg: float, joints=None, about: int = 0) -> np.ndarray:
    """Lean ``joints`` (default all) forward by ``deg`` about the body's left axis at ``about``."""
    a = np.radians(deg)
    rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    out = points.copy()
    idx = list(range(22)) if joints is None else list(joints)
    out[idx] = (points[idx] - points[about]) @ rot.T + points[about]
    return out


def roll_side(points: np.ndarray, deg: float) -> np.ndarray:
    """Rotate about the forward axis (+Z) around the pelvis (a cartwheel turns so)."""
    a = np.radians(deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    return (points - points[0]) @ rot.T + points[0]


def grounded(m: np.ndarray, lift: np.ndarray | float = 0.0) -> np.ndarray:
    """Shift every frame so its lowest joint is ``lift`` above the floor."""
    return m - (m[:, :, 1].min(axis=1) - lift)[:, None, None] * [0, 1, 0]


def travel(m: np.ndarray, velocity) -> np.ndarray:
    """Add a constant velocity (m/s, x and z) and alternate 8 cm foot lifts at 1 step/s."""
    out = m + time(m)[:, None, None] * [velocity[0], 0.0, velocity[1]]
    phase = np.sin(2 * np.pi * 0.5 * time(m))
    out[:, [7, 10], 1] += 0.08 * np.maximum(phase, 0)[:, None]
    out[:, [8, 11], 1] += 0.08 * np.maximum(-phase, 0)[:, None]
    return out


def still():
    return hold(REST, 3)


def walk():
    return travel(hold(REST, 3), (0.0, 1.2))


def walk_backwards():
    return travel(hold(REST, 3), (0.0, -0.8))


def walk_sideways():
    return travel(hold(REST, 3), (0.7, 0.0))


def run():
    return travel(hold(REST, 3), (0.0, 3.0))


def turn():
    return np.stack([yaw(REST, 90 * min(t / 1.5, 1)) for t in np.arange(50) / FPS])


def spin():
    return np.stack([yaw(REST, 360 * min(t / 2, 1)) for t in np.arange(50) / FPS])


def jump():
    m = hold(REST, 3)
    t = np.arange(8)
    m[25:33, :, 1] += 0.3 * np.sin(np.pi * (t + 0.5) / 8)[:, None]
    return m


def sit_down():
    return seq(hold(REST, 1), blend(REST, SEATED, 1), hold(SEATED, 2))


def stand_up():
    return seq(hold(SEATED, 1.5), blend(SEATED, REST, 1), hold(REST, 1))


def squat():
    return seq(
        hold(REST, 0.75), blend(REST, SEATED, 0.75), blend(SEATED, REST, 0.75), hold(REST, 0.5)
    )


def lean(deg: float, seconds_held: float):
    bent = pitch(REST, deg, UPPER)
    return seq(hold(REST, 0.5), blend(REST, bent, 0.75), hold(bent, seconds_held),
               blend(bent, REST, 0.75), hold(REST, 0.5))  # fmt: skip


def bow():
    return lean(35, 0.3)


def bend_over():
    return lean(75, 1.0)


def arm_up_out(side: str) -> np.ndarray:
    """The right (or left) arm raised up and out to its side."""
    if side == "right":
        return pose(j19=(-1, 1, 0), j21=(-1, 2, 0))
    return pose(j18=(1, 1, 0), j20=(1, 2, 0))


def wave():
    up = arm_up_out("right")
    m = seq(blend(REST, up, 0.5), hold(up, 2))
    m[10:, 21, 0] += 0.1 * np.sin(2 * np.pi * 2 * time(m[10:]))
    return m


def raise_hands():
    return seq(hold(REST, 0.5), blend(REST, ARMS_UP, 0.5), hold(ARMS_UP, 1))


def kick():
    m = hold(REST, 2.5)
    lift = np.sin(np.pi * np.arange(10) / 9)[:, None]
    m[20:30, [8, 11]] += lift[..., None] * [0.0, 0.5, 0.5]
    return m


def punch():
    m = hold(REST, 2)
    chest = REST[9] + [-0.15, 0.1, 0.1]
    reach = chest + [0.0, 0.0, 0.5]
    for start in (10, 25):
        m[start : start + 3, 21] = np.linspace(chest, reach, 3)
        m[start + 3 : start + 8, 21] = np.linspace(reach, chest, 5)
    return m


def slash():
    m = hold(ARMS_UP, 2)
    top = (ARMS_UP[20] + ARMS_UP[21]) / 2  # both hands on the hilt, over the head
    low = REST[0] + [0.0, 0.1, 0.4]
    m[:, 20] = m[:, 21] = top
    m[20:24, 20] = m[20:24, 21] = np.linspace(top, low, 4)
    m[24:, 20] = m[24:, 21] = low
    m[:, 20, 0] += 0.05
    return m


def crawl():
    prone = pitch(REST, 90)  # lying face down along +Z, arms forward on the floor
    return grounded(travel(hold(prone, 3), (0.0, 0.2)))


def cartwheel():
    frames = [roll_side(ARMS_UP, 360 * t / 30) for t in range(30)]
    return grounded(seq(hold(ARMS_UP, 0.5), np.stack(frames), hold(ARMS_UP, 0.5)))


def roll():
    crouch = pitch(SEATED, 0)
    frames = [pitch(crouch, 360 * t / 30) for t in range(30)]
    return grounded(seq(hold(crouch, 0.5), np.stack(frames), hold(crouch, 0.5)))


def flip():
    frames = np.stack([pitch(REST, -360 * t / 20) for t in range(20)])
    lift = 1.0 * np.sin(np.pi * np.arange(20) / 19)
    return seq(hold(REST, 0.5), grounded(frames, lift), hold(REST, 0.5))


def climb():
    up = REST + [0.0, 0.35, 0.3]
    return seq(hold(REST, 1), blend(REST, up, 0.5), hold(up, 1.5))


def drink():
    m = hold(REST, 2)
    m[10:35, 21] = REST[15] + [-0.05, -0.08, 0.08]
    return m


def dribble():
    m = hold(REST, 3)
    m[:, 21] = REST[0] + [-0.3, 0.1, 0.3]
    m[:, 21, 1] += 0.15 * np.sin(2 * np.pi * 2 * time(m))
    return m


def soccer():
    m = hold(REST, 2)
    swing = np.linspace(-0.3, 0.6, 4)
    m[20:24, [8, 11], 2] += swing[:, None]
    m[20:24, [8, 11], 1] += 0.2
    return m


def twist():
    m = hold(REST, 3)
    for i, t in enumerate(time(m)):
        m[i] = REST
        m[i, UPPER] = yaw(REST, 40 * np.sin(2 * np.pi * 0.7 * t))[UPPER]
    return m


def reach():
    forward = pose(j19=FORWARD, j21=FORWARD)
    return seq(hold(REST, 0.5), blend(REST, forward, 0.5), hold(forward, 1))


def laugh():
    m = hold(REST, 2)
    m[:, UPPER, 1] += 0.02 * np.sin(2 * np.pi * 4 * time(m))[:, None]
    return m


def wash():
    m = hold(REST, 3)
    m[:, 21] = REST[9] + [-0.05, -0.1, 0.3]
    m[:, 21, 0] += 0.08 * np.sin(2 * np.pi * 2 * time(m))
    return m


def balance():
    m = hold(REST, 2.5)
    m[10:45, [8, 11], 1] += 0.2
    return m


def dab():
    p = arm_up_out("left")
    p[21] = p[15] + [-0.1, 0.0, 0.12]  # the right hand at the face, the head in the elbow
    p[19] = p[15] + [-0.2, -0.1, 0.1]
    return seq(hold(REST, 0.5), blend(REST, p, 0.5), hold(p, 1))


def dance():
    m = hold(REST, 3)
    s = np.sin(2 * np.pi * 1.5 * time(m))[:, None]
    m[:, [20, 21], 0] += 0.3 * s
    m[:, [7, 10], 2] += 0.2 * s
    m[:, [8, 11], 2] -= 0.2 * s
    m[:, [7, 10], 1] += 0.1 * np.maximum(s, 0)
    return m


def jumping_jacks():
    spread = ARMS_UP.copy()
    spread[[7, 10]] += [0.3, 0.0, 0.0]
    spread[[8, 11]] -= [0.3, 0.0, 0.0]
    cycle = seq(blend(REST, spread, 0.25), blend(spread, REST, 0.25), hold(REST, 0.25))
    m = np.concatenate([cycle] * 3)
    hop = np.tile(np.concatenate([np.sin(np.pi * np.arange(10) / 9), np.zeros(5)]), 3)
    return m + hop[:, None, None] * [0.0, 0.1, 0.0]


MOTIONS = {
    "walk": walk, "walk backwards": walk_backwards, "walk sideways": walk_sideways,
    "turn": turn, "run": run, "wave": wave, "raise hands": raise_hands, "bow": bow,
    "kick": kick, "punch": punch, "slash": slash, "dance": dance, "jump": jump,
    "jumping jacks": jumping_jacks, "sit down": sit_down, "stand up": stand_up,
    "squat": squat, "climb": climb, "crawl": crawl, "cartwheel": cartwheel, "roll": roll,
    "flip": flip, "spin": spin, "drink": drink, "basketball": dribble, "soccer": soccer,
    "bend over": bend_over, "twist": twist, "reach": reach, "laugh": laugh, "wash": wash,
    "balance": balance, "dab": dab,
}  # fmt: skip

# (motion, rules it must fail): the contrasts the rules exist for
MUST_FAIL = {
    "jump": ("sit down", "climb", "walk"),
    "walk backwards": ("walk", "walk sideways", "run"),
    "walk": ("walk backwards", "run", "jump", "turn"),
    "run": ("walk", "walk backwards"),
    "walk sideways": ("walk", "walk backwards"),
    "turn": ("spin", "walk"),
    "sit down": ("squat", "stand up", "jump"),
    "squat": ("sit down",),
    "stand up": ("squat", "jump"),
    "roll": ("cartwheel", "flip"),
    "cartwheel": ("flip",),
    "flip": ("cartwheel",),
    "climb": ("jump",),
    "kick": ("punch", "soccer", "run"),
    "punch": ("kick", "slash", "wave"),
    "bow": ("bend over", "squat", "sit down"),
    "wave": ("punch", "drink"),
    "crawl": ("walk", "sit down"),
}


def test_every_action_has_a_rule_and_a_synthetic_motion():
    assert set(A.ACTION_RULES) == set(ACTIONS)
    assert set(MOTIONS) == set(ACTIONS)


@pytest.mark.parametrize("name", sorted(MOTIONS))
def test_rule_passes_its_synthetic_motion(name):
    m = MOTIONS[name]()
    assert m.shape[1:] == (22, 3)
    assert A.check_action(name, m), A.ACTION_RULES[name].must_show


@pytest.mark.parametrize("name", sorted(A.ACTION_RULES))
def test_standing_still_fails_every_rule(name):
    assert not A.check_action(name, still())


@pytest.mark.parametrize("motion", sorted(MUST_FAIL))
def test_rule_contrasts(motion):
    passed = A.check_actions(MOTIONS[motion]())
    assert passed[motion]
    assert not any(passed[n] for n in MUST_FAIL[motion]), {n: passed[n] for n in MUST_FAIL[motion]}


def test_rules_follow_the_facing():
    # a walk backwards turned 90° (the whole motion, about the start) is still backwards
    back = walk_backwards()
    turned = yaw_all(back, 90)
    assert A.check_action("walk backwards", turned) and not A.check_action("walk", turned)
    # the same path with the body facing the other way is a walk forwards
    about_face = np.stack([yaw(p, 180) for p in back])
    assert A.check_action("walk", about_face) and not A.check_action("walk backwards", about_face)


def test_check_action_unknown_name():
    with pytest.raises(MosaError, match="no kinematic rule"):
        A.check_action("moonwalk", still())


# --- kinematics helpers -------------------------------------------------------------------


def test_swings_runs():
    t = np.linspace(0, 4 * np.pi, 200)
    assert swings(np.sin(t), 0.5) == 5  # up, down, up, down, up (to the end)
    assert swings(0.1 * np.sin(t), 0.5) == 0
    assert swings(t, 0.5) == 1
    assert count_runs(np.array([1, 1, 0, 1, 0, 0, 1, 1, 1], bool), 2) == 2
    assert longest_run(np.array([1, 1, 0, 1, 1, 1], bool)) == 3
    assert longest_run(np.zeros(4, bool)) == 0


def test_tracks_floor_yaw_and_body_frame():
    m = turn() + [2.0, 0.3, -1.0]  # a left turn, off the origin, floor at 0.3 m
    t = Tracks(m, FPS)
    assert t.floor == pytest.approx(0.3, abs=1e-9)
    assert t.height(0)[0] == pytest.approx(REST[0, 1], abs=1e-9)
    assert np.degrees(t.yaw[-1] - t.yaw[0]) == pytest.approx(describe(m)["turn_deg"], abs=3)
    assert np.degrees(t.yaw[-1] - t.yaw[0]) > 80  # left is positive, as describe
    # body frame: the left hip stays on +X, whatever the facing
    assert (t.local[:, 1, 0] > 0).all() and np.allclose(t.local[:, 0, [0, 2]], 0)
    with pytest.raises(MosaError):
        Tracks(np.zeros((1, 22, 3)))


# --- pass rates on a dataset folder -------------------------------------------------------


def test_rule_pass_rates_on_a_tiny_dataset(tmp_path):
    clips = {"j1": (jump(), ["jump"]), "j2": (still(), ["jump"]), "w1": (walk(), ["walk"]),
             "s1": (sit_down(), ["sit down"])}  # fmt: skip
    (tmp_path / "new_joints").mkdir()
    (tmp_path / "texts").mkdir()
    for name, (joints, _) in clips.items():
        np.save(tmp_path / "new_joints" / f"{name}.npy", joints.astype(np.float32))
        (tmp_path / "texts" / f"{name}.txt").write_text("a person moves.#a/DET#0.0#0.0\n")
    (tmp_path / "test.txt").write_text("\n".join(clips) + "\n")
    (tmp_path / "actions.json").write_text(json.dumps({n: a for n, (_, a) in clips.items()}))
    rows = {r["action"]: r for r in A.rule_pass_rates(tmp_path, "test")}
    assert set(rows) == set(A.ACTION_RULES)
    assert rows["jump"]["clips"] == 2 and rows["jump"]["passed"] == 1
    assert rows["jump"]["pass_rate"] == 0.5
    assert rows["jump"]["other_clips"] == 2 and rows["jump"]["other_pass_rate"] == 0.0
    assert rows["walk"]["pass_rate"] == 1.0 and rows["sit down"]["pass_rate"] == 1.0
    assert rows["cartwheel"]["clips"] == 0 and rows["cartwheel"]["pass_rate"] is None
    table = A.pass_rate_table(list(rows.values()))
    assert "| jump | both feet off the floor together" in table and "| 50% | 0% |" in table
