"""bench/celery_floor.py's empty turns run on the deployment's own workers: a worker
started with ``include`` loads the extra task module, and every chain of three steps
(agents, tools, agents) ends once, after both of its model waits."""

from __future__ import annotations

import time

import redis

from bench.celery_floor import FLOOR_DONE_KEY, FLOOR_MODULE, burst, sequential
from producer.client import make_producer_app
from producer.devstack import DevStack


def test_floor_chains_run_on_the_deployment_workers() -> None:
    with DevStack() as stack:
        url = stack.start_redis()
        stack.start_worker(["agents"], None, "agents", include=[FLOOR_MODULE])
        stack.start_worker(["tools"], None, "tools", include=[FLOOR_MODULE])
        r = redis.Redis.from_url(url)
        celery = make_producer_app(url)
        try:
            one_at_a_time = sequential(celery, r, 3)
            assert len(one_at_a_time) == 3 and all(ms > 0 for ms in one_at_a_time)
            assert r.llen(FLOOR_DONE_KEY) == 0  # each was popped by its own wait

            began = time.time()
            sent, ends, _ = burst(celery, r, 30, 0.3, timeout=30)
            assert sorted(ends) == sorted(sent)  # every chain ended, once
            assert r.llen(FLOOR_DONE_KEY) == 30
            # both "model" steps waited: no chain ends sooner than two waits after its send
            assert all(ends[tag] - sent[tag] >= 0.6 for tag in sent)
            assert max(ends.values()) - began < 20
        finally:
            celery.close()
