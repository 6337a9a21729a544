"""Benchmark: many one-tool turns in flight at once, with a model that takes L seconds.

Starts its own redis-server, the simulator answering every chat completion after
``--latency`` seconds, ``--agents-workers`` agents worker processes and one tools worker,
each exactly as the default deployment runs them (producer/deployment.py: the pool and
concurrency of docker-compose.yml and ``celery-agents dev``), then submits ``--turns``
one-tool turns (2 model calls + 1 tool) in as many sessions at once and prints JSON:

- ``makespan_s``: first submit to the last job's end (from the job records), and its
  ratio to the ideal 2·L;
- per-turn latency (submit to end) p50/p95 and turns finished in the first 60 s;
- RSS (peak seen) and CPU seconds of every process (a prefork worker with its children),
  CPU ms per turn of the agents workers and per tool call of the tools worker, and the
  benchmark's own CPU (its submits and polling share the same two cores);
- Redis commands per turn (``INFO stats`` before and after).

With ``--latency 0 --turns 100`` it is the zero-latency throughput figure (turns/s).
``--kill-after S`` SIGKILLs the first agents worker S seconds after the submits (a lost
host) and reports the time every turn took to resume and whether anything ran twice.

Run: ``.venv/bin/python bench/concurrency.py --turns 1000 --latency 2 --agents-workers 2``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from producer import keys
from producer.client import AgentClient
from producer.contracts import JobResult
from producer.deployment import AGENTS_WORKER, TOOLS_WORKER
from producer.devstack import DevStack, ManagedProcess

QUESTION = "What is 17 * 3?"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a prefork worker's pool processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int, kind: str = "all") -> float:
    """User + system CPU seconds of ``pid`` and its children (``kind``: all, user, system,
    or main: ``pid`` alone)."""
    total = 0
    for member in process_tree(pid) if kind != "main" else [pid]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user, system = int(fields[11]), int(fields[12])
        total += {"all": user + system, "main": user + system, "user": user,
                  "system": system}[kind]
    return total / CLK_TCK


def rss_mb(pid: int) -> float:
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Sampler:
    """Peak RSS of each process, sampled every 0.25 s while the load runs."""

    def __init__(self, procs: dict[str, int]) -> None:
        self.procs = procs
        self.peak = dict.fromkeys(procs, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.procs.items():
                self.peak[name] = max(self.peak[name], rss_mb(pid))
            self._stop.wait(0.25)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def total_commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


BENCH_COMMANDS = [0]  # Redis commands the benchmark itself sent while it measured


def wait_all(client: AgentClient, job_ids: list[str], timeout: float) -> list[JobResult]:
    """Every job's final record; checks the records twice a second, not per job."""
    deadline = time.monotonic() + timeout
    pending, done = set(job_ids), {}
    while pending:
        BENCH_COMMANDS[0] += len(pending)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} of {len(job_ids)} jobs not done")
        pipe = client.jobs.redis.pipeline(transaction=False)
        batch = list(pending)
        for job_id in batch:
            pipe.get(keys.job(job_id))
        for job_id, raw in zip(batch, pipe.execute(), strict=True):
            if raw:
                record = JobResult.model_validate_json(raw)
                if record.status.terminal:
                    done[job_id] = record
                    pending.discard(job_id)
        time.sleep(0.5)
    return [done[job_id] for job_id in job_ids]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def submit_all(client: AgentClient, turns: int, tag: str) -> tuple[list[str], float]:
    requests = [{"session_id": f"bench-{tag}-{i}", "message": QUESTION, "tools": ["calculator"]}
                for i in range(turns)]
    started = time.time()
    with ThreadPoolExecutor(max_workers=8) as pool:
        job_ids = list(pool.map(client.submit, requests))
    return job_ids, started


def duplicates(r: redis.Redis, job_ids: list[str]) -> dict[str, int]:
    """Memory entries written twice and tools run twice, read from what the jobs left."""
    pipe = r.pipeline(transaction=False)
    for i in range(len(job_ids)):
        pipe.lrange(keys.session_messages(f"bench-{TAG}-{i}"), 0, -1)
    memory = pipe.execute()
    doubled = sum(1 for messages in memory if len(messages) != 4)  # user, call, tool, answer
    return {"sessions_with_wrong_memory": doubled}


TAG = "c"


