"""Scripted reply queues, keyed by model name (thread-safe).

A test appends replies for a model it made up (``POST /_sim/script``); each chat request
for that model pops the next one, and so does each model decision of a server-side run
(Assistants run: at run creation and at each ``submit_tool_outputs``; Responses API: at
each ``POST /v1/responses``). Reply forms (any may add ``"delay_ms"``)::

    {"content": "text"}
    {"tool_calls": [{"name": "calculator", "arguments": "{\"expression\": \"1+2\"}",
                     "id": "optional"}]}
    {"error": {"status": 500, "message": "boom", "type": "server_error"}}

``content`` and ``tool_calls`` may be combined; ``finish_reason`` may override the
default (``"tool_calls"`` when there are tool calls, else ``"stop"``). Tool-call
``arguments`` given as a string are sent verbatim (malformed JSON included); an object
is JSON-encoded.

For chat completions ``delay_ms`` is added to the configured latency. For server-side
runs and background responses it *replaces* the run duration (``run_duration_ms``) for
that decision: the run is ``queued``/``in_progress`` that long, then the reply applies.
There ``content`` is the final answer (run ``completed``, an assistant message appended
to the thread / a ``message`` output item), ``tool_calls`` put a run in
``requires_action`` (a response completes with ``function_call`` output items), and
``error`` fails the run (``last_error`` ``{code, message}``; code ``rate_limit_exceeded``
for status 429, else the error's ``code`` or ``server_error``) / the response (``error``).

Forms only for server-side runs and responses (a chat completion that pops one answers
with empty content)::

    {"run_status": "failed", "last_error": {"code": "server_error", "message": "..."}}
    {"run_status": "incomplete", "incomplete_reason": "max_output_tokens"}
    {"run_status": "expired"}      # a response has no such status: it fails instead
    {"run_status": "cancelled"}    # as if cancelled server-side
    {"never_finish": true}         # stays in_progress until cancelled

``last_error`` is allowed only with ``failed`` (default ``server_error``, "simulated
failure"), ``incomplete_reason`` only with ``incomplete`` (default
``max_completion_tokens`` for runs, ``max_output_tokens`` for responses).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_REPLY_KEYS = {
    "content",
    "tool_calls",
    "error",
    "delay_ms",
    "finish_reason",
    "run_status",
    "last_error",
    "incomplete_reason",
    "never_finish",
}
_RUN_FORM_KEYS = {"run_status", "last_error", "incomplete_reason", "never_finish"}
RUN_STATUSES = ("expired", "cancelled", "incomplete", "failed")
_LAST_ERROR_KEYS = {"code", "message"}
_CALL_KEYS = {"name", "arguments", "id"}
_ERROR_KEYS = {"status", "message", "type", "param", "code"}


class ScriptError(ValueError):
    """A reply in a script is malformed."""


class ScriptExhausted(LookupError):
    """The model is scripted but has no replies left."""

    def __init__(self, model: str) -> None:
        super().__init__(f"simulator script for model {model} is exhausted")
        self.model = model


@dataclass(frozen=True)
class ScriptedToolCall:
    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True)
class ScriptedError:
    status: int
    message: str
    type: str | None = None
    param: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class ScriptedRunError:
    """``last_error`` of a scripted failed run (``error`` of a failed response)."""

    code: str = "server_error"
    message: str = "simulated failure"


@dataclass(frozen=True)
class ScriptedReply:
    content: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    error: ScriptedError | None = None
    delay_ms: float = 0.0
    finish_reason: str | None = None
    has_delay: bool = False  # ``delay_ms`` was given (it then overrides a run's duration)
    run_status: str | None = None  # one of RUN_STATUSES
    last_error: ScriptedRunError | None = None
    incomplete_reason: str | None = None
    never_finish: bool = False


def _optional_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ScriptError(f"{where}.{key} must be a string")
    return value


def _check_object(raw: Any, where: str, allowed: set[str]) -> None:
    """``raw`` must be a JSON object with only ``allowed`` keys."""
    if not isinstance(raw, dict):
        raise ScriptError(f"{where} must be an object")
    unknown = set(raw) - allowed
    if unknown:
        raise ScriptError(f"{where} has unknown keys: {sorted(unknown)}")


def _parse_call(raw: Any, where: str) -> ScriptedToolCall:
    _check_object(raw, where, _CALL_KEYS)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ScriptError(f"{where}.name must be a non-empty string")
    arguments = raw.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return ScriptedToolCall(name=name, arguments=arguments, id=_optional_str(raw, "id", where))


def _parse_error(raw: Any, where: str) -> ScriptedError:
    _check_object(raw, where, _ERROR_KEYS)
    status = raw.get("status", 500)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ScriptError(f"{where}.status must be an integer from 400 to 599")
    message = raw.get("message", "simulated error")
    if not isinstance(message, str):
        raise ScriptError(f"{where}.message must be a string")
    return ScriptedError(
        status=status,
        message=message,
        type=_optional_str(raw, "type", where),
        param=_optional_str(raw, "param", where),
        code=_optional_str(raw, "code", where),
    )


def _parse_last_error(raw: Any, where: str) -> ScriptedRunError:
    if raw is None:
        return ScriptedRunError()
    _check_object(raw, where, _LAST_ERROR_KEYS)
    code = _optional_str(raw, "code", where) or "server_error"
    message = _optional_str(raw, "message", where) or "simulated failure"
    return ScriptedRunError(code=code, message=message)


def _parse_run_form(raw: dict[str, Any], where: str, delay: float) -> ScriptedReply:
    """``run_status`` / ``never_finish`` forms (server-side runs and responses only)."""
    if set(raw) & {"content", "tool_calls", "error", "finish_reason"}:
        raise ScriptError(
            f"{where}: 'run_status'/'never_finish' cannot be combined with content, "
            "tool_calls, error or finish_reason"
        )
    has_delay = "delay_ms" in raw
    if "never_finish" in raw:
        if raw["never_finish"] is not True or set(raw) - {"never_finish", "delay_ms"}:
            raise ScriptError(f"{where}: use {{\"never_finish\": true}} on its own")
        return ScriptedReply(never_finish=True, delay_ms=delay, has_delay=has_delay)
    status = raw.get("run_status")
    if status not in RUN_STATUSES:
        raise ScriptError(f"{where}.run_status must be one of {list(RUN_STATUSES)}")
    if "last_error" in raw and status != "failed":
        raise ScriptError(f"{where}.last_error needs run_status 'failed'")
    if "incomplete_reason" in raw and status != "incomplete":
        raise ScriptError(f"{where}.incomplete_reason needs run_status 'incomplete'")
    return ScriptedReply(
        run_status=status,
        last_error=_parse_last_error(raw.get("last_error"), f"{where}.last_error")
        if status == "failed"
        else None,
        incomplete_reason=_optional_str(raw, "incomplete_reason", where),
        delay_ms=delay,
        has_delay=has_delay,
    )


def parse_reply(raw: Any, where: str = "reply") -> ScriptedReply:
    """Validate one scripted reply; :class:`ScriptError` says what is wrong."""
    _check_object(raw, where, _REPLY_KEYS)
    delay = raw.get("delay_ms", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise ScriptError(f"{where}.delay_ms must be a non-negative number")
    has_delay = "delay_ms" in raw
    if set(raw) & _RUN_FORM_KEYS:
        return _parse_run_form(raw, where, delay)
    if "error" in raw:
        if "content" in raw or "tool_calls" in raw:
            raise ScriptError(f"{where}: 'error' cannot be combined with content or tool_calls")
        return ScriptedReply(
            error=_parse_error(raw["error"], f"{where}.error"), delay_ms=delay, has_delay=has_delay
        )
    if "content" not in raw and "tool_calls" not in raw:
        raise ScriptError(f"{where} needs 'content', 'tool_calls' or 'error'")
    calls_raw = raw.get("tool_calls", [])
    if not isinstance(calls_raw, list):
        raise ScriptError(f"{where}.tool_calls must be a list")
    calls = tuple(_parse_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls_raw))
    return ScriptedReply(
        content=_optional_str(raw, "content", where),
        tool_calls=calls,
        delay_ms=delay,
        finish_reason=_optional_str(raw, "finish_reason", where),
        has_delay=has_delay,
    )


class ScriptStore:
    """Per-model FIFO queues of scripted replies. All methods are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[ScriptedReply]] = {}

    def append(self, model: str, replies: Iterable[ScriptedReply]) -> int:
        """Queue ``replies`` for ``model``; returns how many are now queued."""
        items = list(replies)
        with self._lock:
            queue = self._queues.setdefault(model, deque())
            queue.extend(items)
            return len(queue)

    def pop(self, model: str) -> ScriptedReply | None:
        """The next reply for ``model``; ``None`` if the model is not scripted.

        Raises :class:`ScriptExhausted` when the model is scripted but its queue is empty.
        """
        with self._lock:
            queue = self._queues.get(model)
            if queue is None:
                return None
            if not queue:
                raise ScriptExhausted(model)
            return queue.popleft()

    def is_scripted(self, model: str) -> bool:
        with self._lock:
            return model in self._queues

    def remaining(self, model: str) -> int:
        """How many replies are left for ``model`` (0 when not scripted)."""
        with self._lock:
            queue = self._queues.get(model)
            return len(queue) if queue is not None else 0

    def clear(self, model: str | None = None) -> int:
        """Forget ``model``'s queue (all queues when ``None``); returns replies dropped."""
        with self._lock:
            if model is None:
                dropped = sum(len(q) for q in self._queues.values())
                self._queues.clear()
                return dropped
            queue = self._queues.pop(model, None)
            return len(queue) if queue is not None else 0
