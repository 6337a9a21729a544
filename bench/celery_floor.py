"""Benchmark: the queue's own floor under bench/concurrency.py and bench/turn_latency.py.

Runs the deployment's workers (producer/deployment.py: the same app, pools, settings,
leases and batched task events) with three empty steps shaped like a one-tool turn
(bench/floor_tasks.py): a "model" step that waits ``--latency`` seconds in its pool
thread, a "tool" step on the tools worker, and a last "model" step. No HTTP, no
simulator, no turn state: what is left is what Celery and Redis cost per turn.

- ``--turns N --latency L``: N chains submitted at once (from 8 threads, as
  bench/concurrency.py submits); prints the makespan and CPU ms per turn of the agents
  workers and per step of the tools worker. Compare with bench/concurrency.py's figures
  for the same N and L: the difference is what the turns themselves cost.
- ``--sequential K``: K chains one at a time with no wait; prints the median
  milliseconds of the three hops, the floor under bench/turn_latency.py's queued turn.
- ``--model-calls``: the two "model" steps make the turn's real chat completions (the
  worker's model client over HTTP to the simulator, answering after ``--latency``; zero
  with ``--sequential``) and the "tool" step runs the calculator: the queue plus what
  the issue's deployment must do per turn anyway, without the turn's durable state.

Run: ``.venv/bin/python bench/celery_floor.py --turns 1000 --latency 2 --agents-workers 2``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from bench.concurrency import cpu_seconds, percentile
from bench.turn_latency import BLOCK, InProcessTurn
from producer.client import make_producer_app
from producer.delivery import PRIORITY_NEW_TURN
from producer.deployment import AGENTS_WORKER, TOOLS_WORKER
from producer.devstack import DevStack

FLOOR_MODULE = "bench.floor_tasks"  # loaded by the workers only: it imports the worker app
FLOOR_MODEL = "bench.floor.model"
FLOOR_TOOL = "bench.floor.tool"
FLOOR_DONE_KEY = "bench:floor:done"
FLOOR_MODEL_NAME = "gpt-4o-mini"


def start_chain(celery: Any, tag: str, latency: float, model_name: str | None = None) -> float:
    """Send a chain's first step (with real model calls when ``model_name`` is set);
    returns when it was sent."""
    sent_at = time.time()
    celery.send_task(FLOOR_MODEL, args=[tag, latency, False, model_name], queue="agents",
                     priority=PRIORITY_NEW_TURN, ignore_result=True)
    return sent_at


def ended(r: redis.Redis, count: int, timeout: float) -> dict[str, float]:
    """Tag -> end time of ``count`` finished chains."""
    deadline = time.monotonic() + timeout
    while r.llen(FLOOR_DONE_KEY) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{r.llen(FLOOR_DONE_KEY)} of {count} chains ended")
        time.sleep(0.02)
    ends = {}
    for raw in r.lrange(FLOOR_DONE_KEY, 0, -1):
        tag, at = raw.decode().split()
        ends[tag] = float(at)
    return ends


def burst(
    celery: Any, r: redis.Redis, turns: int, latency: float, timeout: float = 600,
    model_name: str | None = None,
) -> tuple[dict[str, float], dict[str, float], float]:
    """Submit ``turns`` chains at once; their submit times, end times and submit span."""
    started = time.time()
    with ThreadPoolExecutor(max_workers=8) as pool:
        sent = dict(zip([str(i) for i in range(turns)],
                        pool.map(lambda i: start_chain(celery, str(i), latency, model_name),
                                 range(turns)),
                        strict=True))
    submit_s = time.time() - started
    return sent, ended(r, turns, timeout), submit_s


def sequential(
    celery: Any, r: redis.Redis, count: int, model_name: str | None = None
) -> list[float]:
    """Milliseconds of each of ``count`` chains run one at a time (no model wait)."""
    samples = []
    for i in range(count):
        began = time.perf_counter()
        start_chain(celery, f"s{i}", 0.0, model_name)
        if r.blpop([FLOOR_DONE_KEY], timeout=10) is None:
            raise TimeoutError(f"chain s{i} did not end within 10 s")
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def paired_with_in_process(
    celery: Any, r: redis.Redis, count: int, stack: DevStack
) -> tuple[list[float], list[float]]:
    """Chains with model calls and bench/turn_latency.py's in-process turn (the same two
    completions and tool in a plain loop), in alternating blocks, as that benchmark
    pairs them: a noisy machine's slow and fast spells fall on both."""
    assert stack.simulator_url is not None
    loop = InProcessTurn(stack.simulator_url)
    chains: list[float] = []
    in_process: list[float] = []
    while len(chains) < count:
        block = min(BLOCK, count - len(chains))
        chains += sequential(celery, r, block, FLOOR_MODEL_NAME)
        in_process += [loop() for _ in range(block)]
    return chains, in_process


