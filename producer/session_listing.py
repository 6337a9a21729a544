"""A session's recent jobs, and its stored messages one page at a time.

Every submitted job is recorded in the session's ``keys.session_recent_jobs`` sorted set
(scored by submission time, trimmed to the newest ``AGENT_SESSION_JOBS_KEPT``). Listing
reads the records of the newest ones; a record that expired is left out.

History pages address messages by position (0 is the oldest): ``before=P`` ends a page
just before position P, ``limit=N`` keeps its newest N messages. A page says where it
starts, so the next older page is ``before=<that start>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol, cast

import redis
import redis.asyncio

from producer import keys
from producer.contracts import ChatMessage, JobResult

DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 1000


def jobs_kept() -> int:
    """How many recent jobs a session lists (``AGENT_SESSION_JOBS_KEPT``, default 100)."""
    return int(os.environ.get("AGENT_SESSION_JOBS_KEPT", "100"))


def record_job(
    pipe: redis.Redis | redis.client.Pipeline, session_id: str, job_id: str, created_at: float
) -> None:
    """Queue the commands that list a new job in its session (run in the caller's pipeline)."""
    key = keys.session_recent_jobs(session_id)
    pipe.zadd(key, {job_id: created_at})
    pipe.zremrangebyrank(key, 0, -(jobs_kept() + 1))
    ttl = keys.session_ttl_seconds()
    if ttl > 0:
        pipe.expire(key, max(ttl, keys.job_ttl_seconds()))


def recent_jobs(
    client: redis.Redis, session_id: str, limit: int = DEFAULT_LIST_LIMIT
) -> list[JobResult]:
    """The session's newest jobs first, at most ``limit``."""
    ids = cast(list[str], client.zrevrange(keys.session_recent_jobs(session_id), 0, limit - 1))
    if not ids:
        return []
    raw = cast(list[str | None], client.mget([keys.job(job_id) for job_id in ids]))
    return [JobResult.model_validate_json(item) for item in raw if item]


@dataclass(frozen=True)
class HistoryPage:
    start: int  # position of the first message of the page
    total: int  # messages stored in the session
    messages: list[ChatMessage]


def page_bounds(total: int, limit: int | None, before: int | None) -> tuple[int, int]:
    """``(start, end)``: the positions of a page, end exclusive."""
    end = total if before is None else max(0, min(before, total))
    start = 0 if limit is None else max(0, end - limit)
    return start, end


def history_page(
    client: redis.Redis, session_id: str, limit: int | None = None, before: int | None = None
) -> HistoryPage:
    """One page of the session's stored messages, oldest first within the page."""
    key = keys.session_messages(session_id)
    total = int(client.llen(key))
    start, end = page_bounds(total, limit, before)
    if end <= start:
        return HistoryPage(start, total, [])
    raw = cast(list[str], client.lrange(key, start, end - 1))
    return HistoryPage(start, total, [ChatMessage.model_validate_json(item) for item in raw])


def slice_page(
    messages: list[ChatMessage], limit: int | None, before: int | None
) -> HistoryPage:
    """The same page of a history read as a whole (an Assistants-API thread)."""
    start, end = page_bounds(len(messages), limit, before)
    return HistoryPage(start, len(messages), messages[start:end])


class _Submitted(Protocol):
    @property
    def job_id(self) -> str: ...
    @property
    def session_id(self) -> str: ...
    @property
    def created_at(self) -> float: ...
    @property
    def webhook_url(self) -> str | None: ...


def before_admit(pipe: redis.client.Pipeline | redis.asyncio.client.Pipeline,
                 sub: _Submitted) -> None:
    """Queue what a submit stores before the job is admitted, in the pipeline that then
    runs the admit script (one round trip for both): the job in its session's listing,
    and its webhook URL, which must exist before the job can end."""
    record_job(pipe, sub.session_id, sub.job_id, sub.created_at)  # type: ignore[arg-type]
    if sub.webhook_url:
        pipe.set(keys.job_webhook(sub.job_id), sub.webhook_url, ex=keys.job_ttl_seconds())
