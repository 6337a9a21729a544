"""Celery settings, read from the environment. Nothing else lives here.

Producer and worker load the same module, so routing and serialization always agree.
"""

from __future__ import annotations

import os

from kombu import Queue

from producer.delivery import visibility_timeout_seconds

redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# A message not acknowledged within this many seconds goes back on its queue. It is a
# lease, not a bound on task length: every worker renews the lease of each message it
# holds (worker/leases.py), so only a dead worker's messages come back, within seconds.
visibility_timeout = visibility_timeout_seconds()

broker_url = redis_url
result_backend = redis_url
broker_connection_retry_on_startup = True
# kombu restores a dead worker's unacknowledged tasks in a sweep that really scans only
# every interval * throttle seconds (10 * 10 by default, see CELERY-NOTES): scan every
# tenth of the visibility timeout (1 s to 60 s), so a short timeout takes effect.
_restore_interval = max(1, min(60, visibility_timeout // 10))
broker_transport_options = {
    "visibility_timeout": visibility_timeout,
    "unacked_restore_interval": _restore_interval,
    "unacked_restore_throttle": 1,
    # The sweep holds a lock in Redis that kombu lets live 300 s: a worker killed
    # mid-sweep, or a sweep cut by a Redis restart, left it behind and no task came back
    # for 5 minutes (found by bench/reliability.py). A sweep takes milliseconds; two
    # overlapping sweeps restore each message once (a WATCHed transaction per message).
    "unacked_mutex_expire": max(2, _restore_interval),
}
result_backend_transport_options = {"visibility_timeout": visibility_timeout}

# A Redis restart: how long a client waits for Redis to come back before it gives up
# (AGENT_REDIS_RETRY_SECONDS; producer/jobstore.connect reads the same variable).
redis_retry_seconds = float(os.environ.get("AGENT_REDIS_RETRY_SECONDS", "30"))

# Publishing (a submit, a worker's next step, a chord callback, a retry) waits that long
# for Redis, retrying every second, instead of kombu's default 3 retries in about 1 s:
# a retry that cannot be published is dropped by Celery, a callback fails its chord.
task_publish_retry_policy = {
    "max_retries": int(redis_retry_seconds) + 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}

# Storing a result or a chord part must outlast a Redis restart, not fail the task.
result_backend_always_retry = True
result_backend_max_retries = 20
result_backend_max_sleep_between_retries_ms = 2000

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

# On SIGQUIT (or SIGTERM with REMAP_SIGTERM=SIGQUIT, as in docker-compose.yml) running
# tasks get this many seconds, then go back to the queue at once instead of waiting for
# the visibility timeout. 0 (Celery's default) keeps the plain warm/cold shutdown.
worker_soft_shutdown_timeout = float(os.environ.get("AGENT_SOFT_SHUTDOWN_TIMEOUT", "0"))

task_default_queue = "agents"
task_queues = (Queue("agents"), Queue("tools"))
task_routes = {"agents.tool.*": {"queue": "tools"}}

timezone = "UTC"
enable_utc = True
