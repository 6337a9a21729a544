"""Reliability run: jobs under worker kills, a Redis restart and injected model errors.

Starts its own redis-server (AOF on), simulator and workers (two per queue, short
visibility timeout), makes the simulator fail a share of model requests, submits N jobs
across sessions while killing workers K times (pool children and whole workers, the
latter replaced at once) and restarting Redis once, then prints one JSON object:
jobs accepted / completed / failed (by reason) / lost (must be 0), duplicated memory
entries (must be 0) and double executions of the non-idempotent tool (must be 0).

Every job has its own scripted model: first a call of ``record_call`` (non-idempotent,
counts its runs in Redis) and ``sleep_for`` in parallel, then an answer.

Run: ``.venv/bin/python bench/reliability.py [--jobs 200] [--sessions 50] [--kills 6]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack, ManagedProcess

VISIBILITY_TIMEOUT = 8
# Every step here is short (tools sleep 0.3 s, model calls ~20 ms): a job silent for 15 s
# has lost a task (e.g. in the Redis restart), and the deadline sweep sends it again.
STALL_SECONDS = 15


class Chaos:
    """The stack, its workers, and the faults done to them."""

    def __init__(self, stack: DevStack, seed: int) -> None:
        self.stack = stack
        self.random = random.Random(seed)
        self.workers: dict[str, list[ManagedProcess]] = {"agents": [], "tools": []}
        self.started = 0
        self.kills: list[dict[str, Any]] = []
        self.missed_kills = 0
        self.redis_down = threading.Event()
        self.lock = threading.Lock()

    def top_up(self) -> None:
        for queue, workers in self.workers.items():
            workers[:] = [w for w in workers if w.alive]
            while len(workers) < 2:
                self.started += 1
                workers.append(self.stack.start_worker([queue], 2, f"{queue}{self.started}"))

    def kill_one(self, variant: str) -> None:
        """SIGKILL a pool child or a whole worker; every planned kill happens.

        A worker started a moment ago (one replacing a killed worker) may not have
        forked its pool yet: wait for its children, then try the other workers.
        """
        queue = self.random.choice(["agents", "tools"])
        candidates = self.workers[queue][:]
        self.random.shuffle(candidates)
        for worker in candidates:
            if variant == "whole-worker":
                worker.kill()
                self.top_up()
                break
            children = _wait_children(worker.pid, 5.0)
            if children:
                os.kill(self.random.choice(children), signal.SIGKILL)
                break
        else:
            self.missed_kills += 1
            return
        self.kills.append({"at": round(time.time(), 2), "queue": queue, "variant": variant,
                           "worker": worker.name})

    def restart_redis(self, downtime: float) -> None:
        assert self.stack.redis is not None
        self.redis_down.set()
        self.stack.redis.stop()
        time.sleep(downtime)
        self.stack.restart_redis()
        self.redis_down.clear()


def _wait_children(pid: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while not (children := _children(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return children


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid) and fields[0] not in "ZX":
            found.append(int(stat.parent.name))
    return found


def sim_call(stack: DevStack, method: str, path: str, body: Any = None) -> Any:
    root = (stack.simulator_url or "").removesuffix("/v1")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(root + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def script_job(stack: DevStack, i: int) -> None:
    calls = [
        {"id": f"rec-{i}", "name": "record_call", "arguments": {"key": f"job-{i}",
                                                                 "seconds": 0.3}},
        {"id": f"nap-{i}", "name": "sleep_for", "arguments": {"seconds": 0.3}},
    ]
    # spare answers: a model call killed mid-flight consumes a reply nobody receives
    replies = [{"tool_calls": calls}] + [{"content": f"answer {i}"}] * 3
    sim_call(stack, "POST", "/_sim/script", {"model": f"rel-{i}", "replies": replies})


def submit_all(client: AgentClient, chaos: Chaos, jobs: int, sessions: int,
               pace: float) -> tuple[dict[str, int], int]:
    accepted: dict[str, int] = {}
    submit_errors = 0
    for i in range(jobs):
        while True:
            # No pause while Redis restarts: the client itself waits for Redis to return.
            try:
                job_id = client.submit({
                    "session_id": f"rel-s{i % sessions}", "message": f"job {i}",
                    "model": f"rel-{i}", "tools": ["record_call", "sleep_for"],
                })
            except Exception:  # Redis away: not accepted; try again
                submit_errors += 1
                time.sleep(0.2)
                continue
            accepted[job_id] = i
            break
        time.sleep(pace)
    return accepted, submit_errors


def run_chaos(chaos: Chaos, kills: int, span: float, downtime: float) -> None:
    """Kills spread over ``span`` seconds, the Redis restart in the middle."""
    moments = sorted([("kill", span * (k + 1) / (kills + 1)) for k in range(kills)]
                     + [("redis", span / 2 + 0.5)], key=lambda m: m[1])
    started = time.monotonic()
    for n, (what, at) in enumerate(moments):
        time.sleep(max(0.0, started + at - time.monotonic()))
        with chaos.lock:
            if what == "redis":
                chaos.restart_redis(downtime)
            else:
                chaos.kill_one("pool-child" if n % 2 == 0 else "whole-worker")


def outcome(client: AgentClient, counter: redis.Redis, accepted: dict[str, int],
            sessions: int, deadline: float) -> dict[str, Any]:
    pending = dict(accepted)
    results: dict[str, Any] = {}
    while pending and time.time() < deadline:
        for job_id in list(pending):
            try:
                job = client.status(job_id)
            except Exception:
                continue
            if job is not None and job.status.terminal:
                results[job_id] = job
                del pending[job_id]
        time.sleep(0.5)
    failed = Counter(
        (r.error or "?")[:80] for r in results.values() if r.status != JobStatus.SUCCEEDED
    )
    duplicates = 0
    for s in range(sessions):
        entries = Counter(
            m.model_dump_json() for m in client.history(f"rel-s{s}")
        )
        duplicates += sum(n - 1 for n in entries.values() if n > 1)
    runs = [int(counter.get(f"test:record_call:job-{i}") or 0) for i in accepted.values()]
    unknown = sum(
        1 for r in results.values() for src in r.sources
        if src.is_error and "is unknown" in src.content
    )
    return {
        "jobs_accepted": len(accepted),
        "jobs_completed": sum(r.status == JobStatus.SUCCEEDED for r in results.values()),
        "jobs_failed": sum(failed.values()),
        "failed_reasons": dict(failed),
        "jobs_lost": len(pending),
        "lost_job_ids": list(pending)[:10],
        "duplicated_memory_entries": duplicates,
        "non_idempotent_double_executions": sum(1 for n in runs if n > 1),
        "non_idempotent_runs": sum(runs),
        "non_idempotent_unknown_outcomes": unknown,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--error-rate", type=float, default=0.2)
    parser.add_argument("--pace", type=float, default=0.05, help="seconds between submits")
    parser.add_argument("--redis-downtime", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    args = parser.parse_args()

    # The producer (this process) plans deadline sweeps below the workers' visibility
    # timeout, and at the stall-check pace, only if it knows them (producer/deadlines.py).
    os.environ["AGENT_VISIBILITY_TIMEOUT"] = str(VISIBILITY_TIMEOUT)
    os.environ["AGENT_STALL_SECONDS"] = str(STALL_SECONDS)
    with DevStack(keep_run_dir=args.keep) as stack:
        stack.extra_env.update({
            "AGENT_TOOL_MODULES": "tests.tool_fixtures",
            "AGENT_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "AGENT_STALL_SECONDS": str(STALL_SECONDS),
            "AGENT_MODEL_MAX_RETRIES": "8",  # 20% errors: 9 failures in a row ~ 5e-7
            "AGENT_TASK_EVENTS": "0",
        })
        stack.start_redis(appendonly=True)
        stack.start_simulator(latency_ms=20)
        chaos = Chaos(stack, args.seed)
        chaos.top_up()
        for i in range(args.jobs):
            script_job(stack, i)
        sim_call(stack, "POST", "/_sim/faults",
                 {"error_rate": args.error_rate, "error_status": 500, "seed": args.seed})
        started = time.time()
        span = args.jobs * args.pace + 5
        chaos_thread = threading.Thread(
            target=run_chaos, args=(chaos, args.kills, span, args.redis_downtime), daemon=True
        )
        chaos_thread.start()
        with AgentClient(stack.redis_url) as client:
            accepted, submit_errors = submit_all(client, chaos, args.jobs, args.sessions,
                                                 args.pace)
            chaos_thread.join()
            counter = redis.Redis.from_url(stack.redis_url or "")
            report = outcome(client, counter, accepted, args.sessions,
                             deadline=time.time() + 180)
        faults = sim_call(stack, "GET", "/_sim/faults")["stats"]
        report.update({
            "submit_attempts_refused_while_redis_was_down": submit_errors,
            "worker_kills": len(chaos.kills),
            "planned_kills_missed": chaos.missed_kills,
            "kills": chaos.kills,
            "redis_restarts": 1,
            "model_requests": faults["requests"],
            "injected_errors": faults["error"],
            "seconds": round(time.time() - started, 1),
            "run_dir": str(stack.run_dir) if args.keep else None,
        })
    print(json.dumps(report, indent=2))
    ok = report["jobs_lost"] == report["duplicated_memory_entries"] == 0
    return 0 if ok and report["non_idempotent_double_executions"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
