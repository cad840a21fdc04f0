"""Stick-figure rendering of 22-joint motions: animated ``.mp4`` / ``.gif`` and PNG contact sheets.

Input joints are ``(T, 22, 3)`` arrays in metres, Y up, in the joint order of
``mosa.motion.skeleton``. Matplotlib's 3D axes have Z up, so points are drawn at
``(x, -z, y)``: Y becomes the vertical and the frame stays right-handed (no mirror image).
With the default camera a body facing +Z faces the viewer, its left side on the right of
the picture. Left limbs are blue, right limbs red, the spine grey; the root's path is
drawn on the floor in green.

Everything is drawn once on a matplotlib ``Figure`` with the Agg canvas (no display, no
pyplot state); each frame only moves line data, then the canvas is read back as pixels.
"""

from __future__ import annotations

import errno
import math
import os
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import imageio_ffmpeg
import mpl_toolkits.mplot3d  # noqa: F401  (registers the "3d" projection)
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Line3DCollection
from PIL import Image

from mosa import limits
from mosa.errors import MosaError
from mosa.io import atomic_path
from mosa.motion.skeleton import FPS, JOINT_NAMES, KINEMATIC_CHAINS, NUM_JOINTS

VIDEO_EXTENSIONS = (".mp4", ".gif")

LEFT_COLOURS = ("#1f4fb4", "#3d8bf0")  # darker for legs, lighter for arms
RIGHT_COLOURS = ("#b8211d", "#f0603d")
CENTRE_COLOUR = "#404040"
TRAIL_COLOUR = "#2e9e4f"
GRID_COLOUR = "#c8c8c8"
ELEV, AZIM = 18.0, -60.0  # camera: slightly above, in front and to the body's left
ZOOM = 1.3  # fill the panel: the box corners may leave it, the body stays inside


# ----------------------------------------------------------------------------- inputs


