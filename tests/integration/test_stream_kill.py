"""SIGKILL the agents worker in the middle of a streamed model call.

The step runs again elsewhere, publishes a ``delta_reset`` for its step before its first
delta, and streams from the start; a consumer that drops what it showed at the reset
ends up showing exactly the job's final text. Memory holds the turn once.

Two crashes: the whole worker of the shipped threads pool (its task comes back after the
visibility timeout, here a few seconds, and a fresh worker takes it), and a prefork pool
child (requeued at once by its master). And a Redis restart in the middle of a stream:
the worker, a sync and an async reader all carry on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from producer.client import AgentClient, AsyncAgentClient, StreamReset
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import Simulator
from tests.integration.stacks import (
    VISIBILITY_TIMEOUT,
    new_stack,
    pool_children,
    wait_for,
    wait_job,
)

pytestmark = pytest.mark.integration

FIRST = "The first attempt of this answer, " + "which a crash cuts short, " * 10
SECOND = "The second attempt: the words a reader keeps, " + "streamed again, " * 10


@pytest.fixture(scope="module")
def kstack() -> Iterator[DevStack]:
    with new_stack("stack-stream-kill",
                   {"AGENT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT)}) as stack:
        stack.start_redis(appendonly=True)  # the restart test keeps the streams
        stack.start_simulator()
        stack.start_worker(["tools"], 2, "tools")
        yield stack


@pytest.mark.parametrize("variant", ["threads-whole-worker", "prefork-pool-child"])
def test_kill_mid_stream_resets_the_step_and_shows_the_final_text(
    kstack: DevStack, model: str, session: str, variant: str
) -> None:
    assert kstack.simulator_url
    sim = Simulator(kstack.simulator_url)
    sim.script(model, {"content": FIRST}, {"content": SECOND})
    sim._call("POST", "/_sim/stream", {"model": model, "chunks": 80, "chunk_delay_ms": 25})
    prefork = variant.startswith("prefork")
    worker = kstack.start_worker(["agents"], 1 if prefork else 50, f"agents-{variant}",
                                 pool="prefork" if prefork else "threads")
    with AgentClient(kstack.redis_url) as client:
        job_id = client.submit({"session_id": session, "message": "hi", "model": model,
                                "stream": True, "tools": []})
        shown: list[str] = []
        resets: list[StreamReset] = []

        def consume() -> None:  # a reader applying resets as the docs say
            for piece in client.stream(job_id, timeout=90):
                if isinstance(piece, StreamReset):
                    resets.append(piece)
                    shown.clear()
                else:
                    shown.append(piece)

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        wait_for(lambda: sum(e.kind == "delta" for _, e in client.jobs.read_events(job_id))
                 >= 3, 20, "the stream to be under way")
        if prefork:
            [child] = wait_for(lambda: pool_children(worker) or None, 5, "the pool child")
            os.kill(child, signal.SIGKILL)
        else:
            worker.kill()
            kstack.start_worker(["agents"], 50, f"agents-{variant}-2", pool="threads")
        result = wait_job(client, job_id, VISIBILITY_TIMEOUT + 40)
        reader.join(30)
        assert not reader.is_alive()
        assert result.status == JobStatus.SUCCEEDED, result.error
        assert result.response == SECOND
        assert "".join(shown) == SECOND  # what a reader shows after the reset
        events = [e for _, e in client.jobs.read_events(job_id)]
        kinds = [e.kind for e in events]
        reset_at = kinds.index("delta_reset")
        assert events[reset_at].step == 0 and resets == [StreamReset(step=0)]
        before = "".join(e.detail["text"] for e in events[:reset_at] if e.kind == "delta")
        assert before and FIRST.startswith(before) and before != FIRST  # cut short
        after = "".join(e.detail["text"] for e in events[reset_at:] if e.kind == "delta")
        assert after == SECOND
        assert len(sim.requests(model)) == 2
        assert [(m.role, m.content) for m in client.history(session)] == [
            ("user", "hi"), ("assistant", SECOND)]
        for proc in kstack.processes:
            if proc.name.startswith("agents") and proc.alive:
                proc.stop()


def test_redis_restart_mid_stream_loses_no_text(
    kstack: DevStack, model: str, session: str
) -> None:
    assert kstack.simulator_url
    sim = Simulator(kstack.simulator_url)
    sim.script(model, {"content": SECOND})
    sim._call("POST", "/_sim/stream", {"model": model, "chunks": 120, "chunk_delay_ms": 25})
    kstack.start_worker(["agents"], 50, "agents-restart", pool="threads")
    with AgentClient(kstack.redis_url) as client:
        job_id = client.submit({"session_id": session, "message": "hi", "model": model,
                                "stream": True, "tools": []})
        sync_pieces: list[str] = []
        async_pieces: list[str] = []

        def sync_reader() -> None:
            sync_pieces.extend(str(p) for p in client.stream(job_id, timeout=60))

        def async_reader() -> None:
            async def main() -> None:
                async with AsyncAgentClient(kstack.redis_url) as aclient:
                    async for piece in aclient.stream(job_id, timeout=60):
                        async_pieces.append(str(piece))
            asyncio.run(main())

        readers = [threading.Thread(target=f, daemon=True) for f in (sync_reader, async_reader)]
        for reader in readers:
            reader.start()
        wait_for(lambda: sum(e.kind == "delta" for _, e in client.jobs.read_events(job_id))
                 >= 3, 20, "the stream to be under way")
        kstack.restart_redis()
        result = wait_job(client, job_id, 60)
        for reader in readers:
            reader.join(30)
            assert not reader.is_alive()
        assert result.status == JobStatus.SUCCEEDED, result.error
        assert result.response == SECOND
        assert "".join(sync_pieces) == SECOND
        assert "".join(async_pieces) == SECOND
        for proc in kstack.processes:
            if proc.name.startswith("agents") and proc.alive:
                proc.stop()