def phase_times(client: AgentClient, job_ids: list[str]) -> dict[str, float]:
    """Median seconds from a job's submit to each of its events (where the time goes)."""
    seen: dict[str, list[float]] = {}
    for job_id in job_ids:
        events = [event for _, event in client.jobs.read_events(job_id)]
        if not events:
            continue
        created = events[0].at
        for event in events[1:]:
            name = event.kind if event.step is None else f"{event.kind}:{event.step}"
            seen.setdefault(name, []).append(event.at - created)
    return {name: round(statistics.median(times), 2) for name, times in
            sorted(seen.items(), key=lambda item: statistics.median(item[1]))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per model call")
    parser.add_argument("--agents-workers", type=int, default=1)
    parser.add_argument("--pool", default=AGENTS_WORKER.pool, help="agents worker pool")
    parser.add_argument("--concurrency", type=int, default=AGENTS_WORKER.concurrency)
    parser.add_argument("--kill-after", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--py-spy", default="", help="record the first agents worker's "
                        "stacks (collapsed format) into this file")
    args = parser.parse_args()
    global TAG
    TAG = f"c{int(time.time())}"
    with DevStack() as stack:
        redis_url = stack.start_redis()
        stack.start_simulator(latency_ms=int(args.latency * 1000))
        agents: list[ManagedProcess] = [
            stack.start_worker(["agents"], args.concurrency, f"agents{i}", pool=args.pool)
            for i in range(args.agents_workers)
        ]
        tools = stack.start_worker(["tools"], TOOLS_WORKER.concurrency, "tools",
                                   pool=TOOLS_WORKER.pool)
        procs = {p.name: p.pid for p in [*agents, tools]}
        assert stack.redis is not None and stack.simulator is not None
        procs["redis"] = stack.redis.pid
        procs["simulator"] = stack.simulator.pid
        raw = redis.Redis.from_url(redis_url)
        with AgentClient(redis_url) as client:
            warm, _ = submit_all(client, 4, "warm")  # pools, connections, tokenizer
            wait_all(client, warm, 60)
            cpu_before = {name: cpu_seconds(pid) for name, pid in procs.items()}
            tools_main_before = cpu_seconds(tools.pid, "main")
            sys_before = {name: cpu_seconds(pid, "system") for name, pid in procs.items()}
            commands_before = total_commands(raw)
            BENCH_COMMANDS[0] = 0
            killed_at = None
            spy = None
            if args.py_spy:
                spy = subprocess.Popen(["py-spy", "record", "-p", str(agents[0].pid), "-r", "200",
                                        "-f", "raw", "-o", args.py_spy, "--gil"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
            bench_cpu_before = time.process_time()
            with Sampler(procs) as sampler:
                job_ids, started = submit_all(client, args.turns, TAG)
                submitted = time.time()
                if args.kill_after > 0:
                    time.sleep(max(0.0, started + args.kill_after - time.time()))
                    os.killpg(agents[0].pid, signal.SIGKILL)
                    killed_at = time.time()
                    del procs[agents[0].name]
                results = wait_all(client, job_ids, args.timeout)
            bench_cpu = round(time.process_time() - bench_cpu_before, 2)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
            cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 2)
                   for name, pid in procs.items()}
            main_cpu = round(cpu_seconds(tools.pid, "main") - tools_main_before, 2)
            system = {name: round(cpu_seconds(pid, "system") - sys_before[name], 2)
                      for name, pid in procs.items()}
            # what the system sent: less the benchmark's own polling and the INFO itself
            commands = total_commands(raw) - commands_before - BENCH_COMMANDS[0] - 1
            dup = duplicates(raw, job_ids)
            phases = phase_times(client, job_ids)
    ends = [r.updated_at for r in results]
    latencies = [r.updated_at - r.created_at for r in results]
    failed = [r.error for r in results if r.status.value != "succeeded"]
    makespan = max(ends) - started
    ideal = 2 * args.latency
    agents_cpu = sum(v for k, v in cpu.items() if k.startswith("agents"))
    out: dict[str, Any] = {
        "benchmark": "one-tool turns submitted at once, one session each",
        "turns": args.turns,
        "model_latency_s": args.latency,
        "agents_workers": f"{args.agents_workers} x -P {args.pool} -c {args.concurrency}",
        "tools_worker": f"1 x -P {TOOLS_WORKER.pool} -c {TOOLS_WORKER.concurrency}",
        "task_events": os.environ.get("AGENT_TASK_EVENTS", "1"),
        "succeeded": len(results) - len(failed),
        "failed": len(failed),
        "first_errors": failed[:3],
        "submit_s": round(submitted - started, 2),
        "makespan_s": round(makespan, 2),
        "ideal_s": ideal,
        "ratio_to_ideal": round(makespan / ideal, 2) if ideal else None,
        "turns_per_s": round(args.turns / makespan, 1),
        "latency_s": {"p50": round(statistics.median(latencies), 2),
                      "p95": round(percentile(latencies, 0.95), 2),
                      "max": round(max(latencies), 2)},
        "finished_in_first_60s": sum(1 for e in ends if e - started <= 60),
        "rss_peak_mb": {k: round(v) for k, v in sampler.peak.items()},
        "agents_rss_peak_mb_total": round(sum(v for k, v in sampler.peak.items()
                                              if k.startswith("agents"))),
        "cpu_s": {**cpu, "benchmark": bench_cpu},
        "of_which_system_cpu_s": system,
        "agents_cpu_ms_per_turn": round(agents_cpu * 1000 / args.turns, 2),
        "tools_cpu_ms_per_call": round(cpu.get("tools", 0) * 1000 / args.turns, 2),
        "of_which_tools_main_process_ms": round(main_cpu * 1000 / args.turns, 2),
        "redis_commands_per_turn": round(commands / args.turns, 1),
        "median_s_from_submit_to": phases,
        **dup,
    }
    if killed_at is not None:
        out["killed_agents_worker_at_s"] = round(killed_at - started, 2)
        out["last_end_after_kill_s"] = round(max(ends) - killed_at, 2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
