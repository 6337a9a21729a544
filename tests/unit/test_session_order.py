"""The session line: admission, release, idempotence (fakeredis with Lua, a recording sender)."""

from __future__ import annotations

import json
import time
from typing import Any

import fakeredis
import pytest

from producer import keys
from producer.contracts import JobEvent, JobResult, JobStatus
from producer.jobstore import JobStore
from producer.session_order import SessionOrder


class RecordingCelery:
    """Stands in for the Celery app: records the tasks it is asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []

    def send_task(self, name: str, *, kwargs: dict[str, Any] | None = None,
                  task_id: str = "", **_: Any) -> None:
        self.sent.append((name, kwargs or {}, task_id))

    def starts(self) -> list[str]:
        return [task_id for name, _, task_id in self.sent if name == "agents.turn.start"]


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def celery() -> RecordingCelery:
    return RecordingCelery()


@pytest.fixture
def order(client: fakeredis.FakeRedis, celery: RecordingCelery) -> SessionOrder:
    return SessionOrder(client, celery)  # type: ignore[arg-type]


def admit(order: SessionOrder, job_id: str, session: str = "s1",
          deadline_at: float | None = None) -> bool:
    now = time.time()
    record = JobResult(job_id=job_id, session_id=session, status=JobStatus.QUEUED,
                       created_at=now, updated_at=now)
    event = JobEvent(job_id=job_id, kind="queued", at=now)
    return order.admit(job_id, session, record.model_dump_json(), event.model_dump_json(),
                       {"job_id": job_id}, 100, deadline_at)


def test_only_the_first_job_of_a_session_starts_at_once(
    order: SessionOrder, celery: RecordingCelery, client: fakeredis.FakeRedis
) -> None:
    assert admit(order, "job-a") is True
    assert admit(order, "job-b") is False
    assert admit(order, "job-c") is False
    assert admit(order, "job-x", session="s2") is True  # other sessions are independent
    assert celery.starts() == ["job-a-start", "job-x-start"]
    assert client.exists(keys.dispatched("job-a", "start"))
    assert not client.exists(keys.dispatched("job-b", "start"))


def test_jobs_with_deadlines_share_one_sweep_per_slot(
    order: SessionOrder, celery: RecordingCelery, client: fakeredis.FakeRedis
) -> None:
    due = time.time() + 60
    admit(order, "job-a", deadline_at=due)
    admit(order, "job-b", session="s2", deadline_at=due)
    admit(order, "job-c", session="s3")  # no deadline
    sweeps = [name for name, _, _ in celery.sent if name == "agents.job.expire"]
    assert sweeps == ["agents.job.expire"]
    assert client.zrange(keys.deadlines(), 0, -1) == ["job-a s1", "job-b s2"]
    # Ending a job takes it out of the deadlines.
    JobStore(client).cancel("job-a")
    assert client.zrange(keys.deadlines(), 0, -1) == ["job-b s2"]


def test_admission_writes_record_event_and_message(
    order: SessionOrder, client: fakeredis.FakeRedis
) -> None:
    admit(order, "job-a")
    assert json.loads(client.get(keys.job("job-a")))["status"] == "queued"
    assert client.xlen(keys.job_events("job-a")) == 1
    assert json.loads(client.get(keys.job_message("job-a"))) == {"job_id": "job-a"}
    assert client.ttl(keys.session_jobs("s1")) > 0


def test_release_starts_the_next_job_once(
    order: SessionOrder, celery: RecordingCelery
) -> None:
    for job_id in ("job-a", "job-b", "job-c"):
        admit(order, job_id)
    assert order.release("job-a", "s1") == "job-b"
    assert celery.sent[-1] == ("agents.turn.start", {"message": {"job_id": "job-b"}},
                               "job-b-start")
    # A redelivered task ending job-a again changes nothing.
    assert order.release("job-a", "s1") is None
    assert celery.starts() == ["job-a-start", "job-b-start"]


def test_release_of_a_waiting_job_leaves_the_running_one_alone(
    order: SessionOrder, celery: RecordingCelery, client: fakeredis.FakeRedis
) -> None:
    for job_id in ("job-a", "job-b", "job-c"):
        admit(order, job_id)
    assert order.release("job-b", "s1") is None  # cancelled while waiting
    assert client.lrange(keys.session_jobs("s1"), 0, -1) == ["job-a", "job-c"]
    assert order.release("job-a", "s1") == "job-c"


def test_an_unsent_head_is_sent_by_the_next_release_call(
    order: SessionOrder, celery: RecordingCelery
) -> None:
    admit(order, "job-a")
    admit(order, "job-b")
    # Simulate a crash after popping job-a but before job-b's start was sent.
    order.redis.lpop(keys.session_jobs("s1"))
    assert order.release("job-a", "s1") == "job-b"
    assert celery.starts() == ["job-a-start", "job-b-start"]


def test_a_head_without_its_message_is_left_to_its_watchdog(
    order: SessionOrder, celery: RecordingCelery, client: fakeredis.FakeRedis
) -> None:
    admit(order, "job-a")
    admit(order, "job-b")
    client.delete(keys.job_message("job-b"))
    assert order.release("job-a", "s1") is None
    assert celery.starts() == ["job-a-start"]


def test_ending_a_job_through_the_store_releases_its_session(
    order: SessionOrder, celery: RecordingCelery, client: fakeredis.FakeRedis
) -> None:
    jobs = JobStore(client, on_finished=order.release)
    admit(order, "job-a")
    admit(order, "job-b")
    assert jobs.cancel("job-a") is True
    assert jobs.get_job("job-a").status == JobStatus.CANCELLED  # type: ignore[union-attr]
    assert celery.starts() == ["job-a-start", "job-b-start"]
    assert jobs.fail("job-a", "late failure") is False  # ended once only
    assert len(celery.starts()) == 2


def test_mark_running_refuses_a_job_that_ended_first(client: fakeredis.FakeRedis) -> None:
    jobs = JobStore(client)
    now = time.time()
    record = JobResult(job_id="job-a", session_id="s1", status=JobStatus.QUEUED,
                       created_at=now, updated_at=now)
    jobs.put_job(record)
    jobs.cancel("job-a")
    running = record.model_copy(update={"status": JobStatus.RUNNING})
    assert jobs.mark_running(running) is False
    assert jobs.get_job("job-a").status == JobStatus.CANCELLED  # type: ignore[union-attr]
