"""Size limits of the HTTP gateway: a capped request body, and error bodies that never
echo large input back.

FastAPI reads and parses the whole body before validation, so without a cap a 50 MB
message is read, parsed and then copied back, whole, into the 422 that refuses it.
:class:`BodyLimit` answers 413 from the ``Content-Length`` alone, and counts the bytes
of a chunked body as they arrive, before the app sees any of it. :func:`truncated`
shortens the ``input`` values of validation errors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "BodyLimit",
    "install_limits",
    "max_body_bytes",
    "truncated",
    "truncated_errors",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Room for the longest message (AGENT_MAX_MESSAGE_CHARS, 4 bytes a character at worst),
# prefix messages and a few inline images; far below what would hurt the gateway.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_ECHO_CHARS = 200  # of one string in an error body
MAX_ECHO_ITEMS = 20  # of one list or object in an error body
MAX_ECHO_DEPTH = 4
MAX_MESSAGE_CHARS = 1000  # of one error message (some quote the input)


def max_body_bytes() -> int:
    """``AGENT_GATEWAY_MAX_BODY_BYTES`` (default 4 MiB)."""
    return int(os.environ.get("AGENT_GATEWAY_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES)))


class BodyLimit:
    """ASGI middleware: requests whose body is over ``limit`` bytes get a 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(send, f"the request body is {declared} bytes")
            return
        if declared is not None:  # the server holds the client to it (h11 framing)
            await self.app(scope, receive, send)
            return
        # Chunked: read it here, up to the limit, then hand it on. (An exception raised
        # from inside the app's receive would come out as FastAPI's 400 "error parsing
        # the body".) FastAPI would hold the whole body in memory anyway.
        chunks: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break  # a disconnect: let the app see it
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await self._refuse(send, f"the request body is over {self.limit} bytes")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, what: str) -> None:
        body = json.dumps({
            "detail": f"{what}; the limit is {self.limit} bytes (AGENT_GATEWAY_MAX_BODY_BYTES)"
        }).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),  # the rest of the body is not read
        ]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def truncated(value: Any, depth: int = 0) -> Any:
    """``value`` with long strings cut to their start and a note of their length, and
    long lists and objects to their first items: safe to echo in an error body."""
    if isinstance(value, str | bytes):
        text = value if isinstance(value, str) else value.decode("utf-8", "replace")
        if len(text) <= MAX_ECHO_CHARS:
            return text
        return f"{text[:MAX_ECHO_CHARS]}... ({len(text)} characters, truncated)"
    if depth >= MAX_ECHO_DEPTH and isinstance(value, dict | list | tuple):
        return f"({type(value).__name__} of {len(value)} items, not shown)"
    if isinstance(value, dict):
        items = list(value.items())
        shown = {str(k): truncated(v, depth + 1) for k, v in items[:MAX_ECHO_ITEMS]}
        if len(items) > MAX_ECHO_ITEMS:
            shown["..."] = f"{len(items) - MAX_ECHO_ITEMS} more keys, not shown"
        return shown
    if isinstance(value, list | tuple):
        shown_list = [truncated(v, depth + 1) for v in list(value)[:MAX_ECHO_ITEMS]]
        if len(value) > MAX_ECHO_ITEMS:
            shown_list.append(f"... {len(value) - MAX_ECHO_ITEMS} more items, not shown")
        return shown_list
    return value


def truncated_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors (FastAPI's ``exc.errors()``) with their inputs truncated; the
    messages, which may quote the input too, are cut as well."""
    out: list[dict[str, Any]] = []
    for error in errors:
        item = dict(error)
        if "input" in item:
            item["input"] = truncated(item["input"])
        msg = item.get("msg")
        if isinstance(msg, str) and len(msg) > MAX_MESSAGE_CHARS:
            item["msg"] = f"{msg[:MAX_MESSAGE_CHARS]}... (truncated)"
        item.pop("url", None)
        out.append(item)
    return out


def install_limits(app: Any, limit: int | None = None) -> None:
    """Cap the body size of a FastAPI ``app`` and truncate the inputs its 422s echo."""
    from fastapi.encoders import jsonable_encoder
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    async def validation_failed(_request: Any, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(
            status_code=422, content={"detail": jsonable_encoder(truncated_errors(exc.errors()))}
        )

    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_middleware(BodyLimit, limit=limit if limit is not None else max_body_bytes())
