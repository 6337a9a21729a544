"""``celery-agents dev`` (the whole stack locally) and ``celery-agents watch`` against it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from producer.devstack import PROJECT_ROOT, ManagedProcess, free_port
from tests.integration.conftest import OUTPUT_DIR

pytestmark = pytest.mark.integration


def test_dev_runs_every_service_and_watch_follows_a_job() -> None:
    gateway_port, flower_port = free_port(), free_port()
    log = OUTPUT_DIR / "dev-command.log"
    log.unlink(missing_ok=True)
    dev = ManagedProcess(
        "dev",
        [sys.executable, "-m", "producer.cli", "dev", "--gateway-port", str(gateway_port),
         "--flower-port", str(flower_port), "--agents-concurrency", "1",
         "--tools-concurrency", "1", "--simulator"],
        log_path=log, env={"FLOWER_BASIC_AUTH": "dev:dev-pw", "AGENT_GATEWAY_TOKEN": ""},
        cwd=PROJECT_ROOT,
    ).start()
    try:
        dev.wait_for_log(r"stack is up", timeout=120)
        redis_url = re.search(r"redis\s+(redis://\S+)", dev.log_text())
        assert redis_url, dev.log_text()
        text = dev.log_text()
        for prefix in ("[redis]", "[simulator]", "[agents]", "[tools]", "[flower]", "[gateway]"):
            assert prefix in text, prefix  # every process's log lines, prefixed
        assert f"http://127.0.0.1:{gateway_port}" in text and f"127.0.0.1:{flower_port}" in text

        gateway = f"http://127.0.0.1:{gateway_port}"
        assert requests.get(f"{gateway}/healthz", timeout=10).json()["status"] == "ok"
        flower = requests.get(f"http://127.0.0.1:{flower_port}/api/workers",
                              auth=("dev", "dev-pw"), timeout=10)
        assert flower.status_code == 200
        job = requests.post(f"{gateway}/v1/jobs", timeout=10, json={
            "session_id": "dev-1", "message": "What's the weather in Paris and Tokyo?"}).json()

        watched = subprocess.run(
            [sys.executable, "-m", "producer.cli", "--redis-url", redis_url[1], "watch",
             job["job_id"], "--timeout", "60"],
            capture_output=True, text=True, timeout=90, cwd=PROJECT_ROOT,
        )
        assert watched.returncode == 0, watched.stdout + watched.stderr
        out = watched.stdout
        assert "tool get_weather running" in out and "succeeded after 2 model call(s)" in out
        assert "model calls 2" in out and "tools done 2" in out  # the progress summary
        assert "status: succeeded" in out and "Paris" in out
    finally:
        dev.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            status = dev.wait(timeout=60)
        finally:
            dev.stop()
    assert status == 0
    assert "stopping" in dev.log_text()
    time.sleep(0.5)
    for port in (gateway_port, flower_port):  # everything it started is gone
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
