"""Settings of assistant runs, from the environment (see the README's configuration table)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from producer.delivery import countdown_ceiling_seconds


@dataclass(frozen=True)
class RunSettings:
    max_poll_interval: float  # cap of the growing poll countdown (AGENT_POLL_MAX_INTERVAL)
    tick: float  # polls due within one tick share one poll task (AGENT_POLL_TICK)
    batch: int  # most runs one poll task retrieves (AGENT_POLL_BATCH)
    threads: int  # retrieves one poll task has in flight at once (AGENT_POLL_THREADS)
    lease: float  # a claimed run comes back due after this if its poll task died
    max_upload_bytes: int  # largest file a worker uploads (AGENT_MAX_UPLOAD_BYTES)

    @classmethod
    def from_env(cls) -> RunSettings:
        env = os.environ
        # Every countdown stays well below its ceiling (producer/delivery.py).
        ceiling = max(countdown_ceiling_seconds() / 4, 0.5)
        return cls(
            max_poll_interval=min(float(env.get("AGENT_POLL_MAX_INTERVAL", "5")), ceiling),
            tick=min(float(env.get("AGENT_POLL_TICK", "0.1")), ceiling),
            batch=max(int(env.get("AGENT_POLL_BATCH", "50")), 1),
            threads=max(int(env.get("AGENT_POLL_THREADS", "4")), 1),
            lease=min(60.0, ceiling),
            max_upload_bytes=int(env.get("AGENT_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024))),
        )
