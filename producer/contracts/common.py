"""Names, patterns, limits and the small messages every other contract is built from."""

from __future__ import annotations

import os
import re
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
)

from producer.request_params import (
    ContentPart,
)

SCHEMA_VERSION = 1

# Task names are part of the contract: producers enqueue by name, never by import.
TASK_START_TURN = "agents.turn.start"
TASK_MODEL_STEP = "agents.model.step"
TASK_TOOL_RUN = "agents.tool.run"
TASK_ABORT_TURN = "agents.turn.abort"
TASK_EXPIRE_JOB = "agents.job.expire"
# Assistant runs (server-side runs polled by self-rescheduling tasks).
TASK_START_RUN = "agents.run.start"
TASK_POLL_RUN = "agents.run.poll"
TASK_SUBMIT_TOOL_OUTPUTS = "agents.run.submit_outputs"
TASK_ABORT_RUN = "agents.run.abort"  # errback of a run's tool fan-out
TASK_SESSION_HISTORY = "agents.session.history"
TASK_SESSION_RESET = "agents.session.reset"
TASK_WEBHOOK_DELIVER = "agents.webhook.deliver"  # POST a finished job to its webhook_url
# Human approval of tool calls: resume a job once its calls are decided; time out waits.
TASK_APPROVAL_RESUME = "agents.approval.resume"
TASK_APPROVAL_SWEEP = "agents.approval.sweep"

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
TOOL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
JOB_ID_PATTERN = r"^[A-Za-z0-9-]{8,64}$"
TOOL_CHOICE_MODES = ("auto", "none", "required")
BUILTIN_ASSISTANT_TOOLS = ("code_interpreter", "file_search")
Mode = Literal["chat", "assistant"]
Protocol = Literal["responses", "assistants"]
_TOOL_NAME_RE = re.compile(TOOL_NAME_PATTERN)


def max_message_chars() -> int:
    """Longest user message accepted (``AGENT_MAX_MESSAGE_CHARS``, default 32000)."""
    return int(os.environ.get("AGENT_MAX_MESSAGE_CHARS", "32000"))


def max_deadline_seconds() -> float:
    """Longest per-job deadline accepted (``AGENT_MAX_JOB_DEADLINE``, default 86400)."""
    return float(os.environ.get("AGENT_MAX_JOB_DEADLINE", "86400"))


def default_deadline_seconds() -> float:
    """Deadline of a job that names none (``AGENT_JOB_DEADLINE``, default 900; 0: none)."""
    return float(os.environ.get("AGENT_JOB_DEADLINE", "900"))


def describe_validation_error(
    error: ValidationError, separator: str = "; ", root: str = "request"
) -> str:
    """One ``field.path: problem`` entry per error, joined by ``separator``.

    ``root`` names the whole object when an error has no field path.
    """
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or root
        message = " ".join(str(item["msg"]).split())  # one line each
        parts.append(f"{where}: {message}")
    return separator.join(parts)


def _listed(names: list[str]) -> str:
    return f"{', '.join(names)} {'is' if len(names) == 1 else 'are'}"


def function_tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """A tool's entry in the ``tools`` list of a chat completions request."""
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


class Strict(BaseModel):
    """Base for wire messages: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ToolCall(Strict):
    """One function call requested by the model. ``arguments`` is the raw JSON text."""

    id: str
    name: str
    arguments: str


class ChatMessage(Strict):
    """One message as stored in memory and sent to the model."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None  # a list: text and image_url parts
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None




class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    WAITING_APPROVAL = "waiting_approval"  # a turn waits for a person's decisions

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Usage(Strict):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def plus(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class ToolOutput(Strict):
    """The outcome of one tool call, as returned to the model and listed in sources."""

    tool_name: str
    tool_call_id: str
    arguments: str
    content: str
    is_error: bool = False

