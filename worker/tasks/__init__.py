"""Celery tasks: thin wrappers that validate, call the turn logic and enqueue what is next."""

from worker.tasks import (
    approval_tasks,
    assistant_tasks,
    job_tasks,
    tool_tasks,
    turn_tasks,
    webhook_tasks,
)

__all__ = ["approval_tasks", "assistant_tasks", "job_tasks", "tool_tasks", "turn_tasks",
           "webhook_tasks"]
