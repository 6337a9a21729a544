"""The beat thread and the lease bookkeeping (pure parts; the real thing runs in
tests/integration/test_host_loss.py against real workers)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest

from producer import delivery
from worker import heartbeat, task_events
from worker.leases import held_tags, renew_command_args


def consumer_holding(*tags: str) -> Any:
    qos = SimpleNamespace(_delivered=OrderedDict((tag, object()) for tag in tags))
    return SimpleNamespace(task_consumer=SimpleNamespace(channel=SimpleNamespace(qos=qos)))


def test_held_tags_reads_the_consumer_qos_and_tolerates_a_consumer_not_started() -> None:
    assert held_tags(consumer_holding("t1", "t2")) == ["t1", "t2"]
    assert held_tags(SimpleNamespace(task_consumer=None)) == []
    assert held_tags(None) == []


def test_renewal_is_chunked_and_only_updates_members_that_still_exist() -> None:
    chunks = renew_command_args((f"t{i}" for i in range(1201)), now=5.0)
    assert [len(c) for c in chunks] == [500, 500, 201]
    assert set(chunks[0].values()) == {5.0}
    r = fakeredis.FakeRedis()
    r.zadd("unacked_index", {"held": 1.0})
    for mapping in renew_command_args(["held", "acked-meanwhile"], now=99.0):
        r.zadd("unacked_index", mapping, xx=True)  # what LeaseKeeper.renew sends
    assert r.zrange("unacked_index", 0, -1, withscores=True) == [(b"held", 99.0)]


def test_lease_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_VISIBILITY_TIMEOUT", raising=False)
    assert delivery.visibility_timeout_seconds() == 10
    assert delivery.lease_renew_seconds() == 2.0  # five renewals per lease
    assert delivery.countdown_ceiling_seconds() == 120.0
    monkeypatch.setenv("AGENT_VISIBILITY_TIMEOUT", "600")
    assert delivery.countdown_ceiling_seconds() == 600.0
    # new turns go last: Redis serves priority 0 first
    assert delivery.PRIORITY_CONTINUE < delivery.PRIORITY_NEW_TURN


@pytest.fixture(autouse=True)
def only_test_beats(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's own beats (leases, events) would reach for a broker here."""
    monkeypatch.setattr(heartbeat, "_beats", {})


def test_run_due_runs_each_beat_on_its_interval_and_survives_a_failing_one() -> None:
    calls: list[str] = []

    def failing(_: Any) -> None:
        calls.append("bad")
        raise RuntimeError("redis is down")

    heartbeat.add_beat("test.good", 1.0, lambda consumer: calls.append(f"good:{consumer}"))
    heartbeat.add_beat("test.bad", 2.0, failing)
    heartbeat.run_due("c", now=100.0)
    heartbeat.run_due("c", now=100.5)  # nothing due yet
    heartbeat.run_due("c", now=101.0)  # only the 1 s beat
    heartbeat.run_due("c", now=102.0)  # both again
    assert calls.count("good:c") == 3 and calls.count("bad") == 2


def test_the_beat_thread_starts_once_and_stops() -> None:
    ran = threading.Event()
    heartbeat.add_beat("test.thread", 0.05, lambda _: ran.set())
    try:
        heartbeat.start(None)
        heartbeat.start(None)  # a second start is a no-op
        assert ran.wait(2)
    finally:
        heartbeat.stop()
    ran.clear()
    time.sleep(0.2)
    assert not ran.is_set()


def test_bad_intervals_are_refused() -> None:
    with pytest.raises(ValueError, match="interval must be > 0"):
        heartbeat.add_beat("test.zero", 0, lambda _: None)


class FakeDispatcher:
    def __init__(self) -> None:
        self.enabled = True
        self.on_send_buffered: Any = object()
        self.buffer_limit = 24
        self.flushes = 0

    def flush(self, errors: bool = True, groups: bool = True) -> None:
        self.flushes += 1


def test_events_are_batched_by_the_beat_not_flushed_per_event() -> None:
    consumer = SimpleNamespace(event_dispatcher=FakeDispatcher())
    task_events.flush_events(consumer)
    dispatcher = consumer.event_dispatcher
    assert dispatcher.on_send_buffered is None  # no flush scheduled per buffered event
    assert dispatcher.buffer_limit == task_events.BUFFER_LIMIT
    assert dispatcher.flushes == 1
    consumer.event_dispatcher = FakeDispatcher()  # a reconnect builds a new dispatcher
    task_events.flush_events(consumer)
    assert consumer.event_dispatcher.on_send_buffered is None
    consumer.event_dispatcher.enabled = False
    task_events.flush_events(consumer)
    assert consumer.event_dispatcher.flushes == 1
