"""Test-control endpoints under ``/_sim`` (no auth): scripts, recorded requests, config,
operation counters.

``GET /_sim/requests?model=M[&kind=K]``: recorded bodies, oldest first; ``kind`` is one of
``chat.completions``, ``runs.create``, ``runs.submit_tool_outputs``, ``responses.create``
(all kinds without it). ``GET /_sim/stats``: counters per operation (``run_created``,
``run_retrieved``, ``response_retrieved``, ...); ``POST /_sim/reset`` zeroes them.
``POST /_sim/config`` takes ``latency_ms``, ``run_duration_ms``, ``expires_after_s``.
"""

from __future__ import annotations

from typing import Any

from simulator.errors import bad_request
from simulator.routing import Request, Response, Router, json_response
from simulator.script import ScriptError, parse_reply
from simulator.state import SimState


def _optional_model(request: Request) -> str | None:
    return request.query_one("model") or None


def _required_model(request: Request) -> str:
    model = _optional_model(request)
    if model is None:
        raise bad_request("the 'model' query parameter is required", param="model")
    return model


def _config(state: SimState) -> dict[str, Any]:
    return {
        "latency_ms": state.latency_ms,
        "run_duration_ms": state.run_settings.duration_ms,
        "expires_after_s": state.run_settings.expires_after_s,
    }


def _number(body: dict[str, Any], key: str, *, positive: bool = False) -> float | None:
    if key not in body:
        return None
    value = body[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < 0
        or (positive and value == 0)
    ):
        kind = "a positive" if positive else "a non-negative"
        raise bad_request(f"'{key}' must be {kind} number", param=key)
    return float(value)


def register(router: Router, state: SimState) -> None:
    """Add the ``/_sim/*`` routes."""

    def health(_: Request) -> Response:
        return json_response({"status": "ok"})

    def add_script(request: Request) -> Response:
        body = request.json_object()
        model = body.get("model")
        replies = body.get("replies")
        if not isinstance(model, str) or not model:
            raise bad_request("'model' must be a non-empty string", param="model")
        if not isinstance(replies, list):
            raise bad_request("'replies' must be a list", param="replies")
        try:
            parsed = [parse_reply(r, f"replies[{i}]") for i, r in enumerate(replies)]
        except ScriptError as error:
            raise bad_request(str(error), param="replies") from None
        queued = state.scripts.append(model, parsed)
        return json_response({"model": model, "queued": queued})

    def get_script(request: Request) -> Response:
        model = _required_model(request)
        return json_response(
            {
                "model": model,
                "scripted": state.scripts.is_scripted(model),
                "remaining": state.scripts.remaining(model),
            }
        )

    def clear_script(request: Request) -> Response:
        model = _optional_model(request)
        dropped = state.scripts.clear(model)
        return json_response({"model": model, "cleared": dropped})

    def get_requests(request: Request) -> Response:
        model = _required_model(request)
        kind = request.query_one("kind") or None
        return json_response({"requests": state.recorder.get(model, kind)})

    def clear_requests(request: Request) -> Response:
        model = _optional_model(request)
        state.recorder.clear(model)
        return json_response({"model": model, "cleared": True})

    def get_config(_: Request) -> Response:
        return json_response(_config(state))

    def set_config(request: Request) -> Response:
        body = request.json_object()
        unknown = set(body) - {"latency_ms", "run_duration_ms", "expires_after_s"}
        if unknown:
            raise bad_request(f"unknown config keys: {sorted(unknown)}")
        latency = _number(body, "latency_ms")
        duration = _number(body, "run_duration_ms")
        expires = _number(body, "expires_after_s", positive=True)
        if latency is not None:
            state.latency_ms = latency
        state.run_settings.update(duration_ms=duration, expires_after_s=expires)
        return json_response(_config(state))

    def stats(_: Request) -> Response:
        return json_response({"stats": state.stats.snapshot()})

    def reset(_: Request) -> Response:
        state.reset()
        return json_response({"status": "ok", **_config(state)})

    router.add("GET", "/_sim/health", health, auth=False)
    router.add("POST", "/_sim/script", add_script, auth=False)
    router.add("GET", "/_sim/script", get_script, auth=False)
    router.add("DELETE", "/_sim/script", clear_script, auth=False)
    router.add("GET", "/_sim/requests", get_requests, auth=False)
    router.add("DELETE", "/_sim/requests", clear_requests, auth=False)
    router.add("GET", "/_sim/config", get_config, auth=False)
    router.add("POST", "/_sim/config", set_config, auth=False)
    router.add("POST", "/_sim/reset", reset, auth=False)
    router.add("GET", "/_sim/stats", stats, auth=False)
