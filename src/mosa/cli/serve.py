"""``mosa serve``: flags -> :func:`mosa.serve.app.create_app`, run on uvicorn."""

from __future__ import annotations

import argparse

from mosa.cli.common import add_pipeline_arguments, load_from_args
from mosa.errors import MosaError


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


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from mosa.serve.app import check_address, check_settings, create_app

    if not 0 < args.port < 65536:
        raise MosaError(f"--port must be 1-65535, got {args.port}", "pass e.g. --port 8000")
    check_settings(args.max_batch, args.batch_window_ms, args.queue_size)  # before the load
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
