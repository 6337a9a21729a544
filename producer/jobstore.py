"""Job records, job events and session memory in Redis: the parts both sides read.

The producer creates job records and reads them; the worker updates them. Ending a job
(succeed or fail) is one atomic script so that the record, the event and the memory
write happen together, once, whichever copy of a redelivered task gets there first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import redis
from celery import Celery

from producer import keys
from producer.contracts import ChatMessage, EventKind, JobEvent, JobResult, JobStatus
from producer.deadlines import member as deadline_member
from producer.webhook_dispatch import send_webhook

EVENTS_MAX_LEN = 1000
MAX_CONNECTIONS = 10_000  # per client: one per thread that talks to Redis at once
FOLLOW_SLICE_MS = 2000

# KEYS: final marker, job record, events, session messages, deadlines, webhook url,
#       webhook sent marker, end stream, the session's line of jobs
# ARGV: job ttl, record json, event json, events maxlen, session ttl, deadlines member,
#       job id to take out of the session's line ('' to leave it), messages json...
# Returns 1 when this call ended the job, plus 2 when its webhook is still to be sent.
# The job leaves its session's line with its end, so that a caller woken by the end finds
# the session idle; the release that follows sends the next job's start.
_FINISH_SCRIPT = """
local hook = 0
if redis.call('EXISTS', KEYS[6]) == 1 and redis.call('EXISTS', KEYS[7]) == 0 then
  hook = 2
end
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then
  return hook
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[8], '*', 'ended', '1')
redis.call('EXPIRE', KEYS[8], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[6])
if ARGV[7] ~= '' then
  redis.call('LREM', KEYS[9], 1, ARGV[7])
end
if #ARGV > 7 then
  for i = 8, #ARGV do
    redis.call('RPUSH', KEYS[4], ARGV[i])
  end
  if tonumber(ARGV[5]) > 0 then
    redis.call('EXPIRE', KEYS[4], ARGV[5])
  end
end
return 1 + hook
"""


# KEYS: final marker, job record, events; ARGV: record json, event json, maxlen, ttl.
# A job cancelled or failed before its start task ran stays ended.
_MARK_RUNNING_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[2])
return 1
"""

# Called with (job_id, session_id) whenever a job was found ended; see session_order.
OnFinished = Callable[[str, str], object]


def connect(url: str) -> redis.Redis:
    """A Redis client that returns text and waits out a Redis restart.

    Connection errors, including the refused connects of a restart that redis-py's
    default retry lets through at once, are retried for ``AGENT_REDIS_RETRY_SECONDS``
    (see producer/redis_retry.py), so a submit or a task during a short outage waits
    for Redis instead of failing.
    """
    from producer.redis_retry import RetryFor, retry_seconds

    return redis.Redis.from_url(
        url, decode_responses=True, health_check_interval=30, socket_keepalive=True,
        retry=RetryFor(retry_seconds()),
        # redis-py 8 caps a pool at 100 connections; a threads-pool worker runs hundreds
        # of steps at once, and the 101st concurrent call failed as "Redis unreachable".
        max_connections=MAX_CONNECTIONS,
    )


