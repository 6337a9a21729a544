"""Three steps shaped like a one-tool turn, on the project's own worker app.

Loaded into the deployment's workers with ``--include bench.floor_tasks`` by
bench/celery_floor.py: the same app, settings, pools, leases, batched task events and
kombu patches as a real turn, with the turn's work taken out. ``model`` waits as a model
call would (holding its pool thread) and sends the next step, ``tool`` sends the last
one, and the last ``model`` records when the chain ended.

With a model name (``--model-calls``) the two ``model`` steps make the turn's real chat
completions instead of waiting: the worker's own model client (the ``openai`` client,
one per pool thread) over HTTP to the simulator, which answers after its latency, and
the ``tool`` step runs the calculator the first reply asked for. Still no turn state,
no memory, no job events: what is left is the queue and the model calls.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from bench.celery_floor import FLOOR_DONE_KEY, FLOOR_MODEL, FLOOR_TOOL
from bench.concurrency import QUESTION
from producer.contracts import ChatMessage, ToolCall
from producer.delivery import PRIORITY_CONTINUE
from worker.app import app
from worker.context import get_context
from worker.model_client import complete
from worker.tools import default_registry, execute_tool_call
from worker.turn import ModelCall


@app.task(name=FLOOR_MODEL, ignore_result=True)
def model(
    tag: str, latency: float, last: bool, model_name: str | None = None,
    call: dict[str, Any] | None = None, output: str | None = None,
) -> None:
    """``call`` and ``output``: the tool round the last step's completion sends back."""
    if model_name is None:
        time.sleep(latency)  # the model call's wait, in a pool thread
    else:
        reply = _complete(model_name, call, output)
        if not last and not reply.tool_calls:
            raise RuntimeError(f"the model answered without the calculator call: {reply}")
        call = reply.tool_calls[0].model_dump() if not last else None
    if last:
        app.backend.client.rpush(FLOOR_DONE_KEY, f"{tag} {time.time()}")
        return
    app.send_task(FLOOR_TOOL, args=[tag, latency, model_name, call], queue="tools",
                  ignore_result=True, priority=PRIORITY_CONTINUE)


@app.task(name=FLOOR_TOOL, ignore_result=True)
def tool(
    tag: str, latency: float, model_name: str | None = None, call: dict[str, Any] | None = None,
) -> None:
    output = None
    if call is not None:
        output = execute_tool_call(default_registry, ToolCall.model_validate(call), None).content
    app.send_task(FLOOR_MODEL, args=[tag, latency, True, model_name, call, output],
                  queue="agents", ignore_result=True, priority=PRIORITY_CONTINUE)


def _complete(model_name: str, call: dict[str, Any] | None, output: str | None) -> Any:
    """The first completion (the question, with the calculator), or the second (the
    question, the call and its output)."""
    messages = [ChatMessage(role="user", content=QUESTION)]
    if call is not None:
        tool_call = ToolCall.model_validate(call)
        messages += [ChatMessage(role="assistant", tool_calls=[tool_call]),
                     ChatMessage(role="tool", content=output, tool_call_id=tool_call.id)]
    return complete(get_context().model, ModelCall(
        model=model_name, messages=messages, tools=_calculator_schema(), tool_choice="auto",
    ))


@functools.cache
def _calculator_schema() -> list[dict[str, Any]]:
    return default_registry.schemas(["calculator"])
