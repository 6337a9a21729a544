"""Delivery settings producer and worker agree on: the lease on a held message, how far a
countdown may reach, and the priority that lets turns in progress go first.

Standard library only (celeryconfig imports it).
"""

from __future__ import annotations

import os

# The visibility timeout is a liveness lease: a live worker renews the lease of every
# message it holds every LEASE_RENEW_FRACTION of it (worker/leases.py), so it only runs
# out for a dead worker's messages, which are then restored within about this long.
DEFAULT_VISIBILITY_TIMEOUT = 10
LEASE_RENEW_FRACTION = 0.2
# How often a worker looks for expired leases (messages of dead workers) to restore.
RESTORE_INTERVAL_SECONDS = 1.0

# Redis serves priority 0 first (kombu polls the priority lists in order 0, 3, 6, 9).
# New turns go last, so a turn that has started (its next model step, its tools, its
# polls) never waits behind the backlog of turns that have not.
PRIORITY_CONTINUE = 0
PRIORITY_NEW_TURN = 9


def visibility_timeout_seconds() -> int:
    """``AGENT_VISIBILITY_TIMEOUT``: seconds a message's lease lasts without renewal."""
    return int(os.environ.get("AGENT_VISIBILITY_TIMEOUT", str(DEFAULT_VISIBILITY_TIMEOUT)))


def lease_renew_seconds() -> float:
    return max(visibility_timeout_seconds() * LEASE_RENEW_FRACTION, 0.5)


def countdown_ceiling_seconds() -> float:
    """What countdowns (poll waits, retry backoff, deadline hops) are bounded by.

    A countdown task waits unacknowledged in its worker, which renews its lease, so the
    countdown may outlive the lease; a bound still keeps a dead worker's far countdowns
    from drifting: they come back at once and are re-armed by a live worker.
    """
    return float(max(visibility_timeout_seconds(), 120))
