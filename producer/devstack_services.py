"""Flower and the HTTP gateway as processes of a DevStack (``celery-agents dev``, tests).

Each is started through ``DevStack.start_process``, so it gets the stack's environment,
log file and stop order like every other process.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from producer.devstack import DevStack, free_port


def start_flower(
    stack: DevStack,
    port: int | None = None,
    *,
    basic_auth: str | None = None,
    db: str | Path | None = None,
    state_save_interval_ms: int = 10000,
    env: Mapping[str, str] | None = None,
    echo: bool | None = None,
    timeout: float = 60.0,
) -> str:
    """Run Flower (``celery -A worker flower``) read-only and persistent; returns its URL.

    ``basic_auth`` (``user:password``) goes in as ``FLOWER_BASIC_AUTH``; ``db`` defaults
    to ``<run dir>/flower.db``. The tasks page also shows the redacted argument summaries.
    """
    chosen = port if port is not None else free_port()
    argv = [
        sys.executable, "-m", "celery", "-A", "worker", "flower",
        "--address=127.0.0.1", f"--port={chosen}",
        "--read-only=True",
        "--persistent=True", f"--db={db or stack.run_dir / 'flower.db'}",
        f"--state-save-interval={state_save_interval_ms}",
        "--tasks-columns=name,uuid,state,args,kwargs,received,started,runtime,worker",
    ]  # fmt: skip
    extra = {**(env or {}), **({"FLOWER_BASIC_AUTH": basic_auth} if basic_auth else {})}
    stack.start_process(
        "flower", argv, env=stack.python_env(extra), cwd=stack.project_root, echo=echo,
        ready_log=r"Visit me at", timeout=timeout,
    )
    return f"http://127.0.0.1:{chosen}"


def start_gateway(
    stack: DevStack,
    port: int | None = None,
    *,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
    echo: bool | None = None,
    timeout: float = 30.0,
) -> str:
    """Run the HTTP gateway (``celery-agents gateway``); returns ``http://127.0.0.1:PORT``.

    ``token`` goes in as ``AGENT_GATEWAY_TOKEN`` (bearer auth on every endpoint but
    ``/healthz``).
    """
    chosen = port if port is not None else free_port()
    argv = [sys.executable, "-m", "producer.cli", "gateway",
            "--host", "127.0.0.1", "--port", str(chosen)]
    extra = {**(env or {}), **({"AGENT_GATEWAY_TOKEN": token} if token else {})}
    stack.start_process(
        "gateway", argv, env=stack.python_env(extra), cwd=stack.project_root, echo=echo,
        ready_log=r"Uvicorn running on", timeout=timeout,
    )
    return f"http://127.0.0.1:{chosen}"
