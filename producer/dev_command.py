"""``celery-agents dev``: the whole system as local processes, without Docker.

redis-server, the simulator (unless a real model is configured), one worker for the
``agents`` queue and one for ``tools``, Flower and the HTTP gateway, each with its log
lines echoed as ``[name] line``. Ctrl-C stops them all.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from producer.devstack import DevStack
from producer.devstack_services import start_flower, start_gateway


def run_dev(
    *,
    redis_port: int | None = None,
    gateway_port: int = 8000,
    flower_port: int = 5555,
    agents_concurrency: int | None = None,
    tools_concurrency: int | None = None,
    simulator: bool = True,
    run_dir: str | Path | None = None,
) -> int:
    """Start everything, print the URLs, run until Ctrl-C or until a process dies."""
    flower_auth = os.environ.get("FLOWER_BASIC_AUTH") or f"admin:{secrets.token_urlsafe(12)}"
    stack = DevStack(run_dir, echo=True, keep_run_dir=run_dir is not None)
    try:
        redis_url = stack.start_redis(port=redis_port)
        if simulator:
            stack.start_simulator()
        stack.start_worker(["agents"], concurrency=agents_concurrency, name="agents")
        stack.start_worker(["tools"], concurrency=tools_concurrency, name="tools")
        flower_url = start_flower(stack, flower_port, basic_auth=flower_auth)
        gateway_url = start_gateway(stack, gateway_port)
        user = flower_auth.split(":", 1)[0]
        model = stack.simulator_url or os.environ.get("OPENAI_BASE_URL") or "OpenAI's API"
        print(
            "\ncelery-agents dev stack is up (Ctrl-C stops everything)\n"
            f"  redis     {redis_url}\n"
            f"  model     {model}\n"
            f"  gateway   {gateway_url}  (API docs: {gateway_url}/docs)\n"
            f"  flower    {flower_url}  (user {user!r}; password in FLOWER_BASIC_AUTH"
            + ("" if os.environ.get("FLOWER_BASIC_AUTH") else f": {flower_auth.split(':', 1)[1]}")
            + ")\n"
            f"  logs      {stack.run_dir}\n"
            f"  try:      REDIS_URL={redis_url} celery-agents submit 'What is 6*7?' "
            "--session demo --wait\n",
            flush=True,
        )
        exited = stack.wait_any_exit()
        if exited is not None:
            print(f"{exited.name} exited with status {exited.returncode}; stopping", flush=True)
            return 1
        return 0
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.close()
