"""The live tool registry in Redis: tools workers announce what they serve, everyone reads it.

Layout (producer/keys.py): per tool a spec hash and a sorted set of its servers scored by
when their lease ends; an index of tool names scored by the last lease end. A server
renews its leases every heartbeat, so a worker that dies without withdrawing drops out
after ``tool_lease_seconds()``. Every write is one Lua script, so two workers announcing
at once cannot interleave half-written entries.

Conflicts: a worker announcing a name with a spec (digest) other than the stored one is
refused while any *other* worker still serves the stored one. The first definition holds
until its last server is gone, so the entry never flips back and forth between two
deployments.

Light on purpose (redis + pydantic): the client, CLI and gateway read it too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import redis
import redis.asyncio as aioredis

from producer import keys
from producer.contracts import TOOL_CHOICE_MODES, ToolEntry, ToolSpec


class UnknownTools(LookupError):
    """A request names tools that no live worker serves."""


_ANNOUNCE = """
local worker, now, lease_end, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local refused = {}
local n = (#KEYS - 1) / 3
for i = 1, n do
  local spec_key, servers_key, refused_key = KEYS[3 * i - 1], KEYS[3 * i], KEYS[3 * i + 1]
  local name, digest, spec = ARGV[3 * i + 2], ARGV[3 * i + 3], ARGV[3 * i + 4]
  local stored = redis.call('HGET', spec_key, 'digest')
  local ok = true
  if stored and stored ~= digest then
    for _, other in ipairs(redis.call('ZRANGEBYSCORE', servers_key, '(' .. now, '+inf')) do
      if other ~= worker then ok = false break end
    end
  end
  if ok then
    redis.call('HSET', spec_key, 'digest', digest, 'spec', spec)
    redis.call('ZADD', servers_key, lease_end, worker)
    redis.call('ZREMRANGEBYSCORE', servers_key, '-inf', now - ttl * 1000)
    redis.call('EXPIRE', spec_key, ttl)
    redis.call('EXPIRE', servers_key, ttl)
    redis.call('ZADD', KEYS[1], 'GT', lease_end, name)
    redis.call('ZREM', refused_key, worker)
  else
    table.insert(refused, name)
    redis.call('ZADD', refused_key, lease_end, worker)
    redis.call('EXPIRE', refused_key, ttl)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl * 1000)
redis.call('EXPIRE', KEYS[1], ttl)
return refused
"""

_WITHDRAW = """
local worker, now = ARGV[1], ARGV[2]
for i = 2, #KEYS do
  local name = ARGV[i + 1]
  redis.call('ZREM', KEYS[i], worker)
  local top = redis.call('ZREVRANGEBYSCORE', KEYS[i], '+inf', '(' .. now,
                         'WITHSCORES', 'LIMIT', 0, 1)
  if top[2] then
    redis.call('ZADD', KEYS[1], top[2], name)
  else
    redis.call('ZREM', KEYS[1], name)
  end
end
return 1
"""

# Returns spec, servers, refused (space-separated), spec, ... for every live tool.
_SNAPSHOT = """
local now = ARGV[1]
local out = {}
for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local servers = redis.call('ZRANGEBYSCORE', ARGV[3] .. name, '(' .. now, '+inf')
  if #servers > 0 then
    local spec = redis.call('HGET', ARGV[2] .. name, 'spec')
    if spec then
      local refused = redis.call('ZRANGEBYSCORE', ARGV[4] .. name, '(' .. now, '+inf')
      table.insert(out, spec)
      table.insert(out, table.concat(servers, ' '))
      table.insert(out, table.concat(refused, ' '))
    end
  end
