"""Server soak: does ``mosa serve``'s memory grow over many requests?

    python benchmarks/server_soak.py --requests 1000 --out soak.json            # shipped model
    python benchmarks/server_soak.py --tiny --requests 50                       # tiny pipeline

Starts ``mosa serve`` as a child process on a free loopback port, waits for ``/api/health``,
sends ``--warmup`` requests (caches, allocator pools and lazily built weight copies settle),
reads the server's resident memory (``VmRSS`` in ``/proc/<pid>/status``), sends ``--requests``
``/api/generate`` requests (distinct prompts, seeds and lengths, so the text cache fills and
turns over, a few concurrently), and reads it again, with a few samples in between. Reports
RSS before/after and their difference, and writes the JSON to ``--out``. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

WORDS = ("walks", "jumps", "waves", "kicks", "turns", "dances", "runs", "sits down", "bows")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def post(url: str, body: dict, timeout: float = 120.0) -> int:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        r.read()
        return r.status


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server_soak.py: the server exited ({proc.returncode})")
        try:
            with urllib.request.urlopen(base + "/api/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("server_soak.py: the server did not become healthy")


def request(i: int) -> dict:
    """Request ``i``: its own prompt (cache turnover), seed and length."""
    return {"text": f"a person {WORDS[i % len(WORDS)]} ({i})", "seed": i,
            "seconds": 2.0 + (i % 5), "bvh": i % 2 == 0}  # fmt: skip


def soak(base: str, pid: int, n: int, start: int, concurrency: int, samples: int) -> list[dict]:
    """Send requests ``start .. start + n - 1``; RSS sampled ``samples`` times on the way."""
    trace = []
    step = max(1, n // max(samples, 1))
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for lo in range(start, start + n, step):
            ids = range(lo, min(lo + step, start + n))
            codes = list(pool.map(lambda i: post(base + "/api/generate", request(i)), ids))
            bad = [c for c in codes if c != 200]
            if bad:
                raise SystemExit(f"server_soak.py: answers {bad[:5]} (expected 200)")
            trace.append({"requests": ids[-1] - start + 1, "rss_mb": round(rss_mb(pid), 1)})
    return trace


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="default: checkpoints/")
    ap.add_argument("--tiny", action="store_true", help="a tiny random pipeline (tests)")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--samples", type=int, default=10, help="RSS readings during the soak")
    ap.add_argument("--threads", type=int, default=1, help="OMP threads of the server")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint
        if args.tiny:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from tiny_models import write_tiny_pipeline

            ckpt = write_tiny_pipeline(Path(tmp) / "tiny")
        port = free_port()
        cmd = [sys.executable, "-m", "mosa", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--device", "cpu"] + (["--checkpoint", str(ckpt)] if ckpt else [])  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
                   MKL_NUM_THREADS=str(args.threads))  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base, proc)
            soak(base, proc.pid, args.warmup, 10**6, args.concurrency, 1)
            before = rss_mb(proc.pid)
            t0 = time.perf_counter()
            trace = soak(base, proc.pid, args.requests, 0, args.concurrency, args.samples)
            wall = time.perf_counter() - t0
            after = rss_mb(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    report = {"checkpoint": "tiny" if args.tiny else str(ckpt or "checkpoints/"),
              "requests": args.requests, "warmup": args.warmup,
              "concurrency": args.concurrency, "wall_s": round(wall, 1),
              "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
              "growth_mb": round(after - before, 1), "trace": trace}  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.requests} requests in {wall:.0f} s: RSS {before:.0f} -> {after:.0f} MB "
          f"({after - before:+.1f} MB after {args.warmup} warm-up requests)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
