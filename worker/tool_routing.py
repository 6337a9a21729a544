"""Which queue a tool call is sent to: the queue its live servers consume.

A call of a tool that no live worker serves (its only server just stopped) is sent to
the default queue, which every agents worker consumes, flagged ``unserved``: the tool
task there answers with an error output at once. The turn goes on, nothing waits on a
queue no worker reads.
"""

from __future__ import annotations

from celery import Celery, Signature

from producer.contracts import TASK_TOOL_RUN, ToolCall
from worker.context import get_context


def tool_signature(app: Celery, job_id: str, call: ToolCall, allowed: list[str]) -> Signature:
    queue = get_context().catalog.queue_for(call.name)
    kwargs: dict[str, object] = {"job_id": job_id, "call": call.model_dump(), "allowed": allowed}
    if queue is None:
        kwargs["unserved"] = True
        queue = str(app.conf.task_default_queue)
    return app.signature(
        TASK_TOOL_RUN, kwargs=kwargs, queue=queue,
        kwargsrepr=f"job={job_id} tool={call.name} call={call.id}",
    )
