"""Benchmark: many concurrent assistant runs on one small worker, against a blocking poller.

Starts its own redis-server, simulator (every run lasts ``--run-seconds`` server-side)
and ONE agents worker process with concurrency 2, then prints one JSON object:
- ``queued``: ``--runs`` assistant-mode jobs (Responses API in background mode) submitted
  at once; seconds until all ended, retrieve calls per run (simulator counters), the
  worker's CPU seconds and poll tasks run;
- ``blocking``: the usual hand-written approach on the same worker (a task that creates
  the response and polls it in a sleep loop, holding its slot; ``bench/blocking_poller.py``)
  for ``--blocking-runs`` runs, extrapolated linearly to ``--runs``;
- ``speedup``: extrapolated blocking time / queued time.

Run: ``.venv/bin/python bench/assistant_runs.py [--runs 1000] [--blocking-runs 6]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.blocking_poller import DONE_KEY, TASK_BLOCKING_RUN
from producer import keys
from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack

MESSAGE = "Hello there"


def sim_call(root: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(root + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def group_cpu_seconds(leader_pid: int) -> float:
    """utime + stime of a process and its direct children (a prefork worker and its pool)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if stat.parent.name == str(leader_pid) or fields[1] == str(leader_pid):
            total += int(fields[11]) + int(fields[12])
    return total / tick


def queued_runs(client: AgentClient, runs: int, poll_interval: float) -> dict[str, Any]:
    requests = [
        {"session_id": f"bench-run-{i}", "message": MESSAGE, "mode": "assistant", "tools": [],
         "poll_interval": poll_interval}
        for i in range(runs)
    ]
    started_at = time.time()
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        job_ids = list(pool.map(client.submit, requests))
    submitted = time.perf_counter() - started
    pending = set(job_ids)
    redis = client.jobs.redis
    while pending:
        # Checked only twice a second: a tighter loop over 1000 keys would take CPU from
        # the system under test. The time reported comes from the job records instead.
        time.sleep(0.5)
        batch = list(pending)
        pipe = redis.pipeline(transaction=False)
        for job_id in batch:
            pipe.exists(keys.job_final(job_id))
        for job_id, final in zip(batch, pipe.execute(), strict=True):
            if final:
                pending.discard(job_id)
        if time.perf_counter() - started > 300:
            raise TimeoutError(f"{len(pending)} runs still going after 300 s")
    records = [client.status(j) for j in job_ids]
    # From the first submit to the last job's end, as its record says.
    elapsed = max(r.updated_at for r in records if r is not None) - started_at
    failed = [r for r in records if r is None or r.status != JobStatus.SUCCEEDED]
    if failed:
        raise RuntimeError(f"{len(failed)} runs did not succeed, e.g. {failed[0]}")
    return {"runs": runs, "seconds": round(elapsed, 2), "submit_seconds": round(submitted, 2),
            **timeline(client, [r for r in records if r is not None])}


def timeline(client: AgentClient, records: list[Any]) -> dict[str, Any]:
    """Where a run's time went: waiting to be created, and finishing after the server did."""
    first = min(r.created_at for r in records)
    to_create, ended = [], []
    for record in records:
        created = None
        for _, event in client.jobs.read_events(record.job_id):
            if event.kind == "run_created":
                created = event.at
        if created is not None:
            to_create.append(created - record.created_at)
        ended.append(record.updated_at - first)

    def pct(values: list[float], q: float) -> float:
        values = sorted(values)
        return round(values[min(len(values) - 1, int(q * len(values)))], 2) if values else 0.0

    return {
        "submit_to_run_created_s": {"p50": pct(to_create, 0.5), "p95": pct(to_create, 0.95),
                                    "max": pct(to_create, 1.0)},
        "job_end_after_first_submit_s": {"p50": pct(ended, 0.5), "p95": pct(ended, 0.95),
                                         "max": pct(ended, 1.0)},
    }


