"""Helpers for integration tests that run a stack of their own (kills, restarts, TLS).

Each such test module starts its own DevStack, so killing a worker or restarting Redis
never disturbs the shared session stack of the other tests.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from producer.client import AgentClient
from producer.contracts import JobResult
from producer.devstack import DevStack, ManagedProcess
from tests.integration.conftest import API_KEY, OUTPUT_DIR

T = TypeVar("T")

# Short enough that a dead worker's task comes back within seconds; longer than any task
# these tests run (celeryconfig then sweeps for abandoned tasks every second).
VISIBILITY_TIMEOUT = 6


def new_stack(name: str, env: Mapping[str, str] | None = None) -> DevStack:
    """A DevStack logging under test-output/, with the integration tests' environment."""
    OUTPUT_DIR.mkdir(exist_ok=True)
    stack = DevStack(OUTPUT_DIR / f"{name}-{os.getpid()}", keep_run_dir=True)
    stack.extra_env.update({
        "OPENAI_API_KEY": API_KEY,
        "AGENT_TOOL_MODULES": "tests.tool_fixtures",
        "AGENT_MODEL": "gpt-4o-mini",
        **(env or {}),
    })
    return stack


@contextmanager
def shared_env_stack(name: str, env: Mapping[str, str]) -> Iterator[DevStack]:
    """:func:`new_stack` whose ``env`` this test process (the producer side) reads too:
    settings such as AGENT_STALL_SECONDS are read by producers and workers alike."""
    with pytest.MonkeyPatch.context() as patch, new_stack(name, env) as stack:
        for key, value in env.items():
            patch.setenv(key, value)
        yield stack


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something other than None/False."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def pool_children(proc: ManagedProcess) -> list[int]:
    """Pids of the processes whose parent is ``proc`` (a prefork worker's pool)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(proc.pid) and fields[0] not in "ZX":
            children.append(int(stat.parent.name))
    return children


def worker_that_received(
    workers: list[ManagedProcess], task_name: str, since: Mapping[str, int], timeout: float
) -> ManagedProcess:
    """The worker whose log shows ``task_name`` received after offset ``since[name]``."""
    pattern = re.compile(rf"Task {re.escape(task_name)}\[[^\]]+\] received")

    def find() -> ManagedProcess | None:
        for proc in workers:
            with open(proc.log_path, "rb") as fh:
                fh.seek(since.get(proc.name, 0))
                if pattern.search(fh.read().decode("utf-8", "replace")):
                    return proc
        return None

    return wait_for(find, timeout, f"a worker to receive {task_name}")


def wait_job(client: AgentClient, job_id: str, timeout: float) -> JobResult:
    """The job's result once it ended, by polling its record.

    (Not ``client.wait``: it blocks on XREAD for the whole timeout, which redis-py 8's
    default 5 s socket timeout cuts short while a crashed task waits for redelivery.)
    """

    def ended() -> JobResult | None:
        result = client.status(job_id)
        return result if result is not None and result.status.terminal else None

    return wait_for(ended, timeout, f"job {job_id} to end")
