"""Bench only: the usual hand-written way to wait for a server-side run, as a Celery task.

Like LlamaIndex's ``OpenAIAssistantAgent.run_assistant``: create the run, then sleep and
retrieve in a loop until it leaves queued/in_progress. The worker slot is held for the
whole run. Loaded into a bench worker through ``AGENT_TOOL_MODULES=bench.blocking_poller``
(importing it registers the task); never part of a deployment.
"""

from __future__ import annotations

import time

from worker.app import app
from worker.context import get_context

TASK_BLOCKING_RUN = "bench.blocking.run"
DONE_KEY = "bench:blocking:done"


@app.task(name=TASK_BLOCKING_RUN, ignore_result=True)
def blocking_run(model: str, message: str, poll_interval: float) -> str:
    ctx = get_context()
    response = ctx.model.responses.create(
        model=model, input=message, background=True, store=True
    )
    while response.status in ("queued", "in_progress"):
        time.sleep(poll_interval)  # the slot is held for the whole run
        response = ctx.model.responses.retrieve(response.id)
    ctx.jobs.redis.incr(DONE_KEY)
    return str(response.status)
