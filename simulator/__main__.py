"""``python -m simulator --host 127.0.0.1 --port N [--latency-ms 0] [--api-key KEY]``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from simulator.server import SimulatorServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description="OpenAI-compatible simulator server."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay added to every chat completion"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("SIMULATOR_API_KEY") or None,
        help="the only accepted bearer token (default $SIMULATOR_API_KEY; any if unset)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log method, path and status of each request"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.latency_ms < 0:
        print("--latency-ms must be >= 0", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = SimulatorServer(
            args.host, args.port, args.latency_ms, args.api_key, verbose=args.verbose
        )
    except OSError as error:
        print(f"simulator: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    server.start()
    print(f"simulator listening on {server.root_url}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
