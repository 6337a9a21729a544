"""A redis-py retry policy that waits out a Redis restart, bounded in time.

redis-py 8's default retries a command whose connection broke, but a refused connect
(Redis down) raises ``ConnectionRefusedError``, which its retry does not cover, so the
first command after a restart fails within milliseconds. This policy also retries
refused connects and gives up only ``seconds`` after the first failure of a call,
however many attempts that took.

Retrying a command whose reply was lost may run it twice: the project's writes are
idempotent (NX markers, versioned compare-and-set, scripts that check before they add).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

T = TypeVar("T")

# What a restart looks like to a client: refused or reset connections, a closed
# socket, "loading the dataset" (BusyLoadingError is a ConnectionError), timeouts.
RETRIED = (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError, OSError)


def retry_seconds() -> float:
    """``AGENT_REDIS_RETRY_SECONDS`` (default 30): how long a call waits for Redis."""
    return float(os.environ.get("AGENT_REDIS_RETRY_SECONDS", "30"))


class RetryFor(Retry):
    """Retry on connection errors with backoff (50 ms doubling to 1 s) for ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(ExponentialBackoff(cap=1.0, base=0.05), retries=-1,
                         supported_errors=RETRIED)
        self.seconds = seconds

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, RetryFor) and other.seconds == self.seconds

    __hash__ = Retry.__hash__

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        give_up_at: float | None = None
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                now = time.monotonic()
                give_up_at = give_up_at if give_up_at is not None else now + self.seconds
                if now >= give_up_at:
                    raise
                time.sleep(min(self._backoff.compute(failures), give_up_at - now))
