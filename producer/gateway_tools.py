"""Gateway routes of the tool registry: ``GET /v1/tools``, and the 422 for a request that
names a tool no live worker serves (included by producer/gateway.py)."""

from __future__ import annotations

from fastapi import APIRouter

from producer.client import AgentClient
from producer.contracts import ChatRequest, ToolEntry
from producer.tool_registry import UnknownTools, check_submission


def tools_router(client: AgentClient) -> APIRouter:
    router = APIRouter(tags=["tools"])

    @router.get(
        "/tools", response_model=list[ToolEntry],  # under the gateway's /v1 prefix
        summary="The tools live workers serve: schemas, flags, queues and servers",
    )
    def list_tools() -> list[ToolEntry]:
        return client.tools()

    return router


def unknown_tools_refusal(client: AgentClient, request: ChatRequest) -> str | None:
    """Why the request cannot run (its unknown tools and the known ones), or None."""
    try:
        check_submission(client.jobs.redis, request.model_dump(mode="json"))
    except UnknownTools as exc:
        return str(exc)
    return None
