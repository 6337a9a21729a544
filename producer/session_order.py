"""Turns of one session run one at a time, in submission order.

Each session has a Redis list of its unfinished job ids (``keys.session_jobs``). The head
is the job allowed to run; a job submitted while another is at the head waits in the
list (it is neither rejected nor interleaved). Whoever ends the head job releases the
session: the head is popped and the next job's start task is sent.

Releasing is idempotent, so every path that finds a job ended may call it (the task that
finished it, a redelivered copy, the cancel call, the deadline watchdog). The start of
the new head is sent unless it is marked as sent already; a crash between the send and
the mark sends it twice at worst, and the start task tolerates that.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, cast

import redis
from celery import Celery

from producer import keys
from producer.contracts import TASK_START_TURN
from producer.deadlines import SweepSlot, send_sweep
from producer.deadlines import member as deadline_member
from producer.delivery import PRIORITY_NEW_TURN
from producer.script_pipeline import execute, queue_script

logger = logging.getLogger("celery_agents")

START_TRANSITION = "start"

# KEYS: session jobs, job record, events, job message, start marker, deadlines, sweep marker
# ARGV: job id, record json, event json, events maxlen, job ttl, message json,
#       deadline ('' for none), deadlines member, sweep marker ttl
# Returns {position in the session (1: it may start now), 1 if the caller must send the
# deadline sweep of the job's slot}.
_ADMIT_SCRIPT = """
local sweep = 0
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[6], ARGV[7], ARGV[8])
  if redis.call('SET', KEYS[7], '1', 'NX', 'EX', ARGV[9]) then
    sweep = 1
  end
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[5])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[5])
redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[5])
-- A client that retried this script after a lost reply (Redis restarting) must not
-- queue the job twice: its second copy would hold the session for good.
local found = redis.call('LPOS', KEYS[1], ARGV[1])
if found then
  return {found + 1, sweep}
end
local position = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
if position == 1 then
  -- The caller sends the start right away; marking it here saves a round trip.
  redis.call('SET', KEYS[5], '1', 'EX', ARGV[5])
end
return {position, sweep}
"""

# KEYS: session jobs; ARGV: job id. Drops the job from its session (popping it when it is
# the head) and returns the head afterwards, or false for an idle session.
_RELEASE_SCRIPT = """
local head = redis.call('LINDEX', KEYS[1], 0)
if head == ARGV[1] then
  redis.call('LPOP', KEYS[1])
  head = redis.call('LINDEX', KEYS[1], 0)
elseif head then
  redis.call('LREM', KEYS[1], 0, ARGV[1])
end
return head
"""


def send_start(celery: Celery, job_id: str, session_id: str, message: dict[str, Any]) -> None:
    """Enqueue the job's ``agents.turn.start`` task by name, behind every turn in progress
    (the lowest priority): under overload the turns already running finish at their own
    pace, and a new turn waits only for a free slot."""
    celery.send_task(
        TASK_START_TURN,
        kwargs={"message": message},
        task_id=f"{job_id}-start",
        priority=PRIORITY_NEW_TURN,
        kwargsrepr=f"job={job_id} session={session_id}",
        ignore_result=True,  # progress is read from the job's events, not Celery results
    )


ADMIT_SCRIPT = _ADMIT_SCRIPT  # also run by producer/async_client.py on redis.asyncio


def admit_call(
    job_id: str, session_id: str, record_json: str, event_json: str,
    message: dict[str, Any], events_max_len: int, deadline_at: float | None,
) -> tuple[list[str], list[str | int | float], SweepSlot | None]:
    """The keys and arguments of the admit script, and the job's deadline sweep slot."""
    slot = SweepSlot.for_deadline(deadline_at) if deadline_at is not None else None
    script_keys = [
        keys.session_jobs(session_id),
        keys.job(job_id),
        keys.job_events(job_id),
        keys.job_message(job_id),
        keys.dispatched(job_id, START_TRANSITION),
        keys.deadlines(),
        slot.marker if slot else keys.deadline_sweep(0),
    ]
    args: list[str | int | float] = [
        job_id, record_json, event_json, events_max_len, keys.job_ttl_seconds(),
        json.dumps(message),
        repr(deadline_at) if deadline_at is not None else "",
        deadline_member(job_id, session_id),
        slot.marker_ttl if slot else 0,
    ]
    return script_keys, args, slot


def after_admit(
    celery: Celery, job_id: str, session_id: str, message: dict[str, Any],
    position: Any, sweep: Any, slot: SweepSlot | None,
) -> bool:
    """Send what the admit script said is due: the deadline sweep, the start (if the job
    heads its session); True when the job was started at once."""
    if sweep and slot is not None:
        send_sweep(celery, slot)
    if int(position) == 1:
        send_start(celery, job_id, session_id, message)
        return True
    return False


class SessionOrder:
    """Admits jobs to their session's line and starts each when its turn comes."""

    def __init__(self, client: redis.Redis, celery: Celery) -> None:
        self.redis = client
        self.celery = celery
        self._admit = client.register_script(_ADMIT_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    def admit(
        self, job_id: str, session_id: str, record_json: str, event_json: str,
        message: dict[str, Any], events_max_len: int, deadline_at: float | None = None,
        before: Callable[[redis.client.Pipeline], None] | None = None,
    ) -> bool:
        """Store the queued job, join its session's line and its deadline's sweep, then
        send what is due now; True when the job was started at once.

        One round trip: record, ``queued`` event, start message, the line, the deadline,
        and first whatever ``before`` queues in the same pipeline.
        """
        script_keys, args, slot = admit_call(
            job_id, session_id, record_json, event_json, message, events_max_len, deadline_at
        )
        pipe = self.redis.pipeline(transaction=False)
        if before is not None:
            before(pipe)
        admit = queue_script(pipe, self._admit, script_keys, args)
        position, sweep = execute(pipe, [admit])[admit.index]
        return after_admit(self.celery, job_id, session_id, message, position, sweep, slot)

    def start_now(self, job_id: str, session_id: str, message: dict[str, Any]) -> None:
        """Send the start of a job that is at the head of its session, and mark it sent."""
        send_start(self.celery, job_id, session_id, message)
        self.redis.set(keys.dispatched(job_id, START_TRANSITION), "1", ex=keys.job_ttl_seconds())

    def restart_head(self, job_id: str, session_id: str) -> bool:
        """Send the start of a job again if it is the head of its session (its first start
        task was lost); True when sent. The start task tolerates a duplicate."""
        if self.redis.lindex(keys.session_jobs(session_id), 0) != job_id:
            return False
        raw_message = cast(str | None, self.redis.get(keys.job_message(job_id)))
        if not raw_message:
            return False
        self.start_now(job_id, session_id, json.loads(raw_message))
        return True

    def release(self, job_id: str, session_id: str) -> str | None:
        """The job no longer holds (or waits for) its session; start the next one.

        Returns the id of the job whose start was sent, if any.
        """
        head = cast(
            str | None, self._release(keys=[keys.session_jobs(session_id)], args=[job_id])
        )
        if not head:
            return None
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(keys.dispatched(head, START_TRANSITION))
        pipe.get(keys.job_message(head))
        sent, raw_message = pipe.execute()
        if sent:
            return None
        if not raw_message:  # expired with its job: its deadline watchdog ends it
            logger.warning("session %s: next job %s has no start message", session_id, head)
            return None
        self.start_now(head, session_id, json.loads(raw_message))
        return head
