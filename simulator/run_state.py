"""An Assistants API run: its record, its lazy state machine and its JSON body.

Phases: ``working`` (reported ``queued`` then ``in_progress``), ``requires_action``,
``cancelling``, and the terminal ``completed``, ``failed``, ``cancelled``, ``expired``,
``incomplete``. :func:`advance` moves a run along by the clock; nothing runs in the
background. Pure data and logic: the caller (the store) holds the lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from simulator.chat import OutToolCall
from simulator.lifecycle import Outcome, Step, Stepping, assistant_call_message, tool_message

TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
CANCEL_DELAY_S = 0.05  # how long a run stays "cancelling" (at most the run duration)


@dataclass
class Run(Stepping):
    terminal: ClassVar[frozenset[str]] = TERMINAL

    id: str
    thread_id: str
    assistant_id: str
    model: str
    instructions: str
    tools: list[dict[str, Any]]
    tool_choice: Any
    parallel_tool_calls: bool
    metadata: dict[str, str]
    created_at: float
    expires_after_s: float
    extra: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, ... echoed
    phase: str = "working"
    step: Step | None = None
    exchanges: list[dict[str, Any]] = field(default_factory=list)  # this run's tool rounds
    pending: tuple[OutToolCall, ...] = ()
    action_since: float | None = None
    cancel_due: float | None = None
    ended_at: float | None = None
    last_error: dict[str, str] | None = None
    incomplete_details: dict[str, str] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_started_at: float | None = None

    def start_step(self, step: Step) -> None:
        self.phase = "working"
        self.step = step
        if self.first_started_at is None:
            self.first_started_at = step.queued_until


def _end(run: Run, phase: str, at: float) -> None:
    run.phase = phase
    run.ended_at = at
    run.pending = ()
    run.step = None


def _apply(run: Run, outcome: Outcome, at: float) -> str | None:
    """Apply a due step's outcome; returns the final answer to append to the thread."""
    run.prompt_tokens += outcome.prompt_tokens
    run.completion_tokens += outcome.completion_tokens
    if outcome.fault is not None:
        if outcome.fault == "failed":
            run.last_error = {
                "code": outcome.error_code or "server_error",
                "message": outcome.error_message or "simulated failure",
            }
        elif outcome.fault == "incomplete":
            run.incomplete_details = {
                "reason": outcome.incomplete_reason or "max_completion_tokens"
            }
        _end(run, outcome.fault, at)
        return None
    if outcome.tool_calls:
        run.phase = "requires_action"
        run.step = None
        run.pending = outcome.tool_calls
        run.action_since = at
        run.exchanges.append(assistant_call_message(outcome.tool_calls))
        return None
    _end(run, "completed", at)
    return outcome.content or ""


def advance(run: Run, now: float) -> str | None:
    """Bring ``run`` up to ``now``; returns a final answer that just became due."""
    if run.phase == "working" and run.step is not None and run.step.is_due(now):
        assert run.step.due is not None
        answer = _apply(run, run.step.outcome, run.step.due)
        if answer is not None:
            return answer
    if run.phase == "requires_action" and run.action_since is not None:
        deadline = run.action_since + run.expires_after_s
        if now >= deadline:
            _end(run, "expired", deadline)
    if run.phase == "cancelling" and run.cancel_due is not None and now >= run.cancel_due:
        _end(run, "cancelled", run.cancel_due)
    return None


def cancel(run: Run, now: float, duration_s: float) -> None:
    """Start cancelling an active run (``cancelling``, then ``cancelled``)."""
    run.phase = "cancelling"
    run.step = None
    run.pending = ()
    run.cancel_due = now + min(duration_s, CANCEL_DELAY_S)


def record_outputs(run: Run, outputs: dict[str, str]) -> None:
    """Add the tool outputs (in call order) to the run's exchanges."""
    for call in run.pending:
        run.exchanges.append(tool_message(call.id, outputs[call.id]))
    run.pending = ()
    run.action_since = None


def _epoch(value: float | None) -> int | None:
    return None if value is None else int(value)


def render(run: Run, now: float) -> dict[str, Any]:
    """The ``thread.run`` object."""
    status = run.status(now)
    required_action = None
    if status == "requires_action":
        required_action = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in run.pending
                ]
            },
        }
    expires_at = None
    if run.active:
        base = run.action_since if run.action_since is not None else run.created_at
        expires_at = int(base + run.expires_after_s)
    started = run.first_started_at
    if started is not None and started > (run.ended_at if run.ended_at is not None else now):
        started = None  # still queued, or ended before it started
    usage = None
    if not run.active:
        usage = {
            "prompt_tokens": run.prompt_tokens,
            "completion_tokens": run.completion_tokens,
            "total_tokens": run.prompt_tokens + run.completion_tokens,
        }
    return {
        "id": run.id,
        "object": "thread.run",
        "created_at": int(run.created_at),
        "assistant_id": run.assistant_id,
        "thread_id": run.thread_id,
        "status": status,
        "started_at": _epoch(started),
        "expires_at": expires_at,
        "cancelled_at": _epoch(run.ended_at) if status == "cancelled" else None,
        "failed_at": _epoch(run.ended_at) if status == "failed" else None,
        "completed_at": _epoch(run.ended_at) if status == "completed" else None,
        "required_action": required_action,
        "last_error": run.last_error,
        "model": run.model,
        "instructions": run.instructions,
        "tools": run.tools,
        "tool_choice": run.tool_choice,
        "parallel_tool_calls": run.parallel_tool_calls,
        "metadata": run.metadata,
        "incomplete_details": run.incomplete_details,
        "usage": usage,
        "temperature": run.extra.get("temperature", 1.0),
        "top_p": run.extra.get("top_p", 1.0),
        "max_prompt_tokens": run.extra.get("max_prompt_tokens"),
        "max_completion_tokens": run.extra.get("max_completion_tokens"),
        "truncation_strategy": run.extra.get("truncation_strategy")
        or {"type": "auto", "last_messages": None},
        "response_format": run.extra.get("response_format", "auto"),
    }