def _check_motions(motions: Sequence[np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Validate a list of ``(T_i, 22, 3)`` joint arrays; a single array is taken as one motion."""
    if isinstance(motions, np.ndarray) and motions.ndim == 3:
        motions = [motions]
    motions = list(motions)
    if not motions:
        raise MosaError("nothing to render: the list of motions is empty", "pass at least one")
    limits.check("MOSA_MAX_PANELS", len(motions), f"{len(motions)} motions to render")
    out = []
    for i, m in enumerate(motions):
        arr = np.asarray(m, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[1:] != (NUM_JOINTS, 3) or arr.shape[0] < 1:
            raise MosaError(
                f"motion {i} has shape {tuple(arr.shape)}, expected (T, {NUM_JOINTS}, 3) joints",
                "render joint positions; recover them from 263-d features with "
                "mosa.motion.features.recover_joints first",
            )
        if not np.isfinite(arr).all():
            raise MosaError(f"motion {i} contains NaN or infinite values", "check the input motion")
        limits.check("MOSA_MAX_FRAMES", len(arr), f"motion {i} has {len(arr):,} frames")
        out.append(arr)
    return out


def _check_titles(titles: Sequence[str] | None, n: int) -> list[str]:
    if titles is None:
        return [""] * n
    titles = [str(t) for t in titles]
    if len(titles) != n:
        raise MosaError(f"got {len(titles)} titles for {n} motions", "give one title per motion")
    return titles


def _plot_coords(joints: np.ndarray) -> np.ndarray:
    """``(..., 3)`` Y-up points -> matplotlib's Z-up frame ``(x, -z, y)`` (a proper rotation)."""
    return np.stack([joints[..., 0], -joints[..., 2], joints[..., 1]], axis=-1)


def _chain_colours() -> list[str]:
    """One colour per kinematic chain, by side, taken from the joint names."""
    colours, seen = [], {"left": 0, "right": 0}
    for chain in KINEMATIC_CHAINS:
        names = [JOINT_NAMES[j] for j in chain[1:]]
        side = next((s for s in ("left", "right") if all(n.startswith(s) for n in names)), None)
        if side is None:
            colours.append(CENTRE_COLOUR)
            continue
        palette = LEFT_COLOURS if side == "left" else RIGHT_COLOURS
        colours.append(palette[min(seen[side], len(palette) - 1)])
        seen[side] += 1
    return colours


# ----------------------------------------------------------------------------- view


class _View:
    """Shared floor height and scale for all panels (metres are the same length on all axes).

    Static view: one box around everything, the same in all panels. When the motions travel
    much farther than a body is wide, that box would make the figures tiny, so the view
    follows each root instead: a box of the same size everywhere, centred on the root's
    current floor position, with the floor grid scrolling under it.
    """

    def __init__(self, motions: list[np.ndarray], follow: bool | None):
        pts = [_plot_coords(m) for m in motions]
        self.floor = float(min(p[..., 2].min() for p in pts))
        top = float(max(p[..., 2].max() for p in pts))
        lo = np.min([p[..., :2].reshape(-1, 2).min(0) for p in pts], axis=0)
        hi = np.max([p[..., :2].reshape(-1, 2).max(0) for p in pts], axis=0)
        spread = max(float(np.abs(p[..., :2] - p[:, :1, :2]).max()) for p in pts)
        self.height = max(top - self.floor, 0.3) * 1.05 + 0.05
        follow_span = max(2.0 * spread + 0.4, 0.9 * self.height)
        static_span = max(float((hi - lo).max()) + 0.4, 0.9 * self.height)
        self.follow = static_span > 2.0 * follow_span if follow is None else follow
        self.span = follow_span if self.follow else static_span
        self.centre = (lo + hi) / 2.0
        self.grid_step = _nice_step(self.span / 6.0)

    def window(self, root_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lo, hi)`` of the horizontal box shown when the root is at ``root_xy``."""
        c = root_xy if self.follow else self.centre
        return c - self.span / 2.0, c + self.span / 2.0


def _nice_step(x: float) -> float:
    """Round up to 1, 2 or 5 times a power of ten (grid spacing in metres)."""
    p = 10.0 ** math.floor(math.log10(x))
    return next(m * p for m in (1.0, 2.0, 5.0, 10.0) if m * p >= x)


def _grid_segments(lo: np.ndarray, hi: np.ndarray, step: float, z: float) -> np.ndarray:
    """Floor grid lines inside the box ``[lo, hi]``, at multiples of ``step``: ``(L, 2, 3)``."""
    xs = np.arange(math.ceil(lo[0] / step), math.floor(hi[0] / step) + 1) * step
    ys = np.arange(math.ceil(lo[1] / step), math.floor(hi[1] / step) + 1) * step
    segs = [[(x, lo[1], z), (x, hi[1], z)] for x in xs]
    segs += [[(lo[0], y, z), (hi[0], y, z)] for y in ys]
    return np.asarray(segs, dtype=np.float64).reshape(-1, 2, 3)


class _Panel:
    """One 3D axes showing one motion; ``show(f)`` moves its artists to frame ``f``."""

    def __init__(self, ax, joints: np.ndarray, view: _View, line_width: float):
        self.ax, self.view = ax, view
        self.pts = _plot_coords(joints)  # (T, 22, 3)
        self.root = self.pts[:, 0, :2]  # (T, 2)
        ax.set_axis_off()
        ax.set_box_aspect((view.span, view.span, view.height), zoom=ZOOM)
        ax.view_init(elev=ELEV, azim=AZIM)
        ax.set_autoscale_on(False)
        self.grid = Line3DCollection(np.zeros((0, 2, 3)), colors=GRID_COLOUR, linewidths=0.6)
        ax.add_collection3d(self.grid, autolim=False)
        (self.trail,) = ax.plot([], [], [], color=TRAIL_COLOUR, lw=line_width * 0.6)
        self.limbs = [
            ax.plot([], [], [], color=c, lw=line_width, solid_capstyle="round")[0]
            for c in _chain_colours()
        ]
        self._window = None
        if not view.follow:
            self._set_window(*view.window(self.root[0]))

    def _set_window(self, lo: np.ndarray, hi: np.ndarray) -> None:
        v = self.view
        self.ax.set_xlim3d(lo[0], hi[0])
        self.ax.set_ylim3d(lo[1], hi[1])
        self.ax.set_zlim3d(v.floor, v.floor + v.height)
        self.grid.set_segments(_grid_segments(lo, hi, v.grid_step, v.floor))
        self._window = (lo, hi)

    def show(self, f: int, trail: bool = True) -> None:
        f = min(f, len(self.pts) - 1)  # shorter motions hold their last frame
        if self.view.follow:
            self._set_window(*self.view.window(self.root[f]))
        p = self.pts[f]
        for line, chain in zip(self.limbs, KINEMATIC_CHAINS, strict=True):
            idx = list(chain)
            line.set_data_3d(p[idx, 0], p[idx, 1], p[idx, 2])
        if trail:
            path = self.root[: f + 1].astype(np.float64)
            lo, hi = self._window
            path[((path < lo) | (path > hi)).any(axis=1)] = np.nan  # stay inside the box
            self.trail.set_data_3d(path[:, 0], path[:, 1], np.full(len(path), self.view.floor))


# ----------------------------------------------------------------------------- layout


def _wrap(text: str, width_px: float, font_pt: float, dpi: float, max_lines: int) -> list[str]:
    """Wrap ``text`` to lines fitting ``width_px`` (approximate glyph width 0.55 em)."""
    if not text:
        return []
    chars = max(8, int(width_px / (0.55 * font_pt * dpi / 72.0)))
    lines = textwrap.wrap(text, chars)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: chars - 1].rstrip() + "…"
    return lines


def _even(px: float, multiple: int = 16) -> int:
    """Round pixel sizes up to a multiple of 16 so H.264 needs no rescaling."""
    return int(math.ceil(px / multiple) * multiple)


def _figure(width_px: int, height_px: int, dpi: float) -> Figure:
    fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _pixels(fig: Figure, width_px: int, height_px: int) -> np.ndarray:
    """The drawn canvas of ``fig`` as ``(H, W, 3)`` uint8, exactly the requested size."""
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    out = np.full((height_px, width_px, 3), 255, dtype=np.uint8)  # guard against rounding
    h, w = min(height_px, rgb.shape[0]), min(width_px, rgb.shape[1])
    out[:h, :w] = rgb[:h, :w]
    return out


# ----------------------------------------------------------------------------- animation


def render_motions(
    motions: Sequence[np.ndarray] | np.ndarray,
    out_path: str | Path,
    *,
    fps: float = FPS,
    titles: Sequence[str] | None = None,
    caption: str | None = None,
    width: int = 320,
    dpi: float = 80.0,
    trail: bool = True,
    follow: bool | None = None,
) -> Path:
    """Animate joint motions side by side and write ``out_path`` (``.mp4`` or ``.gif``).

    motions: list of ``(T_i, 22, 3)`` arrays (metres, Y up), one panel each, all at ``fps``.
        Shorter motions hold their last frame until the longest one ends.
    titles: one per motion, shown above its panel. caption: one line (wrapped) over all.
    width: pixel width of one panel (panels are square plus text bands); dpi scales text
        and lines relative to it. trail: draw each root's path on the floor.
    follow: keep each body centred and scroll the floor under it; None picks it when the
        motions travel much farther than a body is tall.
    Returns ``out_path`` as a Path. The file is written atomically.
    """
    out_path = Path(out_path)
    ext = out_path.suffix.lower()
    if ext not in VIDEO_EXTENSIONS:
        raise MosaError(
            f"cannot render to '{out_path.name}': unknown extension '{out_path.suffix}'",
            f"use one of {', '.join(VIDEO_EXTENSIONS)}",
        )
    if not fps > 0:
        raise MosaError(f"fps must be positive, got {fps}", "pass e.g. fps=20")
    motions = _check_motions(motions)
    titles = _check_titles(titles, len(motions))
    n_frames = max(len(m) for m in motions)
    if ext == ".gif":  # Pillow holds every frame of a GIF until it writes the file
        w, h = _animation_size(len(motions), titles, caption, width, dpi)
        mb = _GIF_BYTES_PER_PIXEL * n_frames * w * h / 1e6
        limits.check(
            "MOSA_MAX_GIF_MB",
            mb,
            f"a GIF of {n_frames:,} frames of {w}x{h} pixels needs about {mb:,.0f} MB of memory",
            "render an .mp4 instead (written as it is drawn), or raise the limit: "
            f"MOSA_MAX_GIF_MB={limits.round_up(mb)}",
        )
    fig, panels, clock, (w, h) = _animation_figure(motions, titles, caption, width, dpi, trail)

    # Draw the static parts (titles, caption, legend) once; each frame then restores them
    # and redraws only the panels and the clock.
    fig.canvas.draw()
    background = fig.canvas.copy_from_bbox(fig.bbox)

    def frames():
        for f in range(n_frames):
            fig.canvas.restore_region(background)
            for p in panels:
                p.show(f, trail)
                fig.draw_artist(p.ax)
            clock.set_text(f"{f / fps:5.2f} s   frame {f + 1}/{n_frames}")
            fig.draw_artist(clock)
            yield _pixels(fig, w, h)

    with atomic_path(out_path) as tmp:
        if ext == ".mp4":
            _write_mp4(tmp, frames(), (w, h), fps)
        else:
            _write_gif(tmp, frames(), fps)
    return out_path


# bytes a GIF frame costs per pixel while Pillow collects them (a palette image, its copy)
_GIF_BYTES_PER_PIXEL = 2.0


def _layout(n, titles, caption, width, dpi):
    """Text and pixel sizes of the animation: ``(title_lines, cap_lines, line_px, foot_h,
    (w, h))``."""
    font = 9.0
    line_px = font * 1.35 * dpi / 72.0
    title_lines = [_wrap(t, width * 0.95, font, dpi, 3) for t in titles]
    cap_lines = _wrap(caption or "", n * width * 0.95, font + 1, dpi, 3)
    title_h = max(len(t) for t in title_lines) * line_px + (4 if any(title_lines) else 0)
    cap_h = len(cap_lines) * line_px * 1.1 + (6 if cap_lines else 0)
    foot_h = line_px + 6
    size = _even(n * width), _even(width + title_h + cap_h + foot_h)
    return title_lines, cap_lines, line_px, foot_h, size


def _animation_size(n, titles, caption, width, dpi) -> tuple[int, int]:
    return _layout(n, titles, caption, width, dpi)[-1]


def _animation_figure(motions, titles, caption, width, dpi, trail):
    """Build the figure: panels in a row, title band above, caption on top, footer below."""
    n = len(motions)
    font = 9.0
    title_lines, cap_lines, line_px, foot_h, (w, h) = _layout(n, titles, caption, width, dpi)
    fig = _figure(w, h, dpi)
    view = _View(motions, follow=None)
    panels = []
    for i, (m, t) in enumerate(zip(motions, title_lines, strict=True)):
        rect = (i * width / w, foot_h / h, width / w, width / h)
        ax = fig.add_axes(rect, projection="3d")
        panels.append(_Panel(ax, m, view, line_width=2.5))
        if t:
            top = (foot_h + width + 2) / h
            fig.text((i + 0.5) * width / w, top, "\n".join(t), ha="center", va="bottom",
                     fontsize=font)  # fmt: skip
    if cap_lines:
        fig.text(0.5, 1 - 3 / h, "\n".join(cap_lines), ha="center", va="top",
                 fontsize=font + 1, weight="bold")  # fmt: skip
    clock = fig.text(0.01, 3 / h, "", fontsize=font - 1, family="monospace", color="#555555")
    fig.text(0.99, 3 / h, "right", ha="right", fontsize=font - 1, color=RIGHT_COLOURS[0])
    left_x = 0.99 - 3.5 * line_px / w
    fig.text(left_x, 3 / h, "left", ha="right", fontsize=font - 1, color=LEFT_COLOURS[0])
    return fig, panels, clock, (w, h)


def _write_mp4(path: Path, frames, size: tuple[int, int], fps: float) -> None:
    """H.264 / yuv420p through imageio-ffmpeg's bundled ffmpeg binary."""
    writer = imageio_ffmpeg.write_frames(
        str(path), size, fps=fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
        quality=7, macro_block_size=16, ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart", "-f", "mp4"],
    )  # fmt: skip
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)  # ffmpeg inherits our stderr: give it the log instead
        try:
            writer.send(None)  # start ffmpeg
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        frame_locals = getattr(getattr(writer, "gi_frame", None), "f_locals", None) or {}
        process = frame_locals.get("p")  # imageio-ffmpeg does not check ffmpeg's exit status
        failed = False
        try:
            for frame in frames:
                try:
                    writer.send(np.ascontiguousarray(frame))
                except OSError:  # ffmpeg died: a full disk, a failed write
                    failed = True
                    break
        finally:
            writer.close()
            log.seek(0)
            said = log.read().decode("utf-8", "replace")
    if failed or (process is not None and process.poll() not in (0, None)):
        code = next((c for c, text in _FFMPEG_ERRORS if text in said), None)
        if code is None:
            code = errno.ENOSPC if _free_bytes(path.parent) < (1 << 20) else errno.EIO
        raise OSError(code, f"{os.strerror(code)} (ffmpeg could not write the video)", str(path))
    if said.strip():  # warnings of a video that was written: show them
        sys.stderr.write(said)


# what ffmpeg says -> the errno of a failed write
_FFMPEG_ERRORS = (
    (errno.ENOSPC, "No space left on device"),
    (errno.EDQUOT, "Disk quota exceeded"),
    (errno.EFBIG, "File too large"),
    (errno.EROFS, "Read-only file system"),
    (errno.EACCES, "Permission denied"),
)


def _free_bytes(folder: Path) -> float:
    try:
        st = os.statvfs(folder)
    except OSError:
        return float("inf")
    return st.f_bavail * st.f_frsize


def _write_gif(path: Path, frames, fps: float) -> None:
    """Palette GIF through Pillow (a matplotlib dependency), looping forever."""
    images = [
        Image.fromarray(f).quantize(colors=128, method=Image.Quantize.FASTOCTREE) for f in frames
    ]
    # GIF delays are in 1/100 s; Pillow merges identical consecutive frames, which the clock
    # text in the footer prevents.
    images[0].save(
        path, format="GIF", save_all=True, append_images=images[1:], loop=0,
        duration=max(20, round(1000.0 / fps)), optimize=False, disposal=1,
    )  # fmt: skip


# ----------------------------------------------------------------------------- contact sheet


def render_contact_sheet(
    motions: Sequence[np.ndarray] | np.ndarray,
    out_png: str | Path,
    frames_per_motion: int = 6,
    titles: Sequence[str] | None = None,
    *,
    fps: float = FPS,
    cell: int = 160,
    dpi: float = 80.0,
    caption: str | None = None,
) -> Path:
    """Write a PNG grid of key frames: one row per motion, ``frames_per_motion`` columns.

    Key frames are evenly spaced from the first to the last frame; each cell is centred on
    the body with the same scale everywhere and shows the root path walked so far.
    The image is ``frames_per_motion * cell`` pixels wide and
    ``len(motions) * (cell + cell // 5) + (cell // 4 if caption else 0)`` pixels tall: each
    row has a title band of ``cell // 5`` pixels above its cells.
    """
    out_png = Path(out_png)
    if out_png.suffix.lower() != ".png":
        raise MosaError(
            f"a contact sheet is a PNG image, got '{out_png.name}'", "give a path ending in .png"
        )
    if frames_per_motion < 1:
        raise MosaError(f"frames_per_motion must be >= 1, got {frames_per_motion}")
    motions = _check_motions(motions)
    titles = _check_titles(titles, len(motions))
    band, cap_h = cell // 5, (cell // 4 if caption else 0)
    w = frames_per_motion * cell
    h = len(motions) * (cell + band) + cap_h
    fig = _figure(w, h, dpi)
    view = _View(motions, follow=True)  # key frames: always centre the body
    font = 8.0
    for r, (m, title) in enumerate(zip(motions, titles, strict=True)):
        row_top = h - cap_h - r * (cell + band)
        for c, f in enumerate(np.linspace(0, len(m) - 1, frames_per_motion).round().astype(int)):
            rect = (c * cell / w, (row_top - band - cell) / h, cell / w, cell / h)
            panel = _Panel(fig.add_axes(rect, projection="3d"), m, view, 2.0)
            panel.show(int(f))
            fig.text((c * cell + 3) / w, (row_top - band - cell + 3) / h, f"{f / fps:.1f} s",
                     fontsize=font - 1, color="#666666")  # fmt: skip
        line = _wrap(title, w * 0.98, font, dpi, 1)
        if line:
            fig.text(4 / w, (row_top - band / 2) / h, line[0], va="center", fontsize=font)
    if caption:
        line = _wrap(caption, w * 0.98, font + 1, dpi, 1)
        fig.text(0.5, 1 - cap_h / 2 / h, line[0], ha="center", va="center", fontsize=font + 1,
                 weight="bold")  # fmt: skip
    fig.canvas.draw()
    pixels = _pixels(fig, w, h)
    with atomic_path(out_png) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return out_png
