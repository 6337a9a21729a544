"""Enqueueing a job's webhook delivery once the job has ended.

Called by JobStore.finish on every attempt to end a job whose finish script reported a
webhook not yet sent: the task that ended it, a redelivered copy, a cancel. The task is
sent by name, then marked as sent; a crash in between sends it again on the next
attempt, which the delivery task tolerates (it keeps a delivered marker and the
receiver sees the same webhook-id).
"""

from __future__ import annotations

import redis
from celery import Celery, current_app

from producer import keys
from producer.contracts import TASK_WEBHOOK_DELIVER


def send_webhook(celery: Celery | None, client: redis.Redis, job_id: str) -> None:
    """Enqueue ``agents.webhook.deliver`` for the job and mark it sent.

    ``celery`` None: the current app, which in a worker process is the worker's own
    (Celery sets it as default there); producers pass theirs.
    """
    app = celery or current_app
    app.send_task(
        TASK_WEBHOOK_DELIVER,
        kwargs={"job_id": job_id},
        task_id=f"{job_id}-webhook",
        kwargsrepr=f"job={job_id}",
        ignore_result=True,
    )
    client.set(keys.webhook_sent(job_id), "1", ex=keys.job_ttl_seconds())
