"""``/v1/threads/{thread_id}/runs``: create, retrieve, list, cancel, submit_tool_outputs,
plus ``GET /_sim/runs/{run_id}`` (a run's current state without counting a retrieve)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from simulator import assistants, threads
from simulator.assistants import function_tools, validate_tool_choice, validate_tools
from simulator.beta_store import BetaStore, Thread
from simulator.common import (
    body_object,
    check_metadata,
    invalid_type,
    new_id,
    not_found,
    optional_bool,
    optional_str,
    page,
    required_str,
)
from simulator.errors import bad_request
from simulator.lifecycle import plan_step
from simulator.routing import Request, Response, Router, json_response
from simulator.run_state import Run, cancel, record_outputs, render
from simulator.threads import message_specs

if TYPE_CHECKING:
    from simulator.state import SimState

_EXTRA = (
    "temperature",
    "top_p",
    "max_prompt_tokens",
    "max_completion_tokens",
    "truncation_strategy",
    "response_format",
)


def _chat_messages(thread: Thread, run: Run) -> list[dict[str, Any]]:
    system = [{"role": "system", "content": run.instructions}] if run.instructions else []
    return system + thread.chat_messages() + run.exchanges


def _plan(state: SimState, thread: Thread, run: Run, now: float) -> None:
    choice = run.tool_choice  # a built-in choice ({"type": "file_search"}) counts as auto
    tool_choice = None if isinstance(choice, dict) and choice.get("type") != "function" else choice
    step = plan_step(
        state,
        run.model,
        _chat_messages(thread, run),
        function_tools(run.tools),
        tool_choice,
        parallel_tool_calls=run.parallel_tool_calls,
        now=now,
    )
    run.start_step(step)


def _tool_outputs(body: dict[str, Any]) -> dict[str, str]:
    raw = body.get("tool_outputs")
    if not isinstance(raw, list):
        raise bad_request("Missing required parameter: 'tool_outputs'.", param="tool_outputs")
    outputs: dict[str, str] = {}
    for i, item in enumerate(raw):
        param = f"tool_outputs[{i}]"
        if not isinstance(item, dict):
            raise invalid_type(param, "an object")
        call_id = required_str(item, "tool_call_id", f"{param}.tool_call_id")
        output = item.get("output")
        if not isinstance(output, str):
            raise invalid_type(f"{param}.output", "a string")
        if call_id in outputs:
            raise bad_request(f"Duplicate tool_call_id '{call_id}' in 'tool_outputs'.", param=param)
        outputs[call_id] = output
    return outputs


def add_routes(router: Router, state: SimState, store: BetaStore) -> None:
    def create(request: Request) -> Response:
        body = body_object(request)
        thread_id = request.params["thread_id"]
        if body.get("stream"):
            raise bad_request(
                "The simulator does not stream runs; send stream=false.", param="stream"
            )
        assistant = store.assistant(required_str(body, "assistant_id"))
        tools = (
            validate_tools(body["tools"])
            if body.get("tools") is not None
            else list(assistant.fields["tools"])
        )
        tool_choice = validate_tool_choice(body.get("tool_choice"))
        if tool_choice not in (None, "none", "auto") and not tools:
            raise bad_request("'tool_choice' needs tools.", param="tool_choice")
        base = optional_str(body, "instructions")
        instructions = base if base is not None else assistant.fields.get("instructions") or ""
        extra_instructions = optional_str(body, "additional_instructions")
        if extra_instructions:
            instructions = (
                f"{instructions}\n{extra_instructions}" if instructions else (extra_instructions)
            )
        model = optional_str(body, "model") or assistant.model
        metadata = check_metadata(body.get("metadata"))
        parallel = optional_bool(body, "parallel_tool_calls", True)
        extra_messages = message_specs(
            state, body.get("additional_messages"), "additional_messages"
        )
        state.recorder.record(model, body, "runs.create")
        now = time.time()
        with store.lock:
            thread = store.thread(thread_id)
            active = store.active_run(thread, now)
            if active is not None:
                raise bad_request(f"Thread {thread_id} already has an active run {active.id}.")
            for spec in extra_messages:
                store.add_message(thread_id, spec)
            run = Run(
                id=new_id("run_"),
                thread_id=thread_id,
                assistant_id=assistant.id,
                model=model,
                instructions=instructions,
                tools=tools,
                tool_choice=tool_choice if tool_choice is not None else "auto",
                parallel_tool_calls=parallel,
                metadata=metadata,
                created_at=now,
                expires_after_s=state.run_settings.expires_after_s,
                extra={key: body[key] for key in _EXTRA if body.get(key) is not None},
            )
            _plan(state, thread, run, now)
            store.add_run(thread, run)
            result = render(run, now)
        state.stats.incr("run_created")
        return json_response(result)

    def _current(thread_id: str, run_id: str) -> dict[str, Any]:
        now = time.time()
        with store.lock:
            run = store.run(thread_id, run_id)
            store.settle(run, now)
            return render(run, now)

    def retrieve(request: Request) -> Response:
        body = _current(request.params["thread_id"], request.params["run_id"])
        state.stats.incr("run_retrieved")
        return json_response(body)

    def list_runs(request: Request) -> Response:
        now = time.time()
        with store.lock:
            thread = store.thread(request.params["thread_id"])
            for run in thread.runs:
                store.settle(run, now)
            body = page(thread.runs, request, lambda r: r.id, lambda r: render(r, now))
        state.stats.incr("run_listed")
        return json_response(body)

    def cancel_run(request: Request) -> Response:
        now = time.time()
        with store.lock:
            run = store.run(request.params["thread_id"], request.params["run_id"])
            store.settle(run, now)
            if not run.active or run.phase == "cancelling":
                raise bad_request(f"Cannot cancel run with status '{run.status(now)}'.")
            cancel(run, now, state.run_settings.duration_ms / 1000.0)
            store.settle(run, now)
            body = render(run, now)
        state.stats.incr("run_cancelled")
        return json_response(body)

    def submit_tool_outputs(request: Request) -> Response:
        body = body_object(request)
        if body.get("stream"):
            raise bad_request(
                "The simulator does not stream runs; send stream=false.", param="stream"
            )
        outputs = _tool_outputs(body)
        now = time.time()
        with store.lock:
            run = store.run(request.params["thread_id"], request.params["run_id"])
            store.settle(run, now)
            status = run.status(now)
            if status != "requires_action":
                raise bad_request(f'Runs in status "{status}" do not accept tool outputs.')
            expected = [c.id for c in run.pending]
            if sorted(outputs) != sorted(expected):
                raise bad_request(
                    f"Expected tool outputs for call_ids {expected}, got {list(outputs)}.",
                    param="tool_outputs",
                )
            state.recorder.record(run.model, body, "runs.submit_tool_outputs")
            record_outputs(run, outputs)
            _plan(state, store.thread(run.thread_id), run, now)
            result = render(run, now)
        state.stats.incr("tool_outputs_submitted")
        return json_response(result)

    def sim_run(request: Request) -> Response:
        run_id = request.params["run_id"]
        with store.lock:
            run = store.runs.get(run_id)
            if run is None:
                raise not_found("run", run_id)
            thread_id = run.thread_id
        return json_response(_current(thread_id, run_id))

    router.add("POST", "/v1/threads/{thread_id}/runs", create)
    router.add("GET", "/v1/threads/{thread_id}/runs", list_runs)
    router.add("GET", "/v1/threads/{thread_id}/runs/{run_id}", retrieve)
    router.add("POST", "/v1/threads/{thread_id}/runs/{run_id}/cancel", cancel_run)
    router.add(
        "POST", "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", submit_tool_outputs
    )
    router.add("GET", "/_sim/runs/{run_id}", sim_run, auth=False)


def register(router: Router, state: SimState) -> None:
    """Add the Assistants API (assistants, threads, messages, runs) on one shared store."""
    store = BetaStore()
    assistants.add_routes(router, state, store)
    threads.add_routes(router, state, store)
    add_routes(router, state, store)
