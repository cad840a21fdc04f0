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

import argparse
import ipaddress
import logging
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
from mosa.generate import Pipeline, add_pipeline_arguments
from mosa.serve.batcher import MicroBatcher, QueueFull
from mosa.serve.engine import (
    EXAMPLES,
    MAX_SAMPLES,
    EditUnavailable,
    Engine,
    result_json,
    skeleton_info,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
log = logging.getLogger("mosa.serve")


class GenerateRequest(BaseModel):
    text: str = Field(max_length=10_000, description="what the motion shows (<= 300 characters)")
    seconds: float | None = Field(None, description="length; null: the length estimator picks")
    seed: int | None = Field(None, description="seed of the first sample; null: random")
    num_samples: int = Field(1, ge=1, le=MAX_SAMPLES, description="motions for this prompt")
    cfg: float | None = Field(None, description="guidance scale; null: checkpoint default")
    previews: bool = Field(False, description="add joints after each scale (coarse-to-fine)")
    bvh: bool = Field(True, description="include each motion as BVH text")


class EditRequest(BaseModel):
    joints: list[list[list[float]]] = Field(description="source motion (T, 22, 3), metres")
    text: str = Field(max_length=10_000, description="what the regenerated span shows")
    start: float = Field(description="span start, seconds")
    end: float = Field(description="span end, seconds")
    seed: int | None = None


def create_app(
    pipe: Pipeline,
    *,
    max_batch: int = 16,
    batch_window_ms: float = 10.0,
    queue_size: int = 64,
    checkpoint: str | None = None,
) -> FastAPI:
    """The FastAPI app serving ``pipe``. Its lifespan starts and stops the batcher."""
    for name, value, low in (("max-batch", max_batch, 1), ("queue-size", queue_size, 1)):
        if int(value) < low:
            raise MosaError(f"--{name} must be >= {low}, got {value}", f"pass --{name} 1 or more")
    if batch_window_ms < 0:
        raise MosaError(f"--batch-window-ms must be >= 0, got {batch_window_ms}", "pass e.g. 10")
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
        return JSONResponse(await run_in_threadpool(result_json, result, job.text, req.bvh))

    @app.post("/api/edit")
    async def edit(req: EditRequest) -> JSONResponse:
        """Regenerate the span ``start``-``end`` seconds of ``joints`` from ``text``."""
        job = engine.edit_job(req.joints, req.text, req.start, req.end, req.seed)
        result = await batcher.submit(job, batchable=False)
        return JSONResponse(await run_in_threadpool(result_json, result, job.text))

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

    @app.exception_handler(EditUnavailable)
    async def _no_edit(request: Request, exc: EditUnavailable) -> JSONResponse:
        return JSONResponse(
            {
                "detail": "span editing is not available in this version (mosa.edit.edit_span "
                "is missing)",
                "hint": "update mosa; /api/generate works",
            },
            status_code=501,
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s failed", request.url.path)
        return JSONResponse(
            {"detail": f"internal error: {type(exc).__name__}: {exc}", "hint": None},
            status_code=500,
        )


# -- CLI -----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    add_pipeline_arguments(parser)
    parser.add_argument(
        "--max-batch", type=int, default=16, help="requests per generator call (default 16)"
    )
    parser.add_argument(
        "--batch-window-ms",
        type=float,
        default=10.0,
        help="how long to collect requests into a batch (default 10)",
    )
    parser.add_argument(
        "--queue-size",
        type=int,
        default=64,
        help="waiting requests before answering 503 (default 64)",
    )


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


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from mosa.generate import load_from_args

    if not 0 < args.port < 65536:
        raise MosaError(f"--port must be 1-65535, got {args.port}", "pass e.g. --port 8000")
    check_address(args.host, args.port)  # before the slow model load
    pipe = load_from_args(args)
    app = create_app(
        pipe,
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window_ms,
        queue_size=args.queue_size,
        checkpoint=str(args.checkpoint) if args.checkpoint else None,
    )
    print(f"mosa: serving on http://{args.host}:{args.port}/  (API docs: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
