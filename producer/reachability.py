"""Fail fast when Redis is not there at all, instead of waiting out a "restart".

Producer Redis calls retry for ``AGENT_REDIS_RETRY_SECONDS`` (producer/redis_retry.py) so
that an established producer survives a Redis restart. A command whose very first
connect is refused is a different case: nothing is running at that address (a wrong or
missing ``REDIS_URL``), and waiting half a minute only hides that. One ping with short
timeouts and no retries tells the two apart.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "FIRST_CONNECT_TIMEOUT", "RedisUnavailable", "masked_url", "ping_now", "require_redis",
]

FIRST_CONNECT_TIMEOUT = 3.0  # seconds: loopback answers in microseconds, a LAN in ms


class RedisUnavailable(ConnectionError):
    """Redis did not answer at ``url`` (shown with its password masked)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = masked_url(url)
        self.reason = reason
        super().__init__(
            f"cannot reach Redis at {self.url} ({reason}); start Redis there, or set "
            "REDIS_URL (or --redis-url) to where it runs, e.g. "
            "export REDIS_URL=redis://127.0.0.1:6379/0"
        )


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def ping_now(store: redis.Redis, timeout: float = FIRST_CONNECT_TIMEOUT) -> None:
    """PING with ``store``'s address and credentials but without its patience.

    Raises the redis-py error (ConnectionError, TimeoutError, AuthenticationError, ...)
    at once instead of retrying it.
    """
    pool = store.connection_pool
    settings = {**pool.connection_kwargs, "socket_connect_timeout": timeout,
                "socket_timeout": timeout, "retry": Retry(NoBackoff(), 0)}
    probe = redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=pool.connection_class, **settings))
    try:
        probe.ping()
    finally:
        probe.close()
        probe.connection_pool.disconnect()


def require_redis(store: redis.Redis, url: str, timeout: float = FIRST_CONNECT_TIMEOUT) -> None:
    """:func:`ping_now`, turning a failure into :class:`RedisUnavailable` naming ``url``."""
    try:
        ping_now(store, timeout)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise RedisUnavailable(url, _reason(exc)) from None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text if len(text) <= 160 else text[:157] + "..."
