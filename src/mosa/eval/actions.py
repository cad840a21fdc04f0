"""A kinematic rule per action: what a motion of that action must show, on its joints alone.

``ACTION_RULES[name]`` for every name of ``mosa.data.actions.ACTIONS``; ``check_action(name,
joints)`` runs one on joints ``(T, 22, 3)`` (metres, Y up, 20 fps). A rule is a necessary
condition, not a classifier: a jump must have both feet off the floor together, but a motion
with both feet off the floor need not be a jump. Rules measure whether a generated motion
follows its prompt ("measure what it follows"), so a rule that the real clips of its action
fail is a bad rule: ``rule_pass_rates(dataset)`` measures that on a dataset split, and how
often clips of other actions pass it too (a rule everything passes says nothing).

Rules read ``mosa.eval.kinematics.Tracks``: heights above the floor, the facing angle, joints
in the body frame (+Z forward, +X left). Thresholds are for HumanML3D's uniform skeleton
(about 1.7 m tall, pelvis 0.92 m above the floor when standing); each is named next to its
rule so it can be tuned against real clips.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mosa.errors import MosaError
from mosa.eval.kinematics import (
    HEAD,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    L_WRIST,
    NECK,
    PELVIS,
    R_ELBOW,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    R_WRIST,
    SPINE3,
    Tracks,
    count_runs,
    longest_run,
    run_lengths,
    swings,
)
from mosa.motion.skeleton import FOOT_LEFT, FOOT_RIGHT, FPS

L_ANKLE, R_ANKLE = FOOT_LEFT[0], FOOT_RIGHT[0]
ANKLES = (L_ANKLE, R_ANKLE)
WRISTS = (L_WRIST, R_WRIST)
SHOULDERS = (L_SHOULDER, R_SHOULDER)
ELBOWS = (L_ELBOW, R_ELBOW)
KNEES = (L_KNEE, R_KNEE)
HIPS = (L_HIP, R_HIP)
STANDING_PELVIS = 0.92  # m above the floor, HumanML3D's skeleton standing upright
ARM_LENGTH = 0.52  # shoulder -> wrist, straight (upper arm + forearm of the skeleton)
ON_FLOOR = 0.06  # m: a foot's lowest joint this close to the floor touches it


@dataclass(frozen=True)
class Rule:
    """``must_show``: what the motion must show, in words; ``test``: Tracks -> bool."""

    must_show: str
    test: Callable[[Tracks], bool]

    def __call__(self, joints: np.ndarray | Tracks, fps: float = FPS) -> bool:
        tracks = joints if isinstance(joints, Tracks) else Tracks(joints, fps)
        return bool(self.test(tracks))


def frames(t: Tracks, seconds: float) -> int:
    """Number of frames of ``seconds`` at the motion's rate (at least 1)."""
    return max(1, int(round(seconds * t.fps)))


def distance_travelled(t: Tracks) -> tuple[float, float]:
    """Root travel (forward, to the left) in metres, summed along the facing of each frame."""
    forward, left = t.root_velocity.sum(axis=0) / t.fps
    return float(forward), float(left)


def fast_speed(t: Tracks) -> float:
    """The root's speed on the floor that 25% of the frames reach (m/s)."""
    return float(np.percentile(np.linalg.norm(t.root_velocity, axis=-1), 75))


def facing_range_deg(t: Tracks) -> float:
    """How far the facing turns between its two extremes over the motion, in degrees."""
    return float(np.degrees(t.yaw.max() - t.yaw.min()))


def relative_height(t: Tracks, joint: int, to: int) -> np.ndarray:
    """(T,) height of ``joint`` minus the height of ``to``."""
    return t.height(joint) - t.height(to)


def near(t: Tracks, a: int, b: int) -> np.ndarray:
    """(T,) distance between two joints."""
    return np.linalg.norm(t.joints[:, a] - t.joints[:, b], axis=-1)


# --- locomotion --------------------------------------------------------------------------

