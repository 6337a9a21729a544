"""bench/celery_floor.py's empty turns run on the deployment's own workers: a worker
started with ``include`` loads the extra task module, and every chain of three steps
(agents, tools, agents) ends once, after both of its model waits; with model calls, each
chain makes a one-tool turn's two chat completions and runs its tool."""

from __future__ import annotations

import time

import redis

from bench.celery_floor import (
    FLOOR_DONE_KEY,
    FLOOR_MODEL_NAME,
    FLOOR_MODULE,
    burst,
    sequential,
)
from producer.client import make_producer_app
from producer.devstack import DevStack
from tests.integration.conftest import Simulator


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


def test_floor_chains_with_model_calls_make_a_turns_two_completions() -> None:
    """``--model-calls``: each chain asks the model (the calculator is offered), runs the
    call it got back, and sends the output in the second completion."""
    with DevStack() as stack:
        url = stack.start_redis()
        simulator = Simulator(stack.start_simulator(latency_ms=200))
        stack.start_worker(["agents"], None, "agents", include=[FLOOR_MODULE])
        stack.start_worker(["tools"], None, "tools", include=[FLOOR_MODULE])
        r = redis.Redis.from_url(url)
        celery = make_producer_app(url)
        try:
            sent, ends, _ = burst(celery, r, 10, 0.0, timeout=30, model_name=FLOOR_MODEL_NAME)
            assert sorted(ends) == sorted(sent)
            # the simulator's latency, twice: no chain ended sooner
            assert all(ends[tag] - sent[tag] >= 0.4 for tag in sent)
            completions = simulator.requests(FLOOR_MODEL_NAME, "chat.completions")
            assert len(completions) == 20
            firsts = [c for c in completions if len(c["messages"]) == 1]
            seconds = [c for c in completions if len(c["messages"]) == 3]
            assert len(firsts) == len(seconds) == 10
            assert all(c["tools"][0]["function"]["name"] == "calculator" for c in firsts)
            assert {c["messages"][2]["role"] for c in seconds} == {"tool"}
            assert {c["messages"][2]["content"] for c in seconds} == {"51"}  # 17 * 3, run
        finally:
            celery.close()
