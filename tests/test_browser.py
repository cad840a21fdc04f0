"""The web page in a real browser: Debian's chromium driven by Playwright against a live server.

Types a prompt, generates, checks the three.js canvas shows a moving two-coloured skeleton,
scrubs the coarse-to-fine previews, edits a span and downloads BVH and NPY.
Skipped (with the reason) only when chromium or playwright is missing.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_models import write_tiny_pipeline

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
     if p and os.path.exists(p)),
    None,
)  # fmt: skip
if CHROMIUM is None:
    pytest.skip(
        "chromium not found (apt-get install -y chromium chromium-driver)", allow_module_level=True
    )

CHROME_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    # software WebGL (SwiftShader) for three.js on machines without a GPU
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]  # fmt: skip
LEFT_RGB, RIGHT_RGB = (255, 122, 69), (63, 182, 255)  # app.js COLORS.left / .right


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    import uvicorn

    from mosa.loading import load
    from mosa.serve.app import create_app

    torch.set_num_threads(1)
    # MOSA_WEB_CHECKPOINT: run the page against a real checkpoint (for the docs screenshot)
    ckpt = os.environ.get("MOSA_WEB_CHECKPOINT") or write_tiny_pipeline(
        tmp_path_factory.mktemp("ckpt")
    )
    pipe = load(ckpt, "cpu")
    app = create_app(pipe, batch_window_ms=5)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def page(server_url, tmp_path_factory):
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROME_ARGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 760},
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server_url + "/")
        page.wait_for_function("window.mosa && window.mosa.ready", timeout=20_000)
        page.errors = errors
        yield page
        context.close()


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 60) -> int:
    """Pixels within ``tol`` (sum of channel differences) of a colour (shading varies)."""
    return int((np.abs(img - np.asarray(rgb)).sum(-1) < tol).sum())


def test_generate_and_play(page):
    page.fill("#prompt", "a person walks forward happily")
    page.fill("#seed", "3")
    page.click("#generate")
    played = "window.mosa.samples.length > 0 && window.mosa.framesShown > 3"
    page.wait_for_function(played, timeout=60_000)
    assert page.errors == []
    assert "error" not in (page.get_attribute("#status", "class") or "")
    canvas = page.locator("#viewer canvas")
    first = _pixels(canvas.screenshot())
    # not blank: a lit floor grid and both body sides in their own colours
    assert first.std() > 5
    assert _near(first, LEFT_RGB) > 30 and _near(first, RIGHT_RGB) > 30
    f0 = page.evaluate("window.mosa.frame")
    page.wait_for_function(f"Math.abs(window.mosa.frame - {f0}) >= 6", timeout=20_000)
    second = _pixels(canvas.screenshot())
    changed = (np.abs(first - second).sum(-1) > 30).mean()
    assert changed > 0.0005, f"only {changed:.5f} of the pixels changed between frames"
    shot = os.environ.get("MOSA_WEB_SCREENSHOT")
    if shot:
        page.screenshot(path=shot)


def test_scale_previews(page):
    k = page.evaluate("window.mosa.samples[0].previews.length")
    assert k == page.evaluate("window.mosa.info.model.num_scales")
    page.click("#play")  # pause
    page.evaluate("document.getElementById('scale').value = 0")
    page.dispatch_event("#scale", "input")
    assert page.evaluate("window.mosa.scale") == 0
    assert page.input_value("#scale") == "0"
    assert "1/" in page.text_content("#scale-out")


def test_downloads(page, tmp_path):
    with page.expect_download() as d:
        page.click("#download-bvh")
    bvh = Path(d.value.path()).read_text()
    assert bvh.startswith("HIERARCHY")
    assert d.value.suggested_filename.endswith(".bvh")
    with page.expect_download() as d:
        page.click("#download-npy")
    arr = np.load(d.value.path())
    sent = np.asarray(page.evaluate("window.mosa.samples[window.mosa.current].joints"))
    assert arr.dtype == np.float32 and arr.shape == sent.shape == (len(sent), 22, 3)
    np.testing.assert_allclose(arr, sent, atol=1e-6)


def test_span_edit(page):
    if not page.evaluate("window.mosa.info.model.edit"):
        pytest.skip("mosa.edit.edit_span is not available")
    before = page.evaluate("window.mosa.samples[window.mosa.current].joints")
    box = page.locator("#timeline").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.3 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.5 * box["width"], y, steps=5)
    page.mouse.move(box["x"] + 0.7 * box["width"], y, steps=5)
    page.mouse.up()
    span = page.evaluate("window.mosa.span")
    assert span is not None and 0 < span["start"] < span["end"]
    page.click("#edit")
    page.wait_for_function("document.getElementById('status').textContent.includes('span')")
    page.wait_for_function("!window.mosa.busy", timeout=60_000)
    status = page.text_content("#status")
    assert "error" not in (page.get_attribute("#status", "class") or ""), status
    after = np.asarray(page.evaluate("window.mosa.samples[window.mosa.current].joints"))
    before = np.asarray(before)
    # a new motion of about the same length (edits drop at most a token's worth of frames);
    # which frames are kept is checked against a real motion in test_serve.py
    assert after.shape[1:] == (22, 3) and len(before) - 8 <= len(after) <= len(before) + 4
    assert np.isfinite(after).all()
    assert np.abs(after[: len(before)] - before[: len(after)]).max() > 1e-3


def test_sequence_timeline(page):
    """Parts added from the prompt, a 12 s take (longer than the tiny generator's 9.8 s, so a
    span edit sends a window of it), each part's span on the bar, one part regenerated."""
    if not page.evaluate("window.mosa.info.model.sequence"):
        pytest.skip("the server has no /api/sequence")
    page.evaluate("document.getElementById('auto-length').checked = false")
    texts = ["a person walks forward", "a person waves", "a person bows", "a person turns"]
    for text in texts:
        page.fill("#prompt", text)
        page.evaluate("document.getElementById('seconds').value = 3")
        page.dispatch_event("#seconds", "input")
        page.click("#seq-add")
    assert page.locator("#seq-parts .seq-row").count() == 4
    row = page.locator("#seq-parts .seq-row").nth(1)
    row.locator(".seq-text").fill("a person waves with the right hand")  # parts stay editable
    texts[1] = "a person waves with the right hand"
    page.fill("#seed", "5")
    page.click("#seq-generate")
    page.wait_for_function("window.mosa.parts && window.mosa.parts.length === 4 && "
                           "!window.mosa.busy", timeout=60_000)  # fmt: skip
    assert page.errors == []
    status = page.text_content("#status")
    assert "error" not in (page.get_attribute("#status", "class") or ""), status
    parts = page.evaluate("window.mosa.parts")
    assert [(p["text"], p["start"], p["end"]) for p in parts] == [
        (t, 3.0 * i, 3.0 * (i + 1)) for i, t in enumerate(texts)
    ]
    before = np.asarray(page.evaluate("window.mosa.samples[0].joints"))
    assert before.shape == (240, 22, 3)
    shot = os.environ.get("MOSA_WEB_SEQUENCE_SCREENSHOT")  # for docs/sequences.md
    if shot:
        page.locator("#parts .part").nth(1).click()
        page.screenshot(path=shot)
    boxes = [page.locator("#parts .part").nth(i).bounding_box() for i in range(4)]
    assert all(a["x"] < b["x"] for a, b in zip(boxes, boxes[1:], strict=False))  # in order
    assert abs(boxes[1]["width"] - boxes[2]["width"]) < 2  # equal parts, equal boxes

    page.locator("#parts .part").nth(2).click()
    assert page.evaluate("window.mosa.selectedPart") == 2
    assert page.evaluate("window.mosa.span") == {"start": 6.0, "end": 9.0}
    assert page.input_value("#prompt") == texts[2]
    page.fill("#prompt", "a person kicks")
    old_bvh = page.evaluate("window.mosa.samples[0].bvh")
    page.click("#edit")
    page.wait_for_function("document.getElementById('status').textContent.includes('span')")
    page.wait_for_function("!window.mosa.busy", timeout=60_000)
    status = page.text_content("#status")
    assert "error" not in (page.get_attribute("#status", "class") or ""), status
    after = np.asarray(page.evaluate("window.mosa.samples[0].joints"))
    assert after.shape == before.shape and np.isfinite(after).all()
    # the window sent is the generator's 197 frames around the span, [43, 240): before it
    # the take is as it was, the span itself is new
    np.testing.assert_allclose(after[:43], before[:43], atol=1e-9)
    assert np.abs(after[120:180] - before[120:180]).max() > 1e-3
    parts = page.evaluate("window.mosa.parts")
    assert len(parts) == 4 and parts[2]["text"] == "a person kicks"
    assert page.locator("#parts .part").count() == 4
    bvh = page.evaluate("window.mosa.samples[0].bvh")
    assert bvh != old_bvh and "Frames: 240" in bvh
    assert page.errors == []