WALK_MIN_FORWARD = 0.75  # m of forward travel
WALK_MAX_SPEED = 2.6  # m/s (root speed reached by 25% of the frames)
RUN_MIN_SPEED = 1.8  # m/s
JOG_MIN_SPEED = 1.3  # m/s, enough with a running cadence (an old person's jog)
JOG_CADENCE = 2.3  # steps per second (Bandai walks: median 1.9, runs: 2.7)
BACKWARD_MIN = 0.5  # m
SIDEWAYS_MIN = 0.5  # m
TURN_MIN_DEG = 60.0
SPIN_MIN_DEG = 300.0


def walks(t: Tracks) -> bool:
    forward, _ = distance_travelled(t)
    return forward >= WALK_MIN_FORWARD and fast_speed(t) <= WALK_MAX_SPEED


def walks_backwards(t: Tracks) -> bool:
    forward, left = distance_travelled(t)
    return -forward >= BACKWARD_MIN and -forward > abs(left)


def walks_sideways(t: Tracks) -> bool:
    forward, left = distance_travelled(t)
    return abs(left) >= SIDEWAYS_MIN and abs(left) > abs(forward)


def turns(t: Tracks) -> bool:
    return facing_range_deg(t) >= TURN_MIN_DEG


def spins(t: Tracks) -> bool:
    return facing_range_deg(t) >= SPIN_MIN_DEG


def cadence(t: Tracks) -> float:
    """Steps per second: swings of >= 15 cm of one ankle past the other, fore and aft."""
    ahead = t.local[:, L_ANKLE, 2] - t.local[:, R_ANKLE, 2]
    return swings(ahead, 0.15) * t.fps / len(t)


def runs(t: Tracks) -> bool:
    speed = fast_speed(t)
    return speed >= RUN_MIN_SPEED or (speed >= JOG_MIN_SPEED and cadence(t) >= JOG_CADENCE)


# --- jumps, floor contact -----------------------------------------------------------------

JUMP_CLEARANCE = 0.10  # m: both feet at least this high at the same time
JUMP_FEET_LEVEL = 0.15  # m: in the air the two feet stay this level (a run's flight does not)
JUMP_MAX_FLIGHT = 1.0  # s: longer off the floor is standing on something
BALANCE_LIFT = 0.10  # m: the raised foot
BALANCE_SECONDS = 1.0
CLIMB_LIFT = 0.15  # m: both feet above the floor
CLIMB_SECONDS = 1.0


def both_feet_up(t: Tracks) -> np.ndarray:
    """(T,) height of the lower foot: > 0 means both feet are off the floor."""
    return t.feet.min(axis=1)


def jumps(t: Tracks) -> bool:
    """Both feet leave the floor together, for a flight (standing on a step lasts longer)."""
    level = np.abs(t.feet[:, 0] - t.feet[:, 1]) <= JUMP_FEET_LEVEL
    flights = run_lengths((both_feet_up(t) >= JUMP_CLEARANCE) & level)
    return bool((flights < frames(t, JUMP_MAX_FLIGHT)).any())


def balances(t: Tracks) -> bool:
    lifted = ((t.feet[:, 0] >= BALANCE_LIFT) & (t.feet[:, 1] <= ON_FLOOR)) | (
        (t.feet[:, 1] >= BALANCE_LIFT) & (t.feet[:, 0] <= ON_FLOOR)
    )
    return longest_run(lifted) >= frames(t, BALANCE_SECONDS)


def climbs(t: Tracks) -> bool:
    """Both feet off the floor (on a step or a rung) for longer than any jump lasts."""
    return longest_run(both_feet_up(t) >= CLIMB_LIFT) >= frames(t, CLIMB_SECONDS)


JACK_FEET_APART = 0.45  # m between the ankles, legs spread
JACK_CYCLES = 2
JACK_HOP = 0.05  # m: both feet leave the floor (small hops)


def jumping_jacks(t: Tracks) -> bool:
    feet_apart = near(t, L_ANKLE, R_ANKLE) >= JACK_FEET_APART
    arms_up = hands_up(t, 0.0)
    spread = feet_apart & arms_up[0] & arms_up[1]
    return count_runs(spread) >= JACK_CYCLES and bool((both_feet_up(t) >= JACK_HOP).any())


# --- level changes ------------------------------------------------------------------------

