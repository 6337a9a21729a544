"""The gateway's OpenAI-compatible front door: ``POST /v1/chat/completions``.

Any OpenAI SDK or chat UI can talk to the agent service: the last user message is the
turn's message, the server's own tools run inside the turn (``tools`` sent by the caller
are refused with a 400), and the answer comes back as one ``chat.completion`` or, with
``stream: true``, as ``chat.completion.chunk`` server-sent events ending in
``data: [DONE]``.

The session is the ``X-Session-Id`` header, else the request's ``user``. With neither,
the turn runs in a fresh throwaway session whose history is the messages sent before the
last user message (given to the model as prefix messages, never stored), and that
session is forgotten when the turn ends. With a session, memory supplies the history
and only the sent system/developer messages are used (as prefix messages).

Chunks cannot take text back. When a step streams again after a worker crash
(``delta_reset``), text that repeats what was sent is skipped; should the new attempt
differ, its remaining text follows what was sent (the job's result stays the truth).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.params import Depends
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from producer.async_client import AsyncAgentClient
from producer.client import JobTimeout
from producer.contracts import (
    SESSION_ID_PATTERN,
    ChatRequest,
    JobResult,
    JobStatus,
    default_deadline_seconds,
    describe_validation_error,
)
from producer.streaming import StreamFollower, StreamReset

_PREFIX_ROLES = ("system", "developer")
# Sampling and output parameters passed on to every model call of the turn.
_PASSED_ON = ("temperature", "top_p", "max_tokens", "seed", "stop", "response_format")
WAIT_SLACK_SECONDS = 5.0  # past the job's deadline, the sweep has failed it


class OpenAIChatBody(BaseModel):
    """The parts of an OpenAI chat completions request the front door reads. Of the
    other parameters, temperature, top_p, max_tokens (or max_completion_tokens), seed,
    stop and response_format are passed on; the rest are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None


class FrontDoorError(Exception):
    """A request the front door refuses, answered in OpenAI's error shape."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": None}}
        # x-should-retry: the OpenAI SDKs retry 5xx by default, which would run the turn again.
        return JSONResponse(body, status_code=self.status, headers={"x-should-retry": "false"})


def build_request(body: OpenAIChatBody, session_header: str | None) -> tuple[ChatRequest, bool]:
    """The turn for ``body``, and whether its session is a throwaway one."""
    if body.tools or body.functions:
        raise FrontDoorError(400, "tools sent by the caller are not supported: the server's "
                             "own tools run inside the turn", param="tools")
    last_user = next((i for i in range(len(body.messages) - 1, -1, -1)
                      if body.messages[i].get("role") == "user"), None)
    if last_user is None:
        raise FrontDoorError(400, "messages must contain a user message", param="messages")
    session_id = session_header or body.user
    throwaway = session_id is None
    earlier: Sequence[dict[str, Any]] = body.messages[:last_user]
    if throwaway:
        session_id = f"oai-{uuid.uuid4().hex}"
        prefix = [_prefix_message(m, i) for i, m in enumerate(earlier)
                  if m.get("role") != "tool" and not m.get("tool_calls")]
    else:
        prefix = [_prefix_message(m, i) for i, m in enumerate(earlier)
                  if m.get("role") in _PREFIX_ROLES]
    fields: dict[str, Any] = {
        "session_id": session_id, "message": body.messages[last_user].get("content"),
        "model": body.model, "stream": body.stream,
    }
    if prefix:
        fields["prefix_messages"] = prefix
    extra = body.model_extra or {}
    given = {name: extra[name] for name in _PASSED_ON if extra.get(name) is not None}
    if extra.get("max_completion_tokens") is not None:
        given["max_tokens"] = extra["max_completion_tokens"]
    fields.update(given)
    try:
        return ChatRequest.model_validate(fields), throwaway
    except ValidationError as exc:
        first = str(exc.errors()[0]["loc"][0]) if exc.errors() else "messages"
        where = "X-Session-Id or user" if first == "session_id" else first
        raise FrontDoorError(400, describe_validation_error(exc), param=where) from None


def _prefix_message(message: dict[str, Any], index: int) -> dict[str, Any]:
    role = message.get("role")
    if role not in ("system", "developer", "user", "assistant"):
        raise FrontDoorError(400, f"messages[{index}].role {role!r} is not supported",
                             param=f"messages[{index}].role")
    return {"role": role, "content": message.get("content")}


def completion_body(job: JobResult) -> dict[str, Any]:
    """A ``chat.completion`` holding the job's answer."""
    return {
        "id": f"chatcmpl-{job.job_id}", "object": "chat.completion",
        "created": int(job.created_at), "model": job.model or "",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": job.response or "",
                                 "refusal": None}}],
        "usage": job.usage.model_dump(),
    }


