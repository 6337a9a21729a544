"""``agents.webhook.deliver``: POST a finished job to its webhook_url, at least once.

Enqueued when the job ends (producer/webhook_dispatch.py). Each attempt is one task run;
a failed attempt reschedules the task with a countdown (exponential backoff), no worker
sleeps. Delivered means a 2xx answer; then a marker stops every later copy of the task.
A worker killed mid-attempt leaves the task unacknowledged, so it runs again: the
receiver may see a webhook twice, always with the same ``webhook-id``.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import cast

import redis
from celery import Task
from celery.utils.log import get_task_logger

from producer import keys
from producer.contracts import TASK_WEBHOOK_DELIVER, JobResult
from producer.delivery import countdown_ceiling_seconds
from worker.app import app
from worker.context import get_context
from worker.tasks.base import reschedule
from worker.webhooks import WebhookRefused, WebhookSettings, backoff, post

logger = get_task_logger("celery_agents")


@app.task(name=TASK_WEBHOOK_DELIVER, bind=True, ignore_result=True)
def deliver_webhook(self: Task, *, job_id: str) -> str:
    r = get_context().jobs.redis
    pipe = r.pipeline(transaction=False)
    pipe.exists(keys.webhook_delivered(job_id))
    pipe.get(keys.job_webhook(job_id))
    pipe.get(keys.job(job_id))
    done, url, raw_job = cast(tuple[int, str | None, str | None], tuple(pipe.execute()))
    if done:
        return "already delivered or given up"
    if not url or not raw_job:
        return "nothing to deliver (expired)"
    job = JobResult.model_validate_json(raw_job)
    settings = WebhookSettings.from_env()
    attempt = self.request.retries
    try:
        status = post(url, job, settings)
        problem = None if 200 <= status < 300 else f"HTTP {status}"
    except WebhookRefused as exc:
        logger.warning("job %s: webhook refused, not sent: %s", job_id, exc)
        _record(r, job_id, delivered=False, attempts=attempt + 1, error=str(exc))
        return "refused"
    except (OSError, http.client.HTTPException) as exc:
        status, problem = 0, f"{type(exc).__name__}: {exc}"
    if problem is None:
        _record(r, job_id, delivered=True, attempts=attempt + 1, status=status)
        logger.info("job %s: webhook delivered (HTTP %d, attempt %d)", job_id, status,
                    attempt + 1)
        return "delivered"
    if attempt + 1 >= settings.max_attempts:
        logger.warning("job %s: webhook given up after %d attempts: %s", job_id, attempt + 1,
                       problem)
        _record(r, job_id, delivered=False, attempts=attempt + 1, error=problem)
        return "given up"
    countdown = backoff(attempt, settings.backoff_base, countdown_ceiling_seconds())
    logger.info("job %s: webhook attempt %d failed (%s); next in %.1fs", job_id, attempt + 1,
                problem, countdown)
    reschedule(self, countdown)


def _record(r: redis.Redis, job_id: str, *, delivered: bool, attempts: int,
            status: int = 0, error: str | None = None) -> None:
    """The outcome, which also stops later copies of the task (delivered or given up)."""
    outcome = {"delivered": delivered, "attempts": attempts, "status": status,
               "error": error, "at": time.time()}
    r.set(keys.webhook_delivered(job_id), json.dumps(outcome), ex=keys.job_ttl_seconds())
