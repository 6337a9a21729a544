"""A requests-per-minute limit per model, shared by every worker through Redis.

The limit is a GCRA schedule (generic cell rate algorithm) kept in one Redis key per
model: the time at which the next request may go. Asking for a slot reserves the next
free one atomically (a Lua script, on Redis's own clock, so workers on hosts with skewed
clocks agree) and answers how long to wait for it. A model step that must wait is
rescheduled with that countdown and keeps its reservation in a per-step key, so it waits
once and then goes; no worker sleeps. Slots further ahead than ``max_wait`` are not
reserved (a countdown must stay well below the visibility timeout): the step then asks
again later.

``AGENT_MODEL_RPM`` sets the limit of every model (0, the default: no limit) and
``AGENT_MODEL_RPM_OVERRIDES="gpt-4o=500,gpt-4o-mini=3000"`` per model (``=0``: no limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import redis

from producer import keys

# KEYS[1]: the model's schedule; KEYS[2]: the step's reservation hash.
# ARGV: interval ms, max wait ms, reservation TTL s, early tolerance ms.
# Returns {milliseconds to wait (0: go now), times this step has waited so far}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local waits = tonumber(redis.call('HGET', KEYS[2], 'waits') or '0')
local function wait_for(ms)
  redis.call('HINCRBY', KEYS[2], 'waits', 1)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return {ms, waits + 1}
end
local slot = redis.call('HGET', KEYS[2], 'slot')
if slot then
  slot = tonumber(slot)
  if slot <= now + tonumber(ARGV[4]) then
    redis.call('HDEL', KEYS[2], 'slot')
    return {0, waits}
  end
  return wait_for(slot - now)
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > max_wait then
  return wait_for(math.max(wait - max_wait, interval))
end
redis.call('SET', KEYS[1], tat + interval, 'PX', tat + interval - now + 1000)
if wait == 0 then
  return {0, waits}
end
redis.call('HSET', KEYS[2], 'slot', tat)
return wait_for(wait)
"""

_EARLY_TOLERANCE_MS = 10  # a rescheduled task may run a few ms before its slot


def parse_rpm_overrides(text: str) -> dict[str, int]:
    """``"gpt-4o=500, gpt-4o-mini=3000"`` -> {model: rpm}; ValueError on anything else."""
    overrides: dict[str, int] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        model, sep, value = item.rpartition("=")
        model = model.strip()
        try:
            rpm = int(value.strip())
        except ValueError:
            rpm = -1
        if not sep or not model or rpm < 0:
            raise ValueError(
                f"AGENT_MODEL_RPM_OVERRIDES: {item.strip()!r} is not MODEL=REQUESTS_PER_MINUTE"
            )
        overrides[model] = rpm
    return overrides


@dataclass(frozen=True)
class RateLimits:
    """Requests per minute by model; 0 means no limit."""

    default_rpm: int = 0
    overrides: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.default_rpm < 0:
            raise ValueError(f"AGENT_MODEL_RPM must be >= 0, got {self.default_rpm}")

    def rpm_for(self, model: str) -> int:
        return self.overrides.get(model, self.default_rpm)


class ModelRateLimiter:
    """Hands out request slots per model from a schedule that every worker shares."""

    def __init__(self, client: redis.Redis, limits: RateLimits, max_wait: float = 30.0) -> None:
        self.redis = client
        self.limits = limits
        self.max_wait = max_wait
        self._script = client.register_script(_RESERVE)

    def reserve(self, model: str, holder_key: str) -> tuple[float, int]:
        """Seconds to wait before calling ``model`` (0.0: call now), and the wait count.

        ``holder_key`` keeps a reservation across the caller's reschedules: call again
        with the same key once the wait is over and the answer is 0.0. The count says
        how many waits this key has been told to do (rescheduled attempts that were no
        model call).
        """
        rpm = self.limits.rpm_for(model)
        if rpm <= 0:
            return 0.0, 0
        interval_ms = max(1, round(60_000 / rpm))
        wait_ms, waits = self._script(
            keys=[keys.model_rate(model), holder_key],
            args=[interval_ms, round(self.max_wait * 1000), keys.job_ttl_seconds(),
                  _EARLY_TOLERANCE_MS],
        )
        return int(wait_ms) / 1000.0, int(waits)

    def before_model_call(self, job_id: str, step: int, model: str) -> tuple[float, int]:
        """:meth:`reserve` for one model step of a job (its reservation is per step)."""
        return self.reserve(model, keys.rate_slot(job_id, step))
