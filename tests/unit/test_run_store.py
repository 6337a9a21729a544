"""The assistant-run store (fakeredis with Lua): compare-and-set with the due set and the
event in one script, claiming due runs with a lease, markers, sessions, the assistant
cache; and the file checks done before any upload."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import pytest

from producer import keys
from producer.contracts import ChatRequest
from worker.assistant.files import FileProblem, check_files
from worker.assistant.logic import RunSnapshot, apply_snapshot, start_polling
from worker.assistant.state import RunState, new_run_state
from worker.assistant.store import RunStore, Transition


@pytest.fixture
def store() -> RunStore:
    return RunStore(fakeredis.FakeRedis(decode_responses=True))


def fresh(job_id: str = "job-0001") -> RunState:
    request = ChatRequest(session_id="s1", message="hi", mode="assistant")
    return new_run_state(job_id=job_id, request=request, model="m", tool_names=[],
                         created_at=100.0)


def test_create_once_then_only_the_transition_from_the_stored_version(store: RunStore) -> None:
    state = fresh()
    assert store.save(Transition.of(None, state))
    assert not store.save(Transition.of(None, state))  # a redelivered start
    polling = start_polling(state, now=100.0)
    assert store.save(Transition.of(state, polling, "run_created", protocol="responses"))
    assert not store.save(Transition.of(state, polling))  # stale: read at the old version
    assert store.load(state.job_id) == polling
    assert store.redis.zscore(keys.runs_due(), state.job_id) == 100.0
    [(_, fields)] = store.redis.xrange(keys.job_events(state.job_id))
    assert '"run_created"' in fields["event"]


def test_a_batch_saves_each_transition_on_its_own(store: RunStore) -> None:
    a, b = start_polling(fresh("job-aaaa1"), 1.0), start_polling(fresh("job-bbbb1"), 1.0)
    store.save_many([Transition.of(None, a), Transition.of(None, b)])
    a2 = apply_snapshot(a, RunSnapshot("in_progress"), 2.0, 5.0)
    b_stale = apply_snapshot(b.model_copy(update={"version": 7}), RunSnapshot("queued"), 2, 5)
    assert store.save_many([Transition.of(a, a2), Transition(7, b_stale, "add")]) == [True, False]
    assert store.redis.zscore(keys.runs_due(), "job-aaaa1") == a2.next_poll_at
    assert store.redis.zscore(keys.runs_due(), "job-bbbb1") == 1.0  # unchanged


def test_a_batch_saves_on_a_redis_that_lost_its_scripts(store: RunStore) -> None:
    # The batch sends its scripts by sha alone (no SCRIPT EXISTS round trip first); a
    # Redis that restarted without them answers NOSCRIPT, and each call runs again.
    a, b = start_polling(fresh("job-aaaa2"), 1.0), start_polling(fresh("job-bbbb2"), 1.0)
    store.redis.script_flush()
    assert store.save_many([Transition.of(None, a), Transition.of(None, b)]) == [True, True]
    assert store.save_many([Transition.of(None, a)]) == [False]  # ran once, not twice
    assert store.load("job-bbbb2") == b


def test_claiming_leases_due_runs_so_a_dead_poller_loses_nothing(store: RunStore) -> None:
    for i, due in enumerate([1.0, 2.0, 3.0, 50.0]):
        store.schedule(f"job-{i:04d}", due)
    assert store.claim_due(now=2.5, limit=10, lease=30.0) == ["job-0000", "job-0001"]
    assert store.claim_due(now=2.5, limit=10, lease=30.0) == []  # leased, not due again
    assert store.claim_due(now=3.0, limit=1, lease=30.0) == ["job-0002"]  # a limit
    assert store.next_due() == 32.5  # the leases end before the far-off run is due
    # nobody rescheduled them: they come back when the lease ends
    assert sorted(store.claim_due(now=33.0, limit=10, lease=30.0)) == [
        "job-0000", "job-0001", "job-0002"]


def test_a_poll_slot_is_taken_once(store: RunStore) -> None:
    assert store.take_tick(42, 5.0)
    assert not store.take_tick(42, 5.0)
    assert store.take_tick(43, 5.0)


def test_submitted_marker_keeps_the_first_value(store: RunStore) -> None:
    assert store.submitted("job-0001", 1) is None
    store.mark_submitted("job-0001", 1, "resp_2")
    store.mark_submitted("job-0001", 1, "resp_3")
    assert store.submitted("job-0001", 1) == "resp_2"


def test_one_assistant_per_definition(store: RunStore) -> None:
    assert store.claim_assistant("d1", "job-a") == ("create", None)
    assert store.claim_assistant("d1", "job-b") == ("wait", None)  # retries shortly
    assert (store.assistant_waits("job-b"), store.assistant_waits("job-a")) == (1, 0)
    assert store.claim_assistant("d1", "job-a") == ("create", None)  # its own redelivery
    assert store.remember_assistant("d1", "asst_1") == "asst_1"
    assert store.remember_assistant("d1", "asst_2") == "asst_1"
    assert store.claim_assistant("d1", "job-b") == ("known", "asst_1")


def test_a_job_that_missed_the_cache_does_not_create_a_second_assistant(
    store: RunStore,
) -> None:
    # CI saw this: job A read no cached id, job B then created the assistant and freed
    # the lock, and A took the free lock and created another. Claiming reads the cache
    # and takes the lock in one step, so A finds B's id.
    assert store.claim_assistant("d1", "job-b") == ("create", None)
    store.remember_assistant("d1", "asst_b")
    assert store.claim_assistant("d1", "job-a") == ("known", "asst_b")


def test_session_ids_and_forgetting_them(store: RunStore) -> None:
    assert store.claim_thread("s1", "thread_a") == "thread_a"
    assert store.claim_thread("s1", "thread_b") == "thread_a"  # lost the race
    assert store.claim_thread("s1", "thread_c", replace=True) == "thread_c"  # explicit id
    store.set_session_mode("s1", "assistants")
    store.set_last_response("s1", "resp_1")
    store.touch_session("s1")
    ids = store.session("s1")
    assert (ids.mode, ids.thread_id, ids.response_id) == ("assistants", "thread_c", "resp_1")
    assert store.forget_session("s1") == 3
    assert store.session("s1").thread_id is None


def test_files_are_checked_before_any_upload(tmp_path: Path) -> None:
    small = tmp_path / "a.txt"
    small.write_text("hello")
    assert check_files([str(small)], limit=10) == [(str(small), small)]
    with pytest.raises(FileProblem, match="has 5 bytes; the limit is 4"):
        check_files([str(small)], limit=4)
    with pytest.raises(FileProblem, match="cannot be read"):
        check_files([str(small), str(tmp_path / "missing.txt")], limit=10)
    with pytest.raises(FileProblem, match="not a regular file"):
        check_files([str(tmp_path)], limit=10)


def test_unscheduling_spares_a_state_that_moved_on(store: RunStore) -> None:
    """A tool round's submit can save the next polling state before the poll task that
    dispatched the round drops the job from the due set: the job must stay scheduled."""
    polling = start_polling(fresh(), 1.0)
    store.save(Transition.of(None, polling))
    tools = apply_snapshot(polling, RunSnapshot("requires_action", ()), 2.0, 5.0)  # any newer
    resumed = start_polling(tools, 3.0)
    store.save(Transition(polling.version, resumed, "add"))
    store.unschedule_at(polling)  # the late clean-up of the older state
    assert store.redis.zscore(keys.runs_due(), polling.job_id) == 3.0
    store.unschedule_at(resumed)
    assert store.redis.zscore(keys.runs_due(), polling.job_id) is None
