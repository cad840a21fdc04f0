"""``mosa serve``: the web page and HTTP API (FastAPI on uvicorn; OpenAPI docs at /docs).

    POST /api/generate  {"text", "seconds", "seed", "num_samples", "cfg", "previews"}
    POST /api/edit      {"joints", "text", "start", "end", "seed"}  (span regeneration)
    POST /api/extend    {"joints", "text", "seconds", "seed"}  (continue a motion)
    POST /api/sequence  {"texts", "seconds", "seed", "cfg", "bvh"}  (one take of many parts)
    POST /api/bvh       {"joints"} -> {"bvh", "frames"}  (a motion as BVH text)
    GET  /api/health    model info, queue depth, batching counters
    GET  /api/examples  example prompts
    GET  /              the page (three.js viewer, static files inside the package)

Every answer has the shape of /api/generate's (``{"text", "samples": [{"joints", "bvh",
"fps", ...}], "vocabulary"}``); /api/sequence adds ``"parts": [{"text", "start", "end",
"seed"}]`` (seconds) and /api/extend ``"generated": {"start", "end"}``. Concurrent generate
requests are micro-batched (see ``batcher.MicroBatcher``) into one generator call; edits,
continuations and sequences run one at a time. A full queue answers 503 with Retry-After;
bad input answers 422 with a message and a hint; nothing a client sends stops the server.
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

from mosa import limits
from mosa.errors import MosaError
from mosa.pipeline import Pipeline
from mosa.requests import MAX_SEED
from mosa.serve.batcher import MicroBatcher, QueueFull
from mosa.serve.engine import (
    EXAMPLES,
    MAX_SAMPLES,
    MAX_SEQUENCE_PARTS,
    Engine,
    Result,
    bvh_text,
    check_joints,
    parse_rig,
    result_json,
    skeleton_info,
)

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
    rig_bvh: str | None = Field(
        None, description="a character's BVH (text): the BVH is written on its skeleton"
    )
    rig_mapping: dict[str, str | None] | None = Field(
        None,
        description="the rig's joints for mosa's 22 ({'pelvis': 'Hips', ...}) when "
        "its names and structure are not recognised",
    )


class EditRequest(BaseModel):
    joints: list[list[list[float]]] = Field(description="source motion (T, 22, 3), metres")
    text: str = Field(max_length=10_000, description="what the regenerated span shows")
    start: float = Field(description="span start, seconds")
    end: float = Field(description="span end, seconds")
    seed: int | None = Field(None, strict=True, description=f"seed ({_SEED}); null: random")


class ExtendRequest(BaseModel):
    joints: list[list[list[float]]] = Field(description="motion to continue (T, 22, 3), metres")
    text: str = Field(max_length=10_000, description="what the generated continuation shows")
    seconds: float = Field(description="seconds to generate after the motion")
    seed: int | None = Field(None, strict=True, description=f"seed ({_SEED}); null: random")
    bvh: bool = Field(True, description="include the motion as BVH text")


class SequenceRequest(BaseModel):
    texts: list[str] = Field(
        min_length=1,
        max_length=10_000,
        description=f"what each part shows, in order (at most {MAX_SEQUENCE_PARTS} parts)",
    )
    seconds: list[float] | None = Field(
        None, description="length of each part, one per text; null: the length estimator's"
    )
    seed: int | None = Field(
        None, strict=True, description=f"seed of part 1 ({_SEED}; part i: + i); null: random"
    )
    cfg: float | None = Field(None, description="guidance scale; null: checkpoint defaults")
    bvh: bool = Field(True, description="include the take as BVH text")
    rig_bvh: str | None = Field(
        None, description="a character's BVH (text): the BVH is written on its skeleton"
    )
    rig_mapping: dict[str, str | None] | None = Field(
        None, description="the rig's joints for mosa's 22, as for /api/generate"
    )


class BvhRequest(BaseModel):
    joints: list[list[list[float]]] = Field(description="motion (T, 22, 3), metres, 20 fps")


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
        rig = await run_in_threadpool(parse_rig, req.rig_bvh, req.rig_mapping)
        result = await batcher.submit(job)
        payload = await run_in_threadpool(result_json, result, job.text, req.bvh, rig)
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

    @app.post("/api/extend")
    async def extend(req: ExtendRequest) -> JSONResponse:
        """Generate ``seconds`` more after ``joints`` from ``text`` (a continuation)."""
        job = engine.extend_job(req.joints, req.text, req.seconds, req.seed)
        result = await batcher.submit(job, batchable=False)
        payload = await run_in_threadpool(result_json, result, job.text, req.bvh)
        m = result.motions[0]
        gen = [s for s in m.segments if s.kind == "generated"]
        payload["generated"] = {"start": gen[0].start / m.fps, "end": gen[-1].end / m.fps}
        payload["vocabulary"] = await run_in_threadpool(engine.vocabulary, job.text)
        return JSONResponse(payload)

    @app.post("/api/sequence")
    async def sequence(req: SequenceRequest) -> JSONResponse:
        """One continuous take showing ``texts`` in order, each part continuing the last."""
        job = engine.sequence_job(req.texts, req.seconds, req.seed, req.cfg)
        rig = await run_in_threadpool(parse_rig, req.rig_bvh, req.rig_mapping)
        result = await batcher.submit(job, batchable=False)
        take = result.motions[0]
        payload = await run_in_threadpool(result_json, result, take.text, req.bvh, rig)
        payload["parts"] = _parts(result)
        notes = [await run_in_threadpool(engine.vocabulary, t) for t in job.plan.texts]
        for part, note in zip(payload["parts"], notes, strict=True):
            part["vocabulary"] = note
        far = [n for n in notes if n is not None and not n.get("known", True)]
        payload["vocabulary"] = far[0] if far else notes[0]
        return JSONResponse(payload)

    @app.post("/api/bvh")
    async def bvh(req: BvhRequest) -> dict[str, Any]:
        """A motion's joints as BVH text (the page's download after editing a long take)."""
        joints = check_joints(req.joints, int(limits.get("MOSA_MAX_FRAMES")))
        return {
            "bvh": await run_in_threadpool(bvh_text, joints, engine.pipe.fps),
            "frames": len(joints),
        }

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


def _parts(result: Result) -> list[dict[str, Any]]:
    """The take's parts with their spans in seconds."""
    take = result.motions[0]
    return [
        {"text": p.text, "start": p.start / take.fps, "end": p.end / take.fps, "seed": p.seed}
        for p in take.parts
    ]


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
