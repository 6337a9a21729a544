"""Per-job state the worker keeps between tasks: turn state, replies, tool results.

Everything here is written so that a task delivered twice finds its earlier work:
model replies are kept per step, tool outputs per tool_call_id, and a turn state is
only replaced by the transition that follows the version it was read at.
"""

from __future__ import annotations

from typing import cast

import redis

from producer import keys
from producer.contracts import JobEvent, JobResult, ToolOutput
from producer.jobstore import EVENTS_MAX_LEN
from worker.turn import ModelReply, TurnState

# The start of every compare-and-set script on a versioned state (KEYS[1]; ARGV[1]: the
# expected version, -1 for "none stored yet"): return 0 unless the stored state matches.
VERSION_GUARD_LUA = """
local current = redis.call('GET', KEYS[1])
if current then
  if cjson.decode(current)['version'] ~= tonumber(ARGV[1]) then
    return 0
  end
elseif tonumber(ARGV[1]) >= 0 then
  return 0
end
"""

# Replace the turn state only if the stored one still has the expected version; with an
# event (ARGV[4], '' for none), append it to the job's stream (KEYS[2]) in the same call.
_COMPARE_AND_SET = VERSION_GUARD_LUA + """
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[4])
end
return 1
"""

# A tool call's output, kept once per tool_call_id, with its ``tool_finished`` event.
# KEYS: output, events. ARGV: output, ttl, event, events maxlen. Returns nil when this
# output was kept, else the output an earlier delivery stored.
_TOOL_OUTPUT_ONCE = """
local kept = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
if kept then
  return false
end
return redis.call('GET', KEYS[1])
"""

# A tool call about to run: its stored output if an earlier delivery finished it, else
# nil with its ``tool_started`` event appended. KEYS: output, events. ARGV: event, maxlen.
_BEGIN_TOOL_CALL = """
local done = redis.call('GET', KEYS[1])
if done then
  return done
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[1])
return false
"""

# A step's model reply, kept once, with the state it leads to and its event, at once.
# KEYS: reply, turn state, events. ARGV: reply, ttl, expected state version, new state,
# event, events maxlen. Returns {1} (all written), {0, reply} (an earlier delivery's reply
# is kept: the caller applies that one instead) or {0} (the state moved on meanwhile).
_RECORD_REPLY = """
local earlier = redis.call('GET', KEYS[1])
if earlier then
  return {0, earlier}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local current = redis.call('GET', KEYS[2])
if not current or cjson.decode(current)['version'] ~= tonumber(ARGV[3]) then
  return {0}
end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'event', ARGV[5])
return {1}
"""

