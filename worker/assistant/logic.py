"""Pure run logic: what a polled status means for the job.

The protocol adapters reduce a server-side run (Assistants API) or a background response
(Responses API) to a :class:`RunSnapshot`; the functions here turn a RunState plus a
snapshot into the next RunState, whose ``phase`` says what the tasks do next:

- ``polling``: poll again at ``next_poll_at`` (a countdown that grows by ``POLL_BACKOFF``
  up to a cap, and starts again at ``request.poll_interval`` after each tool round);
- ``tools``: run ``pending_calls`` as tool tasks, then submit all outputs in call order;
- ``done``: end the job with ``response`` (succeeded) or ``error`` (failed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from producer.contracts import Approval, ToolCall, ToolOutput, Usage
from worker.approval import calls_awaiting, settle
from worker.assistant.state import POLL_BACKOFF, RunState
from worker.tool_outputs import budget_refusal

IN_PROGRESS = frozenset({"queued", "in_progress", "cancelling"})
FAILED = frozenset({"failed", "cancelled", "expired", "incomplete"})
ACTIVE = IN_PROGRESS | {"requires_action"}


@dataclass(frozen=True)
class RunSnapshot:
    """A run's status in protocol-neutral terms.

    ``status``: queued, in_progress, cancelling, requires_action, completed, failed,
    cancelled, expired or incomplete (a background response that stopped with function
    calls is reported as requires_action). ``error``: the server's last_error or
    incomplete reason. ``usage``: tokens to add to the job's total (given once per run
    or response, when it leaves the in-progress states). ``text``: the newest assistant
    message, when completed.
    """

    status: str
    tool_calls: tuple[ToolCall, ...] = ()
    error: str | None = None
    usage: Usage | None = None
    text: str | None = None


def start_polling(state: RunState, now: float) -> RunState:
    """The server-side run exists: the first retrieve is due right away."""
    new = state.next_version()
    new.phase = "polling"
    new.interval = state.request.poll_interval
    new.next_poll_at = now
    return new


def poll_due(state: RunState, at: float) -> float:
    """A poll time, never later than the deadline (so the deadline is noticed on time)."""
    return at if state.deadline_at is None else min(at, state.deadline_at)


def timed_out(state: RunState, now: float) -> bool:
    return state.deadline_at is not None and now >= state.deadline_at


def deadline_error(state: RunState) -> str:
    seconds = state.request.deadline_seconds or 0.0
    return f"timed out: the run did not finish within the deadline of {seconds:g} s"


def apply_snapshot(state: RunState, snap: RunSnapshot, now: float, max_interval: float) -> RunState:
    """Record one poll's outcome; the new phase is polling, tools or done."""
    new = state.next_version()
    new.polls += 1
    new.last_status = snap.status
    new.api_errors = 0
    if snap.status in IN_PROGRESS:
        new.next_poll_at = poll_due(state, now + state.interval)
        new.interval = min(state.interval * POLL_BACKOFF, max(max_interval, state.interval))
        return new
    if snap.usage is not None:
        new.usage = new.usage.plus(snap.usage)
    if snap.status == "requires_action":
        if not snap.tool_calls:
            return _fail(new, "the run requires an action other than function calls")
        return _start_tool_round(new, list(snap.tool_calls))
    if snap.status == "completed":
        if not snap.text:  # never fall back to anything else (e.g. the user's own message)
            return _fail(new, "the run completed without an assistant message")
        new.phase = "done"
        new.outcome = "succeeded"
        new.response = snap.text
        return new
    if snap.status in FAILED:
        reason = f"run {snap.status}"
        return _fail(new, f"{reason}: {snap.error}" if snap.error else reason)
    return _fail(new, f"unexpected run status {snap.status!r}")


def budget_spent(state: RunState) -> bool:
    return state.function_calls >= state.request.max_function_calls


def _start_tool_round(new: RunState, calls: list[ToolCall]) -> RunState:
    """Calls beyond ``max_function_calls`` get an error output without running; a run
    that asks again after a fully refused round is stopped."""
    budget = new.request.max_function_calls
    remaining = max(budget - new.function_calls, 0)
    if remaining == 0:
        new.refused_rounds += 1
        if new.refused_rounds > 1:
            return _fail(
                new,
                f"the run kept calling tools after its budget of {budget} function calls "
                "was spent",
            )
    new.pending_calls = calls
    new.refused = {c.id: budget_refusal(c, budget, "run") for c in calls[remaining:]}
    new.tool_rounds += 1
    new.awaiting = calls_awaiting(new.runnable_calls(), new.approval_tools)
    new.phase = "approval" if new.awaiting else "tools"  # submitted only after decisions
    return new


def apply_decisions(
    state: RunState, decisions: Mapping[str, Approval], early: Mapping[str, ToolOutput]
) -> RunState:
    """Every awaited call is decided: declined calls and early outputs are settled, the
    approved calls run next (phase ``tools``). Raises ValueError if one is missing."""
    new = state.next_version()
    new.settled = settle(state.runnable_calls(), state.awaiting, decisions, early)
    new.awaiting = []
    new.phase = "tools"
    return new


def ordered_outputs(state: RunState, outputs: Sequence[ToolOutput]) -> list[ToolOutput]:
    """Every pending call's output in call order (refused calls get their refusal).

    Raises ValueError when a runnable call has no output.
    """
    by_id = {o.tool_call_id: o for o in outputs}
    missing = [c.id for c in state.runnable_calls() if c.id not in by_id]
    if missing:
        raise ValueError(f"tool outputs missing for calls {missing}")
    known = {**state.refused, **state.settled}
    return [by_id.get(c.id) or known[c.id] for c in state.pending_calls]


def apply_submitted(
    state: RunState, ordered: Sequence[ToolOutput], now: float, response_id: str | None
) -> RunState:
    """The outputs went to the server: record them; polling starts again from
    ``poll_interval``. A Responses follow-up has a new ``response_id``."""
    new = state.next_version()
    new.sources.extend(ordered)
    new.function_calls += len(state.runnable_calls()) + len(state.settled)
    new.pending_calls = []
    new.refused = {}
    new.settled = {}
    new.phase = "polling"
    new.interval = state.request.poll_interval
    new.next_poll_at = poll_due(state, now + state.request.poll_interval)
    new.last_status = "submitted"
    if response_id is not None:
        new.response_id = response_id
    return new


def retry_later(state: RunState, now: float, countdown: float) -> RunState:
    """A transient API error while polling: try again after ``countdown``."""
    new = state.next_version()
    new.api_errors += 1
    new.next_poll_at = poll_due(state, now + countdown)
    return new


def failed(state: RunState, error: str) -> RunState:
    """The job ends as failed with ``error``."""
    return _fail(state.next_version(), error)


def _fail(new: RunState, error: str) -> RunState:
    new.phase = "done"
    new.outcome = "failed"
    new.error = error
    new.pending_calls = []
    new.refused = {}
    new.awaiting = []
    new.settled = {}
    return new
