"""Messages shared by producer and worker.

This package is the contract between the two sides. It imports only pydantic and the
standard library, so a producer can use it without the worker's dependencies.
Every stored document carries ``schema_version`` so a later release can migrate it.

The contracts are split by what they describe (``common``: names, patterns and the small
messages; ``request``: what a producer submits; ``records``: registry entries, job
records, events, approvals); import them from here, the one place of the contract.
"""

from __future__ import annotations

from producer.contracts.common import (
    BUILTIN_ASSISTANT_TOOLS,
    JOB_ID_PATTERN,
    SCHEMA_VERSION,
    SESSION_ID_PATTERN,
    TASK_ABORT_RUN,
    TASK_ABORT_TURN,
    TASK_APPROVAL_RESUME,
    TASK_APPROVAL_SWEEP,
    TASK_EXPIRE_JOB,
    TASK_MODEL_STEP,
    TASK_POLL_RUN,
    TASK_SESSION_HISTORY,
    TASK_SESSION_RESET,
    TASK_START_RUN,
    TASK_START_TURN,
    TASK_SUBMIT_TOOL_OUTPUTS,
    TASK_TOOL_RUN,
    TASK_WEBHOOK_DELIVER,
    TOOL_CHOICE_MODES,
    TOOL_NAME_PATTERN,
    ChatMessage,
    JobStatus,
    Mode,
    Protocol,
    Strict,
    ToolCall,
    ToolOutput,
    Usage,
    default_deadline_seconds,
    describe_validation_error,
    function_tool,
    max_deadline_seconds,
    max_message_chars,
)
from producer.contracts.records import (
    DEFAULT_TOOL_QUEUE,
    TOOL_QUEUE_PATTERN,
    Approval,
    ApprovalDecision,
    EventKind,
    JobEvent,
    JobResult,
    ToolEntry,
    ToolSpec,
)
from producer.contracts.request import (
    AssistantSpec,
    ChatRequest,
    StartTurn,
)

__all__ = [
    "BUILTIN_ASSISTANT_TOOLS",
    "DEFAULT_TOOL_QUEUE",
    "JOB_ID_PATTERN",
    "SCHEMA_VERSION",
    "SESSION_ID_PATTERN",
    "TASK_ABORT_RUN",
    "TASK_ABORT_TURN",
    "TASK_APPROVAL_RESUME",
    "TASK_APPROVAL_SWEEP",
    "TASK_EXPIRE_JOB",
    "TASK_MODEL_STEP",
    "TASK_POLL_RUN",
    "TASK_SESSION_HISTORY",
    "TASK_SESSION_RESET",
    "TASK_START_RUN",
    "TASK_START_TURN",
    "TASK_SUBMIT_TOOL_OUTPUTS",
    "TASK_TOOL_RUN",
    "TASK_WEBHOOK_DELIVER",
    "TOOL_CHOICE_MODES",
    "TOOL_NAME_PATTERN",
    "TOOL_QUEUE_PATTERN",
    "Approval",
    "ApprovalDecision",
    "AssistantSpec",
    "ChatMessage",
    "ChatRequest",
    "EventKind",
    "JobEvent",
    "JobResult",
    "JobStatus",
    "Mode",
    "Protocol",
    "StartTurn",
    "Strict",
    "ToolCall",
    "ToolEntry",
    "ToolOutput",
    "ToolSpec",
    "Usage",
    "default_deadline_seconds",
    "describe_validation_error",
    "function_tool",
    "max_deadline_seconds",
    "max_message_chars",
]
