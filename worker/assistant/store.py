"""Redis side of assistant runs: RunState (compare-and-set), the due set, markers,
session ids and the assistant cache.

A state is replaced only by the transition that follows the version it was read at,
and in the same atomic script the job's place in the due set and its event are written,
so a poll costs one round trip per batch of runs for all its writes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import redis

from producer import keys
from producer.contracts import EventKind, JobEvent, JobResult
from producer.jobstore import EVENTS_MAX_LEN
from producer.script_pipeline import execute, queue_script
from worker.assistant.state import RunState
from worker.turn_store import VERSION_GUARD_LUA

DueOp = Literal["add", "rem", "keep"]
AssistantClaim = tuple[Literal["known", "create", "wait"], str | None]

# KEYS: state, due set, events.  ARGV: expected version (-1: create), state json, ttl,
# due op (add|rem|keep), due score, event json ('' for none), events maxlen.
_ADVANCE = VERSION_GUARD_LUA + """
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
local member = cjson.decode(ARGV[2])['job_id']
if ARGV[4] == 'add' then
  redis.call('ZADD', KEYS[2], ARGV[5], member)
elseif ARGV[4] == 'rem' then
  redis.call('ZREM', KEYS[2], member)
end
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'event', ARGV[6])
end
return 1
"""

# KEYS: cached assistant id, creation lock, the job's wait counter.
# ARGV: job id, lock ttl, counter ttl.
_CLAIM_ASSISTANT = """
local known = redis.call('GET', KEYS[1])
if known then return {'known', known} end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  return {'wait', ''}
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return {'create', ''}
"""

# KEYS: due set.  ARGV: now, limit, lease-until.  Claims due members by moving their
# score to the lease's end; whoever processes them sets the real next score.
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[3], member)
end
return due
"""


# KEYS: state, due set.  ARGV: job id, version.  Drop the job from the due set only if its
# state is still at that version: a tool round's submit may already have saved a newer
# (polling) state and rescheduled the job, which must stay scheduled.
_UNSCHEDULE_IF = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)['version'] ~= tonumber(ARGV[2]) then
  return 0
end
return redis.call('ZREM', KEYS[2], ARGV[1])
"""


@dataclass(frozen=True)
class Transition:
    """A state to save if the stored one still has version ``expected`` (-1: none stored
    yet), with the job's due-set op and an event."""

    expected: int
    new: RunState
    due: DueOp = "keep"
    event: JobEvent | None = None

    @staticmethod
    def of(
        previous: RunState | None, new: RunState, kind: EventKind | None = None, **detail: object
    ) -> Transition:
        """Replace ``previous`` by ``new``. The due-set op follows the new phase: a polling
        run is (re)scheduled at ``next_poll_at``; in other phases its entry stays until the
        follow-up (tool fan-out, ending the job) is done, so a crash in between loses
        nothing."""
        due: DueOp = "add" if new.phase == "polling" else "keep"
        event = None
        if kind is not None:
            event = JobEvent(job_id=new.job_id, kind=kind, at=time.time(), detail=dict(detail))
        return Transition(-1 if previous is None else previous.version, new, due, event)


@dataclass(frozen=True)
class SessionIds:
    mode: str | None
    thread_id: str | None
    response_id: str | None


class RunStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._advance = client.register_script(_ADVANCE)
        self._claim = client.register_script(_CLAIM_DUE)
        self._unschedule_if = client.register_script(_UNSCHEDULE_IF)
        self._claim_assistant = client.register_script(_CLAIM_ASSISTANT)

    # States
    def load(self, job_id: str) -> RunState | None:
        raw = cast(str | None, self.redis.get(keys.run_state(job_id)))
        return RunState.model_validate_json(raw) if raw else None

    def load_start(
        self, job_id: str, session_id: str
    ) -> tuple[bool, RunState | None, JobResult | None, SessionIds]:
        """In one round trip: job ended?, run state, job record, the session's ids."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(keys.job_final(job_id))
        pipe.get(keys.run_state(job_id))
        pipe.get(keys.job(job_id))
        pipe.get(keys.session_mode(session_id))
        pipe.get(keys.session_thread(session_id))
        pipe.get(keys.session_response(session_id))
        final, raw_state, raw_job, mode, thread_id, response_id = pipe.execute()
        state = RunState.model_validate_json(raw_state) if raw_state else None
        job = JobResult.model_validate_json(raw_job) if raw_job else None
        return bool(final), state, job, SessionIds(mode, thread_id, response_id)

    def load_many(self, job_ids: Sequence[str]) -> list[tuple[RunState | None, bool]]:
        """(state, job ended?) for each job, in one round trip."""
        if not job_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.get(keys.run_state(job_id))
            pipe.exists(keys.job_final(job_id))
        replies = pipe.execute()
        found: list[tuple[RunState | None, bool]] = []
        for raw, final in zip(replies[::2], replies[1::2], strict=True):
            found.append((RunState.model_validate_json(raw) if raw else None, bool(final)))
        return found

    def save(self, transition: Transition) -> bool:
        return self.save_many([transition])[0]

    def save_many(self, transitions: Sequence[Transition]) -> list[bool]:
        """Apply each transition if its state is still the one it was read at; one round
        trip for all. Returns which ones were applied."""
        if not transitions:
            return []
        pipe = self.redis.pipeline(transaction=False)
        ttl = keys.job_ttl_seconds()
        queued = [
            queue_script(
                pipe, self._advance,
                [keys.run_state(t.new.job_id), keys.runs_due(), keys.job_events(t.new.job_id)],
                [t.expected, t.new.model_dump_json(), ttl, t.due, repr(t.new.next_poll_at),
                 t.event.model_dump_json() if t.event else "", EVENTS_MAX_LEN],
            )
            for t in transitions
        ]
        return [bool(done) for done in execute(pipe, queued)]

    # The due set
    def schedule(self, job_id: str, at: float) -> None:
        self.redis.zadd(keys.runs_due(), {job_id: at})

    def unschedule(self, job_id: str) -> None:
        self.redis.zrem(keys.runs_due(), job_id)

    def unschedule_at(self, state: RunState) -> None:
        """Drop the job from the due set unless its state moved past ``state``."""
        self._unschedule_if(
            keys=[keys.run_state(state.job_id), keys.runs_due()],
            args=[state.job_id, state.version],
        )

    def claim_due(self, now: float, limit: int, lease: float) -> list[str]:
        claimed = self._claim(keys=[keys.runs_due()], args=[repr(now), limit, repr(now + lease)])
        return [str(m) for m in cast(list[str], claimed)]

    def next_due(self) -> float | None:
        first = cast(
            list[tuple[str, float]], self.redis.zrange(keys.runs_due(), 0, 0, withscores=True)
        )
        return float(first[0][1]) if first else None

    def take_tick(self, slot: int, ttl_seconds: float) -> bool:
        """True for the first caller that wants a poll task for ``slot``."""
        return bool(self.redis.set(keys.poll_tick(slot), "1", nx=True, px=int(ttl_seconds * 1000)))

    # Tool rounds
    def submitted(self, job_id: str, tool_round: int) -> str | None:
        return cast(str | None, self.redis.get(keys.run_submitted(job_id, tool_round)))

    def mark_submitted(self, job_id: str, tool_round: int, value: str) -> None:
        self.redis.set(
            keys.run_submitted(job_id, tool_round), value, nx=True, ex=keys.job_ttl_seconds()
        )

    # Sessions
    def session(self, session_id: str) -> SessionIds:
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.session_mode(session_id))
        pipe.get(keys.session_thread(session_id))
        pipe.get(keys.session_response(session_id))
        mode, thread_id, response_id = pipe.execute()
        return SessionIds(mode, thread_id, response_id)

    def claim_thread(self, session_id: str, thread_id: str, replace: bool = False) -> str:
        """Make ``thread_id`` the session's thread unless it has one already (``replace``:
        regardless); returns the session's thread."""
        key = keys.session_thread(session_id)
        ttl = keys.session_ttl_seconds() or None
        if self.redis.set(key, thread_id, nx=not replace, ex=ttl):
            return thread_id
        return cast(str | None, self.redis.get(key)) or thread_id

    def set_session_mode(self, session_id: str, mode: str) -> None:
        self.redis.set(keys.session_mode(session_id), mode, ex=keys.session_ttl_seconds() or None)

    def set_last_response(self, session_id: str, response_id: str) -> None:
        ttl = keys.session_ttl_seconds() or None
        self.redis.set(keys.session_response(session_id), response_id, ex=ttl)

    def touch_session(self, session_id: str) -> None:
        """A turn of the session ended: its ids live ``session_ttl_seconds`` from now."""
        ttl = keys.session_ttl_seconds()
        if ttl <= 0:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.expire(keys.session_mode(session_id), ttl)
        pipe.expire(keys.session_thread(session_id), ttl)
        pipe.execute()

    def forget_session(self, session_id: str) -> int:
        """Drop every server-side id and the memory of a session; returns keys deleted."""
        return int(
            self.redis.delete(
                keys.session_thread(session_id),
                keys.session_response(session_id),
                keys.session_mode(session_id),
                keys.session_messages(session_id),
            )
        )

    # Assistants created per definition
    def claim_assistant(self, digest: str, job_id: str, ttl_seconds: int = 30) -> AssistantClaim:
        """Whether ``job_id`` finds the assistant for ``digest``, creates it, or waits.

        The cache is read and the creation lock taken in one script: read apart, a job
        could miss the cache, another could create the assistant and free the lock, and
        the first would then create a second one. The lock's holder may claim again (its
        own redelivery). Each wait is counted for the job, so that its start can tell
        these retries from failed attempts.
        """
        found = self._claim_assistant(
            keys=[keys.assistant_for_definition(digest), keys.assistant_creating(digest),
                  keys.assistant_waits(job_id)],
            args=[job_id, ttl_seconds, keys.job_ttl_seconds()],
        )
        outcome, assistant_id = (str(part) for part in found)
        return cast(AssistantClaim, (outcome, assistant_id or None))

    def assistant_waits(self, job_id: str) -> int:
        """How often ``job_id`` waited for another job's assistant creation."""
        return int(self.redis.get(keys.assistant_waits(job_id)) or 0)

    def remember_assistant(self, digest: str, assistant_id: str) -> str:
        """Store the id unless one is stored already; returns the stored one."""
        key = keys.assistant_for_definition(digest)
        ttl = keys.assistant_cache_ttl_seconds()
        if self.redis.set(key, assistant_id, nx=True, ex=ttl):
            self.redis.delete(keys.assistant_creating(digest))
            return assistant_id
        return cast(str | None, self.redis.get(key)) or assistant_id