# A turn's first state and its job's ``running`` record and events (``started``, and
# ``model_call`` of the first step), at once. KEYS: turn state, job final marker, job
# record, events. ARGV: state, ttl, record, events maxlen, event... Returns 1 (started),
# 0 (the job had ended: nothing written) or 2 (a redelivered copy of the start created
# the state first).
_START = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 2
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[2])
for i = 5, #ARGV do
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[i])
end
return 1
"""


class TurnStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._cas = client.register_script(_COMPARE_AND_SET)
        self._start = client.register_script(_START)
        self._record_reply = client.register_script(_RECORD_REPLY)
        self._begin_tool_call = client.register_script(_BEGIN_TOOL_CALL)
        self._tool_output_once = client.register_script(_TOOL_OUTPUT_ONCE)

    def load_step(
        self, job_id: str, step: int
    ) -> tuple[TurnState | None, bool, ModelReply | None]:
        """In one round trip: the turn state, whether the job ended, the step's stored reply."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.turn_state(job_id))
        pipe.exists(keys.job_final(job_id))
        pipe.get(keys.step_reply(job_id, step))
        raw_state, final, raw_reply = pipe.execute()
        state = TurnState.model_validate_json(raw_state) if raw_state else None
        reply = ModelReply.model_validate_json(raw_reply) if raw_reply else None
        return state, bool(final), reply

    def load_start(
        self, job_id: str, session_id: str
    ) -> tuple[bool, TurnState | None, JobResult | None, int]:
        """In one round trip: job ended?, turn state, job record, session memory length."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(keys.job_final(job_id))
        pipe.get(keys.turn_state(job_id))
        pipe.get(keys.job(job_id))
        pipe.llen(keys.session_messages(session_id))
        final, raw_state, raw_job, memory_length = pipe.execute()
        state = TurnState.model_validate_json(raw_state) if raw_state else None
        job = JobResult.model_validate_json(raw_job) if raw_job else None
        return bool(final), state, job, int(memory_length)

    def load(self, job_id: str) -> TurnState | None:
        raw = cast(str | None, self.redis.get(keys.turn_state(job_id)))
        return TurnState.model_validate_json(raw) if raw else None

    def create(self, state: TurnState) -> bool:
        """Store the first state of a turn; False if a (redelivered) start already did."""
        return self._save(state, expected_version=-1)

    def advance(
        self, previous: TurnState, new: TurnState, event: JobEvent | None = None
    ) -> bool:
        """Replace ``previous`` by ``new`` (and append ``event`` with it, in the same round
        trip); False, and nothing written, if another copy of the task got there first."""
        return self._save(new, expected_version=previous.version, event=event)

    def start(self, state: TurnState, running: JobResult, *events: JobEvent) -> int:
        """Store a turn's first state with its job's running record and ``events``.

        1: done; 0: the job had ended (cancelled while queued); 2: a redelivered copy of
        the start created the state first (then nothing is written here).
        """
        ttl = keys.job_ttl_seconds()
        return int(self._start(
            keys=[keys.turn_state(state.job_id), keys.job_final(state.job_id),
                  keys.job(state.job_id), keys.job_events(state.job_id)],
            args=[state.model_dump_json(), ttl, running.model_dump_json(), EVENTS_MAX_LEN,
                  *(event.model_dump_json() for event in events)],
        ))

    def record_reply(
        self, previous: TurnState, new: TurnState, reply: ModelReply, event: JobEvent
    ) -> tuple[bool, ModelReply | None]:
        """Keep ``reply`` as its step's reply and replace ``previous`` by ``new`` with
        ``event``, in one round trip. Returns (saved, the reply an earlier delivery kept
        for the step, if one did: then nothing else was written)."""
        outcome = self._record_reply(
            keys=[keys.step_reply(new.job_id, previous.step), keys.turn_state(new.job_id),
                  keys.job_events(new.job_id)],
            args=[reply.model_dump_json(), keys.job_ttl_seconds(), previous.version,
                  new.model_dump_json(), event.model_dump_json(), EVENTS_MAX_LEN],
        )
        if len(outcome) > 1:
            return False, ModelReply.model_validate_json(outcome[1])
        return bool(outcome[0]), None

    def _save(self, state: TurnState, expected_version: int, event: JobEvent | None = None) -> bool:
        done = self._cas(
            keys=[keys.turn_state(state.job_id), keys.job_events(state.job_id)],
            args=[expected_version, state.model_dump_json(), keys.job_ttl_seconds(),
                  event.model_dump_json() if event else "", EVENTS_MAX_LEN],
        )
        return bool(done)

    def reply_once(self, job_id: str, step: int, reply: ModelReply) -> ModelReply:
        """Keep the first reply stored for a step and return it (ours or an earlier one)."""
        key = keys.step_reply(job_id, step)
        if self.redis.set(key, reply.model_dump_json(), nx=True, ex=keys.job_ttl_seconds()):
            return reply
        return self.cached_reply(job_id, step) or reply

    def cached_reply(self, job_id: str, step: int) -> ModelReply | None:
        raw = cast(str | None, self.redis.get(keys.step_reply(job_id, step)))
        return ModelReply.model_validate_json(raw) if raw else None

    def tool_output_once(
        self, job_id: str, output: ToolOutput, finished: JobEvent | None = None
    ) -> ToolOutput:
        """Keep the first output stored for a call and return it (ours or an earlier one);
        with ``finished``, its event goes out in the same round trip."""
        key = keys.tool_result(job_id, output.tool_call_id)
        if finished is None:
            if self.redis.set(key, output.model_dump_json(), nx=True, ex=keys.job_ttl_seconds()):
                return output
            return self.cached_tool_output(job_id, output.tool_call_id) or output
        earlier = self._tool_output_once(
            keys=[key, keys.job_events(job_id)],
            args=[output.model_dump_json(), keys.job_ttl_seconds(), finished.model_dump_json(),
                  EVENTS_MAX_LEN],
        )
        return ToolOutput.model_validate_json(earlier) if earlier else output

    def begin_tool_call(self, job_id: str, tool_call_id: str, started: JobEvent
                        ) -> ToolOutput | None:
        """The call's stored output (a redelivery: do not run it again), else None with
        ``started`` appended to the job's events, in one round trip."""
        done = self._begin_tool_call(
            keys=[keys.tool_result(job_id, tool_call_id), keys.job_events(job_id)],
            args=[started.model_dump_json(), EVENTS_MAX_LEN],
        )
        return ToolOutput.model_validate_json(done) if done else None

    def cached_tool_output(self, job_id: str, tool_call_id: str) -> ToolOutput | None:
        raw = cast(str | None, self.redis.get(keys.tool_result(job_id, tool_call_id)))
        return ToolOutput.model_validate_json(raw) if raw else None

    def was_dispatched(self, job_id: str, transition: str) -> bool:
        return bool(self.redis.exists(keys.dispatched(job_id, transition)))

    def count_resend(self, job_id: str, transition: str) -> int:
        """Count one more resend of a transition's follow-up; returns the count so far."""
        key = keys.dispatched(job_id, f"{transition}:resent")
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, keys.job_ttl_seconds())
        resends, _ = pipe.execute()
        return int(resends)

    def mark_dispatched(self, job_id: str, transition: str) -> None:
        self.redis.set(keys.dispatched(job_id, transition), "1", ex=keys.job_ttl_seconds())
