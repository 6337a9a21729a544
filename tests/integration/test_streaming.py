"""Streamed turns on the session's real stack: worker, simulator SSE, both clients, CLI.

Every model call of a ``stream=True`` turn is a real streamed chat completion from the
simulator (the real ``openai`` client, SSE chunks with a delay); the text reaches the
job's event stream as coalesced ``delta`` events and the result is unchanged.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from producer.client import AgentClient, AsyncAgentClient, StreamReset
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import Simulator, tool_call

pytestmark = pytest.mark.integration

ANSWER = ("Streaming works: " + "every token of this answer travels through Redis. " * 6).strip()


def stream_config(sim: Simulator, model: str, **settings: Any) -> None:
    sim._call("POST", "/_sim/stream", {"model": model, **settings})


def test_streamed_turn_with_a_tool_round_matches_its_result(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(
        model,
        {"tool_calls": [tool_call("calculator", {"expression": "6 * 7"}, "c1"),
                        tool_call("get_weather", {"city": "Rome"}, "c2")]},
        {"content": ANSWER},
    )
    stream_config(sim, model, chunks=60, chunk_delay_ms=5)
    job_id = client.submit({"session_id": session, "message": "go", "model": model,
                            "stream": True})
    pieces = list(client.stream(job_id, timeout=30))
    result = client.wait(job_id, timeout=5)
    assert result.status == JobStatus.SUCCEEDED, result.error
    assert all(isinstance(p, str) for p in pieces)
    assert "".join(str(p) for p in pieces) == ANSWER == result.response
    # Tool-call deltas were assembled into whole calls: both tools ran with their args.
    assert [(s.tool_name, s.tool_call_id, s.is_error) for s in result.sources] == [
        ("calculator", "c1", False), ("get_weather", "c2", False)]
    assert result.sources[0].content == "42"
    assert result.usage.total_tokens > 0  # from the usage chunk of each stream
    sent = sim.requests(model, kind="chat.completions")
    assert [(r["stream"], r["stream_options"]) for r in sent] == [
        (True, {"include_usage": True})] * 2
    deltas = [e for e in client.events(job_id, timeout=5) if e.kind == "delta"]
    assert 2 <= len(deltas) < 60  # coalesced: far fewer writes than chunks
    assert {e.step for e in deltas} == {1}
    assert all(e.detail["step"] == 1 for e in deltas)


def test_a_server_refusing_streams_fails_the_job_with_its_message(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "never sent"})
    stream_config(sim, model, refuse=True)
    result = client.run({"session_id": session, "message": "hi", "model": model,
                         "stream": True}, timeout=30)
    assert result.status == JobStatus.FAILED
    assert result.error is not None
    assert "400" in result.error and "Streaming is not supported" in result.error


def test_a_malformed_chunk_fails_the_step_readably_and_the_worker_serves_on(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "one two three four five six"}, {"content": "fine"})
    stream_config(sim, model, malformed_after=3)
    failed = client.run({"session_id": session, "message": "hi", "model": model,
                         "stream": True}, timeout=30)
    assert failed.status == JobStatus.FAILED
    assert failed.error is not None and "malformed stream chunk" in failed.error
    stream_config(sim, model, malformed_after=None)
    ok = client.run({"session_id": session, "message": "again", "model": model,
                     "stream": True}, timeout=30)
    assert ok.status == JobStatus.SUCCEEDED and ok.response == "fine"


def test_stream_of_a_job_without_streaming_yields_the_whole_answer(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "all at once"})
    job_id = client.submit({"session_id": session, "message": "hi", "model": model})
    assert list(client.stream(job_id, timeout=30)) == ["all at once"]


def test_async_client_500_concurrent_stream_consumers_in_one_loop(
    stack: DevStack, sim: Simulator, model: str, session: str
) -> None:
    jobs, consumers_per_job = 5, 100
    texts = [f"answer {i}: " + "word " * 80 for i in range(jobs)]
    sim.script(model, *({"content": t} for t in texts))
    stream_config(sim, model, chunks=80, chunk_delay_ms=10)

    async def main() -> tuple[list[str], list[str], list[str | None]]:
        async with AsyncAgentClient(stack.redis_url) as aclient:
            ids = [await aclient.submit({"session_id": f"{session}-{i}", "message": "go",
                                         "model": model, "stream": True})
                   for i in range(jobs)]

            async def consume(job_id: str) -> str:
                shown = ""
                async for piece in aclient.stream(job_id, timeout=60):
                    shown = "" if isinstance(piece, StreamReset) else shown + piece
                return shown

            shown = await asyncio.gather(*(consume(j) for j in ids
                                           for _ in range(consumers_per_job)))
            results = [await aclient.wait(j, timeout=5) for j in ids]
            assert all(r.status == JobStatus.SUCCEEDED for r in results)
            return ids, list(shown), [r.response for r in results]

    _ids, shown, responses = asyncio.run(main())
    assert len(shown) == jobs * consumers_per_job
    expected = [responses[i] for i in range(jobs) for _ in range(consumers_per_job)]
    assert shown == expected
    assert sorted(r or "" for r in responses) == sorted(texts)


def test_async_client_mirrors_the_sync_methods(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "first"})

    async def main() -> None:
        async with AsyncAgentClient(stack.redis_url) as aclient:
            result = await aclient.run({"session_id": session, "message": "one",
                                        "model": model}, timeout=30)
            assert result.status == JobStatus.SUCCEEDED and result.response == "first"
            assert (await aclient.status(result.job_id)) == client.status(result.job_id)
            kinds = [e.kind async for e in aclient.events(result.job_id, timeout=5)]
            assert kinds[0] == "queued" and kinds[-1] == "succeeded"
            history = await aclient.history(session)
            assert history == client.history(session)
            assert [m.content for m in history] == ["one", "first"]
            assert await aclient.reset(session) is True
            assert await aclient.history(session) == []
            # A queued job behind a running one is cancelled at once.
            sim.script(model, {"content": "slow", "delay_ms": 1500})
            running = await aclient.submit({"session_id": session, "message": "a",
                                            "model": model})
            queued = await aclient.submit({"session_id": session, "message": "b",
                                           "model": model})
            cancelled = await aclient.cancel(queued)
            assert cancelled is not None and cancelled.status == JobStatus.CANCELLED
            assert (await aclient.wait(running, timeout=30)).response == "slow"

    asyncio.run(main())


def _cli(stack: DevStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", "--redis-url", stack.redis_url, *args],
        capture_output=True, text=True, timeout=60, env=stack.python_env({}),
        cwd=stack.project_root,
    )


def test_cli_stream_prints_the_answer_then_sources_and_usage(
    stack: DevStack, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"tool_calls": [tool_call("calculator", {"expression": "2+2"}, "k1")]},
               {"content": ANSWER})
    stream_config(sim, model, chunks=30, chunk_delay_ms=5)
    done = _cli(stack, "submit", "sum?", "--session", session, "--model", model, "--stream")
    assert done.returncode == 0, done.stderr
    text, _, rest = done.stdout.partition("\nstatus: succeeded\n")
    assert text == ANSWER
    assert "source calculator" in rest and "usage:" in rest

    sim.script(model, {"content": "json lines"})
    done = _cli(stack, "submit", "again", "--session", session, "--model", model,
                "--stream", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["kind"] for e in lines[:-1] if e["kind"] == "delta"]
    assert "".join(e["detail"]["text"] for e in lines[:-1] if e["kind"] == "delta") \
        == "json lines"
    assert lines[-1]["status"] == "succeeded" and lines[-1]["response"] == "json lines"
