"""``celery-agents demo``: the whole system on this machine, end to end.

Starts redis-server, the OpenAI simulator, one worker per queue, submits a few chat
requests and two assistant-mode runs (one per protocol) through the producer client,
shows their progress live, prints the answers and stops everything it started (also on
Ctrl-C, SIGTERM or SIGHUP; if it is killed outright, the kernel stops its children).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from producer.client import AgentClient
from producer.contracts import JobResult, JobStatus
from producer.devstack import DevStack
from producer.progress import describe_event, describe_result
from producer.stop_signals import StopRequested, stop_on_signals

FIRST_ROUND: list[tuple[str, dict[str, Any]]] = [
    ("plain answer", {"session_id": "demo-plain", "message": "Hello! What can you do?",
                      "tools": []}),
    ("parallel tools", {"session_id": "demo-weather",
                        "message": "What's the weather in Paris, Tokyo and Lima?"}),
    ("calculator", {"session_id": "demo-math", "message": "What is 12 * (3 + 4) - 5?"}),
    ("tool error", {"session_id": "demo-error",
                    "message": "What's the weather in London and Atlantis?"}),
    ("memory, turn 1", {"session_id": "demo-memory", "message": "Hi! My name is Ada."}),
    # Assistant mode: a server-side run that the workers poll, with one tool round.
    ("assistant run", {"session_id": "demo-assistant", "mode": "assistant",
                       "message": "What's the weather in Rome and Tokyo?",
                       "assistant": {"name": "demo assistant",
                                     "instructions": "Answer from the tools' results."}}),
    ("assistant run, Assistants API", {"session_id": "demo-thread", "mode": "assistant",
                                       "protocol": "assistants",
                                       "message": "What is 2 ** 10?"}),
]
SECOND_ROUND: list[tuple[str, dict[str, Any]]] = [
    ("memory, turn 2", {"session_id": "demo-memory", "message": "What is my name?"}),
]

_print_lock = threading.Lock()


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


def run_round(client: AgentClient, requests: list[tuple[str, dict[str, Any]]]) -> list[JobResult]:
    """Submit every request at once and print each job's events as they happen."""
    jobs = [(label, client.submit(request)) for label, request in requests]
    for label, request in requests:
        say(f"[{label}] user: {request['message']}")

    def follow(label: str, job_id: str) -> None:
        for event in client.events(job_id, timeout=60):
            say(f"[{label}] {describe_event(event)}")

    # Daemons: a demo stopped by a signal must not wait for followers of a gone Redis.
    threads = [threading.Thread(target=follow, args=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [client.wait(job_id, timeout=5) for _, job_id in jobs]


def run_demo(keep_logs: bool = False) -> int:
    """Run the demo; 0 when every request succeeded. Ctrl-C, SIGTERM and SIGHUP stop it
    and everything it started (1)."""
    with stop_on_signals():
        try:
            return _run_demo(keep_logs)
        except (KeyboardInterrupt, StopRequested) as stop:
            name = stop.name if isinstance(stop, StopRequested) else "interrupted"
            say(f"\n{name}: the demo and everything it started are stopped")
            return 1


def _run_demo(keep_logs: bool) -> int:
    started = time.time()
    with DevStack(keep_run_dir=keep_logs) as stack:
        say("starting redis-server, the OpenAI simulator and two workers ...")
        redis_url = stack.start_redis()
        stack.start_simulator(latency_ms=150)
        stack.start_worker(["agents"], concurrency=None, name="agents")
        stack.start_worker(["tools"], concurrency=None, name="tools")
        logs = (f"logs kept in {stack.run_dir}" if keep_logs
                else "logs removed at the end; --keep-logs keeps them")
        say(f"stack ready in {time.time() - started:.1f} s (redis {redis_url}; {logs})\n")
        with AgentClient(redis_url) as client:
            labelled = FIRST_ROUND + SECOND_ROUND
            results = run_round(client, FIRST_ROUND)
            results += run_round(client, SECOND_ROUND)
            say("\n=== answers ===")
            for (label, request), result in zip(labelled, results, strict=True):
                say(f"\n[{label}] user: {request['message']}")
                say(describe_result(result))
            say("\n=== memory of session demo-memory ===")
            for message in client.history("demo-memory"):
                say(f"{message.role:>9}: {message.content}")
        say("\nstopping everything the demo started ...")
    failed = [r for r in results if r.status != JobStatus.SUCCEEDED]
    say(f"done in {time.time() - started:.1f} s: {len(results) - len(failed)} succeeded, "
        f"{len(failed)} failed")
    return 1 if failed else 0
