"""The stored state of one assistant-mode job: server-side ids, polling, tool rounds.

Pure data: nothing here knows Celery, Redis or the openai client. A RunState is stored
in Redis (``keys.run_state``) and replaced only by compare-and-set on ``version``,
exactly like the chat turn's TurnState.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from producer.contracts import (
    SCHEMA_VERSION,
    ChatRequest,
    Protocol,
    ToolCall,
    ToolOutput,
    Usage,
)

# starting: server-side objects are being created (ids are saved as they appear)
# polling:  a run/response is in progress; the job is in the due set
# tools:    the run waits for tool outputs; a tool fan-out is (being) dispatched
# approval: some calls of the round wait for a person (worker/approval.py); not polled
# done:     the job ended (``outcome`` says how); only finishing it remains
RunPhase = Literal["starting", "polling", "tools", "approval", "done"]
Outcome = Literal["succeeded", "failed"]

POLL_BACKOFF = 1.5
"""Each poll that finds the run still in progress waits this much longer than the last."""


class RunState(BaseModel):
    """Progress of one assistant run, stored between tasks."""

    schema_version: int = SCHEMA_VERSION
    version: int = 0
    job_id: str
    session_id: str
    protocol: Protocol
    request: ChatRequest
    model: str
    tool_names: list[str]
    created_at: float
    deadline_at: float | None = None
    # Server-side objects
    files: dict[str, str] = Field(default_factory=dict)  # uploaded by us: {file_id: name}
    assistant_id: str | None = None
    thread_id: str | None = None
    message_id: str | None = None
    run_id: str | None = None
    response_id: str | None = None
    previous_response_id: str | None = None  # the session's last response when we started
    # Polling
    phase: RunPhase = "starting"
    polls: int = 0
    interval: float = 0.5  # countdown before the next poll while the run is in progress
    next_poll_at: float = 0.0
    last_status: str | None = None
    api_errors: int = 0  # consecutive transient API errors while polling
    # Tool rounds
    tool_rounds: int = 0
    function_calls: int = 0
    refused_rounds: int = 0
    pending_calls: list[ToolCall] = Field(default_factory=list)
    refused: dict[str, ToolOutput] = Field(default_factory=dict)
    # Human approval: tools that need it, calls awaiting a decision, outputs known early
    approval_tools: list[str] = Field(default_factory=list)
    awaiting: list[str] = Field(default_factory=list)
    settled: dict[str, ToolOutput] = Field(default_factory=dict)
    sources: list[ToolOutput] = Field(default_factory=list)
    # Outcome
    usage: Usage = Field(default_factory=Usage)
    response: str | None = None
    outcome: Outcome | None = None
    error: str | None = None

    @property
    def server_object(self) -> str | None:
        """The id of the thing that runs server-side: the run or the response."""
        return self.run_id if self.protocol == "assistants" else self.response_id

    def runnable_calls(self) -> list[ToolCall]:
        """Pending calls that the budget allows to run and whose output is not known yet."""
        return [
            call for call in self.pending_calls
            if call.id not in self.refused and call.id not in self.settled
        ]

    def next_version(self) -> RunState:
        """A copy with the version bumped: the start of every transition.

        The containers a transition may change are copied; the request is shared (it is
        never changed). Cheaper than a deep copy, which polls would pay for every time.
        """
        return self.model_copy(update={
            "version": self.version + 1,
            "files": dict(self.files),
            "pending_calls": list(self.pending_calls),
            "refused": dict(self.refused),
            "awaiting": list(self.awaiting),
            "settled": dict(self.settled),
            "sources": list(self.sources),
        })


def new_run_state(
    *,
    job_id: str,
    request: ChatRequest,
    model: str,
    tool_names: list[str],
    created_at: float,
    approval_tools: list[str] | None = None,
) -> RunState:
    """The state of a job whose server-side objects are about to be created."""
    deadline = (
        created_at + request.deadline_seconds if request.deadline_seconds is not None else None
    )
    return RunState(
        job_id=job_id,
        session_id=request.session_id,
        protocol=request.protocol,
        request=request,
        model=model,
        tool_names=tool_names,
        approval_tools=approval_tools or [],
        created_at=created_at,
        deadline_at=deadline,
        interval=request.poll_interval,
    )
