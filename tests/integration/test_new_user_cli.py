"""What a new user meets on the command line and in the Python client (issue 12).

Exit codes that agree between ``status``, ``submit --wait``, ``watch`` and ``cancel``;
unknown job ids; no Redis at the URL; ``| head``; the record of a succeeded job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from producer import keys
from producer.client import AgentClient, JobNotFound
from producer.contracts import JobStatus
from producer.devstack import PROJECT_ROOT, DevStack, free_port
from producer.exit_codes import (
    EXIT_ALREADY_ENDED,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_NO_REDIS,
    EXIT_NOT_ENDED,
    EXIT_OK,
    EXIT_UNKNOWN_JOB,
)
from tests.integration.conftest import Simulator
from tests.integration.stacks import wait_for
from tests.integration.test_bad_input import run_cli

pytestmark = pytest.mark.integration

UNKNOWN_JOB = "0123456789-never-submitted"


def cli_without_redis(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=60,
    )


def test_no_redis_fails_fast_with_one_line_and_its_own_exit_code() -> None:
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    started = time.monotonic()
    done = cli_without_redis(url, "submit", "hi", "--session", "s1", "--wait")
    took = time.monotonic() - started
    assert done.returncode == EXIT_NO_REDIS, done.stderr
    assert took < 10, took  # it waited AGENT_REDIS_RETRY_SECONDS (30 s) and more before
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no traceback
    assert "Traceback" not in done.stderr
    assert url.replace("hunter2-secret", "***") in lines[0] and "REDIS_URL" in lines[0]
    assert "hunter2-secret" not in done.stderr + done.stdout
    for args in (("status", UNKNOWN_JOB), ("history", "s1"), ("cancel", UNKNOWN_JOB),
                 ("watch", UNKNOWN_JOB)):
        other = cli_without_redis(url, *args)
        assert other.returncode == EXIT_NO_REDIS and len(other.stderr.splitlines()) == 1


def test_unknown_job_ids_raise_job_not_found(client: AgentClient) -> None:
    started = time.monotonic()
    with pytest.raises(JobNotFound) as raised:
        client.events(UNKNOWN_JOB, timeout=30)  # followed silently for 30 s before
    assert time.monotonic() - started < 5
    assert "unknown job" in str(raised.value) and raised.value.job_id == UNKNOWN_JOB
    with pytest.raises(JobNotFound):
        client.wait(UNKNOWN_JOB, timeout=30)
    with pytest.raises(KeyError):  # still a KeyError, for code written against the old one
        client.wait(UNKNOWN_JOB, timeout=1)


def test_cli_unknown_job_has_its_own_exit_code(stack: DevStack) -> None:
    for command in ("status", "cancel", "watch"):
        done = run_cli(stack, command, UNKNOWN_JOB)
        assert done.returncode == EXIT_UNKNOWN_JOB, (command, done.stderr)
        assert f"unknown job {UNKNOWN_JOB}" in done.stderr and "Traceback" not in done.stderr


def test_exit_codes_agree_between_status_submit_and_cancel(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "done"})
    ok = client.run({"session_id": session, "message": "a", "model": model}, timeout=30)
    assert run_cli(stack, "status", ok.job_id).returncode == EXIT_OK

    sim.script(model, {"error": {"status": 400, "message": "bad request", "type": "x"}})
    failed = client.run({"session_id": session, "message": "b", "model": model}, timeout=30)
    assert failed.status == JobStatus.FAILED
    assert run_cli(stack, "status", failed.job_id).returncode == EXIT_FAILED

    # A slow turn holds the session, so the next job stays queued behind it.
    sim.script(model, {"content": "slow", "delay_ms": 4000}, {"content": "x"})
    client.submit({"session_id": session, "message": "c", "model": model})
    queued = client.submit({"session_id": session, "message": "d", "model": model})
    status = run_cli(stack, "status", queued)
    assert status.returncode == EXIT_NOT_ENDED, status.stdout  # was 0 for a queued job
    waiting = subprocess.Popen(
        [sys.executable, "-m", "producer.cli", "--redis-url", stack.redis_url or "",
         "submit", "e", "--session", session, "--model", model, "--wait", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT_ROOT,
    )
    try:
        # The CLI's own job is third in line; cancel it once it is there.
        def third_job() -> str | None:
            line = client.jobs.redis.lrange(keys.session_jobs(session), 0, -1)
            return str(line[-1]) if len(line) >= 3 else None
        mine = wait_for(third_job, 20, "the CLI's job to be queued")
        cancelled = run_cli(stack, "cancel", mine)
        assert cancelled.returncode == EXIT_OK, cancelled.stdout + cancelled.stderr
        out, err = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == EXIT_CANCELLED, out + err
    assert json.loads(out)["status"] == "cancelled"
    assert run_cli(stack, "status", mine).returncode == EXIT_CANCELLED  # was 0

    again = run_cli(stack, "cancel", ok.job_id)
    assert again.returncode == EXIT_ALREADY_ENDED
    assert "had already ended (succeeded); nothing to cancel" in again.stdout
    assert client.status(ok.job_id).status == JobStatus.SUCCEEDED  # type: ignore[union-attr]


def test_history_of_an_unknown_session_says_no_messages(stack: DevStack, session: str) -> None:
    done = run_cli(stack, "history", session)
    assert done.returncode == EXIT_OK and f"session {session}: no messages" in done.stdout
    assert json.loads(run_cli(stack, "history", session, "--json").stdout) == []


def test_submit_wait_into_head_ends_without_a_traceback(
    stack: DevStack, sim: Simulator, model: str, session: str
) -> None:
    # Several events, spaced out, so that lines are still being printed after head left.
    sim.script(model, {"tool_calls": [{"name": "echo", "arguments": {"text": "hi"}}],
                       "delay_ms": 300}, {"content": "answer", "delay_ms": 300})
    env = {**os.environ, "REDIS_URL": stack.redis_url or "", "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m producer.cli submit hi --session {session} "
                       f"--model {model} --wait | head -n 1; echo \"rc=${{PIPESTATUS[0]}}\""],
        capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=60,
    )
    assert done.stdout.startswith("job "), done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert "rc=141" in done.stdout, done.stdout


def test_a_succeeded_record_keeps_its_deadline(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "ok"})
    job_id = client.submit(
        {"session_id": session, "message": "x", "model": model, "deadline_seconds": 120}
    )
    queued = client.status(job_id)
    assert queued is not None and queued.deadline_at is not None
    result = client.wait(job_id, timeout=30)
    assert result.status == JobStatus.SUCCEEDED
    assert result.deadline_at == queued.deadline_at  # was None on success


def test_the_queued_record_names_the_model_that_will_be_used(
    client: AgentClient, sim: Simulator, session: str
) -> None:
    # The session stack's workers run with AGENT_MODEL=gpt-4o-mini, as does this process.
    job_id = client.submit({"session_id": session, "message": "hello", "tools": []})
    queued = client.status(job_id)
    assert queued is not None and queued.model == "gpt-4o-mini"  # was None
    assert client.wait(job_id, timeout=30).model == "gpt-4o-mini"
