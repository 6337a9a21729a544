"""Deadline sweeps: chains meet on a fixed grid; stalled jobs get their next step again."""

from __future__ import annotations

import time

import fakeredis
import pytest

from producer import keys
from producer.contracts import ChatRequest, JobResult, JobStatus
from producer.deadlines import SweepSlot, next_sweep_at, sweep_period
from producer.jobstore import JobStore
from worker import orchestrate
from worker.context import WorkerContext
from worker.settings import WorkerSettings
from worker.tasks import job_tasks
from worker.turn import new_turn


def test_a_near_deadline_is_swept_at_the_deadline() -> None:
    now = 1000.0
    assert next_sweep_at(now + 0.2, now) == now + 0.2
    assert next_sweep_at(now - 5, now) == now  # overdue: at once


def test_far_deadlines_share_grid_points_so_sweep_chains_merge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENT_STALL_SECONDS", "16")  # a sweep at least every 4 s
    period = sweep_period()
    assert period == 4
    base = 4000.0
    # Sweeps started at different moments of one period all aim at the same next point.
    points = {next_sweep_at(base + 900, base + offset) for offset in (0.1, 1.3, 2.9, 3.7)}
    assert points == {base + 4}
    markers = {SweepSlot.for_deadline(base + 900, base + o).marker for o in (0.1, 3.7)}
    assert len(markers) == 1


@pytest.fixture
def ctx(monkeypatch: pytest.MonkeyPatch) -> WorkerContext:
    monkeypatch.setenv("AGENT_STALL_SECONDS", "2")
    context = WorkerContext(WorkerSettings.from_env())
    context.__dict__["jobs"] = JobStore(fakeredis.FakeRedis(decode_responses=True))
    return context


def running_chat_job(ctx: WorkerContext, job_id: str, quiet_for: float) -> None:
    """A running chat job whose last event is ``quiet_for`` seconds old."""
    now = time.time()
    request = ChatRequest(session_id="s1", message="hi")
    ctx.jobs.put_job(JobResult(job_id=job_id, session_id="s1", status=JobStatus.RUNNING,
                               created_at=now, updated_at=now))
    stamp = int((now - quiet_for) * 1000)
    ctx.jobs.redis.xadd(keys.job_events(job_id), {"event": "{}"}, id=f"{stamp}-0")
    ctx.jobs.redis.zadd(keys.deadlines(), {f"{job_id} s1": now + 900})
    state = new_turn(job_id=job_id, request=request, model="m", token_limit=1000,
                     tool_names=[], memory_length=0, created_at=now)
    assert ctx.turns.create(state)


def test_a_silent_running_job_gets_its_next_step_again(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(orchestrate, "enqueue_model_step",
                        lambda job_id, step: sent.append((job_id, step)))
    running_chat_job(ctx, "job-stalled", quiet_for=3)
    running_chat_job(ctx, "job-busy", quiet_for=0.5)
    assert job_tasks.resume_stalled_jobs(ctx) == 1
    assert sent == [("job-stalled", 0)]
    # one look per quarter of the stall time: an immediate second sweep does not look
    assert job_tasks.resume_stalled_jobs(ctx) == 0


def test_a_queued_job_is_restarted_only_at_the_head_of_its_session(
    ctx: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []

    class Order:
        def restart_head(self, job_id: str, session_id: str) -> bool:
            started.append(job_id)
            return True

    ctx.__dict__["order"] = Order()
    now = time.time()
    ctx.jobs.put_job(JobResult(job_id="job-q", session_id="s1", status=JobStatus.QUEUED,
                               created_at=now, updated_at=now))
    assert job_tasks.resume_job(ctx, "job-q", "s1") is True
    assert started == ["job-q"]
    ctx.jobs.cancel("job-q")
    assert job_tasks.resume_job(ctx, "job-q", "s1") is False


