"""A poll that cannot reach Redis leaves the run to come due again; it never fails the job."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from worker.assistant import poller
from worker.assistant.config import RunSettings


class RunsStub:
    def __init__(self) -> None:
        self.unscheduled: list[str] = []

    def claim_due(self, now: float, limit: int, lease: float) -> list[str]:
        return ["job-0001"]

    def load_many(self, job_ids: list[str]) -> list[tuple[Any, bool]]:
        return [(object(), False) for _ in job_ids]

    def save_many(self, transitions: list[Any]) -> list[bool]:
        return [True for _ in transitions]

    def unschedule(self, job_id: str) -> None:
        self.unscheduled.append(job_id)


class JobsStub:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def fail(self, job_id: str, error: str, step: int | None = None) -> bool:
        self.failed.append(error)
        return True


class Ctx:
    def __init__(self) -> None:
        self.runs = RunsStub()
        self.jobs = JobsStub()


def settings() -> RunSettings:
    return RunSettings.from_env()


def test_redis_unreachable_during_a_poll_leaves_the_run_leased_not_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreachable(*_: Any) -> None:
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(poller, "_poll_one", unreachable)
    ctx = Ctx()
    report = poller.poll_due_runs(ctx, settings())  # type: ignore[arg-type]
    assert ctx.jobs.failed == [] and ctx.runs.unscheduled == []
    assert report.claimed == 1 and report.polled == 0


def test_a_broken_run_fails_its_job_and_leaves_the_due_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: Any) -> None:
        raise KeyError("output")

    monkeypatch.setattr(poller, "_poll_one", broken)
    ctx = Ctx()
    poller.poll_due_runs(ctx, settings())  # type: ignore[arg-type]
    assert ctx.runs.unscheduled == ["job-0001"]
    assert ctx.jobs.failed == ["internal error while polling: KeyError: 'output'"]
