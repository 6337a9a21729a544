"""Per-job deadlines, enforced by a self-rescheduling sweep task (``agents.job.expire``).

Every job with a deadline is in one Redis sorted set (``keys.deadlines``), scored by its
deadline; ending a job removes it. The sweep fails each job whose deadline passed,
cancels its server-side run and releases its session, even if a step hangs or its task
was lost. This is the backstop: steps also check the deadline at their boundaries.

One sweep task serves every job whose deadline falls in the same time slot
(``SWEEP_SLOT_SECONDS``): the first job of a slot enqueues it (a ``SET NX`` marker), the
others rely on it, and each sweep enqueues the one for the next deadline due. A job
costs a sorted-set entry, not a task of its own held for its whole deadline.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from celery import Celery

from producer import keys
from producer.contracts import TASK_EXPIRE_JOB
from producer.delivery import countdown_ceiling_seconds

SWEEP_SLOT_SECONDS = 0.5


def stall_seconds() -> float:
    """``AGENT_STALL_SECONDS`` (default 360): a running job with no event for this long has
    lost its next task (a message lost in a Redis restart, say); the sweep sends it again.

    Keep it above the longest quiet step: ``AGENT_TOOL_TIME_LIMIT`` plus a model call.
    """
    return float(os.environ.get("AGENT_STALL_SECONDS", "360"))


def sweep_period() -> float:
    """While jobs are unfinished, a sweep runs at least this often (stall checks, hops)."""
    return max(min(longest_countdown(), stall_seconds() / 4), SWEEP_SLOT_SECONDS)


def next_sweep_at(deadline_at: float, now: float | None = None) -> float:
    """When the sweep that serves ``deadline_at`` runs: at the deadline, or earlier at the
    next point of a fixed grid (``sweep_period``). Every sweep chain picks the same grid
    points, so chains started by different jobs meet and merge (one task per slot)."""
    now = time.time() if now is None else now
    period = sweep_period()
    grid_point = (math.floor(now / period) + 1) * period
    return min(max(deadline_at, now), grid_point)


def longest_countdown() -> float:
    """The longest countdown a task may be given: half the countdown ceiling
    (producer/delivery.py), so a far deadline is reached in hops of at most this length."""
    return max(countdown_ceiling_seconds() / 2, 1.0)


def member(job_id: str, session_id: str) -> str:
    """A job's entry in the deadlines set; it names the session to release."""
    return f"{job_id} {session_id}"


def parse_member(entry: str) -> tuple[str, str]:
    job_id, _, session_id = entry.partition(" ")
    return job_id, session_id


@dataclass(frozen=True)
class SweepSlot:
    """When the sweep for a deadline runs: its slot's marker key, countdown and TTL."""

    marker: str
    countdown: float
    marker_ttl: int

    @classmethod
    def for_deadline(cls, deadline_at: float, now: float | None = None) -> SweepSlot:
        now = time.time() if now is None else now
        run_at = next_sweep_at(deadline_at, now)
        slot = math.ceil(run_at / SWEEP_SLOT_SECONDS)
        countdown = max(slot * SWEEP_SLOT_SECONDS - now, 0.0)
        # The marker outlives the slot a little, so a late sweep is not sent twice.
        return cls(keys.deadline_sweep(slot), countdown, int(countdown) + 30)


def send_sweep(celery: Celery, slot: SweepSlot) -> None:
    """Enqueue the sweep of ``slot`` (the caller took the slot's marker)."""
    celery.send_task(
        TASK_EXPIRE_JOB,
        countdown=slot.countdown,
        kwargsrepr=f"slot={slot.marker.rsplit(':', 1)[-1]}",
        ignore_result=True,
    )
