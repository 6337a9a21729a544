"""Benchmark: streamed answers through the queue.

Starts its own redis-server, simulator and an agents worker as the default deployment
runs it (threads pool), the simulator streaming every answer as ``--chunks`` chunks
``--chunk-ms`` apart, and prints one JSON object:

- ``time_to_first_token_ms``: from submit to the first text piece from
  ``AgentClient.stream``, one turn at a time, against a direct streaming call with the
  same ``openai`` client (from ``create`` to the first content chunk); p50 overhead;
- ``redis_per_streamed_answer``: Redis commands per streamed turn (``INFO commandstats``,
  writes broken down) against the same turn without streaming, and delta events per answer;
- ``concurrent``: ``--concurrent`` streamed turns at once through the gateway's
  OpenAI-compatible ``/v1/chat/completions`` (the official ``AsyncOpenAI`` client,
  ``stream=True``): makespan, and CPU seconds of the gateway, the agents worker, the
  simulator and Redis.

Run: ``.venv/bin/python bench/streaming.py [--turns 30] [--concurrent 500]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai
import redis

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from producer.devstack_services import start_gateway

WRITES = {"xadd", "set", "setex", "incr", "incrby", "expire", "rpush", "lpush", "lpop",
          "lrem", "zadd", "zrem", "del", "hset", "hincrby", "publish", "evalsha", "eval",
          "pexpire", "getdel"}
TEXT = "Streaming through the queue, one small piece after another. " * 17  # ~1000 chars


def pct(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 2),
            "min": round(ordered[0], 2)}


def post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def script(root: str, model: str, replies: int) -> None:
    post(f"{root}/_sim/script", {"model": model, "replies": [{"content": TEXT}] * replies})


def queued_ttft(client: AgentClient, model: str, turns: int) -> list[float]:
    samples = []
    for i in range(turns):
        started = time.perf_counter()
        job_id = client.submit({"session_id": f"ttft-{model}-{i}", "message": "go",
                                "model": model, "stream": True, "tools": []})
        pieces = client.stream(job_id, timeout=60)
        next(pieces)
        samples.append((time.perf_counter() - started) * 1000)
        for _ in pieces:  # the rest of the answer, so turns do not overlap
            pass
        if client.wait(job_id, 5).status != JobStatus.SUCCEEDED:
            raise RuntimeError(f"job {job_id} failed")
    return samples


def direct_ttft(base_url: str, model: str, turns: int) -> list[float]:
    oai = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    samples = []
    for _ in range(turns):
        started = time.perf_counter()
        stream = oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "go"}], stream=True,
            stream_options={"include_usage": True})
        first = None
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = (time.perf_counter() - started) * 1000
        assert first is not None
        samples.append(first)
    return samples


def commands(r: redis.Redis) -> dict[str, int]:
    stats = r.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def redis_per_turn(client: AgentClient, r: redis.Redis, root: str, turns: int,
                   stream: bool) -> dict[str, Any]:
    model = f"bench-redis-{'s' if stream else 'n'}-{time.time_ns()}"
    script(root, model, turns)
    before = commands(r)
    job_ids = []
    for i in range(turns):
        job_id = client.submit({"session_id": f"{model}-{i}", "message": "go", "model": model,
                                "stream": stream, "tools": []})
        client.wait(job_id, 60)
        job_ids.append(job_id)
    after = commands(r)
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    # The producer's own reads (XREAD while waiting, GET) are not the turn's.
    writes = {k: round(v / turns, 1) for k, v in sorted(diff.items()) if k in WRITES and v}
    deltas = [sum(e.kind == "delta" for _, e in client.jobs.read_events(j)) for j in job_ids]
    return {"writes_per_turn": round(sum(writes.values()), 1), "writes_by_command": writes,
            "all_commands_per_turn_incl_client_reads": round(sum(diff.values()) / turns, 1),
            "delta_events_per_answer": round(statistics.mean(deltas), 1)}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def concurrent_turns(gateway: str, model: str, n: int) -> tuple[float, int]:
    oai = openai.AsyncOpenAI(base_url=gateway + "/v1", api_key="none", max_retries=0,
                             timeout=300)

    async def one(i: int) -> str:
        stream = await oai.chat.completions.create(
            model=model, stream=True, extra_headers={"X-Session-Id": f"{model}-{i}"},
            messages=[{"role": "user", "content": "go"}])
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    started = time.perf_counter()
    texts = await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    await oai.close()
    return elapsed, sum(t == TEXT for t in texts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--redis-turns", type=int, default=10)
    parser.add_argument("--concurrent", type=int, default=500)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--chunk-ms", type=float, default=5.0)
    parser.add_argument("--logs", help="keep the processes' logs in this folder")
    args = parser.parse_args()
    with DevStack(args.logs, keep_run_dir=bool(args.logs)) as stack:
        redis_url = stack.start_redis()
        sim_url = stack.start_simulator(latency_ms=0)
        root = sim_url.removesuffix("/v1")
        post(f"{root}/_sim/stream", {"chunks": args.chunks, "chunk_delay_ms": args.chunk_ms})
        worker = stack.start_worker(["agents"], None, "agents")  # the deployment's pool
        gateway = start_gateway(stack)
        gateway_proc = next(p for p in stack.processes if p.name.startswith("gateway"))
        r = redis.Redis.from_url(redis_url)
        with AgentClient(redis_url) as client:
            warm = f"bench-warm-{time.time_ns()}"
            script(root, warm, 5)
            queued_ttft(client, warm, 3)
            direct_ttft(sim_url, "gpt-4o-mini", 3)
            ttft_model = f"bench-ttft-{time.time_ns()}"
            script(root, ttft_model, args.turns)
            queued = queued_ttft(client, ttft_model, args.turns)
            direct = direct_ttft(sim_url, "gpt-4o-mini", args.turns)
            streamed = redis_per_turn(client, r, root, args.redis_turns, stream=True)
            plain = redis_per_turn(client, r, root, args.redis_turns, stream=False)
        model = f"bench-many-{time.time_ns()}"
        script(root, model, args.concurrent)
        pids = {"gateway": gateway_proc.pid, "agents_worker": worker.pid,
                "simulator": stack.simulator.pid if stack.simulator else None,
                "redis": stack.redis.pid if stack.redis else None}
        before = {k: cpu_seconds(p) for k, p in pids.items() if p}
        makespan, complete = asyncio.run(concurrent_turns(gateway, model, args.concurrent))
        cpu = {k: round(cpu_seconds(p) - before[k], 2) for k, p in pids.items() if p}
    q, d = pct(queued), pct(direct)
    print(json.dumps({
        "benchmark": f"streamed answers, simulator streaming {args.chunks} chunks "
                     f"{args.chunk_ms:g} ms apart (~{len(TEXT)} characters)",
        "agents_worker": "1 process, the deployment's pool (threads)",
        "task_events": os.environ.get("AGENT_TASK_EVENTS", "1"),
        "time_to_first_token_ms": {"through_queue": q, "direct_streaming_call": d,
                                   "p50_overhead": round(q["p50"] - d["p50"], 2)},
        "redis_per_streamed_answer": {"streamed": streamed, "not_streamed": plain},
        "concurrent": {"turns": args.concurrent, "complete_and_exact": complete,
                       "makespan_s": round(makespan, 2),
                       "ideal_s": round(args.chunks * args.chunk_ms / 1000, 2),
                       "cpu_seconds": cpu},
    }, indent=2))


if __name__ == "__main__":
    main()
