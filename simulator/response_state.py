"""A Responses API response: its record, lazy state machine and JSON body.

Phases: ``working`` (reported ``queued`` then ``in_progress``) and the terminal
``completed``, ``failed``, ``cancelled``, ``incomplete``. Tool calls end a response
``completed`` with ``function_call`` output items; the caller continues with
``previous_response_id`` and ``function_call_output`` items. Pure: callers hold the lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from simulator.common import new_id
from simulator.lifecycle import Outcome, Step, Stepping, assistant_call_message

TERMINAL = frozenset({"completed", "failed", "cancelled", "incomplete"})


@dataclass
class ResponseRecord(Stepping):
    terminal: ClassVar[frozenset[str]] = TERMINAL

    id: str
    created_at: float
    model: str
    request: dict[str, Any]  # echoed fields: instructions, tools, tool_choice, ...
    background: bool
    store: bool
    history: list[dict[str, Any]]  # chat-shaped: the chain so far plus this input
    input_items: list[dict[str, Any]]
    phase: str = "working"
    step: Step | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None
    incomplete_details: dict[str, str] | None = None
    usage: dict[str, Any] | None = None
    ended_at: float | None = None

    def pending_call_ids(self) -> list[str]:
        """``call_id`` of every ``function_call`` output item."""
        return [item["call_id"] for item in self.output if item["type"] == "function_call"]

    def conversation(self) -> list[dict[str, Any]]:
        """Chat-shaped history including this response's output (for a follow-up)."""
        messages = list(self.history)
        texts = [
            part["text"]
            for item in self.output
            if item["type"] == "message"
            for part in item["content"]
        ]
        calls = [item for item in self.output if item["type"] == "function_call"]
        if texts and not calls:
            messages.append({"role": "assistant", "content": "".join(texts)})
        if calls:
            message = assistant_call_message([])
            message["content"] = "".join(texts) or None
            message["tool_calls"] = [
                {
                    "id": c["call_id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for c in calls
            ]
            messages.append(message)
        return messages


def _usage(outcome: Outcome) -> dict[str, Any]:
    return {
        "input_tokens": outcome.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": outcome.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
    }


def output_items(outcome: Outcome) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if outcome.content:
        items.append(
            {
                "type": "message",
                "id": new_id("msg_"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": outcome.content, "annotations": []}],
            }
        )
    for call in outcome.tool_calls:
        items.append(
            {
                "type": "function_call",
                "id": new_id("fc_"),
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
        )
    if not items:
        items.append(
            {
                "type": "message",
                "id": new_id("msg_"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "", "annotations": []}],
            }
        )
    return items


def _apply(record: ResponseRecord, outcome: Outcome, at: float) -> None:
    record.step = None
    record.ended_at = at
    record.usage = _usage(outcome)
    fault = outcome.fault
    if fault == "failed":
        record.phase = "failed"
        record.error = {
            "code": outcome.error_code or "server_error",
            "message": outcome.error_message or "simulated failure",
        }
    elif fault == "expired":
        record.phase = "failed"
        record.error = {
            "code": "server_error",
            "message": "The response expired before it completed.",
        }
    elif fault == "incomplete":
        record.phase = "incomplete"
        record.incomplete_details = {"reason": outcome.incomplete_reason or "max_output_tokens"}
    elif fault == "cancelled":
        record.phase = "cancelled"
    else:
        record.phase = "completed"
        record.output = output_items(outcome)


def advance(record: ResponseRecord, now: float) -> None:
    """Bring ``record`` up to ``now``."""
    if record.phase == "working" and record.step is not None and record.step.is_due(now):
        assert record.step.due is not None
        _apply(record, record.step.outcome, record.step.due)


def cancel(record: ResponseRecord, now: float) -> None:
    record.phase = "cancelled"
    record.step = None
    record.ended_at = now


def render(record: ResponseRecord, now: float) -> dict[str, Any]:
    """The ``response`` object."""
    status = record.status(now)
    request = record.request
    return {
        "id": record.id,
        "object": "response",
        "created_at": int(record.created_at),
        "status": status,
        "background": record.background,
        "completed_at": int(record.ended_at) if status == "completed" and record.ended_at else None,
        "error": record.error,
        "incomplete_details": record.incomplete_details,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "metadata": request.get("metadata") or {},
        "model": record.model,
        "output": record.output,
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": request.get("reasoning") or {"effort": None, "summary": None},
        "store": record.store,
        "temperature": request.get("temperature", 1.0),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation") or "disabled",
        "usage": record.usage,
        "user": request.get("user"),
    }
