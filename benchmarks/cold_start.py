"""Cold start: a command's whole-process wall time and peak memory, as fresh processes.

    python benchmarks/cold_start.py --runs 5 --out cold.json \\
        --variant 'after=python -m mosa generate "a person waves" -o /tmp/w.bvh' \\
        --variant 'before=env PYTHONPATH=/tmp/old/src python -m mosa generate ...'

Each ``--variant NAME=COMMAND`` (a shell-quoted command line, no shell) runs ``--runs`` times;
the variants' runs are interleaved (A B, B A, A B, ...) so that a change in machine load hits
them alike. Per run: wall seconds (``time.perf_counter`` around the child) and the child's peak
resident memory (``ru_maxrss`` from ``os.wait4``, the number ``/usr/bin/time -v`` prints as
"Maximum resident set size"), with the 1-minute load average at its start. Reports medians and
writes every run to ``--out`` (JSON). A run that fails stops the benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_once(argv: list[str], env: dict[str, str] | None = None) -> dict:
    """One fresh process: ``{"wall_s", "peak_rss_mb", "load_1min", "returncode"}``."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    rss = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(rss, 1), "load_1min": load,
            "returncode": proc.returncode, "stderr_tail": err[-300:]}  # fmt: skip


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, sep, command = text.partition("=")
    if not sep or not name or not command.strip():
        raise SystemExit(f"cold_start.py: --variant wants NAME=COMMAND, got {text!r}")
    return name, shlex.split(command)


def measure(variants: dict[str, list[str]], runs: int, warmup: int = 1) -> dict:
    """Interleaved runs of every variant (after ``warmup`` untimed rounds: the page cache)."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            run_once(variants[name])
    samples: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(runs):
        for name in names if r % 2 == 0 else names[::-1]:
            got = run_once(variants[name])
            if got["returncode"] != 0:
                raise SystemExit(f"cold_start.py: '{name}' failed:\n{got['stderr_tail']}")
            samples[name].append(got)
    return {
        name: {
            "command": shlex.join(variants[name]),
            "median_wall_s": round(statistics.median(s["wall_s"] for s in got), 3),
            "median_peak_rss_mb": round(statistics.median(s["peak_rss_mb"] for s in got), 1),
            "runs": got,
        }
        for name, got in samples.items()
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", action="append", required=True, help="NAME=COMMAND")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = ap.parse_args(argv)
    variants = dict(parse_variant(v) for v in args.variant)
    report = {
        "runs": args.runs,
        "cpus": os.cpu_count(),
        "variants": measure(variants, args.runs, args.warmup),
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    for name, v in report["variants"].items():
        loads = [r["load_1min"] for r in v["runs"] if r["load_1min"] is not None]
        load = f", load {min(loads):.1f}-{max(loads):.1f}" if loads else ""
        print(f"{name}: {v['median_wall_s']:.2f} s wall, {v['median_peak_rss_mb']:.0f} MB peak "
              f"RSS (median of {args.runs}{load})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
