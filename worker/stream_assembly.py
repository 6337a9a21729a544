"""Streamed chat completions folded back into one reply, and when to publish the text.

Pure logic, no I/O: :class:`StreamAssembler` takes ``chat.completion.chunk`` objects
(text deltas, tool-call deltas keyed by ``index``, the usage chunk that
``stream_options={"include_usage": True}`` adds) and builds the same
:class:`~worker.turn.ModelReply` the non-streaming call returns, so the tool fan-out and
the rest of the turn cannot tell the difference. :class:`Coalescer` decides when the
text seen so far is published, so Redis sees tens of writes per answer, not one per token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from producer.contracts import ToolCall, Usage
from worker.turn import ModelReply

COALESCE_SECONDS = 0.05
COALESCE_CHARS = 200
# A long answer publishes less often as it goes: interval and size double every
# SLOWDOWN_EVERY publishes (up to 1 s), so a minute of text stays within a few hundred
# events, well inside the job's event stream (trimmed near EVENTS_MAX_LEN = 1000 entries).
SLOWDOWN_EVERY = 100
MAX_COALESCE_SECONDS = 1.0


class MalformedChunk(ValueError):
    """A chunk that is not a chat.completion.chunk the assembler can fold."""


class StreamErrorEvent(Exception):
    """The server sent an error object inside the stream (``data: {"error": ...}``)."""


def sse_chunks(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a chat completions event stream, up to ``data: [DONE]``.

    Parsed here rather than by the client's typed chunk models: a plain ``json.loads``
    per chunk costs about a quarter of the CPU, and a streamed answer has hundreds.
    """
    data: list[str] = []
    for line in _with_end(lines):
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line or not data:  # comments, event names, ids; or a blank line between events
            continue
        payload, data = "\n".join(data), []
        if payload.startswith("[DONE]"):
            return
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise MalformedChunk(f"not JSON ({exc}): {payload[:80]!r}") from None
        if not isinstance(chunk, dict):
            raise MalformedChunk(f"not a JSON object: {payload[:80]!r}")
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else None
            raise StreamErrorEvent(str(message or error))
        yield chunk


def _with_end(lines: Iterable[str]) -> Iterator[str]:
    yield from lines
    yield ""  # a stream cut off right after its last data line still yields that event


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def _field(obj: Any, name: str) -> Any:
    """An attribute of a parsed chunk, or a key of a plain dict (tests, other clients)."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedChunk(f"{where} is {type(value).__name__}, not a string")
    return value


class StreamAssembler:
    """Folds the chunks of one streamed chat completion into a :class:`ModelReply`."""

    def __init__(self) -> None:
        self._content: list[str] = []
        self._calls: dict[int, _PartialCall] = {}
        self._usage = Usage()
        self._chunks = 0

    def add(self, chunk: Any) -> str:
        """Fold one chunk; returns the text it added (may be empty)."""
        self._chunks += 1
        choices = _field(chunk, "choices")
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise MalformedChunk(f"chunk {self._chunks}: 'choices' is not a list")
        usage = _field(chunk, "usage")
        if usage is not None:
            self._usage = self._read_usage(usage)
        added: list[str] = []
        for choice in choices:
            index = _field(choice, "index")
            if index not in (None, 0):  # n=1 is all a turn asks for
                continue
            delta = _field(choice, "delta")
            if delta is None:
                continue
            text = _text(_field(delta, "content"), f"chunk {self._chunks}: delta.content")
            if text:
                self._content.append(text)
                added.append(text)
            for call in _field(delta, "tool_calls") or []:
                self._add_call_delta(call)
        return "".join(added)

    def _add_call_delta(self, call: Any) -> None:
        where = f"chunk {self._chunks}: tool call delta"
        index = _field(call, "index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise MalformedChunk(f"{where} has no integer 'index'")
        partial = self._calls.setdefault(index, _PartialCall())
        call_id = _text(_field(call, "id"), f"{where} id")
        if call_id:
            partial.id = call_id
        function = _field(call, "function")
        if function is not None:
            name = _text(_field(function, "name"), f"{where} function.name")
            if name:  # sent once, with the first delta of the call
                partial.name = name
            partial.arguments.append(
                _text(_field(function, "arguments"), f"{where} function.arguments")
            )

    def _read_usage(self, usage: Any) -> Usage:
        values = {}
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = _field(usage, name) or 0
            if not isinstance(value, int) or isinstance(value, bool):
                raise MalformedChunk(f"chunk {self._chunks}: usage.{name} is not an integer")
            values[name] = value
        return Usage(**values)

    def reply(self) -> ModelReply:
        """The whole reply; tool calls in index order. Raises MalformedChunk if a call
        never got an id or a name."""
        if self._chunks == 0:
            raise MalformedChunk("the stream ended without any chunk")
        calls = []
        for index in sorted(self._calls):
            partial = self._calls[index]
            if not partial.id or not partial.name:
                raise MalformedChunk(f"tool call {index} ended without an id or a name")
            calls.append(
                ToolCall(id=partial.id, name=partial.name, arguments="".join(partial.arguments))
            )
        content = "".join(self._content) if self._content else None
        return ModelReply(content=content, tool_calls=calls, usage=self._usage)


class Coalescer:
    """Buffers text pieces and says when to publish them.

    The first piece goes out at once (time to first token is what a reader notices);
    after that, text is held until ``interval`` seconds passed since the last publish or
    ``max_chars`` characters are waiting, whichever comes first; both double every
    ``SLOWDOWN_EVERY`` publishes (the interval up to ``MAX_COALESCE_SECONDS``).
    :meth:`flush` hands out what is left at the end of the stream.
    """

    def __init__(
        self, interval: float = COALESCE_SECONDS, max_chars: int = COALESCE_CHARS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.max_chars = max_chars
        self._clock = clock
        self._buffer: list[str] = []
        self._chars = 0
        self._last: float | None = None
        self.published = 0

    def add(self, text: str) -> str | None:
        """Buffer ``text``; returns the text to publish now, or None to wait."""
        if not text:
            return None
        self._buffer.append(text)
        self._chars += len(text)
        now = self._clock()
        factor = 2 ** min(self.published // SLOWDOWN_EVERY, 10)
        interval = min(self.interval * factor, max(self.interval, MAX_COALESCE_SECONDS))
        due = self._last is None or now - self._last >= interval
        if due or self._chars >= self.max_chars * factor:
            self._last = now
            self.published += 1
            return self._take()
        return None

    def flush(self) -> str | None:
        """What is still buffered, or None."""
        return self._take() if self._buffer else None

    def _take(self) -> str:
        text = "".join(self._buffer)
        self._buffer.clear()
        self._chars = 0
        return text