SIT_THIGH_LEVEL = 0.22  # m: knee no more than this below the hip (thigh near horizontal)
SIT_SECONDS = 1.0
SIT_PELVIS_DROP = 0.15  # m below standing
SQUAT_DROP = 0.25  # m the pelvis drops below where it starts
SQUAT_RETURN = 0.1  # m: it comes back to within this of the start
STAND_RISE = 0.25  # m the pelvis rises
CRAWL_HEAD = 0.8  # m: the head stays under this
CRAWL_SHARE = 0.5  # of the frames
BOW_TILT_DEG = 20.0  # the torso leans forward at least this (a proud bow: 24°)
BOW_RETURN_DEG = 10.0  # and straightens by at least this afterwards
BOW_MAX_SPEED = 0.5  # m/s of the root while leaning
BOW_PELVIS_DROP = 0.1  # m at most
BEND_TILT_DEG = 50.0  # torso from vertical


def thighs_level(t: Tracks) -> np.ndarray:
    """(T,) both knees within ``SIT_THIGH_LEVEL`` below their hips (seated or squatting)."""
    drop = [t.height(h) - t.height(k) for h, k in zip(HIPS, KNEES, strict=True)]
    return (drop[0] <= SIT_THIGH_LEVEL) & (drop[1] <= SIT_THIGH_LEVEL)


def sits(t: Tracks) -> bool:
    seated = thighs_level(t) & (t.height(PELVIS) <= STANDING_PELVIS - SIT_PELVIS_DROP)
    seated &= t.torso_up[:, 1] >= np.cos(np.radians(50))  # upright, not lying
    return longest_run(seated) >= frames(t, SIT_SECONDS)


def squats(t: Tracks) -> bool:
    pelvis = t.height(PELVIS)
    start = float(np.median(pelvis[: frames(t, 0.25)]))
    low = int(np.argmin(pelvis))
    down = start - pelvis[low] >= SQUAT_DROP
    back = (pelvis[low:] >= start - SQUAT_RETURN).any()
    feet_down = (t.feet[low] <= ON_FLOOR + 0.04).all()
    return bool(down and back and feet_down)