end
return out
"""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class ToolRegistryStore:
    """Reads and writes the registry; one instance per Redis connection."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._announce = client.register_script(_ANNOUNCE)
        self._withdraw = client.register_script(_WITHDRAW)
        self._snapshot = client.register_script(_SNAPSHOT)

    def announce(
        self, worker: str, specs: Sequence[ToolSpec], now: float | None = None
    ) -> list[str]:
        """Claim (or renew) a lease on each spec for ``worker``; returns the names refused
        because another live worker serves a different spec under that name."""
        if not specs:
            return []
        now = time.time() if now is None else now
        key_list = [keys.tools_index()]
        args: list[str | int] = [
            worker, _ms(now), _ms(now + keys.tool_lease_seconds()), keys.job_ttl_seconds(),
        ]
        for spec in specs:
            key_list += [keys.tool_spec(spec.name), keys.tool_servers(spec.name),
                         keys.tool_refused(spec.name)]
            args += [spec.name, spec.digest(), spec.model_dump_json()]
        refused = self._announce(keys=key_list, args=args)
        return [_text(name) for name in refused]

    def withdraw(self, worker: str, names: Iterable[str], now: float | None = None) -> None:
        """End ``worker``'s leases on ``names`` at once (a clean shutdown)."""
        names = list(names)
        if not names:
            return
        now = time.time() if now is None else now
        self._withdraw(
            keys=[keys.tools_index(), *(keys.tool_servers(n) for n in names)],
            args=[worker, _ms(now), *names],
        )

    def live(self, now: float | None = None) -> dict[str, ToolEntry]:
        """Every tool that at least one worker serves right now, by name."""
        now = time.time() if now is None else now
        raw = self._snapshot(
            keys=[keys.tools_index()],
            args=[_ms(now), keys.tool_spec(""), keys.tool_servers(""), keys.tool_refused("")],
        )
        entries: dict[str, ToolEntry] = {}
        for spec, servers, refused in zip(raw[::3], raw[1::3], raw[2::3], strict=True):
            entry = ToolEntry.model_validate_json(spec)
            entry.servers = sorted(_text(servers).split())
            entry.refused = sorted(_text(refused).split())
            entries[entry.name] = entry
        return dict(sorted(entries.items()))

    def stored_specs(self, names: Iterable[str]) -> dict[str, ToolSpec]:
        """The last announced spec of each name that has one (served now or not)."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hget(keys.tool_spec(name), "spec")
        found: dict[str, ToolSpec] = {}
        for name, raw in zip(names, pipe.execute(), strict=True):
            if raw is not None:
                found[name] = ToolSpec.model_validate_json(raw)
        return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def unknown_tools_message(unknown: Sequence[str], served: Iterable[str]) -> str:
    """The one wording of a refusal, for client, CLI, gateway and workers alike."""
    listed = ", ".join(sorted(served)) or "none"
    return (
        f"unknown tools: {', '.join(unknown)} (no live worker serves them); "
        f"known tools: {listed}"
    )


def check_tools(
    served: Mapping[str, object], tools: Sequence[str] | None, forced: str | None
) -> list[str]:
    """The tools a request may use (None: every served tool), each served right now.

    Raises UnknownTools naming the unknown names and listing the served ones.
    """
    names = list(tools) if tools is not None else sorted(served)
    unknown = [name for name in names if name not in served]
    if forced and forced not in names and forced not in unknown:
        unknown.append(forced)
    if unknown:
        raise UnknownTools(unknown_tools_message(unknown, served))
    return names


def _named(request: Mapping[str, object]) -> tuple[list[str] | None, str | None] | None:
    """The request's named tools and forced tool; None when it names none."""
    tools = request.get("tools")
    choice = request.get("tool_choice")
    forced = choice if isinstance(choice, str) and choice not in TOOL_CHOICE_MODES else None
    if tools is None and forced is None:
        return None
    return ([str(name) for name in tools] if isinstance(tools, list) else None), forced


def check_submission(client: redis.Redis, request: Mapping[str, object]) -> None:
    """Refuse a request (a dumped ChatRequest) naming tools no live worker serves, before
    it is enqueued (UnknownTools). A request naming no tool needs no look-up."""
    named = _named(request)
    if named is not None:
        check_tools(ToolRegistryStore(client).live(), *named)


class SubmissionCheck:
    """``check_submission`` for a long-lived client: the served tool names are kept for
    ``max_age`` seconds, and a name missing from them is looked up again before it counts
    as unknown, so a tool announced a moment ago is found. (The look-up and parsing
    every spec was a sixth of a submit's CPU.) Thread-safe."""

    def __init__(self, client: redis.Redis, max_age: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = ToolRegistryStore(client)
        self.max_age = max_age
        self.clock = clock
        self._names: frozenset[str] = frozenset()
        self._at = float("-inf")
        self._lock = threading.Lock()

    def _served(self, refresh: bool) -> frozenset[str]:
        with self._lock:
            if refresh or self.clock() - self._at > self.max_age:
                self._names = frozenset(self.store.live())
                self._at = self.clock()
            return self._names

    def __call__(self, request: Mapping[str, object]) -> None:
        named = _named(request)
        if named is None:
            return
        tools, forced = named
        wanted = [*(tools or []), *([forced] if forced else [])]
        served = self._served(refresh=False)
        if tools is None or any(name not in served for name in wanted):
            served = self._served(refresh=True)
        check_tools(dict.fromkeys(served), tools, forced)


async def check_submission_async(client: aioredis.Redis, request: Mapping[str, object]) -> None:
    """``check_submission`` for the asyncio client (one EVAL of the snapshot script)."""
    named = _named(request)
    if named is None:
        return
    raw = await client.eval(
        _SNAPSHOT, 1, keys.tools_index(), _ms(time.time()), keys.tool_spec(""),
        keys.tool_servers(""), keys.tool_refused(""),
    )
    check_tools({ToolSpec.model_validate_json(spec).name: spec for spec in raw[::3]}, *named)