def redis_commands_per_run(
    before: dict[str, Any], after: dict[str, Any], runs: int
) -> dict[str, float]:
    """Redis commands per run, by command (INFO commandstats; includes the bench's own)."""
    counts = {
        name.removeprefix("cmdstat_"): stats["calls"] - before.get(name, {}).get("calls", 0)
        for name, stats in after.items()
    }
    top = sorted(counts.items(), key=lambda item: -item[1])[:12]
    return {"total": round(sum(counts.values()) / runs, 1),
            **{name: round(calls / runs, 1) for name, calls in top}}


def blocking_runs(client: AgentClient, runs: int, poll_interval: float) -> float:
    redis = client.jobs.redis
    redis.delete(DONE_KEY)
    started = time.perf_counter()
    for _ in range(runs):
        client.celery.send_task(
            TASK_BLOCKING_RUN, args=["gpt-4o-mini", MESSAGE, poll_interval], ignore_result=True
        )
    while int(redis.get(DONE_KEY) or 0) < runs:
        if time.perf_counter() - started > 600:
            raise TimeoutError("blocking runs did not finish")
        time.sleep(0.05)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--blocking-runs", type=int, default=6)
    parser.add_argument("--run-seconds", type=float, default=5.0)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--task-events", default="1")
    parser.add_argument("--keep-logs", default=None, help="a directory for the logs")
    args = parser.parse_args()
    with DevStack(args.keep_logs, keep_run_dir=args.keep_logs is not None) as dev:
        dev.extra_env.update({
            "AGENT_TOOL_MODULES": "bench.blocking_poller",
            "AGENT_TASK_EVENTS": args.task_events,
        })
        os.environ["AGENT_TASK_EVENTS"] = args.task_events
        dev.start_redis()
        root = dev.start_simulator(latency_ms=0).removesuffix("/v1")
        sim_call(root, "POST", "/_sim/config", {"run_duration_ms": args.run_seconds * 1000})
        worker = dev.start_worker(["agents"], concurrency=args.concurrency, name="agents",
                                  loglevel="INFO")
        with AgentClient(dev.redis_url) as client:
            before = sim_call(root, "GET", "/_sim/stats")["stats"]
            assert dev.simulator is not None and dev.redis is not None
            others = {"simulator": dev.simulator.pid, "redis": dev.redis.pid}
            cpu_before = group_cpu_seconds(worker.pid)
            others_before = {k: group_cpu_seconds(pid) for k, pid in others.items()}
            commands_before = client.jobs.redis.info("commandstats")
            queued = queued_runs(client, args.runs, args.poll_interval)
            commands_after = client.jobs.redis.info("commandstats")
            cpu = group_cpu_seconds(worker.pid) - cpu_before
            others_cpu = {f"{k}_cpu_seconds": round(group_cpu_seconds(pid) - others_before[k], 1)
                          for k, pid in others.items()}
            after = sim_call(root, "GET", "/_sim/stats")["stats"]
            retrieved = after["response_retrieved"] - before["response_retrieved"]
            queued.update({
                "retrieves_per_run": round(retrieved / args.runs, 2),
                "responses_created": after["response_created"] - before["response_created"],
                "worker_cpu_seconds": round(cpu, 1),
                **others_cpu,
                "poll_tasks": worker.log_text().count("Task agents.run.poll["),
                "redis_commands_per_run": redis_commands_per_run(
                    commands_before, commands_after, args.runs),
            })
            queued["poll_tasks"] //= 2  # "received" and "succeeded" lines
            blocking_seconds = blocking_runs(client, args.blocking_runs, args.poll_interval)
        extrapolated = blocking_seconds * args.runs / args.blocking_runs
        print(json.dumps({
            "worker": {"processes": 1, "concurrency": args.concurrency,
                       "task_events": args.task_events},
            "run_seconds_server_side": args.run_seconds,
            "poll_interval": args.poll_interval,
            "queued": queued,
            "blocking": {
                "runs": args.blocking_runs,
                "seconds": round(blocking_seconds, 2),
                "extrapolated_seconds": round(extrapolated, 1),
            },
            "speedup": round(extrapolated / queued["seconds"], 1),
        }, indent=2))


if __name__ == "__main__":
    main()
