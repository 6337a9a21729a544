"""``celery-agents dev``: the whole system as local processes, without Docker.

redis-server, the simulator (unless a real model is configured), one worker for the
``agents`` queue and one for ``tools``, Flower and the HTTP gateway, each with its log
lines echoed as ``[name] line``. Ctrl-C, SIGTERM and SIGHUP stop them all; if this
process is killed outright, the kernel stops them (producer/devstack_process.py).
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

from producer.devstack import DEFAULT_OPENAI_API_KEY, DevStack
from producer.devstack_process import ProcessExitedError
from producer.devstack_services import start_flower, start_gateway
from producer.stop_signals import StopRequested, stop_on_signals

# Redis's own port, so that the client's default URL (redis://127.0.0.1:6379/0) just
# works; any free port when it is taken.
DEFAULT_REDIS_PORT = 6379
DEFAULT_GATEWAY_PORT = 8000
DEFAULT_FLOWER_PORT = 5555


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start_dev_redis(stack: DevStack, port: int | None) -> str:
    """Redis on ``port``; without one, on 6379 when it is free, else on any free port."""
    if port is not None:
        return stack.start_redis(port=port)
    if port_is_free(DEFAULT_REDIS_PORT):
        try:
            return stack.start_redis(port=DEFAULT_REDIS_PORT)
        except ProcessExitedError:  # taken meanwhile
            pass
    return stack.start_redis()


def banner(stack: DevStack, redis_url: str, gateway_url: str, flower_url: str,
           flower_auth: str) -> str:
    user, password = flower_auth.split(":", 1)
    if stack.simulator_url:
        # The workers' key; the simulator takes any key unless SIMULATOR_API_KEY is set.
        key = stack.env().get("OPENAI_API_KEY", "")
        shown = key if key == DEFAULT_OPENAI_API_KEY else "from OPENAI_API_KEY (not shown)"
        model = f"{stack.simulator_url}  (the simulator; API key {shown})"
    else:
        base_url = os.environ.get("OPENAI_BASE_URL") or "OpenAI's API"
        model = f"{base_url}  (key from OPENAI_API_KEY)"
    flower_pw = "in FLOWER_BASIC_AUTH" if os.environ.get("FLOWER_BASIC_AUTH") else password
    return (
        "\ncelery-agents dev stack is up (Ctrl-C, SIGTERM or SIGHUP stops everything)\n"
        f"  redis     {redis_url}\n"
        f"  model     {model}\n"
        f"  gateway   {gateway_url}  (API docs: {gateway_url}/docs)\n"
        f"  flower    {flower_url}  (user {user!r}, password {flower_pw})\n"
        f"  logs      {stack.run_dir}\n"
        "  in another shell:\n"
        f"    export REDIS_URL={redis_url}\n"
        "    celery-agents submit 'What is 6*7?' --session demo --wait\n"
    )


def run_dev(
    *,
    redis_port: int | None = None,
    gateway_port: int = DEFAULT_GATEWAY_PORT,
    flower_port: int = DEFAULT_FLOWER_PORT,
    agents_concurrency: int | None = None,  # None: the deployment's (producer/deployment.py)
    tools_concurrency: int | None = None,
    simulator: bool = True,
    run_dir: str | Path | None = None,
) -> int:
    """Start everything, print the URLs, run until stopped or until a process dies."""
    flower_auth = os.environ.get("FLOWER_BASIC_AUTH") or f"admin:{secrets.token_urlsafe(12)}"
    with stop_on_signals():
        stack = DevStack(run_dir, echo=True, keep_run_dir=run_dir is not None)
        try:
            redis_url = start_dev_redis(stack, redis_port)
            if simulator:
                stack.start_simulator()
            stack.start_worker(["agents"], concurrency=agents_concurrency, name="agents")
            stack.start_worker(["tools"], concurrency=tools_concurrency, name="tools")
            flower_url = start_flower(stack, flower_port, basic_auth=flower_auth)
            gateway_url = start_gateway(stack, gateway_port)
            print(banner(stack, redis_url, gateway_url, flower_url, flower_auth), flush=True)
            exited = stack.wait_any_exit()
            if exited is not None:
                print(f"{exited.name} exited with status {exited.returncode}; stopping",
                      flush=True)
                return 1
            return 0
        except KeyboardInterrupt:
            print("\nstopping...", flush=True)
            return 0
        except StopRequested as stop:
            print(f"\n{stop.name}: stopping...", flush=True)
            return 0
        except Exception as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            stack.close()
