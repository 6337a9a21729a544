"""The Responses API in background mode as a run: create, retrieve, follow up, cancel.

``responses.create(background=True, store=True)`` starts the response; it is polled with
``responses.retrieve`` until it leaves queued/in_progress. Function calls come back as
``function_call`` output items (reported as requires_action) and go back as
``function_call_output`` input items of a follow-up response chained with
``previous_response_id``. The session's last response id chains the turns of a session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import openai

from producer.contracts import ToolCall, ToolOutput, Usage
from worker.assistant.api import classified
from worker.assistant.logic import RunSnapshot, budget_spent
from worker.assistant.protocol import Save, Schemas, flat_function_tools
from worker.assistant.state import RunState

_BUILTIN_TOOLS: dict[str, dict[str, Any]] = {
    "code_interpreter": {"type": "code_interpreter", "container": {"type": "auto"}},
}


class ResponsesAdapter:
    def __init__(self, client: openai.OpenAI, schemas: Schemas) -> None:
        self.client = client
        self.schemas = schemas  # built only when needed (not for a poll)

    def create(self, state: RunState, save: Save) -> RunState:
        request = state.request
        params = self._common(state, first=True)
        file_ids = [*request.file_ids, *state.files]
        if file_ids:
            params["input"] = [{
                "role": "user",
                "content": [
                    {"type": "input_text", "text": request.message},
                    *({"type": "input_file", "file_id": f} for f in file_ids),
                ],
            }]
        else:
            params["input"] = request.message
        if state.previous_response_id:
            params["previous_response_id"] = state.previous_response_id
        with classified("creating the response"):
            response = self.client.responses.with_raw_response.create(**params)
        new = state.next_version()
        new.response_id = str(response.http_response.json()["id"])
        return new

    def retrieve(self, state: RunState) -> RunSnapshot:
        assert state.response_id is not None
        # The raw JSON: building the client's typed Response model would cost more CPU
        # than the rest of a poll (a poll is the hot path: thousands per minute).
        with classified("retrieving the response"):
            raw = self.client.responses.with_raw_response.retrieve(state.response_id)
            response = raw.http_response.json()
        return snapshot(response)

    def submit(self, state: RunState, outputs: Sequence[ToolOutput]) -> str | None:
        params = self._common(state, first=False)
        params["previous_response_id"] = state.response_id
        params["input"] = [
            {"type": "function_call_output", "call_id": o.tool_call_id, "output": o.content}
            for o in outputs
        ]
        with classified("submitting tool outputs"):
            response = self.client.responses.with_raw_response.create(**params)
        return str(response.http_response.json()["id"])

    def cancel(self, state: RunState) -> None:
        if state.response_id is None:
            return
        with classified("cancelling the response"):
            self.client.responses.cancel(state.response_id)

    def _common(self, state: RunState, first: bool) -> dict[str, Any]:
        """What every response of the job sends. Instructions are not carried over by
        ``previous_response_id``, so each response repeats them."""
        request = state.request
        params: dict[str, Any] = {
            "model": state.model,
            "background": True,
            "store": True,
            "metadata": {"job_id": state.job_id},
        }
        spec = request.assistant
        instructions = request.run_instructions or (spec.instructions if spec else None)
        if instructions:
            params["instructions"] = instructions
        wanted = spec.builtin_tools if spec else []
        builtins = [_BUILTIN_TOOLS[name] for name in wanted if name in _BUILTIN_TOOLS]
        tools = [*flat_function_tools(self.schemas()), *builtins]
        if tools:
            params["tools"] = tools
            params["tool_choice"] = tool_choice(state, first)
        return params


def tool_choice(state: RunState, first: bool) -> str | dict[str, Any]:
    """The request's choice on the first response, then auto; none once the budget is spent."""
    if budget_spent(state):
        return "none"
    if not first:
        return "auto"
    forced = state.request.forced_tool
    return {"type": "function", "name": forced} if forced else state.request.tool_choice


def snapshot(response: dict[str, Any]) -> RunSnapshot:
    """A response (its JSON, as the API returns it) in protocol-neutral terms."""
    status = str(response.get("status") or "queued")
    output = response.get("output") or []
    calls = tuple(
        ToolCall(id=item["call_id"], name=item["name"], arguments=item.get("arguments") or "")
        for item in output
        if item.get("type") == "function_call"
    )
    if status == "completed" and calls:
        status = "requires_action"
    usage = None
    counts = response.get("usage")
    if counts and status not in ("queued", "in_progress"):
        usage = Usage(
            prompt_tokens=counts.get("input_tokens", 0),
            completion_tokens=counts.get("output_tokens", 0),
            total_tokens=counts.get("total_tokens", 0),
        )
    error = None
    if response.get("error"):
        error = f"{response['error'].get('code')}: {response['error'].get('message')}"
    elif (response.get("incomplete_details") or {}).get("reason"):
        error = str(response["incomplete_details"]["reason"])
    return RunSnapshot(status=status, tool_calls=calls, error=error, usage=usage,
                       text=newest_message_text(output))


def newest_message_text(output: list[dict[str, Any]]) -> str | None:
    """The text of the last assistant message item (its output_text parts joined)."""
    for item in reversed(output):
        if item.get("type") == "message" and item.get("role") == "assistant":
            parts = [
                c["text"] for c in item.get("content") or []
                if c.get("type") == "output_text" and c.get("text")
            ]
            if parts:
                return "".join(parts)
    return None
