"""Gateway routes for human approval: list a job's approvals, decide one.

Included by one line in producer/gateway.py. Every route needs a bearer token when the
gateway has one: the gateway's own (``AGENT_GATEWAY_TOKEN``, recorded as the decider
under ``AGENT_GATEWAY_TOKEN_NAME``, default ``gateway``) or a named approver token from
``AGENT_GATEWAY_APPROVER_TOKENS`` (``name=token,name=token``). The decider recorded in
the event is the token's name; never anything from the request body or the model.
"""

# No ``from __future__ import annotations``: FastAPI must see the dependency annotations
# of the routes below, which name local functions, as objects.
import os
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producer.approvals import ApprovalError
from producer.client import AgentClient
from producer.contracts import JOB_ID_PATTERN, Approval, ApprovalDecision
from producer.gateway_support import ErrorBody

JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="a job id from POST /v1/jobs")]
ANONYMOUS = "gateway"  # the decider's name on a gateway without tokens


def approver_tokens(main_token: str | None) -> dict[str, str]:
    """Token -> name of everyone who may decide (empty: the gateway has no tokens)."""
    tokens: dict[str, str] = {}
    if main_token:
        tokens[main_token] = os.environ.get("AGENT_GATEWAY_TOKEN_NAME") or ANONYMOUS
    for item in os.environ.get("AGENT_GATEWAY_APPROVER_TOKENS", "").split(","):
        name, sep, token = item.strip().partition("=")
        if sep and name and token:
            tokens[token] = name
    return tokens


def approvals_router(client: AgentClient, main_token: str | None) -> APIRouter:
    tokens = approver_tokens(main_token)
    bearer = HTTPBearer(auto_error=False, description="AGENT_GATEWAY_TOKEN or an approver token")

    def decider(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        if not tokens:
            return ANONYMOUS
        given = (credentials.credentials if credentials is not None else "").encode()
        # Compare with every token (no early exit), so timing tells nothing.
        found = [name for token, name in tokens.items()
                 if secrets.compare_digest(given, token.encode())]
        if not found:
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        return found[0]

    errors: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorBody, "description": "missing or wrong bearer token"},
        404: {"model": ErrorBody, "description": "unknown job, or no such call waiting"},
    }
    router = APIRouter(prefix="/v1", responses=errors if tokens else {404: errors[404]})

    @router.get("/jobs/{job_id}/approvals", response_model=list[Approval],
                responses={404: errors[404]},
                summary="The job's tool calls that need approval, decided or not")
    def list_approvals(job_id: JobId, _: Annotated[str, Depends(decider)]) -> list[Approval]:
        if client.status(job_id) is None:
            raise HTTPException(404, f"unknown job {job_id}")
        return client.approvals(job_id)

    @router.post(
        "/jobs/{job_id}/approvals", response_model=Approval,
        responses={
            400: {"model": ErrorBody, "description": "the body is not parseable JSON"},
            409: {"model": ErrorBody,
                  "description": "the call was decided already, or the job ended"},
        },
        summary="Approve or decline a tool call that waits for approval",
    )
    def decide(
        job_id: JobId, body: ApprovalDecision, who: Annotated[str, Depends(decider)]
    ) -> Approval:
        try:
            return client.approve(job_id, body.call_id, approved=body.approved,
                                  reason=body.reason, decided_by=who)
        except ApprovalError as exc:
            raise HTTPException(exc.status_code, str(exc)) from None

    return router
