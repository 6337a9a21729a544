"""What a server-side run (Assistants run, background response) does next, and when.

A run works in *steps*: each step is one model decision, planned when the step starts
(at creation, and again after tool outputs arrive) and applied lazily by whoever reads
the run after it is due. No background threads: reading a run compares a timestamp.

The decision comes from the model's script (:class:`~simulator.script.ScriptStore`) when
the model is scripted, else from the deterministic demo policy, fed chat-shaped messages.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from simulator.chat import OutToolCall, approx_tokens, new_call_id, planned_to_out
from simulator.demo_policy import decide
from simulator.script import ScriptedReply, ScriptExhausted
from simulator.text_extract import content_text

if TYPE_CHECKING:
    from simulator.state import SimState

DEFAULT_RUN_DURATION_MS = 300.0
DEFAULT_EXPIRES_AFTER_S = 600.0
MAX_QUEUED_S = 0.05  # a step is "queued" for a quarter of its duration, at most this


class RunSettings:
    """``run_duration_ms`` (how long each model decision takes server-side) and
    ``expires_after_s`` (how long a run may wait in ``requires_action``). Thread-safe."""

    def __init__(
        self,
        duration_ms: float = DEFAULT_RUN_DURATION_MS,
        expires_after_s: float = DEFAULT_EXPIRES_AFTER_S,
    ) -> None:
        self._lock = threading.Lock()
        self._startup = (0.0, 0.0)
        self.configure_startup(duration_ms, expires_after_s)

    def configure_startup(self, duration_ms: float, expires_after_s: float) -> None:
        """Set the values now and the ones :meth:`reset` restores."""
        _check(duration_ms, expires_after_s)
        with self._lock:
            self._startup = (float(duration_ms), float(expires_after_s))
            self._duration_ms, self._expires_after_s = self._startup

    def update(
        self, duration_ms: float | None = None, expires_after_s: float | None = None
    ) -> None:
        with self._lock:
            new_duration = self._duration_ms if duration_ms is None else float(duration_ms)
            new_expiry = self._expires_after_s if expires_after_s is None else expires_after_s
            _check(new_duration, new_expiry)
            self._duration_ms, self._expires_after_s = new_duration, float(new_expiry)

    @property
    def duration_ms(self) -> float:
        with self._lock:
            return self._duration_ms

    @property
    def expires_after_s(self) -> float:
        with self._lock:
            return self._expires_after_s

    def reset(self) -> None:
        with self._lock:
            self._duration_ms, self._expires_after_s = self._startup


def _check(duration_ms: float, expires_after_s: float) -> None:
    if duration_ms < 0:
        raise ValueError("run_duration_ms must be >= 0")
    if expires_after_s <= 0:
        raise ValueError("expires_after_s must be > 0")


@dataclass(frozen=True)
class Outcome:
    """A planned model decision. ``fault`` is a terminal status forced by a script:
    ``failed`` (with ``error_code``/``error_message``), ``incomplete``, ``expired`` or
    ``cancelled``. ``never_finish`` keeps the step in progress forever."""

    content: str | None = None
    tool_calls: tuple[OutToolCall, ...] = ()
    fault: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    incomplete_reason: str | None = None
    never_finish: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Step:
    """One model decision in flight: ``queued`` until ``queued_until``, then
    ``in_progress`` until ``due`` (``None``: never), then ``outcome`` applies."""

    queued_until: float
    due: float | None
    outcome: Outcome

    def is_due(self, now: float) -> bool:
        return self.due is not None and now >= self.due


class Stepping:
    """What a run and a background response share: a ``phase`` ("working" while a step
    is in flight, else the terminal status) and the ``step`` being worked on."""

    terminal: ClassVar[frozenset[str]]
    phase: str
    step: Step | None

    @property
    def active(self) -> bool:
        return self.phase not in self.terminal

    def status(self, now: float) -> str:
        """The status a client sees (advance the record to ``now`` first)."""
        if self.phase == "working":
            assert self.step is not None
            return "queued" if now < self.step.queued_until else "in_progress"
        return self.phase


def _from_script(reply: ScriptedReply) -> Outcome:
    if reply.never_finish:
        return Outcome(never_finish=True)
    if reply.run_status is not None:
        last_error = reply.last_error
        return Outcome(
            fault=reply.run_status,
            error_code=last_error.code if last_error else None,
            error_message=last_error.message if last_error else None,
            incomplete_reason=reply.incomplete_reason,
        )
    if reply.error is not None:
        error = reply.error
        code = "rate_limit_exceeded" if error.status == 429 else (error.code or "server_error")
        return Outcome(fault="failed", error_code=code, error_message=error.message)
    calls = tuple(OutToolCall(c.id or new_call_id(), c.name, c.arguments) for c in reply.tool_calls)
    return Outcome(content=reply.content, tool_calls=calls)


def _prompt_text(messages: Sequence[Mapping[str, Any]], tools: Sequence[Any]) -> str:
    parts: list[str] = []
    for message in messages:
        parts.append(str(message.get("role", "")))
        parts.append(content_text(message.get("content")))
        for call in message.get("tool_calls") or ():
            parts.append(str(call["function"]["name"]) + str(call["function"]["arguments"]))
    if tools:
        parts.append(json.dumps(list(tools), sort_keys=True, ensure_ascii=False))
    return "\n".join(parts)


def plan_step(
    state: SimState,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    tool_choice: str | Mapping[str, Any] | None,
    *,
    parallel_tool_calls: bool,
    now: float,
) -> Step:
    """Decide the next step of a run for ``model`` given chat-shaped ``messages`` and
    chat-shaped function ``tools`` (``{"type": "function", "function": {...}}``)."""
    duration_ms = state.run_settings.duration_ms
    try:
        reply = state.scripts.pop(model)
    except ScriptExhausted as exhausted:
        outcome = Outcome(fault="failed", error_code="server_error", error_message=str(exhausted))
    else:
        if reply is not None:
            outcome = _from_script(reply)
            if reply.has_delay:
                duration_ms = reply.delay_ms
        else:
            decision = decide(
                messages, list(tools), tool_choice, parallel_tool_calls=parallel_tool_calls
            )
            calls = planned_to_out([(c.name, c.arguments) for c in decision.tool_calls])
            outcome = Outcome(content=decision.content, tool_calls=tuple(calls))
    completion = (outcome.content or "") + "".join(c.name + c.arguments for c in outcome.tool_calls)
    outcome = Outcome(
        content=outcome.content,
        tool_calls=outcome.tool_calls,
        fault=outcome.fault,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        incomplete_reason=outcome.incomplete_reason,
        never_finish=outcome.never_finish,
        prompt_tokens=approx_tokens(_prompt_text(messages, tools)),
        completion_tokens=approx_tokens(completion) if completion else 0,
    )
    duration_s = duration_ms / 1000.0
    return Step(
        queued_until=now + min(duration_s / 4, MAX_QUEUED_S),
        due=None if outcome.never_finish else now + duration_s,
        outcome=outcome,
    )


def assistant_call_message(calls: Sequence[OutToolCall]) -> dict[str, Any]:
    """The chat-shaped assistant message that made ``calls``."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ],
    }


def tool_message(call_id: str, output: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": output}
