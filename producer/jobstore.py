"""Job records, job events and session memory in Redis: the parts both sides read.

The producer creates job records and reads them; the worker updates them. Ending a job
(succeed or fail) is one atomic script so that the record, the event and the memory
write happen together, once, whichever copy of a redelivered task gets there first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

import redis

from producer import keys
from producer.contracts import ChatMessage, EventKind, JobEvent, JobResult, JobStatus

EVENTS_MAX_LEN = 1000

# KEYS: final marker, job record, events, session messages
# ARGV: job ttl, record json, event json, events maxlen, session ttl, messages json...
_FINISH_SCRIPT = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[1])
if #ARGV > 5 then
  for i = 6, #ARGV do
    redis.call('RPUSH', KEYS[4], ARGV[i])
  end
  if tonumber(ARGV[5]) > 0 then
    redis.call('EXPIRE', KEYS[4], ARGV[5])
  end
end
return 1
"""


def connect(url: str) -> redis.Redis:
    """A Redis client that retries on connection errors and returns text."""
    return redis.Redis.from_url(
        url, decode_responses=True, health_check_interval=30, socket_keepalive=True
    )


class JobStore:
    """Reads and writes job records, events and session memory."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._finish = client.register_script(_FINISH_SCRIPT)

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

    def mark_running(self, job: JobResult, **detail: Any) -> None:
        """The worker took the job: update its record and emit ``started``, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.job(job.job_id), job.model_dump_json(), ex=keys.job_ttl_seconds())
        self._add_event(pipe, job.job_id, "started", None, detail)
        pipe.execute()

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
            for entry_id, event in self.read_events(job_id, after, block_ms=remaining_ms):
                after = entry_id
                yield event
                if event.terminal:
                    return

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
        ]
        args.extend(m.model_dump_json(exclude_none=True) for m in new_messages or [])
        done = self._finish(
            keys=[
                keys.job_final(job.job_id),
                keys.job(job.job_id),
                keys.job_events(job.job_id),
                keys.session_messages(job.session_id),
            ],
            args=args,
        )
        return bool(done)

    def fail(self, job_id: str, error: str, step: int | None = None) -> bool:
        """End the job as failed with a readable reason; memory is left as it was."""
        now = time.time()
        current = self.get_job(job_id)
        if current is None:  # a malformed message for a job the producer never created
            current = JobResult(
                job_id=job_id, session_id="unknown", status=JobStatus.FAILED,
                created_at=now, updated_at=now,
            )
        failed = current.model_copy(
            update={"status": JobStatus.FAILED, "error": error, "updated_at": now}
        )
        event = JobEvent(job_id=job_id, kind="failed", at=now, step=step, detail={"error": error})
        return self.finish(failed, event)

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
