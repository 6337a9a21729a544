"""Benchmark: many turns waiting for approval at once hold no worker slot.

Starts its own redis-server, simulator and ONE agents worker (the deployment's pool, with
a small concurrency, ``--agents-concurrency``) plus one tools worker. Submits ``--jobs``
turns whose model asks for one call of ``send_payment`` (``requires_approval=True``,
tests/tool_fixtures.py), then prints one JSON object:
- ``waiting``: how many jobs reached ``waiting_approval``, and the agents worker's
  active-task count (``celery inspect active``) sampled while they all wait;
- ``approved``: every call approved from one client, seconds until all jobs ended, how
  many succeeded, and the latency from each decision (the decision's ``decided_at``,
  written by the decision script) to its tool starting (the ``tool_started`` event),
  p50/p95/max in ms, for the first ``--spaced`` decisions (0.1 s apart) and the rest
  (sent as fast as one client can).

Run: ``.venv/bin/python bench/approval_waits.py [--jobs 200] [--agents-concurrency 4]``
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack


def script(root: str, model: str, who: str) -> None:
    body = {"model": model, "replies": [
        {"tool_calls": [{"name": "send_payment", "arguments": {"to": who, "amount": 1},
                         "id": f"pay-{who}"}]},
        {"content": "Paid."},
    ]}
    request = urllib.request.Request(f"{root}/_sim/script", data=json.dumps(body).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()


def pct(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
            "max": round(ordered[-1], 2)}


def active_tasks(client: AgentClient, worker: str) -> int | None:
    replies = client.celery.control.inspect(timeout=2, destination=[worker]).active() or {}
    tasks = replies.get(worker)
    return None if tasks is None else len(tasks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--agents-concurrency", type=int, default=4)
    parser.add_argument("--spaced", type=int, default=20,
                        help="approve this many first, 0.1 s apart; the rest at once")
    args = parser.parse_args()
    with DevStack() as stack:
        stack.extra_env.update({"AGENT_TOOL_MODULES": "tests.tool_fixtures",
                                "OPENAI_API_KEY": "sk-bench"})
        redis_url = stack.start_redis()
        root = stack.start_simulator(latency_ms=0).removesuffix("/v1")
        stack.start_worker(["agents"], args.agents_concurrency, "agents")
        stack.start_worker(["tools"], 4, "tools")
        agents = f"agents@{socket.gethostname()}"
        with AgentClient(redis_url) as client:
            jobs: dict[str, str] = {}
            for i in range(args.jobs):
                who = f"b{i}"
                model = f"bench-approval-{time.time_ns()}-{i}"
                script(root, model, who)
                jobs[client.submit({"session_id": f"bench-approve-{i}", "message": "pay",
                                    "model": model})] = who
            deadline = time.time() + 120
            while time.time() < deadline:
                statuses = [client.status(j) for j in jobs]
                waiting = sum(s is not None and s.status == JobStatus.WAITING_APPROVAL
                              for s in statuses)
                if waiting == len(jobs):
                    break
                time.sleep(0.2)
            samples: list[int | None] = []
            for _ in range(5):
                samples.append(active_tasks(client, agents))
                time.sleep(0.3)
            started = time.time()
            decided_at: dict[str, float] = {}
            for n, (job_id, who) in enumerate(jobs.items()):
                if n < args.spaced:  # one at a time: the latency of an idle system
                    time.sleep(0.1)
                decided_at[job_id] = client.approve(job_id, f"pay-{who}").decided_at or 0.0
            results = {}
            for job_id in jobs:
                results[job_id] = client.wait(job_id, timeout=120)
            finished = max(r.updated_at for r in results.values()) - started
            latencies = []
            for job_id in jobs:
                tool_started = next(e.at for _, e in client.jobs.read_events(job_id)
                                    if e.kind == "tool_started")
                latencies.append((tool_started - decided_at[job_id]) * 1000)
            runs = sum(int(client.jobs.redis.get(f"test:record_call:pay:{who}") or 0)
                       for who in jobs.values())
    print(json.dumps({
        "benchmark": f"{args.jobs} turns waiting for approval of one tool call each",
        "agents_worker": f"1 process, the deployment's pool, concurrency "
                         f"{args.agents_concurrency}",
        "waiting": {"jobs_waiting_approval": waiting,
                    "agents_worker_active_tasks_sampled": samples},
        "approved": {"seconds_until_all_ended": round(finished, 2),
                     "succeeded": sum(r.status == JobStatus.SUCCEEDED
                                      for r in results.values()),
                     "tool_runs": runs,
                     "decision_to_tool_started_ms": {
                         f"first {args.spaced}, 0.1 s apart": pct(latencies[:args.spaced]),
                         f"other {args.jobs - args.spaced}, at once": pct(
                             latencies[args.spaced:]),
                         "all": pct(latencies)}},
    }, indent=2))


if __name__ == "__main__":
    main()
