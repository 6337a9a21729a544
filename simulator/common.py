"""Helpers shared by the object endpoints (files, assistants, threads, runs, responses):
ids, OpenAI-style 404s, field checks and cursor pagination."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from simulator.errors import ApiError, bad_request
from simulator.routing import Request

T = TypeVar("T")
MAX_METADATA_KEYS = 16


def new_id(prefix: str) -> str:
    """A fresh id such as ``run_3f2a...`` (``prefix`` includes the separator)."""
    return prefix + secrets.token_hex(12)


def not_found(kind: str, ident: str) -> ApiError:
    """OpenAI's 404 for an unknown object id."""
    return ApiError(404, f"No {kind} found with id '{ident}'.")


def body_object(request: Request) -> dict[str, Any]:
    """The JSON object body; an empty body counts as ``{}``."""
    if not request.body.strip():
        return {}
    return request.json_object()


def invalid_type(param: str, expected: str) -> ApiError:
    return bad_request(
        f"Invalid type for '{param}': expected {expected}.", param=param, code="invalid_type"
    )


def optional_str(body: dict[str, Any], key: str, param: str | None = None) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_type(param or key, "a string")
    return value


def required_str(body: dict[str, Any], key: str, param: str | None = None) -> str:
    value = optional_str(body, key, param)
    if not value:
        name = param or key
        raise bad_request(f"Missing required parameter: '{name}'.", param=name)
    return value


def optional_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_type(key, "a boolean")
    return value


def check_metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    """``metadata``: at most 16 string keys (<= 64 chars) with string values (<= 512)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid_type(param, "an object with string values")
    if len(value) > MAX_METADATA_KEYS:
        raise bad_request(
            f"Invalid '{param}': too many properties. Expected an object with at most "
            f"{MAX_METADATA_KEYS} properties, but got {len(value)} instead.",
            param=param,
        )
    for key, item in value.items():
        if len(key) > 64 or len(item) > 512:
            raise bad_request(
                f"Invalid '{param}': keys are at most 64 and values at most 512 characters.",
                param=param,
            )
    return dict(value)


def _limit(request: Request, default: int) -> int:
    raw = request.query_one("limit")
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise invalid_type("limit", "an integer") from None
    if not 1 <= limit <= 100:
        raise bad_request(
            f"Invalid 'limit': integer below minimum value or above maximum value. Expected "
            f"a value between 1 and 100, but got {limit} instead.",
            param="limit",
        )
    return limit


def page(
    items: Sequence[T],
    request: Request,
    ident: Callable[[T], str],
    render: Callable[[T], dict[str, Any]],
    *,
    default_order: str = "desc",
    default_limit: int = 20,
) -> dict[str, Any]:
    """A cursor page of ``items`` (given oldest first) as OpenAI lists answer.

    Query: ``order`` (``asc``/``desc``), ``limit`` (1-100, default ``default_limit``), ``after`` and
    ``before`` (ids of items in the list; the page starts after / ends before them in the
    requested order).
    """
    order = request.query_one("order") or default_order
    if order not in ("asc", "desc"):
        raise bad_request(
            f"Invalid value for 'order': expected 'asc' or 'desc', got {order!r}.",
            param="order",
            code="invalid_value",
        )
    ordered = list(items) if order == "asc" else list(reversed(items))
    ids = [ident(item) for item in ordered]
    start, end = 0, len(ordered)
    after = request.query_one("after")
    if after:
        if after not in ids:
            raise bad_request(f"Invalid 'after': no object with id '{after}'.", param="after")
        start = ids.index(after) + 1
    before = request.query_one("before")
    if before:
        if before not in ids:
            raise bad_request(f"Invalid 'before': no object with id '{before}'.", param="before")
        end = ids.index(before)
    limit = _limit(request, default_limit)
    window = ordered[start:end]
    if before and not after:  # the page nearest to the ``before`` cursor
        chosen = window[-limit:]
        has_more = len(window) > limit
    else:
        chosen = window[:limit]
        has_more = len(window) > limit
    data = [render(item) for item in chosen]
    return {
        "object": "list",
        "data": data,
        "first_id": ident(chosen[0]) if chosen else None,
        "last_id": ident(chosen[-1]) if chosen else None,
        "has_more": has_more,
    }