class JobStore:
    """Reads and writes job records, events and session memory.

    ``on_finished`` runs after every attempt to end a job, whether this attempt wrote
    the end or an earlier one did: it releases the job's session (idempotent).
    """

    def __init__(self, client: redis.Redis, on_finished: OnFinished | None = None) -> None:
        self.redis = client
        self.on_finished = on_finished
        self.celery: Celery | None = None  # sends webhook deliveries; None: current app
        self._finish = client.register_script(_FINISH_SCRIPT)
        self._mark_running = client.register_script(_MARK_RUNNING_SCRIPT)

    # Job records
    def put_job(self, job: JobResult) -> None:
        self.redis.set(keys.job(job.job_id), job.model_dump_json(), ex=keys.job_ttl_seconds())

    def get_job(self, job_id: str) -> JobResult | None:
        raw = cast(str | None, self.redis.get(keys.job(job_id)))
        return JobResult.model_validate_json(raw) if raw else None

    # Events
    def emit(
        self, job_id: str, kind: EventKind, step: int | None = None, *, create: bool = False,
        **detail: Any,
    ) -> None:
        """Append an event. ``create`` sets the stream's TTL (the first event of a job);
        later events leave it, and ending the job refreshes it."""
        pipe = self.redis.pipeline(transaction=False)
        self._add_event(pipe, job_id, kind, step, detail)
        if create:
            pipe.expire(keys.job_events(job_id), keys.job_ttl_seconds())
        pipe.execute()

    def mark_running(self, job: JobResult, **detail: Any) -> bool:
        """The worker took the job: update its record and emit ``started``, in one round trip.

        False (and nothing written) when the job ended meanwhile, e.g. it was cancelled.
        """
        event = JobEvent(job_id=job.job_id, kind="started", at=time.time(), detail=detail)
        done = self._mark_running(
            keys=[keys.job_final(job.job_id), keys.job(job.job_id), keys.job_events(job.job_id)],
            args=[job.model_dump_json(), event.model_dump_json(), EVENTS_MAX_LEN,
                  keys.job_ttl_seconds()],
        )
        return bool(done)

    @staticmethod
    def _add_event(
        pipe: redis.client.Pipeline, job_id: str, kind: EventKind, step: int | None,
        detail: dict[str, Any],
    ) -> None:
        event = JobEvent(job_id=job_id, kind=kind, at=time.time(), step=step, detail=detail)
        pipe.xadd(
            keys.job_events(job_id),
            {"event": event.model_dump_json()},
            maxlen=EVENTS_MAX_LEN,
            approximate=True,
        )

    def read_events(
        self, job_id: str, after: str = "0-0", block_ms: int | None = None
    ) -> list[tuple[str, JobEvent]]:
        """Events after stream id ``after``; waits up to ``block_ms`` when there are none."""
        reply = cast(
            list[tuple[str, list[tuple[str, dict[str, str]]]]],
            self.redis.xread({keys.job_events(job_id): after}, block=block_ms, count=100),
        )
        found: list[tuple[str, JobEvent]] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                found.append((entry_id, JobEvent.model_validate_json(fields["event"])))
        return found

    def follow_events(self, job_id: str, deadline: float) -> Iterator[JobEvent]:
        """Every event of the job, as it happens, up to the terminal one or the deadline."""
        after = "0-0"
        while True:
            remaining_ms = int((deadline - time.time()) * 1000)
            if remaining_ms <= 0:
                return
            # Block in slices shorter than the client's socket timeout (5 s by default in
            # redis-py), which would otherwise end a read during a quiet spell.
            block_ms = min(remaining_ms, FOLLOW_SLICE_MS)
            for entry_id, event in self.read_events(job_id, after, block_ms=block_ms):
                after = entry_id
                yield event
                if event.terminal:
                    return

    def wait_ended(self, job_id: str, deadline: float) -> bool:
        """Block until the job ended (True) or ``deadline`` passed (False).

        One read wakes at the end, not one per event. Each slice also checks the final
        marker, for a job ended by a worker that writes no end stream (an older release).
        """
        while True:
            remaining_ms = int((deadline - time.time()) * 1000)
            if remaining_ms <= 0:
                return False
            block_ms = min(remaining_ms, FOLLOW_SLICE_MS)
            if self.redis.xread({keys.job_end(job_id): "0-0"}, block=block_ms, count=1):
                return True
            if self.is_final(job_id):
                return True

    # Ending a job
    def finish(
        self, job: JobResult, event: JobEvent, new_messages: list[ChatMessage] | None = None
    ) -> bool:
        """Write the final record and event, and append memory; once per job.

        Returns False when the job had already ended (a duplicate task, or a failure
        that got there first); then nothing is written.
        """
        args: list[str | int] = [
            keys.job_ttl_seconds(),
            job.model_dump_json(),
            event.model_dump_json(),
            EVENTS_MAX_LEN,
            keys.session_ttl_seconds(),
            deadline_member(job.job_id, job.session_id),
            # Only a store that releases sessions (a worker's) frees the line here: a
            # producer's cancel of a running job leaves it held until its step stops.
            job.job_id if self.on_finished is not None else "",
        ]
        args.extend(m.model_dump_json(exclude_none=True) for m in new_messages or [])
        done = self._finish(
            keys=[
                keys.job_final(job.job_id),
                keys.job(job.job_id),
                keys.job_events(job.job_id),
                keys.session_messages(job.session_id),
                keys.deadlines(),
                keys.job_webhook(job.job_id),
                keys.webhook_sent(job.job_id),
                keys.job_end(job.job_id),
                keys.session_jobs(job.session_id),
            ],
            args=args,
        )
        self.released(job.job_id, job.session_id)
        if int(done) & 2:  # the job has a webhook_url and its delivery is not sent yet
            send_webhook(self.celery, self.redis, job.job_id)
        return bool(int(done) & 1)

    def released(self, job_id: str, session_id: str) -> None:
        """Let the session's next job start; call whenever a job is found ended."""
        if self.on_finished is not None:
            self.on_finished(job_id, session_id)

    def is_final(self, job_id: str) -> bool:
        return bool(self.redis.exists(keys.job_final(job_id)))

    def fail(self, job_id: str, error: str, step: int | None = None) -> bool:
        """End the job as failed with a readable reason; memory is left as it was."""
        return self.end_without_answer(job_id, JobStatus.FAILED, error, step)

    def cancel(self, job_id: str, reason: str = "cancelled by request") -> bool:
        """End the job as cancelled; tasks still in flight stop at their next step."""
        return self.end_without_answer(job_id, JobStatus.CANCELLED, reason)

    def end_without_answer(
        self, job_id: str, status: JobStatus, error: str, step: int | None = None
    ) -> bool:
        """End the job as failed or cancelled; False if it had ended already."""
        now = time.time()
        current = self.get_job(job_id)
        if current is None:  # a malformed message for a job the producer never created
            current = JobResult(
                job_id=job_id, session_id="unknown", status=JobStatus.FAILED,
                created_at=now, updated_at=now,
            )
        ended = current.model_copy(update={"status": status, "error": error, "updated_at": now})
        kind: EventKind = "cancelled" if status == JobStatus.CANCELLED else "failed"
        event = JobEvent(job_id=job_id, kind=kind, at=now, step=step, detail={"error": error})
        return self.finish(ended, event)

    # Session memory
    def history(self, session_id: str, length: int | None = None) -> list[ChatMessage]:
        """Stored messages of a session, oldest first; the first ``length`` if given."""
        end = -1 if length is None else length - 1
        if length == 0:
            return []
        raw = cast(list[str], self.redis.lrange(keys.session_messages(session_id), 0, end))
        return [ChatMessage.model_validate_json(item) for item in raw]

    def reset(self, session_id: str) -> bool:
        """Forget a session's memory. True when there was something to delete."""
        return bool(self.redis.delete(keys.session_messages(session_id)))
