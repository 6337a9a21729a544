"""The OpenAI endpoints: ``/v1/models`` and ``/v1/chat/completions``."""

from __future__ import annotations

import time

from simulator.chat import (
    ChatRequest,
    OutToolCall,
    completion_body,
    new_call_id,
    planned_to_out,
    prompt_text,
    validate_chat_request,
)
from simulator.demo_policy import decide
from simulator.errors import ApiError, bad_request
from simulator.routing import Request, Response, Router, json_response
from simulator.script import ScriptedReply, ScriptExhausted
from simulator.state import SimState
from simulator.streaming import stream_response

MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "sim-small")
_MODELS_CREATED = 1_700_000_000


def _model_object(model_id: str) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": _MODELS_CREATED, "owned_by": "simulator"}


def _scripted_body(request: ChatRequest, reply: ScriptedReply) -> dict[str, object]:
    if reply.error is not None:
        error = reply.error
        raise ApiError(
            error.status, error.message, type=error.type, param=error.param, code=error.code
        )
    calls = [OutToolCall(c.id or new_call_id(), c.name, c.arguments) for c in reply.tool_calls]
    return completion_body(
        model=request.model,
        content=reply.content,
        tool_calls=calls,
        prompt=prompt_text(request),
        finish_reason=reply.finish_reason,
    )


def _policy_body(request: ChatRequest) -> dict[str, object]:
    decision = decide(
        request.messages,
        request.tools,
        request.tool_choice,
        parallel_tool_calls=request.parallel_tool_calls,
    )
    calls = planned_to_out([(c.name, c.arguments) for c in decision.tool_calls])
    return completion_body(
        model=request.model,
        content=decision.content,
        tool_calls=calls,
        prompt=prompt_text(request),
    )


def register(router: Router, state: SimState) -> None:
    """Add the model and chat-completion routes."""

    def list_models(_: Request) -> Response:
        return json_response({"object": "list", "data": [_model_object(m) for m in MODELS]})

    def get_model(request: Request) -> Response:
        model_id = request.params["model"]
        if model_id not in MODELS:
            raise ApiError(
                404,
                f"The model '{model_id}' does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return json_response(_model_object(model_id))

    def chat_completions(request: Request) -> Response:
        body = request.json()
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            state.recorder.record(body["model"], body)
        chat = validate_chat_request(body)
        delay_ms = state.latency_ms
        outcome: dict[str, object] | ApiError
        try:
            reply = state.scripts.pop(chat.model)
        except ScriptExhausted as exhausted:
            outcome = bad_request(str(exhausted), param="model", code="script_exhausted")
        else:
            if reply is not None:
                delay_ms += reply.delay_ms
                try:
                    outcome = _scripted_body(chat, reply)
                except ApiError as error:
                    outcome = error
            else:
                outcome = _policy_body(chat)
        if delay_ms > 0:
            time.sleep(delay_ms / 1000.0)  # no lock is held here
        if isinstance(outcome, ApiError):
            raise outcome
        if chat.stream:
            return stream_response(state, outcome, body)
        return json_response(outcome)

    router.add("GET", "/v1/models", list_models)
    router.add("GET", "/v1/models/{model}", get_model)
    router.add("POST", "/v1/chat/completions", chat_completions)
