"""Benchmark: latency of a one-tool turn through the queue, and turns per second.

Starts its own redis-server, simulator (zero latency) and one worker process per queue
(the deployment's pools: producer/deployment.py),
then prints one JSON object:
- ``queued_turn_ms``: a one-tool turn (2 model calls + 1 tool) submitted through the
  producer and awaited, one at a time;
- ``in_process_turn_ms``: the same turn as a plain loop with the same ``openai`` client
  and simulator, no queue (the floor the queue adds to), in blocks alternating with the
  queued turns' blocks so that a noisy machine slows both alike;
- ``throughput``: 100 sessions (a thread each) submitting at once; turns per second until
  all are done (one turn each: a burst), and ``sustained``: each session running
  ``--sustained-turns`` turns back to back (the steady rate, without the burst's ramp).

Run: ``.venv/bin/python bench/turn_latency.py [--turns 200] [--sessions 100]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai

from producer.client import AgentClient
from producer.contracts import (
    JobStatus,
    ToolCall,
)
from producer.deployment import AGENTS_WORKER, TOOLS_WORKER
from producer.devstack import DevStack
from worker.tools import default_registry, execute_tool_call

QUESTION = "What is 17 * 3?"
BLOCK = 25  # turns of one kind run back to back before the other kind's block


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 2),
        "p95": round(p95, 2),
        "min": round(ordered[0], 2),
    }


def queued_turn(client: AgentClient, session_id: str) -> float:
    """Milliseconds for one turn submitted through the producer and awaited."""
    started = time.perf_counter()
    result = client.run({"session_id": session_id, "message": QUESTION,
                         "tools": ["calculator"]}, timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    if result.status != JobStatus.SUCCEEDED or len(result.sources) != 1:
        raise RuntimeError(f"unexpected result: {result}")
    return elapsed


class InProcessTurn:
    """The same turn without a queue: model call, tool, model call, in one loop."""

    def __init__(self, base_url: str) -> None:
        self.model = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
        self.tools = default_registry.schemas(["calculator"])

    def __call__(self) -> float:
        started = time.perf_counter()
        messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
        while True:
            reply = self.model.chat.completions.create(
                model="gpt-4o-mini", messages=messages,  # type: ignore[arg-type]
                tools=self.tools, tool_choice="auto",  # type: ignore[arg-type]
            ).choices[0].message
            if not reply.tool_calls:
                break
            messages.append(reply.model_dump(exclude_none=True))
            for call in reply.tool_calls:
                output = execute_tool_call(
                    default_registry,
                    ToolCall(id=call.id, name=call.function.name,  # type: ignore[union-attr]
                             arguments=call.function.arguments),  # type: ignore[union-attr]
                    None,
                )
                messages.append({"role": "tool", "tool_call_id": call.id,
                                 "content": output.content})
        return (time.perf_counter() - started) * 1000


def paired_turns(client: AgentClient, base_url: str, turns: int) -> tuple[list[float], list[float]]:
    """Queued and in-process turns in alternating blocks of ``BLOCK`` back-to-back turns.

    Back to back, as a loop runs them; alternating, so that the slow and fast spells of
    a noisy machine fall on both (one block each, run one after the other, their ratio
    swung from 2.8x to 3.6x)."""
    direct = InProcessTurn(base_url)
    queued: list[float] = []
    in_process: list[float] = []
    done = 0
    while done < turns:
        block = min(BLOCK, turns - done)
        queued.extend(queued_turn(client, f"bench-lat-{done + i}") for i in range(block))
        in_process.extend(direct() for _ in range(block))
        done += block
    return queued, in_process


def throughput(client: AgentClient, sessions: int, round_no: int) -> float:
    """``sessions`` callers, one thread each, submit at the same moment and wait."""

    def one_session(i: int) -> JobStatus:
        job_id = client.submit({"session_id": f"bench-tp-{round_no}-{i}", "message": QUESTION,
                                "tools": ["calculator"]})
        return client.wait(job_id, timeout=120).status

    with ThreadPoolExecutor(max_workers=sessions) as pool:
        started = time.perf_counter()
        statuses = list(pool.map(one_session, range(sessions)))
        elapsed = time.perf_counter() - started
    if any(status != JobStatus.SUCCEEDED for status in statuses):
        raise RuntimeError(f"not all jobs succeeded: {statuses}")
    return sessions / elapsed


def sustained(client: AgentClient, sessions: int, turns_each: int) -> float:
    """``sessions`` callers, one thread each, each running ``turns_each`` turns back to
    back: turns per second once the load is steady (no burst at the start, no tail)."""

    def one_session(i: int) -> None:
        for turn in range(turns_each):
            result = client.run({"session_id": f"bench-st-{i}", "message": QUESTION,
                                 "tools": ["calculator"]}, timeout=120)
            if result.status != JobStatus.SUCCEEDED:
                raise RuntimeError(f"turn {turn} of session {i}: {result.status}")

    with ThreadPoolExecutor(max_workers=sessions) as pool:
        started = time.perf_counter()
        list(pool.map(one_session, range(sessions)))
        elapsed = time.perf_counter() - started
    return sessions * turns_each / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sustained-turns", type=int, default=6,
                        help="turns each session runs back to back for the steady figure")
    parser.add_argument("--agents-workers", type=int, default=1,
                        help="agents worker processes (the issue's targets allow two)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="pool size per worker (default: the deployment's)")
    args = parser.parse_args()
    with DevStack() as stack:
        redis_url = stack.start_redis()
        sim_url = stack.start_simulator(latency_ms=0)
        for i in range(args.agents_workers):
            stack.start_worker(["agents"], args.concurrency, f"agents{i}", loglevel="INFO")
        stack.start_worker(["tools"], args.concurrency, "tools", loglevel="INFO")
        agents_c = args.concurrency or AGENTS_WORKER.concurrency
        tools_c = args.concurrency or TOOLS_WORKER.concurrency
        with AgentClient(redis_url) as client:
            paired_turns(client, sim_url, 10)  # warm up pools and connections
            queued, direct = paired_turns(client, sim_url, args.turns)
            rates = [throughput(client, args.sessions, r) for r in range(args.rounds)]
            steady = sustained(client, args.sessions, args.sustained_turns)
    queued_stats, direct_stats = percentiles(queued), percentiles(direct)
    print(json.dumps({
        "benchmark": "one-tool chat turn (2 model calls + 1 tool), simulator latency 0",
        "workers": {"agents": f"{args.agents_workers} process(es), -P {AGENTS_WORKER.pool} "
                              f"-c {agents_c}",
                    "tools": f"1 process, -P {TOOLS_WORKER.pool} -c {tools_c}"},
        "task_events": os.environ.get("AGENT_TASK_EVENTS", "1"),
        "queued_turn_ms": queued_stats,
        "in_process_turn_ms": direct_stats,
        "queue_overhead_ms_median": round(queued_stats["median"] - direct_stats["median"], 2),
        "queued_to_in_process_median_ratio": round(
            queued_stats["median"] / direct_stats["median"], 2),
        "throughput": {
            "sessions_at_once": args.sessions,
            "turns_per_second_each_round": [round(r, 1) for r in rates],
            "turns_per_second_median": round(statistics.median(rates), 1),
            "sustained_turns_per_second": round(steady, 1),
            "sustained_turns_each_session": args.sustained_turns,
        },
    }, indent=2))


if __name__ == "__main__":
    main()
