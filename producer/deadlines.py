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

SWEEP_SLOT_SECONDS = 0.5


def longest_countdown() -> float:
    """The longest countdown a task may be given: half the visibility timeout.

    Redis redelivers a task whose countdown outlives the visibility timeout (again and
    again), so a far deadline is reached in hops of at most this length.
    """
    visibility = float(os.environ.get("AGENT_VISIBILITY_TIMEOUT", "3600"))
    return max(visibility / 2, 1.0)


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
        run_at = now + min(max(deadline_at - now, 0.0), longest_countdown())
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
