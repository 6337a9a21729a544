"""Gateway routes for a session beyond its messages: its recent jobs, and seeding it.

An APIRouter included under the gateway's ``/v1`` router (so it shares its bearer auth).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from producer.client import AgentClient
from producer.contracts import SESSION_ID_PATTERN, ChatMessage, JobResult
from producer.gateway_support import ErrorBody
from producer.history_import import InvalidHistory, SessionBusy
from producer.session_listing import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT

SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN)]


class HistoryImport(BaseModel):
    """``POST /v1/sessions/{id}/messages``: messages appended to the session's memory."""

    messages: list[ChatMessage] = Field(
        description="system, developer, user, assistant and tool messages, oldest first; "
        "each tool message answers a call of the assistant message before it"
    )


class HistoryImported(BaseModel):
    session_id: str
    imported: int = Field(description="messages appended")
    total: int = Field(description="messages the session's memory now holds")


def session_router(client: AgentClient) -> APIRouter:
    router = APIRouter()

    @router.get("/sessions/{session_id}/jobs", response_model=list[JobResult],
                summary="A session's recent jobs, newest first")
    def session_jobs(
        session_id: SessionId,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT,
                                    description="at most this many jobs")] = DEFAULT_LIST_LIMIT,
    ) -> list[JobResult]:
        return client.jobs_of(session_id, limit)

    @router.post(
        "/sessions/{session_id}/messages",
        status_code=201,
        response_model=HistoryImported,
        responses={400: {"model": ErrorBody, "description": "the body is not parseable JSON"},
                   409: {"model": ErrorBody,
                         "description": "a job of the session is queued or running, or it "
                         "is an assistant-mode session"}},
        summary="Seed a session's memory with an existing conversation",
    )
    def import_messages(session_id: SessionId, body: HistoryImport) -> HistoryImported:
        try:
            total = client.import_history(session_id, body.messages)
        except InvalidHistory as exc:
            raise RequestValidationError([{
                "type": "value_error", "loc": ("body", "messages"), "msg": str(exc),
                "input": None,  # never echo the whole conversation back
            }]) from None
        except SessionBusy as exc:
            raise HTTPException(409, str(exc)) from None
        return HistoryImported(session_id=session_id, imported=len(body.messages), total=total)

    return router
