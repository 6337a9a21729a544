"""Pure logic of human approval: which calls wait for a person, and what decisions mean.

Used by chat turns (worker/turn.py) and assistant runs (worker/assistant/logic.py) alike.
Nothing here knows Celery or Redis. A model reply whose runnable calls include one that
needs approval puts its turn (or run) in phase ``approval``: the calls that need none
run at once, the others wait for decisions. Once every call is decided, declined calls
and the early outputs are "settled" and the approved calls run as tool tasks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from producer.contracts import Approval, ToolCall, ToolOutput
from worker.tool_outputs import error_output


def tools_needing_approval(
    flagged: Iterable[str], requested: Sequence[str], allowed: Collection[str]
) -> list[str]:
    """Tools registered with ``requires_approval=True`` plus the request's own list,
    limited to the tools the request may call (others are "not found" anyway)."""
    names = dict.fromkeys([*flagged, *requested])
    return [name for name in names if name in allowed]


def calls_awaiting(runnable: Sequence[ToolCall], approval_tools: Collection[str]) -> list[str]:
    """Ids of the runnable calls that need a decision, in call order."""
    return [call.id for call in runnable if call.name in approval_tools]


def early_calls(runnable: Sequence[ToolCall], awaiting: Collection[str]) -> list[ToolCall]:
    """The calls of an approval round that need no decision: they run at once."""
    return [call for call in runnable if call.id not in awaiting]


def declined_output(call: ToolCall, reason: str | None) -> ToolOutput:
    """What the model reads for a declined call."""
    return error_output(
        call, f"Tool call {call.name} declined by the approver: {reason or 'no reason given'}"
    )


def settle(
    runnable: Sequence[ToolCall],
    awaiting: Collection[str],
    decisions: Mapping[str, Approval],
    early: Mapping[str, ToolOutput],
) -> dict[str, ToolOutput]:
    """Outputs known before the approved calls run: declined calls and early calls.

    Raises ValueError when an awaited call is undecided or an early call has no output.
    """
    settled: dict[str, ToolOutput] = {}
    for call in runnable:
        if call.id in awaiting:
            decision = decisions.get(call.id)
            if decision is None or not decision.decided:
                raise ValueError(f"tool call {call.id} is not decided yet")
            if not decision.approved:
                settled[call.id] = declined_output(call, decision.reason)
        elif call.id in early:
            settled[call.id] = early[call.id]
        else:
            raise ValueError(f"tool call {call.id} has no output yet")
    return settled


def new_approvals(
    job_id: str,
    pending: Sequence[ToolCall],
    awaiting: Collection[str],
    now: float,
    timeout_seconds: float | None,
) -> list[Approval]:
    """The stored entries of one approval round (positions: places in the reply)."""
    timeout_at = now + timeout_seconds if timeout_seconds is not None else None
    return [
        Approval(job_id=job_id, call_id=call.id, tool_name=call.name, arguments=call.arguments,
                 position=position, requested_at=now, timeout_at=timeout_at)
        for position, call in enumerate(pending)
        if call.id in awaiting
    ]


def timeout_reason(approval: Approval) -> str:
    """The reason recorded for a call nobody decided in time."""
    waited = (approval.timeout_at or approval.requested_at) - approval.requested_at
    return f"no decision within the approval timeout of {waited:g} s"
