"""The Celery application the workers run."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready, worker_shutdown

import worker.logging_setup  # AGENT_LOG_FORMAT=json, via Celery's logging signals
from producer.delivery import RESTORE_INTERVAL_SECONDS, lease_renew_seconds
from worker import broker_fix, heartbeat, task_events
from worker.leases import LeaseKeeper
from worker.settings import WorkerSettings
from worker.tools import load_tool_modules

broker_fix.install()  # a Redis restart must not stop the worker (see worker/broker_fix.py)


class AgentsCelery(Celery):  # type: ignore[misc]
    """One result backend per process.

    Celery keeps the result backend thread-local, so under the threads pool every pool
    thread built its own ``RedisBackend`` with its own connection pool (500 of each per
    worker), and under gevent every greenlet did, once per task. The backend's Redis
    client is thread-safe; the workers never wait on results (only chords read them,
    through the same client).
    """

    @cached_property
    def _process_backend(self) -> Any:
        return self._get_backend()

    @property
    def backend(self) -> Any:
        return self._process_backend


app = AgentsCelery("celery-agents")
app.config_from_object("celeryconfig")
task_events.configure_worker_app(app)

# Tools named in AGENT_TOOL_MODULES register at start-up, so a typo stops the worker
# at once instead of failing jobs later.
load_tool_modules(WorkerSettings.from_env().tool_modules)

_leases = LeaseKeeper(app)
heartbeat.add_beat("leases.renew", lease_renew_seconds(), _leases.renew)
heartbeat.add_beat("leases.restore", RESTORE_INTERVAL_SECONDS, _leases.restore_expired)
heartbeat.add_beat("events.flush", task_events.FLUSH_INTERVAL, task_events.flush_events)


@worker_ready.connect
def _start_beats(sender: Any = None, **_: Any) -> None:
    # Sent in the main process with the consumer, which holds the unacked messages.
    task_events.batch_events(sender)
    heartbeat.start(sender)


@worker_shutdown.connect
def _stop_beats(**_: Any) -> None:
    heartbeat.stop()
    _leases.close()


@worker_process_init.connect
def _warm_up_pool_process(**_: Any) -> None:
    # Each pool process loads the openai client and tokenizer once, at start-up,
    # so a job's first model call does not pay ~200 ms for it.
    from worker.context import get_context

    get_context().warm_up()


# Importing the task modules registers the tasks with the app (they import ``app``).
import worker.tasks  # noqa: E402, F401
from worker import tool_announce  # noqa: E402, F401  (tools workers announce what they serve)
