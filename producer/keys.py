"""Every Redis key the system uses, with its time-to-live policy.

Producer and worker both import this module, so a key is spelled in one place only.
All keys share the ``ca:`` prefix; one Redis can serve other applications too.
"""

from __future__ import annotations

import os

PREFIX = "ca"


def job_ttl_seconds() -> int:
    """How long job records, events and per-job state live (``AGENT_RESULT_TTL``)."""
    return int(os.environ.get("AGENT_RESULT_TTL", "86400"))


def session_ttl_seconds() -> int:
    """How long a session's memory lives after its last write (``AGENT_SESSION_TTL``).

    0 keeps memory until it is reset.
    """
    return int(os.environ.get("AGENT_SESSION_TTL", str(30 * 86400)))


# Per job; all expire after job_ttl_seconds() (except tool_running, a lease).
def job(job_id: str) -> str:
    """JSON JobResult: the job record."""
    return f"{PREFIX}:job:{job_id}"


def job_events(job_id: str) -> str:
    """Redis stream of JobEvent JSON documents."""
    return f"{PREFIX}:job:{job_id}:events"


def job_end(job_id: str) -> str:
    """Redis stream with one entry, added when the job ends (with its terminal event):
    what ``wait`` blocks on, so a waiter wakes once rather than at every event."""
    return f"{PREFIX}:job:{job_id}:end"


def turn_state(job_id: str) -> str:
    """JSON TurnState of the running turn."""
    return f"{PREFIX}:job:{job_id}:turn"


def step_reply(job_id: str, step: int) -> str:
    """The model's reply for one step, so a redelivered step does not call the model again."""
    return f"{PREFIX}:job:{job_id}:reply:{step}"


def dispatched(job_id: str, transition: str) -> str:
    """Marker set once the follow-up of a transition (e.g. "model:3") has been enqueued."""
    return f"{PREFIX}:job:{job_id}:dispatched:{transition}"


def tool_result(job_id: str, tool_call_id: str) -> str:
    """JSON ToolOutput of one tool call, reused when the call is delivered again."""
    return f"{PREFIX}:job:{job_id}:tool:{tool_call_id}"


def tool_started(job_id: str, tool_call_id: str) -> str:
    """Claim taken before a non-idempotent tool runs, so a redelivered call never reruns it."""
    return f"{PREFIX}:job:{job_id}:tool:{tool_call_id}:started"


def tool_running(job_id: str, tool_call_id: str) -> str:
    """Lease of a claimed non-idempotent call while it runs (worker/tool_claims.py).

    Unlike the per-job keys above, it expires after AGENT_VISIBILITY_TIMEOUT unless the
    process running the call renews it, so a copy of the call tells a run still going
    from one that died."""
    return f"{PREFIX}:job:{job_id}:tool:{tool_call_id}:running"


def rate_slot(job_id: str, step: int) -> str:
    """Hash: the model-rate-limit slot a waiting step reserved, and how often it waited."""
    return f"{PREFIX}:job:{job_id}:rate:{step}"


def assistant_waits(job_id: str) -> str:
    """Counter: how often the job's start waited for another job creating the same
    assistant (its retries that were no failed attempt). Expires with the job."""
    return f"{PREFIX}:job:{job_id}:assistant-waits"


def stream_attempts(job_id: str, step: int) -> str:
    """Counter of streamed attempts of one model step; from the second on, the step
    publishes a ``delta_reset`` before its first delta."""
    return f"{PREFIX}:job:{job_id}:stream:{step}"


def approvals(job_id: str) -> str:
    """Hash: call id -> JSON Approval of each tool call waiting for (or given) a person's
    decision. Decisions are written by one compare-and-set script (producer/approvals.py)."""
    return f"{PREFIX}:job:{job_id}:approvals"


def job_final(job_id: str) -> str:
    """Marker set by whichever of succeed/fail ends the job first; the other is ignored."""
    return f"{PREFIX}:job:{job_id}:final"


def job_message(job_id: str) -> str:
    """The job's StartTurn message, kept so that whoever releases the session can start it."""
    return f"{PREFIX}:job:{job_id}:message"


def run_state(job_id: str) -> str:
    """JSON RunState of an assistant-mode job (server-side run ids, polls, tool rounds)."""
    return f"{PREFIX}:job:{job_id}:run"


def run_submitted(job_id: str, tool_round: int) -> str:
    """Set once a tool round's outputs reached the server (a Responses follow-up's id),
    so a redelivered callback does not submit them twice."""
    return f"{PREFIX}:job:{job_id}:submitted:{tool_round}"


# Assistant-run polling (shared by all jobs; entries leave as runs end).
def runs_due() -> str:
    """Sorted set of assistant-mode job ids whose run is being polled, scored by the time
    the next poll is due. A poll task claims due members by moving their score forward
    (a lease), so a killed poll task loses nothing. No TTL: members are removed when
    their run leaves the polling phase."""
    return f"{PREFIX}:runs:due"


def poll_tick(slot: int) -> str:
    """Marker: a poll task is enqueued for time slot ``slot``; expires soon after it."""
    return f"{PREFIX}:runs:tick:{slot}"


def assistant_creating(digest: str) -> str:
    """Short-lived lock held by the worker creating the assistant for one definition."""
    return f"{PREFIX}:assistant:{digest}:creating"


