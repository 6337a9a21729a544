"""Helpers for the tests of the simulator's server-side-run endpoints (not a test module)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from simulator import SimulatorServer

T = TypeVar("T")
API_KEY = "sk-runs-test"
RUN_MS = 20
WEATHER_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
CALC_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {"expression": {"type": "string"}},
    "required": ["expression"],
}


def model_name() -> str:
    return f"m-{uuid.uuid4().hex[:12]}"


def call(
    server: SimulatorServer,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.root_url + path, data=data, method=method, headers=headers or {}
    )
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def control(server: SimulatorServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call an endpoint with this module's API key; returns (status, JSON body)."""
    return call(server, method, path, body, {"Authorization": f"Bearer {API_KEY}"})


def script(server: SimulatorServer, model: str, replies: list[dict[str, Any]]) -> None:
    status, body = control(server, "POST", "/_sim/script", {"model": model, "replies": replies})
    assert status == 200, body


def stats(server: SimulatorServer) -> dict[str, int]:
    status, body = control(server, "GET", "/_sim/stats")
    assert status == 200
    return dict(body["stats"])


def wait_until(fetch: Callable[[], T], done: Callable[[T], bool], timeout: float = 5.0) -> T:
    """Poll ``fetch`` every 5 ms until ``done`` holds for its result."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.005)