def summary(samples: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(samples), 2),
            "p95": round(percentile(samples, 0.95), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per model step")
    parser.add_argument("--agents-workers", type=int, default=2)
    parser.add_argument("--sequential", type=int, default=0,
                        help="run this many chains one at a time instead of the burst")
    parser.add_argument("--model-calls", action="store_true",
                        help="the model steps make real chat completions (the simulator "
                             "answering after --latency) and the tool step runs the tool")
    args = parser.parse_args()
    model_name = FLOOR_MODEL_NAME if args.model_calls else None
    with DevStack() as stack:
        redis_url = stack.start_redis()
        if args.model_calls:
            wait = 0.0 if args.sequential else args.latency
            stack.start_simulator(latency_ms=round(wait * 1000))
        agents = [stack.start_worker(["agents"], None, f"agents{i}", include=[FLOOR_MODULE])
                  for i in range(args.agents_workers)]
        tools = stack.start_worker(["tools"], None, "tools", include=[FLOOR_MODULE])
        r = redis.Redis.from_url(redis_url)
        celery = make_producer_app(redis_url)
        if model_name is not None and not args.sequential:  # one round: each chain waits 2 L
            burst(celery, r, 20, 0.0, model_name=model_name)  # connections and pool threads
        else:
            sequential(celery, r, 20, model_name)
        r.delete(FLOOR_DONE_KEY)
        out: dict[str, Any] = {
            "benchmark": "the queue's floor: three empty steps per turn on the deployment"
                         + (", the model steps' real chat completions" if model_name else ""),
            "agents_workers": f"{args.agents_workers} x -P {AGENTS_WORKER.pool} "
                              f"-c {AGENTS_WORKER.concurrency}",
            "tools_worker": f"1 x -P {TOOLS_WORKER.pool} -c {TOOLS_WORKER.concurrency}",
        }
        if args.sequential and model_name is None:
            samples = sequential(celery, r, args.sequential)
            out.update({"chains": args.sequential, "three_hops_ms": summary(samples)})
        elif args.sequential:
            chains, loop = paired_with_in_process(celery, r, args.sequential, stack)
            out.update({"chains": args.sequential, "chain_ms": summary(chains),
                        "in_process_turn_ms": summary(loop),
                        "chain_to_in_process_median_ratio": round(
                            statistics.median(chains) / statistics.median(loop), 2)})
        else:
            before = {p.name: cpu_seconds(p.pid) for p in [*agents, tools]}
            sent, ends, submit_s = burst(celery, r, args.turns, args.latency,
                                         model_name=model_name)
            cpu = {p.name: cpu_seconds(p.pid) - before[p.name] for p in [*agents, tools]}
            first = min(sent.values())
            agents_cpu = sum(v for k, v in cpu.items() if k.startswith("agents"))
            latencies = [ends[tag] - sent[tag] for tag in sent]
            out.update({
                "turns": args.turns,
                "model_latency_s": args.latency,
                "submit_s": round(submit_s, 2),
                "makespan_s": round(max(ends.values()) - first, 2),
                "ideal_s": 2 * args.latency,
                "latency_s": {"p50": round(statistics.median(latencies), 2),
                              "p95": round(percentile(latencies, 0.95), 2)},
                "agents_cpu_ms_per_turn": round(agents_cpu * 1000 / args.turns, 2),
                "tools_cpu_ms_per_step": round(cpu["tools"] * 1000 / args.turns, 2),
            })
        celery.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
