"""The Celery application the workers run."""

from __future__ import annotations

from celery import Celery

from worker.settings import WorkerSettings
from worker.tools import load_tool_modules

app = Celery("celery-agents")
app.config_from_object("celeryconfig")

# Tools named in AGENT_TOOL_MODULES register at start-up, so a typo stops the worker
# at once instead of failing jobs later.
load_tool_modules(WorkerSettings.from_env().tool_modules)

# Importing the task modules registers the tasks with the app (they import ``app``).
import worker.tasks  # noqa: E402, F401
