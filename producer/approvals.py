"""Human approval of tool calls: the Redis side both producer and worker use.

Each call that needs a decision is one field of the job's approvals hash
(``keys.approvals``), holding an :class:`Approval` as JSON. The worker opens a round of
them (:meth:`ApprovalStore.open`: the entries, the job's ``waiting_approval`` record,
one ``approval_required`` event each, the timeout's place in ``keys.approvals_due``) in
one script, once. A decision is one compare-and-set script too: exactly one decision per
call wins, whoever sends it (two people at once, a person and the timeout sweep), and
the script says how many calls of the job remain undecided. The caller whose decision
leaves none enqueues ``agents.approval.resume`` by name; a resume lost on the way is sent
again by the stall sweep (the decisions are in Redis).

Imports only redis, celery and the contracts: producers use it without worker code.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from celery import Celery

from producer import keys
from producer.contracts import TASK_APPROVAL_RESUME, Approval, JobEvent, JobResult

EVENTS_MAX_LEN = 1000  # as producer.jobstore (not imported: keep this module light)

# KEYS: approvals hash, final marker, job record, events, approvals due set.
# ARGV: ttl, events maxlen, due score ('' for none), job id, record json, then one
#       (call id, approval json, event json) triple per call.
# Returns -1 if the job ended; else the number of undecided calls of the job. Opening a
# round twice (a redelivered task) writes nothing the second time.
_OPEN = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
if redis.call('HEXISTS', KEYS[1], ARGV[6]) == 0 then
  for i = 6, #ARGV, 3 do
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'event', ARGV[i + 2])
  end
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[1])
  if ARGV[3] ~= '' then
    redis.call('ZADD', KEYS[5], 'NX', ARGV[3], ARGV[4])
  end
end
local undecided = 0
for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
  if not cjson.decode(raw)['decided'] then undecided = undecided + 1 end
end
return undecided
"""

# KEYS: approvals hash, final marker, job record, events.
# ARGV: call id, approved ('1'/'0'), reason ('' for none), decided by, now, maxlen.
# Returns {status, approval json, undecided calls left}; status: ok, unknown_job,
# unknown_call, decided, ended. Only 'ok' wrote anything.
_DECIDE = """
if redis.call('EXISTS', KEYS[3]) == 0 then
  return {'unknown_job', '', 0}
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
local entry = current and cjson.decode(current)
-- A call decided already says so (and by whom) even once its job has ended: a racing
-- approver learns it lost to that decision, not just that the job is over.
if entry and entry['decided'] then
  return {'decided', current, 0}
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'ended', current or '', 0}
end
if not current then
  return {'unknown_call', '', 0}
end
entry['decided'] = true
entry['approved'] = ARGV[2] == '1'
if ARGV[3] ~= '' then entry['reason'] = ARGV[3] else entry['reason'] = cjson.null end
entry['decided_by'] = ARGV[4]
entry['decided_at'] = tonumber(ARGV[5])
local encoded = cjson.encode(entry)
redis.call('HSET', KEYS[1], ARGV[1], encoded)
local detail = {call_id = ARGV[1], tool_name = entry['tool_name'],
                approved = entry['approved'], reason = entry['reason'],
                decided_by = ARGV[4]}
local event = cjson.encode({job_id = entry['job_id'], kind = 'approval_decided',
                            at = tonumber(ARGV[5]), detail = detail})
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'event', event)
local undecided = 0
for _, raw in ipairs(redis.call('HVALS', KEYS[1])) do
  if not cjson.decode(raw)['decided'] then undecided = undecided + 1 end
end
return {'ok', encoded, undecided}
"""

# KEYS: final marker, job record. ARGV: record json, ttl. Replace the record unless the
# job ended (a cancel or the deadline got there first).
_SET_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 1
"""


# KEYS: approvals due set. ARGV: job id, the score the sweep saw, the next score ('' for
# none). A round opened since the sweep read the set (a new score) is left as it is.
_RESCHEDULE_DUE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then
  return 0
end
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1
"""


class ApprovalError(Exception):
    """A decision that was refused; nothing was changed. ``status_code``: for HTTP."""

    status_code = 409


class UnknownJob(ApprovalError):
    status_code = 404


class UnknownCall(ApprovalError):
    status_code = 404


class AlreadyDecided(ApprovalError):
    status_code = 409


class JobEnded(ApprovalError):
    status_code = 409