# Shared by all jobs; entries leave as jobs end.
def deadlines() -> str:
    """Sorted set of unfinished jobs with a deadline ("job_id session_id"), scored by it."""
    return f"{PREFIX}:deadlines"


def approvals_due() -> str:
    """Sorted set of job ids waiting for approvals that time out, scored by the earliest
    timeout. No TTL: the approval sweep removes members once their calls are decided."""
    return f"{PREFIX}:approvals:due"


def approval_sweep(slot: int) -> str:
    """Marker: the approval-timeout sweep for time slot ``slot`` is enqueued; expires after it."""
    return f"{PREFIX}:approvals:sweep:{slot}"


def stall_scan() -> str:
    """Marker: a sweep looked for stalled jobs lately; expires when the next may look."""
    return f"{PREFIX}:deadlines:stall-scan"


def deadline_sweep(slot: int) -> str:
    """Marker: the deadline sweep for time slot ``slot`` is enqueued; expires after it."""
    return f"{PREFIX}:deadlines:sweep:{slot}"


# Per session; expire session_ttl_seconds() after the last write.
def session_jobs(session_id: str) -> str:
    """Redis list of the session's unfinished job ids in submission order.

    The head is the job allowed to run; the others wait for it. Turns never overlap.
    """
    return f"{PREFIX}:session:{session_id}:jobs"


def session_thread(session_id: str) -> str:
    """The Assistants-API thread id of an assistant-mode session."""
    return f"{PREFIX}:session:{session_id}:thread"


def session_response(session_id: str) -> str:
    """The last Responses-API response id of an assistant-mode session."""
    return f"{PREFIX}:session:{session_id}:response"


def session_mode(session_id: str) -> str:
    """Which protocol an assistant-mode session uses ("responses" or "assistants")."""
    return f"{PREFIX}:session:{session_id}:mode"


# Shared; expire after AGENT_ASSISTANT_CACHE_TTL (default 30 days).
def assistant_cache_ttl_seconds() -> int:
    """How long a created assistant's id is remembered for its definition."""
    return int(os.environ.get("AGENT_ASSISTANT_CACHE_TTL", str(30 * 86400)))


def assistant_for_definition(digest: str) -> str:
    """The assistant id created for one assistant definition (digest of its fields)."""
    return f"{PREFIX}:assistant:{digest}"



def session_messages(session_id: str) -> str:
    """Redis list of ChatMessage JSON documents, oldest first. Never truncated."""
    return f"{PREFIX}:session:{session_id}:messages"


def session_recent_jobs(session_id: str) -> str:
    """Sorted set of the session's newest job ids (finished or not), scored by submission
    time; trimmed to AGENT_SESSION_JOBS_KEPT (producer/session_listing.py). Expires with
    the session (and never before its jobs' records)."""
    return f"{PREFIX}:session:{session_id}:recent"


# Webhooks, per job; all expire after job_ttl_seconds().
def job_webhook(job_id: str) -> str:
    """The job's webhook_url, set at submission; ending the job checks for it."""
    return f"{PREFIX}:job:{job_id}:webhook"


def webhook_sent(job_id: str) -> str:
    """Marker: the job's webhook delivery task has been enqueued."""
    return f"{PREFIX}:job:{job_id}:webhook:sent"


def webhook_delivered(job_id: str) -> str:
    """JSON outcome of the job's webhook: delivered (a 2xx) or given up; no more attempts."""
    return f"{PREFIX}:job:{job_id}:webhook:delivered"


# Shared, per model; expires once its schedule lies in the past.
def model_rate(model: str) -> str:
    """The model's rate-limit schedule (GCRA: when the next request may go, in ms)."""
    return f"{PREFIX}:ratelimit:model:{model}"


# Per gateway Idempotency-Key; expires after job_ttl_seconds(), no later than its job.
def idempotency(key: str) -> str:
    """``<request fingerprint> <job id>``: the job a repeated Idempotency-Key returns."""
    return f"{PREFIX}:idempotency:{key}"


# The tool registry (producer/tool_registry.py). A server's claim on a tool is a lease
# renewed by its heartbeat; specs outlive their servers by job_ttl_seconds(), so a turn
# started before a server stopped still shows the model the tool's schema.
def tool_heartbeat_seconds() -> float:
    """How often a tools worker renews its announcements (``AGENT_TOOL_HEARTBEAT``)."""
    return float(os.environ.get("AGENT_TOOL_HEARTBEAT", "5"))


def tool_lease_seconds() -> float:
    """A server whose announcement is older than this no longer serves (3 heartbeats)."""
    return 3 * tool_heartbeat_seconds()


def tools_index() -> str:
    """Sorted set: tool name -> when its last live server's lease ends (ms). Expires
    job_ttl_seconds() after the last announcement; lapsed members are pruned then."""
    return f"{PREFIX}:tools:index"


def tool_spec(name: str) -> str:
    """Hash {digest, spec}: the JSON ToolSpec of a tool; expires job_ttl_seconds() after
    its last announcement."""
    return f"{PREFIX}:tools:spec:{name}"


def tool_servers(name: str) -> str:
    """Sorted set: worker name -> when its lease on the tool ends (ms); same TTL."""
    return f"{PREFIX}:tools:servers:{name}"


def tool_refused(name: str) -> str:
    """Sorted set: worker -> lease end (ms) of announcements refused for a spec that
    differs from the served one (a version conflict, listed by ``tools``); same TTL."""
    return f"{PREFIX}:tools:refused:{name}"
