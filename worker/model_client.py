"""Calling the chat completions API with the official ``openai`` client.

The client reads ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` from the worker's
environment; the key never appears in task messages, results or logs. The client's own
retries are off: a retry is a rescheduled task (see tasks), never a sleeping worker.
"""

from __future__ import annotations

import functools
import importlib
import random
import ssl
from collections.abc import Callable
from typing import Any

import httpx2
import openai

from producer.contracts import ChatMessage, ToolCall, Usage
from worker.turn import ModelCall, ModelReply

RETRYABLE_STATUS = {408, 409, 429}


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP library's transport errors (the openai client vendors ``httpx2``), which a
    stream raises unwrapped when the connection breaks mid-body."""
    for name in ("httpx2", "httpx"):
        try:
            return (importlib.import_module(name).TransportError,)
        except (ImportError, AttributeError):
            continue
    return ()


_TRANSPORT_ERRORS = _transport_errors()


class ModelError(Exception):
    """A model call failed. ``retry_after`` is set when trying again may help."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        return self.retry_after is not None


class _SinkFailed(Exception):
    """Carries an error of the text callback past the stream's own error handling."""


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every model client of the process, built as each client would
    build its own (CA bundle, ``SSL_CERT_FILE``/``SSL_CERT_DIR``). Each of its own cost
    0.8 MB and a load of the CA bundle; shared, a client costs about 6 KB."""
    return httpx2.create_ssl_context()


def make_client(timeout: float, keepalive: int) -> openai.OpenAI:
    """The official client; its pool keeps ``keepalive`` connections alive (and opens at
    most a few more), for the threads that share it."""
    limits = httpx2.Limits(max_connections=keepalive * 4, max_keepalive_connections=keepalive)
    http_client = openai.DefaultHttpxClient(limits=limits, verify=tls_context())
    return openai.OpenAI(max_retries=0, timeout=timeout, http_client=http_client)


def request_params(call: ModelCall) -> dict[str, Any]:
    """The chat completions parameters of a call (streamed or not)."""
    params: dict[str, Any] = {
        "model": call.model,
        "messages": [wire_message(m) for m in call.messages],
    }
    if call.tools:
        params["tools"] = call.tools
        params["tool_choice"] = call.tool_choice
    params.update(call.options)  # the request's model parameters, only those it set
    return params


def complete(client: openai.OpenAI, call: ModelCall) -> ModelReply:
    """One chat completion; raises ModelError with a readable message on failure."""
    params = request_params(call)
    try:
        # The client's documented raw request (auth, base URL, timeout and status errors
        # as for any call), read straight into a ModelReply: its typed path walked every
        # message through the parameter TypedDicts and built a typed ChatCompletion,
        # about a third of the call's CPU on a busy worker.
        response = client.post("/chat/completions", cast_to=httpx2.Response, body=params)
        document = response.json()
    except openai.APIStatusError as exc:
        raise classify_status_error(exc) from None
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        raise ModelError(f"model API unreachable: {exc}", retry_after=0.0) from None
    except ValueError as exc:  # the body is not JSON
        raise ModelError(f"model API returned a malformed response: {exc}") from None
    return reply_from_completion(document)


def reply_from_completion(document: Any) -> ModelReply:
    """A chat.completion object (JSON) as a ModelReply; a readable error if malformed."""
    try:
        choices = document["choices"]
        if not choices:
            raise ModelError("model API returned no choices")
        message = choices[0]["message"]
        calls = [
            ToolCall(id=c["id"], name=c["function"]["name"],
                     arguments=c["function"].get("arguments") or "")
            for c in message.get("tool_calls") or []
            if c.get("type", "function") == "function"
        ]
        usage = Usage()
        if document.get("usage"):
            counts = document["usage"]
            usage = Usage(
                prompt_tokens=counts.get("prompt_tokens") or 0,
                completion_tokens=counts.get("completion_tokens") or 0,
                total_tokens=counts.get("total_tokens") or 0,
            )
        return ModelReply(content=message.get("content"), tool_calls=calls, usage=usage)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise ModelError(
            f"model API returned a malformed completion: {type(exc).__name__}: {exc}"
        ) from None


def complete_stream(
    client: openai.OpenAI, call: ModelCall, on_text: Callable[[str], object]
) -> ModelReply:
    """One streamed chat completion (usage included); ``on_text`` gets each text delta.

    Tool-call deltas are assembled into whole calls, so the reply is the one
    :func:`complete` would return. A stream broken off is transient (the step runs
    again); a malformed chunk or an error event fails with a readable message.
    """
    from worker.stream_assembly import (
        MalformedChunk,
        StreamAssembler,
        StreamErrorEvent,
        sse_chunks,
    )

    params = {**request_params(call), "stream": True, "stream_options": {"include_usage": True}}
    assembler = StreamAssembler()
    try:
        # The raw event stream, parsed by sse_chunks: the typed chunk objects of the
        # client's own iterator cost about four times the CPU per chunk.
        with client.chat.completions.with_streaming_response.create(**params) as response:
            for chunk in sse_chunks(response.iter_lines()):
                text = assembler.add(chunk)
                if text:
                    try:
                        on_text(text)
                    except Exception as exc:  # publishing failed (Redis): not the model's
                        raise _SinkFailed() from exc
        return assembler.reply()
    except _SinkFailed as failed:
        assert failed.__cause__ is not None
        raise failed.__cause__ from None
    except openai.APIStatusError as exc:
        raise classify_status_error(exc) from None
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        raise ModelError(f"model API unreachable: {exc}", retry_after=0.0) from None
    except StreamErrorEvent as exc:  # an error object inside the stream
        raise ModelError(f"model API error in the stream: {exc}") from None
    except _TRANSPORT_ERRORS as exc:  # connection lost mid-stream: try the step again
        raise ModelError(f"model stream broken off: {type(exc).__name__}: {exc}",
                         retry_after=0.0) from None
    except (MalformedChunk, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise ModelError(f"model API sent a malformed stream chunk: {exc}") from None


def wire_message(message: ChatMessage) -> dict[str, Any]:
    """A stored message in the chat completions wire format (nested tool calls)."""
    wire = message.model_dump(exclude_none=True, exclude={"tool_calls"})
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    return wire


def classify_status_error(exc: openai.APIStatusError) -> ModelError:
    status = exc.status_code
    detail = _server_message(exc)
    text = f"model API error {status}: {detail}"
    if status in RETRYABLE_STATUS or status >= 500:
        return ModelError(text, retry_after=_retry_after(exc) or 0.0)
    return ModelError(text)


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message


def _retry_after(exc: openai.APIStatusError) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``retry-after``)."""
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(float(value) * scale, 0.0)
            except ValueError:
                continue
    return None


def backoff_seconds(attempt: int, server_hint: float, cap: float = 30.0) -> float:
    """The countdown before retry number ``attempt`` (0-based).

    The server's hint wins when it gave one; otherwise exponential backoff with jitter
    in the upper half, so a retry never fires at once.
    """
    if server_hint > 0:
        return min(server_hint, cap)
    base = min(cap, 0.5 * 2.0**attempt)
    return base / 2 + random.uniform(0, base / 2)
