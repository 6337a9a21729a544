"""A worker slot is never held while a server-side run is in progress.

ONE agents worker process with concurrency 1 carries many runs of several seconds each:
they all progress at once, so the whole batch takes about one run's duration, not the
sum of them (which a task polling in a sleep loop would take).
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.stacks import new_stack

pytestmark = pytest.mark.integration

RUNS = 20
RUN_SECONDS = 3.0


@pytest.fixture(scope="module")
def one_slot() -> Iterator[DevStack]:
    with new_stack("one-slot") as dev:
        dev.start_redis()
        url = dev.start_simulator()
        body = json.dumps({"run_duration_ms": RUN_SECONDS * 1000}).encode()
        request = urllib.request.Request(
            url.removesuffix("/v1") + "/_sim/config", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).read()
        dev.start_worker(["agents"], concurrency=1, name="agents")
        dev.start_worker(["tools"], concurrency=2, name="tools")
        yield dev


@pytest.mark.parametrize("protocol", ["responses", "assistants"])
def test_many_long_runs_progress_at_once_on_one_slot(one_slot: DevStack, protocol: str) -> None:
    assert one_slot.redis_url
    with AgentClient(one_slot.redis_url) as client:
        started = time.monotonic()
        jobs = [
            client.submit({"session_id": f"slot-{protocol}-{i}", "message": "Hello there",
                           "mode": "assistant", "protocol": protocol, "tools": []})
            for i in range(RUNS)
        ]
        results = [client.wait(job_id, timeout=60) for job_id in jobs]
        elapsed = time.monotonic() - started
        run_created = [
            event.at for job_id in jobs for _, event in client.jobs.read_events(job_id)
            if event.kind == "run_created"
        ]
    assert all(r.status == JobStatus.SUCCEEDED for r in results), [r.error for r in results]
    assert len(run_created) == RUNS
    # Sequentially (a slot held per run) this would take RUNS * RUN_SECONDS = 60 s.
    # Concurrently: one run's duration plus polling lateness (the capped backoff) and
    # the queue's own time.
    assert elapsed < RUN_SECONDS + 4.0, elapsed
    # every run had been started server-side before the first one ended
    assert max(run_created) < min(r.updated_at for r in results)
