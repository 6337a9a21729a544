"""Celery tasks: thin wrappers that validate, call the turn logic and enqueue what is next."""

from worker.tasks import tool_tasks, turn_tasks

__all__ = ["tool_tasks", "turn_tasks"]
