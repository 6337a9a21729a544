"""What the system records: the tool registry's entries, job records, events, approvals."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
)

from producer.contracts.common import (
    SCHEMA_VERSION,
    TOOL_NAME_PATTERN,
    JobStatus,
    Mode,
    Protocol,
    Strict,
    ToolOutput,
    Usage,
    function_tool,
)

# The tool registry (producer/tool_registry.py): what tools workers announce in Redis.
DEFAULT_TOOL_QUEUE = "tools"
TOOL_QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ToolSpec(Strict):
    """A tool as a tools worker announces it: everything but its code and secrets.

    Two workers serving one name must announce the same spec (compared by ``digest``).
    """

    schema_version: int = SCHEMA_VERSION
    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = ""
    parameters: dict[str, Any]
    return_direct: bool = False
    idempotent: bool = True
    time_limit: float | None = None
    requires_approval: bool = False
    queue: str = Field(default=DEFAULT_TOOL_QUEUE, pattern=TOOL_QUEUE_PATTERN)
    source: str = "python"  # "python", or "mcp:<server>" for a tool of an MCP server

    def digest(self) -> str:
        """Hash of the definition (all fields but the schema version)."""
        import hashlib
        import json

        body = self.model_dump(mode="json", exclude={"schema_version"})
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def openai_schema(self) -> dict[str, Any]:
        """The entry for the ``tools`` list of a chat completions request."""
        return function_tool(self.name, self.description, self.parameters)


class ToolEntry(ToolSpec):
    """A registry entry as listed: the spec and the workers serving it right now."""

    servers: list[str] = Field(default_factory=list)
    # Live workers announcing a different spec under this name, refused (a conflict).
    refused: list[str] = Field(default_factory=list)


class JobResult(Strict):
    """The job record: what ``status`` and ``wait`` return."""

    schema_version: int = SCHEMA_VERSION
    job_id: str
    session_id: str
    mode: Mode = "chat"
    protocol: Protocol | None = None
    status: JobStatus
    response: str | None = None
    parsed: Any = Field(
        default=None, description="The response parsed as JSON, with a JSON response_format"
    )
    metadata: dict[str, str] | None = Field(
        default=None, description="The request's metadata, stored with the job"
    )
    sources: list[ToolOutput] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
    model: str | None = None
    model_calls: int = 0
    created_at: float
    updated_at: float
    deadline_at: float | None = None
    # Assistant mode: the server-side objects, and uploaded files as {file_id: name}.
    assistant_id: str | None = None
    thread_id: str | None = None
    run_id: str | None = None
    response_id: str | None = None
    files: dict[str, str] = Field(default_factory=dict)


EventKind = Literal[
    "queued",
    "started",
    "model_call",
    "model_reply",
    "tool_started",
    "tool_finished",
    "run_created",
    "run_polled",
    "tool_outputs_submitted",
    "approval_required",  # detail: call_id, tool_name, arguments (one per pending call)
    "approval_decided",  # detail: call_id, tool_name, approved, reason, decided_by
    "delta",  # streamed text of a model step: detail {"text", "step"}
    "delta_reset",  # a step streams again from its start: drop what it showed so far
    "succeeded",
    "failed",
    "cancelled",
]


class JobEvent(Strict):
    """One progress event of a job, appended to the job's event stream."""

    job_id: str
    kind: EventKind
    at: float
    step: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.kind in ("succeeded", "failed", "cancelled")


class ApprovalDecision(Strict):
    """A person's decision on one pending tool call (the gateway's request body)."""

    call_id: str = Field(min_length=1, max_length=200)
    approved: bool = True
    reason: str | None = Field(default=None, max_length=2000)


class Approval(Strict):
    """One tool call that needs a decision, and the decision once made (stored per call)."""

    job_id: str
    call_id: str
    tool_name: str
    arguments: str
    position: int = 0  # the call's place in its model reply
    requested_at: float
    timeout_at: float | None = None
    decided: bool = False
    approved: bool | None = None
    reason: str | None = None
    decided_by: str | None = None
    decided_at: float | None = None
