"""The operations subcommands of ``celery-agents``: ``gateway``, ``dev`` and ``watch``.

Registered by :mod:`producer.cli`; their heavy imports (FastAPI, uvicorn) happen only
when the command runs, so the producer stays light.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from producer.deployment import AGENTS_WORKER, TOOLS_WORKER

OPS_COMMANDS = ("gateway", "dev", "watch")


def add_ops_commands(commands: Any) -> None:
    """Add the subcommands to the ``add_subparsers()`` object of the main parser."""
    gateway = commands.add_parser("gateway", help="run the HTTP gateway (FastAPI + uvicorn)")
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=int, default=8000)

    dev = commands.add_parser(
        "dev", help="run the whole stack locally: redis, simulator, workers, Flower, gateway"
    )
    dev.add_argument("--redis-port", type=int,
                     help="default: 6379 when it is free, else any free port")
    dev.add_argument("--gateway-port", type=int, default=8000, help="default: %(default)s")
    dev.add_argument("--flower-port", type=int, default=5555, help="default: %(default)s")
    dev.add_argument("--agents-concurrency", type=int, default=AGENTS_WORKER.concurrency,
                     help=f"threads of the agents worker (default {AGENTS_WORKER.concurrency})")
    dev.add_argument("--tools-concurrency", type=int, default=TOOLS_WORKER.concurrency,
                     help=f"processes of the tools worker (default {TOOLS_WORKER.concurrency})")
    dev.add_argument("--simulator", action=argparse.BooleanOptionalAction, default=None,
                     help="use the simulator as the model (default: when OPENAI_API_KEY is unset)")
    dev.add_argument("--run-dir", help="logs and data here (default: a temporary directory)")

    watch = commands.add_parser("watch", help="follow a job's events live")
    watch.add_argument("job_id")
    watch.add_argument("--timeout", type=float, default=300.0, help="seconds to follow")


def run_ops_command(args: argparse.Namespace) -> int:
    """Run one of :data:`OPS_COMMANDS`; returns the exit code."""
    if args.command == "gateway":
        from producer.gateway import serve

        serve(args.host, args.port, args.redis_url)
        return 0
    if args.command == "dev":
        from producer.dev_command import run_dev

        simulator = args.simulator if args.simulator is not None else (
            not os.environ.get("OPENAI_API_KEY")
        )
        return run_dev(
            redis_port=args.redis_port, gateway_port=args.gateway_port,
            flower_port=args.flower_port, agents_concurrency=args.agents_concurrency,
            tools_concurrency=args.tools_concurrency, simulator=simulator, run_dir=args.run_dir,
        )
    from producer.client import AgentClient
    from producer.reachability import require_redis
    from producer.watch import watch

    with AgentClient(args.redis_url) as client:
        require_redis(client.jobs.redis, args.redis_url or str(client.celery.conf.broker_url))
        return watch(client, args.job_id, timeout=args.timeout)
