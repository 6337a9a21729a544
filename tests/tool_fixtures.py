"""Test-only tools, loaded by workers with ``AGENT_TOOL_MODULES=tests.tool_fixtures``.

Importing this module registers the tools in the default registry.
"""

from __future__ import annotations

import os
import time

import redis

from worker.tools import tool


@tool
def sleep_for(seconds: float) -> str:
    """Sleep for a number of seconds, then say so (for time-out and concurrency tests).

    Args:
        seconds: How long to sleep.
    """
    time.sleep(seconds)
    return f"slept {seconds}"


@tool
def fail_always(reason: str) -> str:
    """Always fail with RuntimeError(reason).

    Args:
        reason: The error message to raise.
    """
    raise RuntimeError(reason)


@tool(return_direct=True)
def lookup_order(order_id: int) -> str:
    """Look up the shipping status of an order; the answer goes straight to the user.

    Args:
        order_id: The order number.
    """
    return f"Order {order_id}: shipped"


@tool(idempotent=False)
def record_call(key: str, seconds: float = 0.0) -> str:
    """Record that a side effect happened (a non-idempotent tool), then wait a while.

    Each run adds one to the Redis counter ``record_call_key(key)`` (a side channel the
    tests read to count executions), then sleeps ``seconds`` (a window to kill it in).

    Args:
        key: What to record.
        seconds: How long to take after recording.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        with redis.Redis.from_url(url) as client:
            client.incr(record_call_key(key))
            client.expire(record_call_key(key), 3600)
    time.sleep(seconds)
    return f"recorded {key}"


def record_call_key(key: str) -> str:
    """The Redis counter of ``record_call`` executions for ``key``."""
    return f"test:record_call:{key}"


@tool
def echo(text: str) -> str:
    """Return the text unchanged.

    Args:
        text: The text to echo.
    """
    return text


@tool(requires_approval=True, idempotent=False)
def send_payment(to: str, amount: int) -> str:
    """Send money (a sensitive tool: every call waits for a person's approval).

    Counts its runs in the Redis counter ``record_call_key("pay:" + to)``.

    Args:
        to: Who gets paid.
        amount: How much.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        with redis.Redis.from_url(url) as client:
            client.incr(record_call_key(f"pay:{to}"))
            client.expire(record_call_key(f"pay:{to}"), 3600)
    return f"paid {amount} to {to}"
