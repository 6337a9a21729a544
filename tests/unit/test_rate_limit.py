"""The shared model rate limit: a GCRA schedule in Redis (fakeredis with Lua)."""

from __future__ import annotations

import itertools
import threading
import time

import fakeredis
import pytest

from producer import keys
from worker.rate_limit import ModelRateLimiter, RateLimits, parse_rpm_overrides
from worker.settings import WorkerSettings


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def limiter(r: fakeredis.FakeRedis, rpm: int = 60, max_wait: float = 30.0,
            **overrides: int) -> ModelRateLimiter:
    return ModelRateLimiter(r, RateLimits(rpm, overrides), max_wait)


def test_no_limit_means_no_wait_and_no_redis_traffic(r: fakeredis.FakeRedis) -> None:
    off = limiter(r, rpm=0)
    assert [off.before_model_call("j", step, "m") for step in range(5)] == [(0.0, 0)] * 5
    assert r.keys("*") == []


def test_each_caller_gets_its_own_slot_one_interval_apart(r: fakeredis.FakeRedis) -> None:
    lim = limiter(r, rpm=60)
    assert lim.before_model_call("a", 0, "m") == (0.0, 0)
    wait_b, waits_b = lim.before_model_call("b", 0, "m")
    wait_c, _ = lim.before_model_call("c", 0, "m")
    assert 0.95 < wait_b <= 1.0 and waits_b == 1
    assert 1.95 < wait_c <= 2.0
    # asking again before the slot comes keeps the reservation: no new slot is taken
    again, waits_again = lim.before_model_call("b", 0, "m")
    assert again <= wait_b and waits_again == 2
    assert lim.before_model_call("d", 0, "m")[0] > wait_c


def test_a_reservation_is_used_once_its_time_has_come(r: fakeredis.FakeRedis) -> None:
    lim = limiter(r, rpm=3000)  # 20 ms apart
    assert lim.before_model_call("a", 0, "m") == (0.0, 0)
    wait, waits = lim.before_model_call("b", 0, "m")
    assert 0 < wait <= 0.02 and waits == 1
    time.sleep(wait + 0.005)
    assert lim.before_model_call("b", 0, "m") == (0.0, 1)  # goes; still one wait counted
    assert not r.hexists(keys.rate_slot("b", 0), "slot")


def test_models_have_separate_schedules_and_overrides(r: fakeredis.FakeRedis) -> None:
    lim = limiter(r, rpm=60, fast=0)
    assert lim.before_model_call("a", 0, "m1") == (0.0, 0)
    assert lim.before_model_call("b", 0, "m2") == (0.0, 0)
    assert all(lim.before_model_call(f"c{i}", 0, "fast") == (0.0, 0) for i in range(10))
    assert lim.before_model_call("d", 0, "m1")[0] > 0.9


def test_slots_beyond_max_wait_are_not_reserved(r: fakeredis.FakeRedis) -> None:
    lim = limiter(r, rpm=60, max_wait=1.5)
    lim.before_model_call("a", 0, "m")
    lim.before_model_call("b", 0, "m")  # slot at +1 s
    schedule = r.get(keys.model_rate("m"))
    wait, waits = lim.before_model_call("c", 0, "m")  # next slot +2 s > 1.5 s: ask later
    assert 0.9 < wait <= 1.0 and waits == 1
    assert r.get(keys.model_rate("m")) == schedule
    assert not r.hexists(keys.rate_slot("c", 0), "slot")


def test_concurrent_callers_never_share_a_slot(r: fakeredis.FakeRedis) -> None:
    lim = limiter(r, rpm=600)  # 100 ms apart

    def ask(i: int) -> None:
        lim.before_model_call(f"job{i}", 0, "m")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # The slots the script handed out, read from Redis (not from the callers' clocks,
    # which a busy machine may pause between the answer and the read): the first caller
    # went at once (no slot kept), the other 19 each hold their own, 100 ms apart.
    slots = sorted(int(raw) for i in range(20)
                   if (raw := r.hget(keys.rate_slot(f"job{i}", 0), "slot")) is not None)
    assert len(slots) == 19, slots
    assert all(later - earlier == 100 for earlier, later in itertools.pairwise(slots)), slots


def test_keys_expire(r: fakeredis.FakeRedis) -> None:
    lim = limiter(r, rpm=60)
    lim.before_model_call("a", 0, "m")
    lim.before_model_call("b", 0, "m")
    assert 0 < r.pttl(keys.model_rate("m")) <= 3000
    assert r.ttl(keys.rate_slot("b", 0)) > 0


def test_override_parsing() -> None:
    assert parse_rpm_overrides("") == {}
    assert parse_rpm_overrides(" gpt-4o=500, gpt-4o-mini = 3000 ,") == {
        "gpt-4o": 500, "gpt-4o-mini": 3000,
    }
    assert parse_rpm_overrides("ft:gpt-4o:org=7") == {"ft:gpt-4o:org": 7}
    for bad in ("gpt-4o", "=5", "gpt-4o=fast", "gpt-4o=-1"):
        with pytest.raises(ValueError, match="AGENT_MODEL_RPM_OVERRIDES"):
            parse_rpm_overrides(bad)
    with pytest.raises(ValueError, match="AGENT_MODEL_RPM must be >= 0"):
        RateLimits(-1)


def test_settings_read_the_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_MODEL_RPM", "120")
    monkeypatch.setenv("AGENT_MODEL_RPM_OVERRIDES", "gpt-4o=500")
    monkeypatch.setenv("AGENT_VISIBILITY_TIMEOUT", "400")
    settings = WorkerSettings.from_env()
    assert settings.model_rpm == 120 and dict(settings.model_rpm_overrides) == {"gpt-4o": 500}
    assert settings.model_rate_max_wait == 30.0  # capped; a quarter of the countdown ceiling
    monkeypatch.setenv("AGENT_VISIBILITY_TIMEOUT", "10")
    assert WorkerSettings.from_env().model_rate_max_wait == 30.0  # the ceiling is >= 120 s
    monkeypatch.delenv("AGENT_MODEL_RPM")
    monkeypatch.delenv("AGENT_VISIBILITY_TIMEOUT")
    default = WorkerSettings.from_env()
    assert default.model_rpm == 0 and default.model_rate_max_wait == 30.0
