"""Three empty steps shaped like a one-tool turn, on the project's own worker app.

Loaded into the deployment's workers with ``--include bench.floor_tasks`` by
bench/celery_floor.py: the same app, settings, pools, leases, batched task events and
kombu patches as a real turn, with the turn's work taken out. ``model`` waits as a model
call would (holding its pool thread) and sends the next step, ``tool`` sends the last
one, and the last ``model`` records when the chain ended.
"""

from __future__ import annotations

import time

from bench.celery_floor import FLOOR_DONE_KEY, FLOOR_MODEL, FLOOR_TOOL
from producer.delivery import PRIORITY_CONTINUE
from worker.app import app


@app.task(name=FLOOR_MODEL, ignore_result=True)
def model(tag: str, latency: float, last: bool) -> None:
    time.sleep(latency)  # the model call's wait, in a pool thread
    if last:
        app.backend.client.rpush(FLOOR_DONE_KEY, f"{tag} {time.time()}")
        return
    app.send_task(FLOOR_TOOL, args=[tag, latency], queue="tools", ignore_result=True,
                  priority=PRIORITY_CONTINUE)


@app.task(name=FLOOR_TOOL, ignore_result=True)
def tool(tag: str, latency: float) -> None:
    app.send_task(FLOOR_MODEL, args=[tag, latency, True], queue="agents", ignore_result=True,
                  priority=PRIORITY_CONTINUE)
