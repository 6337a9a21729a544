"""Celery settings read from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def settings(**env: str) -> dict[str, object]:
    code = (
        "import json, celeryconfig as c\n"
        "print(json.dumps({k: getattr(c, k) for k in ('broker_url', 'result_backend',"
        " 'task_serializer', 'accept_content', 'task_acks_late', 'task_reject_on_worker_lost',"
        " 'worker_prefetch_multiplier', 'worker_send_task_events', 'task_send_sent_event',"
        " 'task_routes', 'broker_transport_options')}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "AGENT_"))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={**clean, **env}, check=True)
    return dict(json.loads(done.stdout))


def test_defaults_are_safe_delivery_json_and_events() -> None:
    s = settings()
    assert s["broker_url"] == s["result_backend"] == "redis://127.0.0.1:6379/0"
    assert s["task_serializer"] == "json" and s["accept_content"] == ["json"]
    assert s["task_acks_late"] is True and s["task_reject_on_worker_lost"] is True
    assert s["worker_prefetch_multiplier"] == 1
    assert s["worker_send_task_events"] is True and s["task_send_sent_event"] is True
    assert s["task_routes"] == {"agents.tool.*": {"queue": "tools"}}
    # The visibility timeout is a 10 s lease that live workers renew (worker/leases.py).
    assert s["broker_transport_options"] == {
        "visibility_timeout": 10, "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 2,
    }


def test_environment_overrides() -> None:
    s = settings(REDIS_URL="redis://:pw@127.0.0.1:7000/2", AGENT_TASK_EVENTS="0",
                 AGENT_VISIBILITY_TIMEOUT="120")
    assert s["broker_url"] == "redis://:pw@127.0.0.1:7000/2"
    assert s["worker_send_task_events"] is False and s["task_send_sent_event"] is False
    assert s["broker_transport_options"] == {
        "visibility_timeout": 120, "unacked_restore_interval": 12, "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 12,
    }
    short = settings(AGENT_VISIBILITY_TIMEOUT="4")["broker_transport_options"]
    assert isinstance(short, dict) and short["unacked_restore_interval"] == 1
    # the sweep's lock, left behind by a worker killed (or a Redis restarted) mid-sweep,
    # must not stop every sweep for kombu's default 300 s
    assert short["unacked_mutex_expire"] == 2


def publish_wait(policy: dict[str, float]) -> float:
    """Seconds kombu's retry_over_time sleeps in all before it gives up publishing."""
    waited, interval = 0.0, policy["interval_start"]
    for _ in range(int(policy["max_retries"])):
        waited += interval
        interval = min(interval + policy["interval_step"], policy["interval_max"])
    return waited


def test_publishing_waits_out_a_redis_restart() -> None:
    # kombu's default (3 retries, about 1 s) drops a submit, a next step, a chord
    # callback or a retry while Redis restarts; they wait for it instead.
    code = "import json, celeryconfig as c; print(json.dumps(c.task_publish_retry_policy))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "AGENT_"))}
    for env, low, high in (({}, 30, 33), ({"AGENT_REDIS_RETRY_SECONDS": "5"}, 5, 8)):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=ROOT, env={**clean, **env}, check=True)
        policy = json.loads(done.stdout)
        assert low <= publish_wait(policy) <= high, policy
