"""The worker pools of the default deployment, in one place.

docker-compose.yml, ``celery-agents dev``, the demo, the test stacks and the benchmarks
all run these (tests/integration/test_compose.py checks the compose file agrees).

Why threads for the agents queue: a model call is an HTTP wait of 1-30 s, so a step
must hold a thread, not a process (prefork -c 4 carried 4 model calls at once). Threads
and gevent carried the same load at the same CPU (CELERY-NOTES, bench/concurrency.py);
threads need no monkey-patching, so redis-py, kombu, the openai client and anything
asyncio behave as everywhere else. What threads lack, hard time limits, the agents queue
does not need: a model call is bounded by the client's timeout (AGENT_MODEL_TIMEOUT) and
every job by its deadline. Tools stay on prefork, where a hard time limit can stop a
runaway tool and a crashing tool takes only its own pool process down.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerProfile:
    queue: str
    pool: str
    concurrency: int

    def argv(self, concurrency: int | None = None) -> list[str]:
        """The pool arguments of ``celery -A worker worker``."""
        return ["-P", self.pool, "-c", str(concurrency or self.concurrency)]


AGENTS_WORKER = WorkerProfile(queue="agents", pool="threads", concurrency=500)
TOOLS_WORKER = WorkerProfile(queue="tools", pool="prefork", concurrency=8)
PROFILES = {p.queue: p for p in (AGENTS_WORKER, TOOLS_WORKER)}


def profile_for(queues: list[str] | tuple[str, ...]) -> WorkerProfile:
    """The profile of a worker consuming ``queues``: a worker that also runs tools runs
    them on prefork, the pool with time limits."""
    if all(q == "agents" for q in queues):
        return AGENTS_WORKER
    return TOOLS_WORKER
