"""``python -m simulator --host 127.0.0.1 --port N [--latency-ms 0] [--api-key KEY]
[--run-duration-ms 300] [--run-expires-after-s 600]`` (and the fault flags)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType

from simulator.faults import add_fault_arguments, fault_config_from_args
from simulator.lifecycle import DEFAULT_EXPIRES_AFTER_S, DEFAULT_RUN_DURATION_MS
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
    parser.add_argument(
        "--run-duration-ms",
        type=float,
        default=DEFAULT_RUN_DURATION_MS,
        help="server-side time of each model decision of an Assistants run or background "
        f"response ({DEFAULT_RUN_DURATION_MS:g})",
    )
    parser.add_argument(
        "--run-expires-after-s",
        type=float,
        default=DEFAULT_EXPIRES_AFTER_S,
        help="a run waiting in requires_action this long expires "
        f"({DEFAULT_EXPIRES_AFTER_S:g})",
    )
    add_fault_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.latency_ms < 0:
        print("--latency-ms must be >= 0", file=sys.stderr)
        return 2
    if args.run_duration_ms < 0 or args.run_expires_after_s <= 0:
        print("--run-duration-ms must be >= 0 and --run-expires-after-s > 0", file=sys.stderr)
        return 2
    try:
        faults = fault_config_from_args(args)
    except ValueError as error:
        print(f"simulator: {error}", file=sys.stderr)
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
    server.state.faults.configure(faults)
    server.state.run_settings.configure_startup(args.run_duration_ms, args.run_expires_after_s)
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
