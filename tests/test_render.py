"""Rendering: real files come out (mp4 / gif / png), with the right frame counts and sizes,
the body upright and its left side on the right of the picture when it faces the camera."""

from __future__ import annotations

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from mosa.errors import MosaError
from mosa.motion import render
from mosa.motion.render import render_contact_sheet, render_motions
from mosa.motion.skeleton import JOINT_NAMES, PARENTS


def t_pose(root_height: float = 1.0) -> np.ndarray:
    """A hand-built T-pose facing +Z (Y up, +X = body's left), arms straight out: (22, 3)."""
    side = {n: (1.0 if n.startswith("left") else -1.0) for n in JOINT_NAMES}
    step = {  # offset from the parent, in metres
        "pelvis": (0, root_height, 0), "spine1": (0, 0.12, 0), "spine2": (0, 0.12, 0),
        "spine3": (0, 0.12, 0), "neck": (0, 0.15, 0), "head": (0, 0.12, 0.03),
        "hip": (0.1, -0.05, 0), "knee": (0, -0.42, 0), "ankle": (0, -0.42, 0),
        "foot": (0, -0.05, 0.12), "collar": (0.08, 0.1, 0), "shoulder": (0.1, 0, 0),
        "elbow": (0.26, 0, 0), "wrist": (0.25, 0, 0),
    }  # fmt: skip
    pose = np.zeros((22, 3))
    for j, name in enumerate(JOINT_NAMES):
        key = name.split("_")[-1]
        off = np.array(step[name] if name in step else step[key], dtype=float)
        if name.startswith(("left", "right")):
            off[0] *= side[name]
        pose[j] = off if PARENTS[j] < 0 else pose[PARENTS[j]] + off
    return pose.astype(np.float32)


