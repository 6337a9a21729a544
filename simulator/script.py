"""Scripted reply queues, keyed by model name (thread-safe).

A test appends replies for a model it made up (``POST /_sim/script``); each chat request
for that model pops the next one. Reply forms (any may add ``"delay_ms"``)::

    {"content": "text"}
    {"tool_calls": [{"name": "calculator", "arguments": "{\"expression\": \"1+2\"}",
                     "id": "optional"}]}
    {"error": {"status": 500, "message": "boom", "type": "server_error"}}

``content`` and ``tool_calls`` may be combined; ``finish_reason`` may override the
default (``"tool_calls"`` when there are tool calls, else ``"stop"``). Tool-call
``arguments`` given as a string are sent verbatim (malformed JSON included); an object
is JSON-encoded.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_REPLY_KEYS = {"content", "tool_calls", "error", "delay_ms", "finish_reason"}
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
class ScriptedReply:
    content: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    error: ScriptedError | None = None
    delay_ms: float = 0.0
    finish_reason: str | None = None


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


def parse_reply(raw: Any, where: str = "reply") -> ScriptedReply:
    """Validate one scripted reply; :class:`ScriptError` says what is wrong."""
    _check_object(raw, where, _REPLY_KEYS)
    delay = raw.get("delay_ms", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise ScriptError(f"{where}.delay_ms must be a non-negative number")
    if "error" in raw:
        if "content" in raw or "tool_calls" in raw:
            raise ScriptError(f"{where}: 'error' cannot be combined with content or tool_calls")
        return ScriptedReply(error=_parse_error(raw["error"], f"{where}.error"), delay_ms=delay)
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