def stands_up(t: Tracks) -> bool:
    pelvis = t.height(PELVIS)
    low = int(np.argmin(pelvis[: max(2, len(pelvis) * 2 // 3)]))
    return bool(pelvis[low:].max() - pelvis[low] >= STAND_RISE and pelvis[-1] >= 0.75)


def crawls(t: Tracks) -> bool:
    low = (t.height(HEAD) < CRAWL_HEAD).mean() >= CRAWL_SHARE
    hands_down = (np.minimum(t.height(L_WRIST), t.height(R_WRIST)) <= 0.2).any()
    forward, left = distance_travelled(t)
    return bool(low and hands_down and np.hypot(forward, left) >= 0.3)


def torso_tilt_deg(t: Tracks) -> np.ndarray:
    """(T,) angle of the torso (pelvis -> neck) from vertical, in degrees."""
    return np.degrees(np.arccos(np.clip(t.torso_up[:, 1], -1.0, 1.0)))


def bows(t: Tracks) -> bool:
    tilt = torso_tilt_deg(t)
    speed = np.linalg.norm(t.root_velocity, axis=-1)
    standing = np.concatenate([speed[:1], speed]) < BOW_MAX_SPEED  # runners lean too
    low = int(np.argmax(np.where(standing, tilt, 0.0)))
    pelvis = t.height(PELVIS)
    leans = standing[low] and tilt[low] >= BOW_TILT_DEG
    back = (tilt[low:] <= tilt[low] - BOW_RETURN_DEG).any()
    pelvis_up = np.percentile(pelvis, 90) - pelvis[low] <= BOW_PELVIS_DROP  # not a squat
    return bool(leans and back and pelvis_up)


def bends_over(t: Tracks) -> bool:
    return bool((torso_tilt_deg(t) >= BEND_TILT_DEG).any())


# --- acrobatics ---------------------------------------------------------------------------

HANDS_ON_FLOOR = 0.25  # m


def upside_down(t: Tracks) -> np.ndarray:
    """(T,) the head below the pelvis (the torso points downwards)."""
    return t.torso_up[:, 1] < -0.2


def cartwheels(t: Tracks) -> bool:
    hands = np.minimum(t.height(L_WRIST), t.height(R_WRIST)) <= HANDS_ON_FLOOR
    hands_below_hips = np.maximum(t.height(L_WRIST), t.height(R_WRIST)) < t.height(PELVIS)
    return bool((upside_down(t) & hands & hands_below_hips).any())


def rolls(t: Tracks) -> bool:
    lying = t.torso_up[:, 1] <= 0.3
    return bool((lying & (t.height(PELVIS) <= 0.6)).any() and (t.torso_up[:, 1] <= -0.0).any())


def flips(t: Tracks) -> bool:
    airborne = t.joints[:, :, 1].min(axis=1) >= 0.15
    return bool((upside_down(t) & airborne).any())


# --- arms ---------------------------------------------------------------------------------

WAVE_BELOW_SHOULDER = 0.1  # m: the waving wrist is at most this below its shoulder
WAVE_SWING = 0.04  # m of side-to-side hand motion (against the elbow) per swing
WAVE_SWINGS = 4
RAISE_BELOW_SHOULDER = 0.05  # m: a raised wrist (a timid raise stops at the shoulder)
RAISE_SECONDS = 0.25
PUNCH_REACH = 0.35  # m: wrist ahead of the chest
PUNCH_SPEED = 2.0  # m/s: the wrist relative to the chest
PUNCH_WINDOW = 0.25  # s: that fast within this long before the reach
PUNCH_BELOW_SHOULDER = 0.2  # m: the fist at chest height or higher (not an arm swing)
SLASH_GRIP = 0.15  # m between the wrists: the hands meet on the hilt at some point
SLASH_SWEEP = 0.7  # m a wrist moves (relative to the chest) within SLASH_SECONDS
SLASH_SECONDS = 0.3
DRINK_DISTANCE = 0.2  # m: wrist to head
DRINK_SECONDS = 0.5
REACH_EXTENSION = 0.9  # of the arm's length
DAB_OUT = 0.2  # m: the raised wrist out to its side, beyond its shoulder
DAB_HEAD_ARM = 0.3  # m: the head at the other arm (its elbow or wrist)


def hands_up(t: Tracks, below: float) -> list[np.ndarray]:
    """(T,) per wrist: at most ``below`` metres under its shoulder."""
    return [relative_height(t, w, s) >= -below for w, s in zip(WRISTS, SHOULDERS, strict=True)]


def waves(t: Tracks) -> bool:
    ups = hands_up(t, WAVE_BELOW_SHOULDER)
    for wrist, elbow, up in zip(WRISTS, ELBOWS, ups, strict=True):
        side = t.local[:, wrist, 0] - t.local[:, elbow, 0]
        if up.sum() >= frames(t, 0.5) and swings(side[up], WAVE_SWING) >= WAVE_SWINGS:
            return True
    return False


def raises_hands(t: Tracks) -> bool:
    ups = hands_up(t, RAISE_BELOW_SHOULDER)
    return any(longest_run(u) >= frames(t, RAISE_SECONDS) for u in ups)


def recent(mask: np.ndarray, n: int) -> np.ndarray:
    """(T,) True where ``mask`` was True in the last ``n`` frames (this one included)."""
    counts = np.convolve(mask.astype(np.float64), np.ones(n + 1))[: len(mask)]
    return counts > 0


def punches(t: Tracks) -> bool:
    for wrist, shoulder in zip(WRISTS, SHOULDERS, strict=True):
        ahead = t.local[:, wrist, 2] - t.local[:, SPINE3, 2] >= PUNCH_REACH
        raised = relative_height(t, wrist, shoulder) >= -PUNCH_BELOW_SHOULDER
        fast = np.concatenate([[0.0], t.speed(wrist, relative_to=SPINE3)]) >= PUNCH_SPEED
        if (ahead & raised & recent(fast, frames(t, PUNCH_WINDOW))).any():
            return True
    return False


def slashes(t: Tracks) -> bool:
    gripped = (near(t, L_WRIST, R_WRIST) <= SLASH_GRIP).any()
    n = frames(t, SLASH_SECONDS)
    if not gripped or len(t) <= n:
        return False
    for wrist in WRISTS:
        rel = t.joints[:, wrist] - t.joints[:, SPINE3]
        if (np.linalg.norm(rel[n:] - rel[:-n], axis=-1) >= SLASH_SWEEP).any():
            return True
    return False


def drinks(t: Tracks) -> bool:
    return any(
        longest_run(near(t, w, HEAD) <= DRINK_DISTANCE) >= frames(t, DRINK_SECONDS) for w in WRISTS
    )


def reaches(t: Tracks) -> bool:
    for wrist, shoulder in zip(WRISTS, SHOULDERS, strict=True):
        straight = near(t, wrist, shoulder) >= REACH_EXTENSION * ARM_LENGTH
        out = (relative_height(t, wrist, shoulder) > -0.1) | (
            t.local[:, wrist, 2] - t.local[:, shoulder, 2] >= 0.35
        )
        if (straight & out).any():
            return True
    return False


def dabs(t: Tracks) -> bool:
    for i in (0, 1):
        wrist, shoulder = WRISTS[i], SHOULDERS[i]
        out = np.abs(t.local[:, wrist, 0]) - np.abs(t.local[:, shoulder, 0]) >= DAB_OUT
        up = (relative_height(t, wrist, shoulder) > 0) & out
        other = np.minimum(near(t, HEAD, WRISTS[1 - i]), near(t, HEAD, ELBOWS[1 - i]))
        if (up & (other <= DAB_HEAD_ARM)).any():
            return True
    return False


DRIBBLE_SWING = 0.1  # m up or down, against the shoulder
DRIBBLE_SWINGS = 3
DRIBBLE_HAND = 0.3  # m: the dribbling wrist at most this above the pelvis
DRIBBLE_UPRIGHT = 1.0  # its vertical motion at least this times its fore-aft motion


def dribbles(t: Tracks) -> bool:
    """A low hand pats up and down (a walking arm swings mostly fore and aft)."""
    for wrist, shoulder in zip(WRISTS, SHOULDERS, strict=True):
        rel = t.local[:, wrist] - t.local[:, shoulder]
        low = t.height(wrist) <= t.height(PELVIS) + DRIBBLE_HAND
        if low.sum() < frames(t, 1.0):
            continue
        step = np.diff(rel, axis=0)[low[1:]]
        upright = step[:, 1].std() >= DRIBBLE_UPRIGHT * step[:, 2].std()
        if upright and swings(rel[low, 1], DRIBBLE_SWING) >= DRIBBLE_SWINGS:
            return True
    return False


WASH_SWING = 0.05  # m of hand motion per swing
WASH_SWINGS = 6
WASH_MAX_SPEED = 0.2  # m/s, median root speed: standing at the sink or the window


def washes(t: Tracks) -> bool:
    """A hand rubs back and forth against the chest while the body stands (a wave passes too)."""
    if np.median(np.linalg.norm(t.root_velocity, axis=-1)) > WASH_MAX_SPEED:
        return False
    for wrist in WRISTS:
        rel = t.local[:, wrist] - t.local[:, SPINE3]
        if max(swings(rel[:, k], WASH_SWING) for k in range(3)) >= WASH_SWINGS:
            return True
    return False


# --- legs, whole body ---------------------------------------------------------------------

KICK_HEIGHT = 0.3  # m: the kicking foot's lowest joint above the floor
KICK_MAX_SPEED = 1.5  # m/s of the root: a running stride lifts the trailing foot as high
SOCCER_FOOT_SPEED = 5.0  # m/s: a foot swinging forward, relative to the pelvis
SOCCER_FOOT_LIFT = 0.1  # m above the floor while it swings (a running stride stays lower)


def kicks_high(t: Tracks) -> bool:
    """A foot high while the other stands and the body is not running."""
    speed = np.linalg.norm(t.root_velocity, axis=-1)
    slow = np.concatenate([speed[:1], speed]) < KICK_MAX_SPEED
    for i in (0, 1):
        high = t.feet[:, i] >= KICK_HEIGHT
        standing = t.feet[:, 1 - i] <= ON_FLOOR + 0.1
        if (high & standing & slow).any():
            return True
    return False


def kicks_ball(t: Tracks) -> bool:
    """A foot swings forward fast, off the floor (a soccer kick, often run up to)."""
    for i, ankle in enumerate(ANKLES):
        swing = np.diff(t.local[:, ankle, 2]) * t.fps  # forward speed relative to the pelvis
        if ((swing >= SOCCER_FOOT_SPEED) & (t.feet[1:, i] >= SOCCER_FOOT_LIFT)).any():
            return True
    return False


def kicks(t: Tracks) -> bool:
    return kicks_high(t) or kicks_ball(t)


TWIST_SWING_DEG = 25.0
TWIST_SWINGS = 2


def line_yaw(t: Tracks, left: int, right: int) -> np.ndarray:
    v = t.joints[:, left, [0, 2]] - t.joints[:, right, [0, 2]]
    return np.unwrap(np.arctan2(v[:, 1], v[:, 0]))


def twists(t: Tracks) -> bool:
    rel = line_yaw(t, L_SHOULDER, R_SHOULDER) - line_yaw(t, L_HIP, R_HIP)
    return swings(np.degrees(rel), TWIST_SWING_DEG) >= TWIST_SWINGS


DANCE_LIMB_SPEED = 0.5  # m/s, mean speed of wrists and ankles relative to the pelvis
DANCE_SECONDS = 2.0


def dances(t: Tracks) -> bool:
    if len(t) < frames(t, DANCE_SECONDS):
        return False
    arms = np.mean([t.speed(w, relative_to=PELVIS).mean() for w in WRISTS])
    legs = np.mean([t.speed(a, relative_to=PELVIS).mean() for a in ANKLES])
    return bool(arms >= DANCE_LIMB_SPEED and legs >= 0.5 * DANCE_LIMB_SPEED)


LAUGH_SWING = 0.01  # m: the neck bobs relative to the pelvis
LAUGH_SWINGS = 6


def laughs(t: Tracks) -> bool:
    """A weak rule: the upper body shakes (the neck bobs against the pelvis, many times)."""
    return swings(relative_height(t, NECK, PELVIS), LAUGH_SWING) >= LAUGH_SWINGS


ACTION_RULES: dict[str, Rule] = {
    "walk": Rule(f"travels >= {WALK_MIN_FORWARD} m forward, not faster than a run", walks),
    "walk backwards": Rule(f">= {BACKWARD_MIN} m against the facing", walks_backwards),
    "walk sideways": Rule(f">= {SIDEWAYS_MIN} m to a side, more than forward", walks_sideways),
    "turn": Rule(f"the facing turns >= {TURN_MIN_DEG:.0f}°", turns),
    "run": Rule(
        f"root speed >= {RUN_MIN_SPEED} m/s on 25% of frames (>= {JOG_MIN_SPEED} m/s at "
        f">= {JOG_CADENCE} steps/s)",
        runs,
    ),
    "wave": Rule("a wrist up near its shoulder swings side to side", waves),
    "raise hands": Rule(f"a wrist up at its shoulder for >= {RAISE_SECONDS} s", raises_hands),
    "bow": Rule(
        f"standing, the torso leans >= {BOW_TILT_DEG:.0f}° and straightens, the pelvis stays up",
        bows,
    ),
    "kick": Rule(
        f"a foot >= {KICK_HEIGHT * 100:.0f} cm up, the other down, not running; or a soccer kick",
        kicks,
    ),
    "punch": Rule("a wrist shoots >= 35 cm ahead of the chest at chest height, fast", punches),
    "slash": Rule(
        f"the hands meet (a grip), a wrist sweeps >= {SLASH_SWEEP * 100:.0f} cm in "
        f"{SLASH_SECONDS} s",
        slashes,
    ),
    "dance": Rule("arms and legs keep moving for >= 2 s", dances),
    "jump": Rule("both feet off the floor together, >= 10 cm, for < 1 s", jumps),
    "jumping jacks": Rule("hops; both hands up with the legs apart, twice", jumping_jacks),
    "sit down": Rule("seated (thighs level, pelvis low, torso up) for >= 1 s", sits),
    "stand up": Rule("the pelvis rises >= 25 cm to standing", stands_up),
    "squat": Rule("the pelvis drops >= 25 cm and comes back, feet down", squats),
    "climb": Rule(f"both feet >= {CLIMB_LIFT * 100:.0f} cm off the floor for >= 1 s", climbs),
    "crawl": Rule("the head stays low, hands near the floor, travels", crawls),
    "cartwheel": Rule("upside down with hands on the floor", cartwheels),
    "roll": Rule("the torso goes over near the floor", rolls),
    "flip": Rule("upside down in the air", flips),
    "spin": Rule(f"the facing turns >= {SPIN_MIN_DEG:.0f}°", spins),
    "drink": Rule("a wrist at the head for >= 0.5 s", drinks),
    "basketball": Rule("a low hand pats up and down (a dribble)", dribbles),
    "soccer": Rule(
        f"a foot swings forward >= {SOCCER_FOOT_SPEED:.0f} m/s, off the floor", kicks_ball
    ),
    "bend over": Rule(f"the torso tilts >= {BEND_TILT_DEG:.0f}° from vertical", bends_over),
    "twist": Rule("the shoulders twist against the hips, both ways", twists),
    "reach": Rule("an arm stretches out, up or forward", reaches),
    "laugh": Rule("the upper body shakes (weak rule)", laughs),
    "wash": Rule("standing, a hand rubs back and forth (weak: a wave passes too)", washes),
    "balance": Rule("on one foot for >= 1 s", balances),
    "dab": Rule("one wrist up and out to the side, the head at the other arm", dabs),
}


def check_action(name: str, joints: np.ndarray, fps: float = FPS) -> bool:
    """Does the motion ``(T, 22, 3)`` show what action ``name`` must show?"""
    rule = ACTION_RULES.get(name)
    if rule is None:
        raise MosaError(
            f"no kinematic rule for action '{name}'",
            f"use one of: {', '.join(ACTION_RULES)}",
        )
    return rule(joints, fps)


def check_actions(joints: np.ndarray, fps: float = FPS) -> dict[str, bool]:
    """Every rule on one motion: ``{action: passed}``."""
    tracks = Tracks(joints, fps)
    return {name: rule(tracks) for name, rule in ACTION_RULES.items()}


def rule_pass_rates(
    dataset_root: str | os.PathLike,
    split: str = "test",
    actions: Sequence[str] | None = None,
    fps: float = FPS,
) -> list[dict]:
    """Run every rule on the real clips of a dataset split (``new_joints/NAME.npy``).

    Per action: ``clips`` labelled with it (``actions.json``, else from the captions), how many
    of them pass its rule (``pass_rate``: a rule its own clips fail is a bad rule), and the
    pass rate on the clips not labelled with it (``other_pass_rate``: a rule everything passes
    says nothing).
    """
    from mosa.vocabulary import split_captions

    root = Path(dataset_root)
    labels = split_captions(root, split).clip_actions
    names = list(actions or ACTION_RULES)
    passed = {n: [0, 0, 0, 0] for n in names}  # own passed, own total, other passed, other total
    for clip, acts in labels.items():
        f = root / "new_joints" / f"{clip}.npy"
        if not f.is_file():
            continue
        tracks = Tracks(np.load(f), fps)
        for n in names:
            ok = ACTION_RULES[n](tracks)
            k = 0 if n in acts else 2
            passed[n][k] += ok
            passed[n][k + 1] += 1
    return [_rate_row(n, *passed[n]) for n in names]


def _rate_row(name: str, own_ok: int, own: int, other_ok: int, other: int) -> dict:
    return {
        "action": name,
        "must_show": ACTION_RULES[name].must_show,
        "clips": own,
        "passed": own_ok,
        "pass_rate": round(own_ok / own, 3) if own else None,
        "other_clips": other,
        "other_pass_rate": round(other_ok / other, 3) if other else None,
    }


def pass_rate_table(rows: list[dict]) -> str:
    """Markdown table of ``rule_pass_rates`` rows."""
    lines = [
        "| action | must show | clips | pass rate | other clips' pass rate |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        rate = "n/a" if r["pass_rate"] is None else f"{100 * r['pass_rate']:.0f}%"
        other = "n/a" if r["other_pass_rate"] is None else f"{100 * r['other_pass_rate']:.0f}%"
        lines.append(f"| {r['action']} | {r['must_show']} | {r['clips']} | {rate} | {other} |")
    return "\n".join(lines)
