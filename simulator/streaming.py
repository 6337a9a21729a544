"""Streamed chat completions: ``stream=true`` answers as ``chat.completion.chunk`` SSE.

Any completion the simulator would return (demo policy or scripted reply) can be
streamed: a first chunk with the role, the text in pieces, each tool call as a first
delta with its id and name followed by its arguments in pieces (keyed by ``index``), a
chunk with the finish reason, the usage chunk when ``stream_options.include_usage`` is
set, then ``data: [DONE]``. The server writes it with chunked transfer encoding.

Test control, ``POST /_sim/stream`` (``GET`` reads it), for every model or one model::

    {"model": "m" (optional), "chunk_delay_ms": 5, "chunks": 200, "chunk_chars": 4,
     "refuse": false, "malformed_after": null, "drop_after": null}

``chunks`` splits the text into that many pieces (else ``chunk_chars`` characters each,
else one piece per word); ``chunk_delay_ms`` passes between chunks; ``refuse`` answers
``stream=true`` with a 400 as a server without streaming does; ``malformed_after`` /
``drop_after`` send that many chunks, then a chunk that is not JSON / close the
connection. ``POST /_sim/reset`` clears it.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from socket import SHUT_RDWR
from typing import TYPE_CHECKING, Any

from simulator.errors import bad_request
from simulator.routing import Request, Response, Router, json_response

if TYPE_CHECKING:
    from simulator.state import SimState

_WORD_RE = re.compile(r"\s*\S+\s*|\s+")


class DropStream(Exception):
    """Raised by a chunk iterator: close the connection now (an injected fault)."""


@dataclass(frozen=True)
class StreamingResponse(Response):
    """A response whose body is written piece by piece (``chunks``), not at once."""

    chunks: Iterator[bytes] = field(default_factory=lambda: iter(()))


@dataclass(frozen=True)
class StreamConfig:
    chunk_delay_ms: float = 0.0
    chunks: int | None = None
    chunk_chars: int | None = None
    refuse: bool = False
    malformed_after: int | None = None
    drop_after: int | None = None


_FIELDS = set(StreamConfig.__dataclass_fields__)


def parse_config(body: dict[str, Any], base: StreamConfig) -> StreamConfig:
    """``base`` with the fields given in ``body``; a 400 naming a bad field."""
    changes: dict[str, Any] = {}
    for key, value in body.items():
        if key == "model":
            continue
        if key not in _FIELDS:
            raise bad_request(f"unknown stream setting '{key}'", param=key)
        if key == "refuse":
            if not isinstance(value, bool):
                raise bad_request("'refuse' must be a boolean", param=key)
        elif value is None and key == "chunk_delay_ms":
            value = 0.0
        elif value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise bad_request(f"'{key}' must be a non-negative number", param=key)
            if key != "chunk_delay_ms":
                if value != int(value) or (value == 0 and key in ("chunks", "chunk_chars")):
                    raise bad_request(f"'{key}' must be a positive integer", param=key)
                value = int(value)
        changes[key] = value
    return replace(base, **changes)


class StreamSettings:
    """Stream settings for all models and per model (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._default = StreamConfig()
        self._by_model: dict[str, StreamConfig] = {}

    def get(self, model: str) -> StreamConfig:
        with self._lock:
            return self._by_model.get(model, self._default)

    def update(self, body: dict[str, Any]) -> StreamConfig:
        model = body.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            raise bad_request("'model' must be a non-empty string", param="model")
        with self._lock:
            base = self._by_model.get(model, self._default) if model else self._default
            config = parse_config(body, base)
            if model:
                self._by_model[model] = config
            else:
                self._default = config
            return config

    def clear(self) -> None:
        with self._lock:
            self._default = StreamConfig()
            self._by_model.clear()


def split_text(text: str, config: StreamConfig) -> list[str]:
    """The pieces ``text`` is streamed in (their concatenation is ``text``)."""
    if not text:
        return []
    if config.chunks:
        size = max(1, -(-len(text) // config.chunks))
    elif config.chunk_chars:
        size = config.chunk_chars
    else:
        return _WORD_RE.findall(text)
    return [text[i:i + size] for i in range(0, len(text), size)]


def chunk_objects(
    completion: dict[str, Any], config: StreamConfig, include_usage: bool
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects that stream ``completion``."""
    choice = completion["choices"][0]
    message = choice["message"]
    head = {"id": completion["id"], "object": "chat.completion.chunk",
            "created": completion["created"], "model": completion["model"],
            "system_fingerprint": None}
    if include_usage:
        head["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                     "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    out.extend(chunk({"content": piece}) for piece in split_text(message["content"] or "",
                                                                 config))
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        out.append(chunk({"tool_calls": [{
            "index": index, "id": call["id"], "type": "function",
            "function": {"name": function["name"], "arguments": ""}}]}))
        out.extend(
            chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            for piece in split_text(function["arguments"], config)
        )
    out.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        out.append({**head, "choices": [], "usage": completion["usage"]})
    return out


def _events(objects: list[dict[str, Any]], config: StreamConfig) -> Iterator[bytes]:
    delay = config.chunk_delay_ms / 1000.0
    for sent, obj in enumerate(objects):
        if config.drop_after is not None and sent >= config.drop_after:
            raise DropStream()
        if config.malformed_after is not None and sent >= config.malformed_after:
            yield b'data: {"id": "chatcmpl-broken", "choices": [{\n\n'
            return
        if sent and delay > 0:
            time.sleep(delay)
        yield b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def stream_response(
    state: SimState, completion: dict[str, Any], body: dict[str, Any]
) -> Response:
    """The streamed form of ``completion`` for the request ``body`` (stream=true)."""
    config = state.streaming.get(str(completion["model"]))
    if config.refuse:
        raise bad_request("Streaming is not supported for this model; send stream=false.",
                          param="stream", code="unsupported_value")
    options = body.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    objects = chunk_objects(completion, config, include_usage)
    return StreamingResponse(status=200, body=b"", content_type="text/event-stream",
                             chunks=_events(objects, config))


def validate_stream_options(body: dict[str, Any]) -> bool:
    """Whether the request streams; a 400 like OpenAI's for bad ``stream`` fields."""
    stream = body.get("stream")
    if stream not in (None, True, False):
        raise bad_request("Invalid type for 'stream': expected a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise bad_request("The 'stream_options' parameter is only allowed when 'stream' "
                              "is enabled.", param="stream_options")
        if not isinstance(options, dict):
            raise bad_request("Invalid type for 'stream_options': expected an object.",
                              param="stream_options")
    return bool(stream)


def write_stream(handler: BaseHTTPRequestHandler, response: StreamingResponse,
                 head_lines: list[str]) -> None:
    """Write the head, then each chunk as an HTTP/1.1 chunk, flushed at once."""
    wfile = handler.wfile
    head = "\r\n".join([*head_lines, "Transfer-Encoding: chunked", "Cache-Control: no-cache"])
    try:
        wfile.write((head + "\r\n\r\n").encode("latin-1"))
        wfile.flush()
        for piece in response.chunks:
            wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            wfile.flush()
        wfile.write(b"0\r\n\r\n")
        wfile.flush()
    except DropStream:
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(SHUT_RDWR)
    except (BrokenPipeError, ConnectionResetError):  # the client went away mid-stream
        handler.close_connection = True


def register(router: Router, state: SimState) -> None:
    """Add ``/_sim/stream`` (no auth)."""

    def show(request: Request) -> Response:
        config = state.streaming.get(request.query_one("model") or "")
        return json_response(config.__dict__)

    def update(request: Request) -> Response:
        return json_response(state.streaming.update(request.json_object()).__dict__)

    router.add("GET", "/_sim/stream", show, auth=False)
    router.add("POST", "/_sim/stream", update, auth=False)
