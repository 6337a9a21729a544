"""At-most-once claims on calls of non-idempotent tools, with a liveness lease.

A call is claimed before it runs: a marker kept for the job's lifetime, so no later copy
of the call runs it again. While it runs, the claim also holds a short lease that the
running process renews. A copy that finds the claim without an output tells the two
cases apart by that lease: live, the first copy is still running (wait for its output);
lapsed, it died mid-call (its outcome is unknown).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from producer import keys
from producer.delivery import lease_renew_seconds, visibility_timeout_seconds

logger = logging.getLogger("celery_agents")

# KEYS: claim, lease. ARGV: claim ttl (s), lease ttl (ms). Claiming sets both at once, so
# no copy can see the claim without the lease of the run that holds it.
_CLAIM = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  return 'claimed'
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 'running'
end
return 'lapsed'
"""


class Claim(enum.Enum):
    CLAIMED = "claimed"  # ours: run the call
    RUNNING = "running"  # an earlier copy is running it now: wait for its output
    LAPSED = "lapsed"  # an earlier copy claimed it and died: the outcome is unknown


class ToolClaims:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM)

    def claim(self, job_id: str, tool_call_id: str) -> Claim:
        answer = self._claim(
            keys=[keys.tool_started(job_id, tool_call_id), keys.tool_running(job_id, tool_call_id)],
            args=[keys.job_ttl_seconds(), visibility_timeout_seconds() * 1000],
        )
        return Claim(answer.decode() if isinstance(answer, bytes) else answer)

    @contextmanager
    def held(self, job_id: str, tool_call_id: str) -> Iterator[None]:
        """Renew the lease of a claimed call while the block runs, and end it after."""
        lease = keys.tool_running(job_id, tool_call_id)
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(lease, stop), name="tool-claim-lease", daemon=True
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            # On failure it lapses on its own; copies find the output first anyway.
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(lease)

    def _renew(self, lease: str, stop: threading.Event) -> None:
        ttl_ms = visibility_timeout_seconds() * 1000
        while not stop.wait(lease_renew_seconds()):
            try:
                self.redis.set(lease, "1", px=ttl_ms)  # SET: back after a Redis restart
            except redis.RedisError as exc:  # the next renewal tries again
                logger.warning("could not renew the lease of %s: %s", lease, exc)
