"""Request/response values and the route table.

Handlers are plain functions ``Request -> Response``; they raise :class:`ApiError` for
failures. Feature modules register their routes on a :class:`Router`, so adding an
endpoint never touches the HTTP plumbing in :mod:`simulator.server`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import ApiError, bad_request

_PARAM_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Request:
    """One HTTP request as a handler sees it. ``headers`` keys are lower-case."""

    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    params: Mapping[str, str] = field(default_factory=dict)

    def query_one(self, name: str) -> str | None:
        """The last value of query parameter ``name``, or ``None``."""
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        """The body parsed as JSON; a 400 in OpenAI's shape when it is not JSON."""
        if not self.body.strip():
            raise bad_request("We could not parse the JSON body of your request: it is empty.")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError):
            raise bad_request(
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly.)"
            ) from None

    def json_object(self) -> dict[str, Any]:
        """The body parsed as a JSON object (400 otherwise)."""
        data = self.json()
        if not isinstance(data, dict):
            raise bad_request("The request body must be a JSON object.")
        return data


@dataclass(frozen=True)
class Response:
    """What a handler returns: status, body bytes and extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON response (compact, UTF-8)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status=status, body=body)


def error_response(error: ApiError) -> Response:
    """The OpenAI-shaped response for ``error``."""
    return json_response(error.body(), status=error.status)


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """One row of the route table. ``auth`` routes need a bearer token."""

    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    auth: bool


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern must start with '/': {pattern!r}")
    parts: list[str] = []
    last = 0
    for match in _PARAM_RE.finditer(pattern):
        parts.append(re.escape(pattern[last : match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        last = match.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts) + r"\Z")


class Router:
    """A table of ``(method, path pattern) -> handler``.

    Patterns are literal paths with ``{name}`` placeholders matching one path segment,
    e.g. ``/v1/threads/{thread_id}/runs``; the values arrive in ``Request.params``.
    Routes are matched in the order they were added.
    """

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, auth: bool = True) -> None:
        """Register ``handler`` for ``method`` requests whose path matches ``pattern``."""
        method = method.upper()
        for route in self._routes:
            if route.method == method and route.pattern == pattern:
                raise ValueError(f"route already registered: {method} {pattern}")
        self._routes.append(Route(method, pattern, _compile(pattern), handler, auth))

    def route(
        self, method: str, pattern: str, *, auth: bool = True
    ) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add`."""

        def register(handler: Handler) -> Handler:
            self.add(method, pattern, handler, auth=auth)
            return handler

        return register

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for ``method`` and ``path`` and its path parameters, or ``None``."""
        method = method.upper()
        for route in self._routes:
            if route.method != method:
                continue
            found = route.regex.match(path)
            if found:
                return route, found.groupdict()
        return None

    @property
    def routes(self) -> tuple[Route, ...]:
        """The registered routes, in match order."""
        return tuple(self._routes)