def _failure(job: JobResult) -> FrontDoorError:
    return FrontDoorError(500, f"the turn {job.status}: {job.error or 'no answer'}",
                          kind="server_error")


class ChunkWriter:
    """``chat.completion.chunk`` SSE lines for one job, skipping text repeated after a reset."""

    def __init__(self, job_id: str, model: str) -> None:
        self.head = {"id": f"chatcmpl-{job_id}", "object": "chat.completion.chunk",
                     "created": int(time.time()), "model": model, "system_fingerprint": None}
        self.sent: dict[int, str] = {}  # text sent per step
        self.replay: dict[int, str] = {}  # steps that started over: their text so far

    def chunk(self, delta: dict[str, Any], finish: str | None = None,
              usage: dict[str, int] | None = None) -> str:
        body: dict[str, Any] = {**self.head, "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if usage is not None:
            body = {**self.head, "choices": [], "usage": usage}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def text(self, step: int, piece: str) -> str | None:
        sent = self.sent.get(step, "")
        if step in self.replay:  # after a reset: skip what the consumer already has
            again = self.replay[step] + piece
            if sent.startswith(again):
                self.replay[step] = again
                return None
            del self.replay[step]
            piece = again[len(sent):] if again.startswith(sent) else piece
        self.sent[step] = sent + piece
        return self.chunk({"content": piece}) if piece else None

    def reset(self, marker: StreamReset) -> None:
        self.replay[marker.step] = ""


async def _stream(
    aclient: AsyncAgentClient, job_id: str, request: ChatRequest, timeout: float,
    include_usage: bool, throwaway: bool,
) -> AsyncIterator[str]:
    writer = ChunkWriter(job_id, request.model or "")
    follower = StreamFollower()
    yield writer.chunk({"role": "assistant", "content": "", "refusal": None})
    async for event in aclient.events(job_id, timeout=timeout):
        item = follower.feed(event)
        if isinstance(item, StreamReset):
            writer.reset(item)
        elif item is not None:
            line = writer.text(event.step or 0, item)
            if line:
                yield line
        if event.terminal:
            break
    job = await aclient.status(job_id)
    if job is None or job.status != JobStatus.SUCCEEDED:
        error = _failure(job).message if job else f"the turn did not end within {timeout:g} s"
        yield f"data: {json.dumps({'error': {'message': error, 'type': 'server_error'}})}\n\n"
        return
    if throwaway:  # forgotten before the caller hears the end, not after
        await aclient.reset(job.session_id)
    if not follower.streamed and job.response:  # e.g. a return_direct tool's output
        yield writer.chunk({"content": job.response})
    yield writer.chunk({}, finish="stop")
    if include_usage:
        yield writer.chunk({}, usage=job.usage.model_dump())
    yield "data: [DONE]\n\n"


def openai_router(dependencies: Sequence[Depends] = ()) -> APIRouter:
    """The ``/v1/chat/completions`` route; the app's lifespan sets ``app.state.aclient``."""
    router = APIRouter(prefix="/v1", dependencies=list(dependencies))

    @router.post(
        "/chat/completions",
        summary="OpenAI-compatible chat completions (one agent turn)",
        response_model=None,
        responses={
            200: {"description": "a chat.completion, or with stream=true chat.completion.chunk "
                                 "server-sent events ending in `data: [DONE]`"},
            400: {"description": "OpenAI-shaped error: caller tools, no user message, bad "
                                 "session id"},
            500: {"description": "OpenAI-shaped error: the turn failed"},
        },
    )
    async def chat_completions(
        body: OpenAIChatBody,
        request: Request,
        x_session_id: Annotated[str | None, Header(
            description="the session (memory) of this turn; else the body's `user`",
            pattern=SESSION_ID_PATTERN)] = None,
    ) -> Response:
        aclient: AsyncAgentClient = request.app.state.aclient
        try:
            turn, throwaway = build_request(body, x_session_id)
        except FrontDoorError as refused:
            return refused.response()
        try:
            job_id = await aclient.submit(turn)
        except Exception as exc:
            return FrontDoorError(503, f"could not enqueue: {type(exc).__name__}: {exc}",
                                  kind="server_error").response()
        deadline = turn.deadline_seconds or default_deadline_seconds() or 86400.0
        timeout = deadline + WAIT_SLACK_SECONDS
        headers = {"X-Job-Id": job_id, "X-Session-Id": turn.session_id}
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            return StreamingResponse(
                _stream(aclient, job_id, turn, timeout, include_usage, throwaway),
                media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            job = await aclient.wait(job_id, timeout=timeout)
        except JobTimeout:
            return FrontDoorError(504, f"the turn did not end within {timeout:g} s",
                                  kind="server_error").response()
        if throwaway:
            await aclient.reset(turn.session_id)
        if job.status != JobStatus.SUCCEEDED:
            return _failure(job).response()
        return JSONResponse(completion_body(job), headers=headers)

    return router