@dataclass(frozen=True)
class Decided:
    """A decision that was written, and how many calls of the job are still undecided."""

    approval: Approval
    undecided: int


class ApprovalStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._open = client.register_script(_OPEN)
        self._decide = client.register_script(_DECIDE)
        self._set_record = client.register_script(_SET_RECORD)
        self._reschedule_due = client.register_script(_RESCHEDULE_DUE)

    def open(
        self, job: JobResult, approvals: Sequence[Approval], due_at: float | None
    ) -> int:
        """Open a round of approvals (once); the job's record says ``waiting_approval``.

        Returns the job's undecided calls (-1: the job ended, nothing written).
        """
        job_id = job.job_id
        args: list[str | float | int] = [
            keys.job_ttl_seconds(), EVENTS_MAX_LEN, "" if due_at is None else due_at, job_id,
            job.model_dump_json(),
        ]
        for item in approvals:
            detail = {"call_id": item.call_id, "tool_name": item.tool_name,
                      "arguments": item.arguments}
            event = JobEvent(job_id=job_id, kind="approval_required", at=item.requested_at,
                             detail=detail)
            args.extend([item.call_id, item.model_dump_json(), event.model_dump_json()])
        done = self._open(
            keys=[keys.approvals(job_id), keys.job_final(job_id), keys.job(job_id),
                  keys.job_events(job_id), keys.approvals_due()],
            args=args,
        )
        return int(cast(int, done))

    def decide(
        self, job_id: str, call_id: str, approved: bool, reason: str | None, decided_by: str,
        now: float | None = None,
    ) -> Decided:
        """Write one decision, if the call waits for one; raises ApprovalError otherwise."""
        status, raw, undecided = cast(list[Any], self._decide(
            keys=[keys.approvals(job_id), keys.job_final(job_id), keys.job(job_id),
                  keys.job_events(job_id)],
            args=[call_id, "1" if approved else "0", reason or "", decided_by,
                  time.time() if now is None else now, EVENTS_MAX_LEN],
        ))
        if status == "ok":
            return Decided(Approval.model_validate_json(raw), int(undecided))
        if status == "unknown_job":
            raise UnknownJob(f"unknown job {job_id} (never submitted, or expired)")
        if status == "unknown_call":
            raise UnknownCall(f"job {job_id} has no tool call {call_id} waiting for approval")
        if status == "decided":
            earlier = Approval.model_validate_json(raw)
            verdict = "approved" if earlier.approved else "declined"
            raise AlreadyDecided(
                f"tool call {call_id} was already {verdict} by {earlier.decided_by}"
            )
        raise JobEnded(f"job {job_id} has ended; its tool calls can no longer be decided")

    def all(self, job_id: str) -> list[Approval]:
        """Every approval of the job (decided or not), oldest round first, in call order."""
        raw = cast(dict[str, str], self.redis.hgetall(keys.approvals(job_id)))
        found = [Approval.model_validate_json(v) for v in raw.values()]
        return sorted(found, key=lambda a: (a.requested_at, a.position))

    def pending(self, job_id: str) -> list[Approval]:
        """The calls still waiting for a decision, in call order."""
        return [a for a in self.all(job_id) if not a.decided]

    def reschedule_due(self, job_id: str, seen: float, next_at: float | None) -> None:
        """After a sweep: the job's next timeout, or out of the set (none left)."""
        self._reschedule_due(keys=[keys.approvals_due()],
                             args=[job_id, repr(seen), "" if next_at is None else next_at])

    def set_record(self, job: JobResult) -> bool:
        """Replace the job record unless the job ended; True if written."""
        done = self._set_record(
            keys=[keys.job_final(job.job_id), keys.job(job.job_id)],
            args=[job.model_dump_json(), keys.job_ttl_seconds()],
        )
        return bool(done)


def send_resume(celery: Celery, job_id: str) -> None:
    """Enqueue the job's resume by name (``agents.approval.resume``); safe to repeat."""
    celery.send_task(
        TASK_APPROVAL_RESUME, kwargs={"job_id": job_id}, kwargsrepr=f"job={job_id}",
        ignore_result=True,
    )


def approve(
    store: ApprovalStore, celery: Celery, job_id: str, call_id: str, *, approved: bool,
    reason: str | None, decided_by: str,
) -> Approval:
    """Decide one call; the decision that leaves none undecided resumes the job."""
    decided = store.decide(job_id, call_id, approved, reason, decided_by)
    if decided.undecided == 0:
        send_resume(celery, job_id)
    return decided.approval
