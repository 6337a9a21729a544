"""``/v1/responses``: create (background or not), retrieve, cancel, delete, input_items,
plus ``GET /_sim/responses/{id}`` (current state without counting a retrieve)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from simulator.common import (
    body_object,
    check_metadata,
    new_id,
    optional_bool,
    optional_str,
    page,
    required_str,
)
from simulator.errors import ApiError, bad_request
from simulator.lifecycle import plan_step
from simulator.response_input import (
    chat_tool_choice,
    check_tool_outputs,
    convert_input,
    validate_tools,
)
from simulator.response_state import ResponseRecord, advance, cancel, render
from simulator.routing import Request, Response, Router, json_response

if TYPE_CHECKING:
    from simulator.state import SimState

MAX_RESPONSES = 100_000
_ECHOED = (
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "reasoning",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_p",
    "truncation",
    "user",
)


def response_not_found(response_id: str) -> ApiError:
    return ApiError(404, f"Response with id '{response_id}' not found.", param="response_id")


class ResponseStore:
    """Stored responses by id (at most ``max_items``; the oldest is dropped)."""

    def __init__(self, max_items: int = MAX_RESPONSES) -> None:
        self.lock = threading.Lock()
        self._items: OrderedDict[str, ResponseRecord] = OrderedDict()
        self._max_items = max_items

    def add(self, record: ResponseRecord) -> None:
        with self.lock:
            self._items[record.id] = record
            while len(self._items) > self._max_items:
                self._items.popitem(last=False)

    def get(self, response_id: str, now: float) -> ResponseRecord:
        """The record advanced to ``now`` (caller holds the lock)."""
        record = self._items.get(response_id)
        if record is None:
            raise response_not_found(response_id)
        advance(record, now)
        return record

    def delete(self, response_id: str) -> None:
        with self.lock:
            if self._items.pop(response_id, None) is None:
                raise response_not_found(response_id)


def _history(
    store: ResponseStore, previous_id: str | None, now: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """The chain's chat messages and the previous response's pending call ids."""
    if previous_id is None:
        return [], []
    with store.lock:
        previous = store.get(previous_id, now)
        if previous.phase != "completed":
            raise bad_request(
                f"Previous response with id '{previous_id}' has status "
                f"'{previous.status(now)}'; only completed responses can be continued.",
                param="previous_response_id",
            )
        return previous.conversation(), previous.pending_call_ids()


def register(router: Router, state: SimState) -> None:
    """Add the ``/v1/responses`` routes."""
    store = ResponseStore()

    def create(request: Request) -> Response:
        body = body_object(request)
        model = required_str(body, "model")
        state.recorder.record(model, body, "responses.create")
        if body.get("stream"):
            raise bad_request(
                "The simulator does not stream responses; send stream=false.", param="stream"
            )
        background = optional_bool(body, "background", False)
        keep = optional_bool(body, "store", True)
        if background and not keep:
            raise bad_request("Background mode requires 'store' to be true.", param="background")
        instructions = optional_str(body, "instructions")
        tools, chat_tools = validate_tools(body.get("tools"))
        tool_choice = chat_tool_choice(body.get("tool_choice"), chat_tools)
        parallel = optional_bool(body, "parallel_tool_calls", True)
        check_metadata(body.get("metadata"))
        previous_id = optional_str(body, "previous_response_id")
        items, messages = convert_input(body.get("input"))
        now = time.time()
        history, pending = _history(store, previous_id, now)
        check_tool_outputs(pending, messages)
        history = history + messages
        system = [{"role": "system", "content": instructions}] if instructions else []
        step = plan_step(
            state,
            model,
            system + history,
            chat_tools,
            tool_choice,
            parallel_tool_calls=parallel,
            now=now,
        )
        echoed = {key: body[key] for key in _ECHOED if body.get(key) is not None}
        echoed["tools"] = tools
        record = ResponseRecord(
            id=new_id("resp_"),
            created_at=now,
            model=model,
            request=echoed,
            background=background,
            store=keep,
            history=history,
            input_items=items,
            step=step,
        )
        if keep:
            store.add(record)
        state.stats.incr("response_created")
        if not background and step.due is not None:
            time.sleep(max(0.0, step.due - time.time()))  # a blocking call; no lock held
            now = max(time.time(), step.due)
        with store.lock:
            advance(record, now)
            return json_response(render(record, now))

    def _read(response_id: str) -> dict[str, Any]:
        now = time.time()
        with store.lock:
            return render(store.get(response_id, now), now)

    def retrieve(request: Request) -> Response:
        if request.query_one("stream") in ("true", "True", "1"):
            raise bad_request("The simulator does not stream responses.", param="stream")
        body = _read(request.params["response_id"])
        state.stats.incr("response_retrieved")
        return json_response(body)

    def cancel_response(request: Request) -> Response:
        response_id = request.params["response_id"]
        now = time.time()
        with store.lock:
            record = store.get(response_id, now)
            if not record.background:
                raise bad_request("Only responses created with background=true can be cancelled.")
            if record.phase not in ("working", "cancelled"):
                raise bad_request(f"Cannot cancel a response with status '{record.status(now)}'.")
            if record.phase == "working":
                cancel(record, now)
            body = render(record, now)
        state.stats.incr("response_cancelled")
        return json_response(body)

    def delete(request: Request) -> Response:
        response_id = request.params["response_id"]
        store.delete(response_id)
        state.stats.incr("response_deleted")
        return json_response({"id": response_id, "object": "response", "deleted": True})

    def input_items(request: Request) -> Response:
        now = time.time()
        with store.lock:
            items = list(store.get(request.params["response_id"], now).input_items)
        state.stats.incr("response_input_items_listed")
        return json_response(page(items, request, lambda i: str(i.get("id")), lambda i: i))

    def sim_response(request: Request) -> Response:
        return json_response(_read(request.params["response_id"]))

    router.add("POST", "/v1/responses", create)
    router.add("GET", "/v1/responses/{response_id}", retrieve)
    router.add("DELETE", "/v1/responses/{response_id}", delete)
    router.add("POST", "/v1/responses/{response_id}/cancel", cancel_response)
    router.add("GET", "/v1/responses/{response_id}/input_items", input_items)
    router.add("GET", "/_sim/responses/{response_id}", sim_response, auth=False)
