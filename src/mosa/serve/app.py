"""``mosa serve``: the web page and HTTP API (FastAPI on uvicorn; OpenAPI docs at /docs).

    POST /api/generate  {"text", "seconds", "seed", "num_samples", "cfg", "previews"}
    POST /api/edit      {"joints", "text", "start", "end", "seed"}  (span regeneration)
    GET  /api/health    model info, queue depth, batching counters
    GET  /api/examples  example prompts
    GET  /              the page (three.js viewer, static files inside the package)

Concurrent generate requests are micro-batched (see ``batcher.MicroBatcher``) into one
generator call. A full queue answers 503 with Retry-After; bad input answers 422 with a
message and a hint; nothing a client sends stops the server.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import numbers
import socket
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from mosa.errors import MosaError
from mosa.pipeline import Pipeline
from mosa.requests import MAX_SEED
from mosa.serve.batcher import MicroBatcher, QueueFull
from mosa.serve.engine import EXAMPLES, MAX_SAMPLES, Engine, result_json, skeleton_info

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BATCH_WINDOW_MS = 60_000  # a longer wait for company would stall every request
log = logging.getLogger("mosa.serve")


# a seed is a JSON integer (not true, 1.5 or "7"); its range is the library's (check_seed)
_SEED = f"0-{MAX_SEED}"


class GenerateRequest(BaseModel):
    text: str = Field(max_length=10_000, description="what the motion shows (<= 300 characters)")
    seconds: float | None = Field(None, description="length; null: the length estimator picks")
    seed: int | None = Field(
        None, strict=True, description=f"seed of the first sample ({_SEED}); null: random"
    )
    num_samples: int = Field(1, ge=1, le=MAX_SAMPLES, description="motions for this prompt")
    cfg: float | None = Field(None, description="guidance scale; null: checkpoint default")
    previews: bool = Field(False, description="add joints after each scale (coarse-to-fine)")
    bvh: bool = Field(True, description="include each motion as BVH text")


class EditRequest(BaseModel):
    joints: list[list[list[float]]] = Field(description="source motion (T, 22, 3), metres")
    text: str = Field(max_length=10_000, description="what the regenerated span shows")
    start: float = Field(description="span start, seconds")
    end: float = Field(description="span end, seconds")
    seed: int | None = Field(None, strict=True, description=f"seed ({_SEED}); null: random")


def create_app(
    pipe: Pipeline,
    *,
    max_batch: int = 16,
    batch_window_ms: float = 10.0,
    queue_size: int = 64,
    checkpoint: str | None = None,
) -> FastAPI:
    """The FastAPI app serving ``pipe``. Its lifespan starts and stops the batcher."""
    check_settings(max_batch, batch_window_ms, queue_size)
    engine = Engine(pipe, checkpoint=checkpoint)
    batcher = MicroBatcher(
        engine.process,
        max_batch=int(max_batch),
        window_s=batch_window_ms / 1000,
        queue_size=int(queue_size),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="mosa",
        summary="Text to 3D human motion (MoSa): generate, preview, edit, download BVH",
        lifespan=lifespan,
    )
    app.state.engine, app.state.batcher = engine, batcher
    _add_error_handlers(app, batcher)

    @app.post("/api/generate")
    async def generate(req: GenerateRequest) -> JSONResponse:
        """Generate ``num_samples`` motions for one prompt (micro-batched with other requests)."""
        job = engine.generate_job(
            req.text, req.seconds, req.seed, req.num_samples, req.cfg, req.previews
        )
        result = await batcher.submit(job)
        payload = await run_in_threadpool(result_json, result, job.text, req.bvh)
        payload["vocabulary"] = await run_in_threadpool(engine.vocabulary, job.text)
        return JSONResponse(payload)

    @app.post("/api/edit")
    async def edit(req: EditRequest) -> JSONResponse:
        """Regenerate the span ``start``-``end`` seconds of ``joints`` from ``text``."""
        job = engine.edit_job(req.joints, req.text, req.start, req.end, req.seed)
        result = await batcher.submit(job, batchable=False)
        payload = await run_in_threadpool(result_json, result, job.text)
        payload["vocabulary"] = await run_in_threadpool(engine.vocabulary, job.text)
        return JSONResponse(payload)

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """Model info, queue depth and batching counters."""
        return {
            "status": "ok",
            "model": engine.info(),
            "skeleton": skeleton_info(),
            "queue": {
                "depth": batcher.depth,
                "size": batcher.queue_size,
                "max_batch": batcher.max_batch,
                "batch_window_ms": batcher.window_s * 1000,
            },
            "stats": {**batcher.stats.as_dict(), "generator_calls": engine.generator_calls},
        }

    @app.get("/api/examples")
    async def examples() -> dict[str, list[str]]:
        """Example prompts for the page."""
        return {"examples": list(EXAMPLES)}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def check_settings(max_batch: Any, batch_window_ms: Any, queue_size: Any) -> None:
    """``MosaError`` naming the flag unless the batching settings are usable: whole numbers
    >= 1 for ``max_batch`` and ``queue_size``, a number 0-MAX_BATCH_WINDOW_MS for the window."""
    for name, value in (("max-batch", max_batch), ("queue-size", queue_size)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise MosaError(
                f"--{name} must be a whole number >= 1, got {value!r}", f"pass --{name} 1 or more"
            )
    window = batch_window_ms
    if (
        isinstance(window, bool)
        or not isinstance(window, numbers.Real)
        or not (math.isfinite(window) and 0 <= window <= MAX_BATCH_WINDOW_MS)
    ):
        raise MosaError(
            f"--batch-window-ms must be a number 0-{MAX_BATCH_WINDOW_MS}, got {window!r}",
            "pass e.g. --batch-window-ms 10",
        )


def _add_error_handlers(app: FastAPI, batcher: MicroBatcher) -> None:
    @app.exception_handler(MosaError)
    async def _mosa_error(request: Request, exc: MosaError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "hint": exc.hint}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "msg": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field'] or 'body'}: {e['msg']}" for e in errors[:5])
        return JSONResponse(
            {"detail": detail, "hint": "see /docs for the request schema", "errors": errors[:20]},
            status_code=422,
        )

    @app.exception_handler(QueueFull)
    async def _busy(request: Request, exc: QueueFull) -> JSONResponse:
        return JSONResponse(
            {"detail": "the server is busy (request queue full)", "hint": "retry shortly"},
            status_code=503,
            headers={"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", request.url.path)
        return JSONResponse(
            {"detail": f"internal error: {type(exc).__name__}: {exc}", "hint": None},
            status_code=500,
        )


# -- address check (before the slow model load) ----------------------------------------------


def check_address(host: str, port: int) -> None:
    """Raise ``MosaError`` unless ``host:port`` can be bound now; warn when not loopback."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise MosaError(f"--host {host}: {exc}", "pass an address, e.g. 127.0.0.1") from exc
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind(addr)
        except OSError as exc:
            raise MosaError(
                f"cannot listen on {host}:{port}: {exc.strerror}",
                "pick another --port (or stop the program using it)",
            ) from exc
    try:
        loopback = ipaddress.ip_address(addr[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(
            f"mosa: warning: listening on {host}, reachable from other machines; the server "
            "has no authentication",
            file=sys.stderr,
        )
