"""Turns of a session run one at a time in submission order; cancel; per-job deadlines."""

from __future__ import annotations

import json
import time

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack
from tests.integration.conftest import Simulator, tool_call
from tests.integration.test_bad_input import run_cli


def _wait_for_status(client: AgentClient, job_id: str, status: JobStatus) -> None:
    deadline = time.time() + 10
    while time.time() < deadline:
        job = client.status(job_id)
        if job is not None and job.status == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never became {status}")


def _conversation(client: AgentClient, session: str) -> list[str]:
    return [f"{m.role}:{m.content}" for m in client.history(session)]


def test_turns_of_one_session_wait_for_each_other_and_keep_submission_order(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "first", "delay_ms": 600}, {"content": "second"},
               {"content": "third"})
    ids = [client.submit({"session_id": session, "message": f"m{i}", "model": model})
           for i in range(3)]
    _wait_for_status(client, ids[0], JobStatus.RUNNING)
    # The later turns wait (queued, not rejected) while the first one runs.
    assert client.status(ids[1]).status == JobStatus.QUEUED  # type: ignore[union-attr]
    results = [client.wait(job_id, 30) for job_id in ids]
    assert [r.response for r in results] == ["first", "second", "third"]
    # Each model call saw every earlier turn: nothing ran side by side.
    last_call = sim.requests(model)[-1]["messages"]
    assert [m["content"] for m in last_call] == ["m0", "first", "m1", "second", "m2"]
    assert _conversation(client, session) == [
        "user:m0", "assistant:first", "user:m1", "assistant:second", "user:m2",
        "assistant:third",
    ]


def test_different_sessions_run_in_parallel(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "a", "delay_ms": 1000}, {"content": "b", "delay_ms": 1000})
    started = time.monotonic()
    ids = [client.submit({"session_id": f"{session}-{i}", "message": "hi", "model": model})
           for i in range(2)]
    for job_id in ids:
        assert client.wait(job_id, 30).status == JobStatus.SUCCEEDED
    assert time.monotonic() - started < 1.9  # one second each, side by side


def test_cancelled_queued_job_never_starts_and_the_next_one_runs(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "slow", "delay_ms": 800}, {"content": "after"})
    first = client.submit({"session_id": session, "message": "m0", "model": model})
    doomed = client.submit({"session_id": session, "message": "m1", "model": model})
    last = client.submit({"session_id": session, "message": "m2", "model": model})
    cancelled = client.cancel(doomed)
    assert cancelled is not None and cancelled.status == JobStatus.CANCELLED
    assert client.wait(first, 30).response == "slow"
    assert client.wait(last, 30).response == "after"
    kinds = [event.kind for event in client.events(doomed, timeout=1)]
    assert kinds == ["queued", "cancelled"]  # never started
    assert all("m1" not in json.dumps(r) for r in sim.requests(model))
    assert _conversation(client, session) == [
        "user:m0", "assistant:slow", "user:m2", "assistant:after"
    ]


def test_cancelled_running_job_stops_at_its_next_step_and_stores_nothing(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(
        model,
        {"tool_calls": [tool_call("echo", {"text": "x"}, "c1")], "delay_ms": 800},
        {"content": "next"},
    )
    running = client.submit({"session_id": session, "message": "m0", "model": model})
    waiting = client.submit({"session_id": session, "message": "m1", "model": model})
    # Cancel while its model call is in flight (the scripted reply takes 0.8 s).
    next(e for e in client.events(running, timeout=10) if e.kind == "model_call")
    assert client.cancel(running).status == JobStatus.CANCELLED  # type: ignore[union-attr]
    assert client.wait(waiting, 30).response == "next"
    result = client.status(running)
    assert result is not None and result.status == JobStatus.CANCELLED
    assert result.response is None and result.error == "cancelled by request"
    # The model's tool call was never run: the turn stopped at the step boundary.
    kinds = [event.kind for event in client.events(running, timeout=1)]
    assert "tool_started" not in kinds and kinds[-1] == "cancelled"
    assert _conversation(client, session) == ["user:m1", "assistant:next"]


def test_cancel_leaves_finished_and_unknown_jobs_alone(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "done"})
    job_id = client.submit({"session_id": session, "message": "hi", "model": model})
    assert client.wait(job_id, 30).status == JobStatus.SUCCEEDED
    after = client.cancel(job_id)
    assert after is not None and after.status == JobStatus.SUCCEEDED
    assert after.response == "done"
    assert client.cancel("0123456789-unknown") is None


def test_deadline_fails_a_hung_job_and_releases_its_session(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "too late", "delay_ms": 2500}, {"content": "on time"})
    started = time.monotonic()
    hung = client.submit(
        {"session_id": session, "message": "m0", "model": model, "deadline_seconds": 1}
    )
    behind = client.submit({"session_id": session, "message": "m1", "model": model})
    failed = client.wait(hung, 30)
    assert failed.status == JobStatus.FAILED
    assert failed.error is not None and failed.error.startswith("timeout")
    assert time.monotonic() - started < 2.3  # the watchdog, not the end of the model call
    assert client.wait(behind, 30).response == "on time"
    time.sleep(1.8)  # the hung model call returns meanwhile; it must not write memory
    assert _conversation(client, session) == ["user:m1", "assistant:on time"]


def test_deadline_passes_while_waiting_behind_another_turn(
    client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "slow", "delay_ms": 1200}, {"content": "third"})
    first = client.submit({"session_id": session, "message": "m0", "model": model})
    impatient = client.submit(
        {"session_id": session, "message": "m1", "model": model, "deadline_seconds": 0.4}
    )
    third = client.submit({"session_id": session, "message": "m2", "model": model})
    result = client.wait(impatient, 30)
    assert result.status == JobStatus.FAILED and "timeout" in (result.error or "")
    assert client.wait(first, 30).response == "slow"
    assert client.wait(third, 30).response == "third"
    assert [e.kind for e in client.events(impatient, timeout=1)] == ["queued", "failed"]


def test_cli_cancel(stack: DevStack, client: AgentClient, sim: Simulator, model: str,
                    session: str) -> None:
    # The first turn outlasts the CLI's start-up (a second or more on a busy machine), so
    # the second one is still waiting when the CLI cancels it.
    sim.script(model, {"content": "slow", "delay_ms": 5000}, {"content": "x"})
    client.submit({"session_id": session, "message": "m0", "model": model})
    queued = client.submit({"session_id": session, "message": "m1", "model": model})
    done = run_cli(stack, "cancel", queued, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["status"] == "cancelled"
    unknown = run_cli(stack, "cancel", "0123456789-unknown")
    assert unknown.returncode == 6 and "unknown job" in unknown.stderr  # EXIT_UNKNOWN_JOB
