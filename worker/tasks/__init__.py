"""Celery tasks: thin wrappers that validate, call the turn logic and enqueue what is next."""

from worker.tasks import assistant_tasks, job_tasks, tool_tasks, turn_tasks

__all__ = ["assistant_tasks", "job_tasks", "tool_tasks", "turn_tasks"]
