"""Load test of ``mosa serve``: micro-batching against one-by-one generation.

Starts the server in a child process on a loopback port (the tiny random pipeline of the tests,
or ``--checkpoint DIR``), sends ``--requests`` generate requests from ``--clients`` concurrent
clients, and reports errors, p50/p95 latency and throughput; then does the same with
``--max-batch 1`` and reports the speed-up of batching. Loopback only; stops by itself.

    python benchmarks/load_test.py                      # tiny pipeline, 200 requests, 16 clients
    python benchmarks/load_test.py --checkpoint checkpoints --device cuda --requests 400
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROMPTS = (
    "a person walks forward",
    "a person waves with the right hand",
    "a person jumps in place",
    "a person turns around and sits down",
    "a person kicks with the left leg",
    "a person runs in a circle",
)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, max_batch: int, port: int) -> subprocess.Popen:
    cmd = [
        sys.executable, __file__, "--serve-only", "--host", args.host, "--port", str(port),
        "--max-batch", str(max_batch), "--batch-window-ms", str(args.batch_window_ms),
        "--queue-size", str(args.queue_size), "--checkpoint", str(args.checkpoint),
        "--threads", str(args.threads),
    ]  # fmt: skip
    if args.device:
        cmd += ["--device", args.device]
    return subprocess.Popen(cmd)


async def wait_ready(client, url: str, proc: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            r = await client.get(url + "/api/health")
            if r.status_code == 200:
                return r.json()
        except Exception:  # noqa: BLE001 - not listening yet
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("server did not start in time")


async def load(args: argparse.Namespace, url: str) -> dict:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(args.requests))

    async def one_client(client: httpx.AsyncClient) -> None:
        for i in counter:
            body = {
                "text": PROMPTS[i % len(PROMPTS)],
                "seconds": args.seconds,
                "seed": i,
                "bvh": not args.no_bvh,
            }
            t0 = time.perf_counter()
            try:
                r = await client.post(url + "/api/generate", json=body)
                if r.status_code != 200:
                    errors.append(f"HTTP {r.status_code}: {r.text[:100]}")
                    continue
                frames = r.json()["samples"][0]["frames"]
                if frames != round(args.seconds * 20):
                    errors.append(f"wrong length {frames}")
                    continue
            except Exception as exc:  # noqa: BLE001 - counted, reported
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=args.clients)
    async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as client:
        # warm-up: first calls pay one-off costs (allocations, caches)
        for _ in range(3):
            await client.post(url + "/api/generate", json={"text": "warm up", "seconds": 2})
        before = (await client.get(url + "/api/health")).json()["stats"]
        start = time.perf_counter()
        await asyncio.gather(*(one_client(client) for _ in range(args.clients)))
        wall = time.perf_counter() - start
        after = (await client.get(url + "/api/health")).json()["stats"]
    lat = np.asarray(latencies) * 1000
    calls = after["generator_calls"] - before["generator_calls"]
    return {
        "requests": args.requests,
        "ok": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p95_ms": float(np.percentile(lat, 95)) if len(lat) else None,
        "throughput_rps": len(latencies) / wall,
        "wall_s": wall,
        "generator_calls": calls,
        "mean_batch": len(latencies) / max(calls, 1),
    }


async def run_mode(args: argparse.Namespace, max_batch: int) -> dict:
    import httpx

    port = free_port(args.host)
    proc = start_server(args, max_batch, port)
    url = f"http://{args.host}:{port}"
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            await wait_ready(c, url, proc)
        return {"max_batch": max_batch, **await load(args, url)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def serve_only(args: argparse.Namespace) -> None:
    import torch
    import uvicorn

    from mosa.loading import load as load_pipeline
    from mosa.serve.app import create_app

    torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.checkpoint, args.device)
    app = create_app(
        pipe,
        max_batch=args.max_batch,
        batch_window_ms=args.batch_window_ms,
        queue_size=args.queue_size,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, default=None, help="default: tiny random pipeline")
    p.add_argument("--device", default=None)
    p.add_argument("--host", default="127.0.0.1", help="a loopback address")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=3.0, help="motion length per request")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--batch-window-ms", type=float, default=10.0)
    p.add_argument("--queue-size", type=int, default=64)
    p.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    p.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    p.add_argument("--no-bvh", action="store_true", help="skip BVH text in the responses")
    p.add_argument("--no-compare", action="store_true", help="skip the --max-batch 1 run")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--serve-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        raise SystemExit(f"--host {args.host} is not a loopback address")
    if args.requests < 1 or args.clients < 1:
        raise SystemExit("--requests and --clients must be >= 1")
    if args.serve_only:
        serve_only(args)
        return
    with tempfile.TemporaryDirectory(prefix="mosa-load-") as tmp:
        if args.checkpoint is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from tiny_models import write_tiny_pipeline

            os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
            args.checkpoint = write_tiny_pipeline(Path(tmp) / "tiny")
        modes = [args.max_batch] + ([] if args.no_compare or args.max_batch == 1 else [1])
        results = [asyncio.run(run_mode(args, mb)) for mb in modes]
    for r in results:
        print(
            f"max-batch {r['max_batch']:>2}: {r['ok']}/{r['requests']} ok, {r['errors']} errors, "
            f"p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, "
            f"{r['throughput_rps']:.1f} req/s, {r['generator_calls']} generator calls "
            f"(mean batch {r['mean_batch']:.1f})"
        )
        for e in r["first_errors"]:
            print("   error:", e)
    summary = {"clients": args.clients, "seconds": args.seconds, "results": results}
    if len(results) == 2:
        summary["speedup"] = results[0]["throughput_rps"] / results[1]["throughput_rps"]
        print(f"batching speed-up (throughput): {summary['speedup']:.2f}x")
    if args.json:
        from mosa.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(summary, indent=2))
    if any(r["errors"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
