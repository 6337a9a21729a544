"""Celery settings, read from the environment. Nothing else lives here.

Producer and worker load the same module, so routing and serialization always agree.
"""

from __future__ import annotations

import os

from kombu import Queue

redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# A task that is not acknowledged within this many seconds is handed to another worker.
# It must exceed the longest task; countdowns must stay well below it (see CELERY-NOTES).
visibility_timeout = int(os.environ.get("AGENT_VISIBILITY_TIMEOUT", "3600"))

broker_url = redis_url
result_backend = redis_url
broker_connection_retry_on_startup = True
broker_transport_options = {"visibility_timeout": visibility_timeout}
result_backend_transport_options = {"visibility_timeout": visibility_timeout}

# JSON only: a pickled message is refused by the worker.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# At-least-once: acknowledge after the task ran, requeue if the worker process dies.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

# Chord results must be stored and must expire; 0 would hang chords.
result_expires = int(os.environ.get("AGENT_RESULT_TTL", "86400"))

# Events so Flower sees every task, including queued ones. They cost about a quarter of
# the queue's throughput; AGENT_TASK_EVENTS=0 turns them off where nobody watches.
_events_on = os.environ.get("AGENT_TASK_EVENTS", "1").lower() not in ("0", "false", "no")
worker_send_task_events = _events_on
task_send_sent_event = _events_on

task_default_queue = "agents"
task_queues = (Queue("agents"), Queue("tools"))
task_routes = {"agents.tool.*": {"queue": "tools"}}

timezone = "UTC"
enable_utc = True