def _pixels_near(img: np.ndarray, colour: str, tol: float = 30.0) -> np.ndarray:
    """(N, 2) row/col of pixels within ``tol`` of the hex ``colour``."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    dist = np.linalg.norm(img[..., :3].astype(float) - rgb, axis=-1)
    return np.argwhere(dist < tol)


def _assert_upright_and_handed(img: np.ndarray) -> None:
    left_arm = _pixels_near(img, render.LEFT_COLOURS[1])
    right_arm = _pixels_near(img, render.RIGHT_COLOURS[1])
    legs = np.concatenate([_pixels_near(img, render.LEFT_COLOURS[0]),
                           _pixels_near(img, render.RIGHT_COLOURS[0])])  # fmt: skip
    assert len(left_arm) > 20 and len(right_arm) > 20 and len(legs) > 40
    # facing the camera: the body's left arm is on the right of the picture
    assert left_arm[:, 1].mean() > right_arm[:, 1].mean() + 10
    # upright: arms (shoulder height) above the legs (image rows grow downwards)
    assert left_arm[:, 0].mean() < legs[:, 0].mean() - 10
    assert right_arm[:, 0].mean() < legs[:, 0].mean() - 10
    # standing legs are tall and narrow in the picture (a body lying down would not be)
    rows, cols = np.ptp(legs, axis=0)
    assert rows > 2 * cols


def _leg_row(img: np.ndarray) -> float:
    legs = [_pixels_near(img, c) for c in (render.LEFT_COLOURS[0], render.RIGHT_COLOURS[0])]
    return float(np.concatenate(legs)[:, 0].mean())


def walk(T: int, speed: float = 0.05) -> np.ndarray:
    """The T-pose sliding forward along +Z: (T, 22, 3)."""
    pose = t_pose()
    shift = np.zeros((T, 1, 3), dtype=np.float32)
    shift[:, 0, 2] = np.arange(T) * speed
    return pose[None] + shift


def test_plot_coords_is_a_rotation_with_y_up():
    # Y up must become matplotlib's Z; a mirror (det -1) would swap left and right.
    basis = render._plot_coords(np.eye(3))
    assert np.allclose(basis[1], [0, 0, 1])
    assert np.isclose(np.linalg.det(basis), 1.0)


def test_gif_frame_count_header_and_orientation(tmp_path):
    out = render_motions([walk(20)], tmp_path / "walk.gif", titles=["walk"], width=160, dpi=40)
    assert out == tmp_path / "walk.gif"
    assert out.read_bytes()[:6] == b"GIF89a"
    with Image.open(out) as im:
        assert im.n_frames == 20
        assert im.info["duration"] == 50  # 20 fps
        assert im.size[0] == 160 and im.size[1] % 16 == 0
        im.seek(0)
        first = np.asarray(im.convert("RGB"))
        im.seek(19)
        last = np.asarray(im.convert("RGB"))
    first, last = first[:-20], last[:-20]  # drop the footer: its legend uses the limb colours
    _assert_upright_and_handed(first)
    # walking +Z (its facing) brings the body towards the camera: lower in the picture.
    # With the left arm on the right this rules out a mirrored drawing seen from behind.
    assert _leg_row(last) > _leg_row(first) + 5
    assert [p.name for p in tmp_path.iterdir()] == ["walk.gif"]  # no temporaries left


def test_mp4_side_by_side_holds_last_frame(tmp_path):
    out = render_motions(
        [walk(20), walk(12)], tmp_path / "two.mp4", titles=["a", "b"], caption="two walks",
        width=160, dpi=40,
    )  # fmt: skip
    data = out.read_bytes()
    assert data[4:8] == b"ftyp"
    n_frames, secs = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert n_frames == 20 and secs == pytest.approx(1.0, abs=0.06)
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["size"][0] == 320 and meta["fps"] == pytest.approx(20.0)
    reader.close()


def test_shorter_motion_holds_last_frame():
    long, short = walk(10), walk(4) + 1.0
    fig, panels, _, _ = render._animation_figure([long, short], ["", ""], None, 120, 40.0, True)
    panels[1].show(9)
    xs, ys, zs = panels[1].limbs[0].get_data_3d()
    chain = list(render.KINEMATIC_CHAINS[0])
    last = short[-1, chain]
    # expected drawing coordinates of the last frame: (x, -z, y)
    assert np.allclose(xs, last[:, 0]) and np.allclose(ys, -last[:, 2])
    assert np.allclose(zs, last[:, 1])


def test_contact_sheet_size_and_orientation(tmp_path):
    motions = [walk(30), walk(15)]
    out = render_contact_sheet(motions, tmp_path / "sheet.png", 3, ["first", "second"],
                               cell=100, dpi=40, caption="two")  # fmt: skip
    with Image.open(out) as im:
        assert im.format == "PNG"
        # 3 cells of 100 px; 2 rows of 100 + 100 // 5 px; caption band 100 // 4
        assert im.size == (300, 2 * 120 + 25)
    single = render_contact_sheet([t_pose()[None]], tmp_path / "one.png", 1, cell=240, dpi=60)
    with Image.open(single) as im:
        _assert_upright_and_handed(np.asarray(im.convert("RGB")))


def test_long_travel_follows_the_body():
    # 40 m of travel: a static box would shrink the body to nothing.
    view = render._View([walk(200, speed=0.2)], follow=None)
    assert view.follow and view.span < 3.0
    assert not render._View([walk(20, speed=0.01)], follow=None).follow


@pytest.mark.parametrize("name", ["x.avi", "x.png", "x"])
def test_unknown_extension(tmp_path, name):
    with pytest.raises(MosaError) as e:
        render_motions([walk(3)], tmp_path / name)
    assert ".mp4" in e.value.hint and ".gif" in e.value.hint
    assert not list(tmp_path.iterdir())


def test_bad_inputs(tmp_path):
    with pytest.raises(MosaError, match=r"\(T, 22, 3\)"):
        render_motions([np.zeros((5, 21, 3))], tmp_path / "a.gif")
    bad = walk(5)
    bad[2, 3, 1] = np.nan
    with pytest.raises(MosaError, match="NaN"):
        render_motions([bad], tmp_path / "a.gif")
    with pytest.raises(MosaError, match="titles"):
        render_motions([walk(3)], tmp_path / "a.gif", titles=["a", "b"])
    with pytest.raises(MosaError, match="PNG"):
        render_contact_sheet([walk(3)], tmp_path / "a.jpg")
    assert not list(tmp_path.iterdir())


def test_failure_mid_render_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = render._pixels

    def failing(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(*args)

    monkeypatch.setattr(render, "_pixels", failing)
    for name in ("a.mp4", "a.gif"):
        calls["n"] = 0
        with pytest.raises(RuntimeError):
            render_motions([walk(6)], tmp_path / name, width=96, dpi=30)
    assert not list(tmp_path.iterdir())
