"""``/v1/threads`` and ``/v1/threads/{id}/messages`` of the Assistants API."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from simulator.beta_store import BetaStore, MessageSpec
from simulator.common import body_object, check_metadata, invalid_type, not_found, page
from simulator.errors import ApiError, bad_request
from simulator.routing import Request, Response, Router, json_response

if TYPE_CHECKING:
    from simulator.state import SimState

MAX_THREAD_MESSAGES = 32
_ATTACHMENT_TOOLS = ("code_interpreter", "file_search")


def _file_exists(state: SimState, file_id: Any, param: str) -> str:
    if not isinstance(file_id, str) or not file_id:
        raise bad_request(f"Missing required parameter: '{param}'.", param=param)
    if not state.files.exists(file_id):
        raise ApiError(404, f"No file found with id '{file_id}'.", param=param)
    return file_id


def _block(state: SimState, block: Any, where: str) -> tuple[dict[str, Any], str]:
    """One input content block -> (output block, its text for the model)."""
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise invalid_type(f"{where}.text", "a string")
        return {"type": "text", "text": {"value": text, "annotations": []}}, text
    if kind == "image_file":
        image = block.get("image_file")
        if not isinstance(image, dict):
            raise invalid_type(f"{where}.image_file", "an object")
        _file_exists(state, image.get("file_id"), f"{where}.image_file.file_id")
        return {"type": "image_file", "image_file": image}, ""
    if kind == "image_url":
        image = block.get("image_url")
        if not isinstance(image, dict) or not isinstance(image.get("url"), str):
            raise invalid_type(f"{where}.image_url", "an object with a 'url'")
        return {"type": "image_url", "image_url": image}, ""
    raise bad_request(
        f"Invalid value for '{where}.type': expected 'text', 'image_file' or 'image_url'.",
        param=f"{where}.type",
        code="invalid_value",
    )


def _attachments(state: SimState, value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_type(where, "an array")
    result: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        param = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise invalid_type(param, "an object")
        file_id = _file_exists(state, item.get("file_id"), f"{param}.file_id")
        tools = item.get("tools", [])
        if not isinstance(tools, list) or not all(
            isinstance(t, dict) and t.get("type") in _ATTACHMENT_TOOLS for t in tools
        ):
            raise bad_request(
                f"Invalid '{param}.tools': expected [{{'type': 'code_interpreter' | "
                "'file_search'}].",
                param=f"{param}.tools",
            )
        result.append({"file_id": file_id, "tools": tools})
    return result


def message_spec(state: SimState, raw: Any, where: str = "") -> MessageSpec:
    """Validate a message to add (``where`` prefixes parameter names)."""
    if not isinstance(raw, dict):
        raise invalid_type(where or "body", "an object")
    prefix = f"{where}." if where else ""
    role = raw.get("role")
    if role not in ("user", "assistant"):
        raise bad_request(
            f"Invalid value for '{prefix}role': {role!r}. Supported values are: 'user' and "
            "'assistant'.",
            param=f"{prefix}role",
            code="invalid_value",
        )
    content = raw.get("content")
    if isinstance(content, str):
        blocks: list[dict[str, Any]] = [
            {"type": "text", "text": {"value": content, "annotations": []}}
        ]
        text = content
    elif isinstance(content, list) and content:
        parsed = [_block(state, b, f"{prefix}content[{i}]") for i, b in enumerate(content)]
        blocks = [block for block, _ in parsed]
        text = "\n".join(t for _, t in parsed if t)
    else:
        raise bad_request(
            f"Missing required parameter: '{prefix}content' (a string or a non-empty array "
            "of content blocks).",
            param=f"{prefix}content",
        )
    return MessageSpec(
        role=role,
        content=blocks,
        text=text,
        attachments=_attachments(state, raw.get("attachments"), f"{prefix}attachments"),
        metadata=check_metadata(raw.get("metadata"), f"{prefix}metadata"),
    )


def message_specs(state: SimState, raw: Any, param: str) -> list[MessageSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid_type(param, "an array")
    if len(raw) > MAX_THREAD_MESSAGES:
        raise bad_request(
            f"Invalid '{param}': at most {MAX_THREAD_MESSAGES} messages.", param=param
        )
    return [message_spec(state, m, f"{param}[{i}]") for i, m in enumerate(raw)]


def add_routes(router: Router, state: SimState, store: BetaStore) -> None:
    def create_thread(request: Request) -> Response:
        body = body_object(request)
        specs = message_specs(state, body.get("messages"), "messages")
        thread = store.add_thread(
            check_metadata(body.get("metadata")), body.get("tool_resources"), specs
        )
        state.stats.incr("thread_created")
        return json_response(thread.body())

    def retrieve_thread(request: Request) -> Response:
        state.stats.incr("thread_retrieved")
        return json_response(store.thread(request.params["thread_id"]).body())

    def modify_thread(request: Request) -> Response:
        body = body_object(request)
        with store.lock:
            thread = store.thread(request.params["thread_id"])
            if "metadata" in body:
                thread.metadata = check_metadata(body["metadata"])
            if "tool_resources" in body:
                thread.tool_resources = body["tool_resources"]
            return json_response(thread.body())

    def delete_thread(request: Request) -> Response:
        thread_id = request.params["thread_id"]
        store.delete_thread(thread_id)
        state.stats.incr("thread_deleted")
        return json_response({"id": thread_id, "object": "thread.deleted", "deleted": True})

    def create_message(request: Request) -> Response:
        spec = message_spec(state, body_object(request))
        message = store.add_message(request.params["thread_id"], spec)
        state.stats.incr("message_created")
        return json_response(message.body())

    def list_messages(request: Request) -> Response:
        run_id = request.query_one("run_id")
        with store.lock:
            thread = store.thread(request.params["thread_id"])
            store.active_run(thread, time.time())  # a due answer becomes a message first
            messages = [m for m in thread.messages if not run_id or m.run_id == run_id]
            body = page(messages, request, lambda m: m.id, lambda m: m.body())
        state.stats.incr("message_listed")
        return json_response(body)

    def retrieve_message(request: Request) -> Response:
        message_id = request.params["message_id"]
        with store.lock:
            thread = store.thread(request.params["thread_id"])
            store.active_run(thread, time.time())
            found = next((m for m in thread.messages if m.id == message_id), None)
            if found is None:
                raise not_found("message", message_id)
            body = found.body()
        state.stats.incr("message_retrieved")
        return json_response(body)

    router.add("POST", "/v1/threads", create_thread)
    router.add("GET", "/v1/threads/{thread_id}", retrieve_thread)
    router.add("POST", "/v1/threads/{thread_id}", modify_thread)
    router.add("DELETE", "/v1/threads/{thread_id}", delete_thread)
    router.add("POST", "/v1/threads/{thread_id}/messages", create_message)
    router.add("GET", "/v1/threads/{thread_id}/messages", list_messages)
    router.add("GET", "/v1/threads/{thread_id}/messages/{message_id}", retrieve_message)
