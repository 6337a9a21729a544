"""Running a registered Lua script inside a pipeline without an extra round trip.

redis-py's ``Script(..., client=pipe)`` makes ``execute()`` ask ``SCRIPT EXISTS`` for
every script queued, in a round trip of its own, before it sends the pipeline: a submit
paid two round trips for its one pipeline. Here the script is queued by its sha alone;
when Redis answers NOSCRIPT (it restarted without persistence, or was flushed), that
one call runs again through the Script object, which loads it. The commands queued
beside it have run by then, so they must be safe to have run before the script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
from redis.commands.core import AsyncScript, Script
from redis.exceptions import NoScriptError

ScriptArgs = Sequence[str | int | float]


@dataclass(frozen=True)
class QueuedScript:
    """A script call queued in a pipeline, and where its reply will be."""

    script: Script | AsyncScript
    index: int
    keys: Sequence[str]
    args: ScriptArgs


def queue_script(
    pipe: redis.client.Pipeline | redis.asyncio.client.Pipeline,
    script: Script | AsyncScript, script_keys: Sequence[str], args: ScriptArgs,
) -> QueuedScript:
    """Queue an EVALSHA of ``script`` (no SCRIPT EXISTS at execute)."""
    queued = QueuedScript(script, len(pipe), script_keys, args)
    pipe.evalsha(script.sha, len(script_keys), *script_keys, *args)
    return queued


def _raise_errors(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def execute(pipe: redis.client.Pipeline, queued: Sequence[QueuedScript]) -> list[Any]:
    """The pipeline's replies; a script call answered NOSCRIPT runs again by itself."""
    replies = pipe.execute(raise_on_error=False)
    for call in queued:
        if isinstance(replies[call.index], NoScriptError):
            replies[call.index] = call.script(keys=call.keys, args=call.args)
    return _raise_errors(replies)


async def execute_async(
    pipe: redis.asyncio.client.Pipeline, queued: Sequence[QueuedScript]
) -> list[Any]:
    """:func:`execute` for ``redis.asyncio``."""
    replies = await pipe.execute(raise_on_error=False)
    for call in queued:
        if isinstance(replies[call.index], NoScriptError):
            replies[call.index] = await call.script(keys=call.keys, args=call.args)
    return _raise_errors(replies)
