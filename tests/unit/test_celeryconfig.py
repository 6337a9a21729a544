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
    assert s["broker_transport_options"] == {"visibility_timeout": 3600}


def test_environment_overrides() -> None:
    s = settings(REDIS_URL="redis://:pw@127.0.0.1:7000/2", AGENT_TASK_EVENTS="0",
                 AGENT_VISIBILITY_TIMEOUT="120")
    assert s["broker_url"] == "redis://:pw@127.0.0.1:7000/2"
    assert s["worker_send_task_events"] is False and s["task_send_sent_event"] is False
    assert s["broker_transport_options"] == {"visibility_timeout": 120}
