"""Side-by-side GIFs with marked frames: two motions rendered in sync (``render_motions``),
a timeline strip under them (grey unmarked frames, orange marked ones, a black play head)
and an orange frame round the second panel while marked frames play. The docs' editing
examples mark the generated frames of an edit next to its source (``render_pair``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageSequence

from mosa.io import atomic_path
from mosa.motion.render import render_motions

GENERATED_COLOUR = (240, 140, 20)  # orange: marked (generated) frames
KEPT_COLOUR = (185, 185, 185)  # grey: the others (kept source frames)
STRIP = 18  # pixels of timeline strip added under each GIF


def resample(joints: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear resampling in time of ``(T, 22, 3)`` to ``fps_out``: ``(round(T fps_out /
    fps_in), 22, 3)``; frame k is at ``k / fps_out`` seconds."""
    n = max(1, round(len(joints) * fps_out / fps_in))
    t = np.minimum(np.arange(n) * fps_in / fps_out, len(joints) - 1)
    i0 = np.floor(t).astype(int)
    i1 = np.minimum(i0 + 1, len(joints) - 1)
    w = (t - i0)[:, None, None]
    return ((1 - w) * joints[i0] + w * joints[i1]).astype(np.float32)


def frames_at(mask: np.ndarray, fps_in: float, n: int, fps_out: float) -> np.ndarray:
    """``mask (T,)`` sampled at ``n`` frames of ``fps_out`` (nearest source frame)."""
    t = np.minimum(np.round(np.arange(n) * fps_in / fps_out).astype(int), len(mask) - 1)
    return mask[t]


def render_pair(
    before: np.ndarray,
    after: np.ndarray,
    generated: np.ndarray,
    out: Path,
    *,
    fps: float,
    gif_fps: float,
    titles: Sequence[str],
    caption: str,
    width: int,
    dpi: float,
) -> Path:
    """``before`` and ``after`` ``(T, 22, 3)`` side by side (``render_motions``) at
    ``gif_fps``, then a timeline strip under them (grey kept, orange ``generated (T,)``
    frames, a black play head) and an orange frame round the ``after`` panel while generated
    frames play."""
    out = Path(out)
    b, a = resample(before, fps, gif_fps), resample(after, fps, gif_fps)
    marks = frames_at(generated, fps, len(a), gif_fps)
    tmp_gif = out.with_name(f".{out.stem}.plain.gif")
    try:
        render_motions(
            [b, a], tmp_gif, fps=gif_fps, titles=titles, caption=caption, width=width, dpi=dpi
        )
        mark_gif(tmp_gif, out, marks, (width, 2 * width), gif_fps)
    finally:
        tmp_gif.unlink(missing_ok=True)
    return out


def mark_gif(src: Path, out: Path, generated: np.ndarray, panel: tuple[int, int], fps: float):
    """Add the timeline strip and the generated-frame highlight (round the pixel columns
    ``panel = (x0, x1)``) to every frame of the GIF ``src``; write the GIF ``out``."""
    font = ImageFont.load_default(size=10)
    frames = []
    with Image.open(src) as im:
        for k, frame in enumerate(ImageSequence.Iterator(im)):
            rgb = frame.convert("RGB")
            W, H = rgb.size
            img = Image.new("RGB", (W, H + STRIP), "white")
            img.paste(rgb, (0, 0))
            draw = ImageDraw.Draw(img)
            now = bool(generated[min(k, len(generated) - 1)])
            if now:
                draw.rectangle(
                    (panel[0] + 1, 1, panel[1] - 2, H - 2), outline=GENERATED_COLOUR, width=3
                )
            _timeline(draw, generated, k, (W, H), font)
            frames.append(img.quantize(colors=128, method=Image.Quantize.FASTOCTREE))
    with atomic_path(out) as tmp:
        frames[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=frames[1:],
            loop=0,
            duration=max(20, round(1000.0 / fps)),
            optimize=False,
            disposal=1,
        )


def _timeline(draw: ImageDraw.ImageDraw, generated: np.ndarray, k: int, size, font) -> None:
    W, H = size
    draw.text((6, H + 3), "generated", fill=GENERATED_COLOUR, font=font)
    draw.text((66, H + 3), "kept", fill=(120, 120, 120), font=font)
    x0, x1, y0, y1 = 96, W - 8, H + 5, H + STRIP - 5
    n = len(generated)
    for i in range(n):  # one cell per frame (runs of equal cells merge visually)
        colour = GENERATED_COLOUR if generated[i] else KEPT_COLOUR
        draw.rectangle((x0 + (x1 - x0) * i / n, y0, x0 + (x1 - x0) * (i + 1) / n, y1), fill=colour)
    x = x0 + (x1 - x0) * (k + 0.5) / n
    draw.rectangle((x - 1, y0 - 3, x + 1, y1 + 3), fill=(0, 0, 0))
