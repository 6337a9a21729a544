"""The request: what a producer submits (``ChatRequest``) and the start task's body."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from producer.contracts.common import (
    _TOOL_NAME_RE,
    JOB_ID_PATTERN,
    SCHEMA_VERSION,
    SESSION_ID_PATTERN,
    TOOL_CHOICE_MODES,
    ChatMessage,
    Mode,
    Protocol,
    Strict,
    _listed,
    max_deadline_seconds,
    max_message_chars,
)
from producer.request_params import (
    ContentPart,
    ImagePart,
    ModelParameters,
    TextPart,
    check_content_parts,
    content_chars,
)


class AssistantSpec(Strict):
    """The assistant of an assistant-mode request.

    Either a definition (like LlamaIndex's ``OpenAIAssistantAgent.from_new``): the worker
    creates one assistant per distinct definition and reuses it; or ``assistant_id`` of
    an existing assistant (like ``from_existing``).
    """

    assistant_id: str | None = Field(default=None, min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=256)
    instructions: str | None = Field(default=None, max_length=256_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    builtin_tools: list[Literal["code_interpreter", "file_search"]] = Field(
        default_factory=list,
        description="Built-in tools passed through to the server: code_interpreter, file_search.",
    )

    @model_validator(mode="after")
    def _existing_or_new(self) -> AssistantSpec:
        if self.assistant_id is not None and (
            self.name is not None or self.instructions is not None or self.builtin_tools
        ):
            raise ValueError(
                "give either assistant_id (an existing assistant) or a definition "
                "(name, instructions, builtin_tools), not both"
            )
        self.builtin_tools = list(dict.fromkeys(self.builtin_tools))
        return self


class ChatRequest(ModelParameters, Strict):
    """What a producer submits: one user turn in a session.

    ``mode="chat"`` runs the tool loop in the workers (Chat Completions);
    ``mode="assistant"`` starts a server-side run and polls it (``protocol``: the
    Responses API in background mode, or the Assistants API).
    """

    session_id: str = Field(
        pattern=SESSION_ID_PATTERN,
        description="Conversation id: memory, order and the assistant thread are per session",
    )
    message: str | list[ContentPart] = Field(
        description="The user's message: text, or a list of text and image_url parts"
    )
    tools: list[str] | None = Field(
        default=None, description="Allowed tool names; None means every registered tool."
    )
    system_prompt: str | None = Field(
        default=None, description="Sent first on every model call of the turn; never stored"
    )
    prefix_messages: list[ChatMessage] | None = Field(
        default=None,
        description="Messages sent before memory on every model call, instead of "
        "system_prompt; never stored",
    )
    model: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="Model name; default AGENT_MODEL of the workers",
    )
    max_function_calls: int = Field(
        default=5, ge=0, le=1000, description="Budget of individual tool calls in this turn"
    )
    tool_choice: str = Field(default="auto", description="auto, none, required or a tool name")
    token_limit: int | None = Field(
        default=None, gt=0,
        description="Tokens of history plus this turn sent to the model; default 75% of "
        "the model's context window (AGENT_CONTEXT_WINDOW(S) for models not built in)",
    )
    deadline_seconds: float | None = Field(
        default=None, gt=0, description="Fail the job past this many seconds after submission"
    )
    # Assistant mode
    mode: Mode = Field(
        default="chat",
        description="chat: the workers run the tool loop (Chat Completions); assistant: a "
        "server-side run that the workers poll",
    )
    protocol: Protocol = Field(
        default="responses",
        description="Assistant mode: the Responses API in background mode, or the "
        "Assistants API (threads and runs)",
    )
    assistant: AssistantSpec | None = Field(
        default=None, description="Assistant mode: an existing assistant, or its definition"
    )
    thread_id: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="Protocol assistants: continue this existing thread",
    )
    run_instructions: str | None = Field(
        default=None,
        description="Replaces the assistant's instructions for this run only",
    )
    file_ids: list[str] = Field(
        default_factory=list, max_length=100,
        description="Assistant mode: ids of uploaded files to attach",
    )
    files: list[str] = Field(
        default_factory=list, max_length=20,
        description="Paths readable by the workers; uploaded with purpose 'assistants'",
    )
    poll_interval: float = Field(
        default=0.5, ge=0.05, le=30,
        description="Assistant mode: seconds before the second poll of the run (it grows)",
    )
    require_approval: list[str] = Field(
        default_factory=list, max_length=100,
        description="Tools whose calls wait for a person's decision (besides those "
        "registered with requires_approval=True)",
    )
    approval_timeout_seconds: float | None = Field(
        default=None, gt=0,
        description="A call still undecided this long after it was asked counts as declined",
    )
    stream: bool = Field(
        default=False,
        description="Stream every model call; the text arrives as `delta` events (chat mode)",
    )

    @field_validator("message")
    @classmethod
    def _message_not_empty(
        cls, value: str | list[TextPart | ImagePart]
    ) -> str | list[TextPart | ImagePart]:
        if isinstance(value, list):
            check_content_parts(value)
        elif not value.strip():
            raise ValueError("message must not be empty")
        limit = max_message_chars()
        if content_chars(value) > limit:
            raise ValueError(
                f"message is {content_chars(value)} characters; the limit is {limit}"
            )
        return value

    @field_validator("tools")
    @classmethod
    def _tool_names_well_formed(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for name in value:
            if not _TOOL_NAME_RE.match(name):
                raise ValueError(f"invalid tool name {name!r}")
        return list(dict.fromkeys(value))  # drop repeats, keep order

    @field_validator("require_approval")
    @classmethod
    def _approval_names_well_formed(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _TOOL_NAME_RE.match(name):
                raise ValueError(f"invalid tool name {name!r}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _approval_names_allowed(self) -> ChatRequest:
        # Names outside the registry are refused by the worker (like unknown `tools`).
        allowed = self.tools
        unknown = [n for n in self.require_approval if allowed is not None and n not in allowed]
        if unknown:
            raise ValueError(f"require_approval: {_listed(unknown)} not among the allowed tools")
        return self

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice_known_form(cls, value: str) -> str:
        if value in TOOL_CHOICE_MODES or _TOOL_NAME_RE.match(value):
            return value
        raise ValueError("tool_choice must be auto, none, required or a tool name")

    @field_validator("prefix_messages")
    @classmethod
    def _prefix_roles(cls, value: list[ChatMessage] | None) -> list[ChatMessage] | None:
        for message in value or []:
            if message.role == "tool" or message.tool_calls:
                raise ValueError("prefix_messages may not contain tool calls or tool results")
        return value

    @field_validator("file_ids")
    @classmethod
    def _file_ids_well_formed(cls, value: list[str]) -> list[str]:
        for file_id in value:
            if not file_id or len(file_id) > 200 or not file_id.isprintable():
                raise ValueError(f"invalid file id {file_id!r}")
        return list(dict.fromkeys(value))

    @field_validator("files")
    @classmethod
    def _file_paths_plain(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path or "\x00" in path:
                raise ValueError(f"invalid file path {path!r}")
        return value

    @model_validator(mode="after")
    def _one_kind_of_prefix(self) -> ChatRequest:
        if self.system_prompt is not None and self.prefix_messages is not None:
            raise ValueError("give either system_prompt or prefix_messages, not both")
        forced = self.forced_tool
        if forced and self.tools is not None and forced not in self.tools:
            raise ValueError(f"tool_choice {forced!r} is not among the allowed tools")
        if self.deadline_seconds is not None and self.deadline_seconds > max_deadline_seconds():
            raise ValueError(
                f"deadline_seconds is {self.deadline_seconds:g}; "
                f"the limit is {max_deadline_seconds():g}"
            )
        self._fields_fit_mode()
        return self

    def _fields_fit_mode(self) -> None:
        if self.mode == "chat":
            assistant_only = [
                name for name in ("assistant", "thread_id", "run_instructions")
                if getattr(self, name) is not None
            ] + [name for name in ("file_ids", "files") if getattr(self, name)]
            if assistant_only:
                raise ValueError(f"{_listed(assistant_only)} only for mode 'assistant'")
            return
        chat_only = [
            name for name in ("system_prompt", "prefix_messages", "token_limit")
            if getattr(self, name) is not None
        ]
        if chat_only:
            raise ValueError(
                f"{_listed(chat_only)} only for mode 'chat'; in mode 'assistant' use "
                "assistant.instructions or run_instructions"
            )
        if self.model_parameters_set() or isinstance(self.message, list):
            named = self.model_parameters_set() or ["message as content parts"]
            raise ValueError(f"{_listed(named)} only for mode 'chat' (for now)")
        if self.stream:  # a background run is polled, not streamed (see README)
            raise ValueError("stream only for mode 'chat'; assistant mode does not stream")
        if self.thread_id is not None and self.protocol != "assistants":
            raise ValueError("thread_id only applies to protocol 'assistants'")

    @property
    def forced_tool(self) -> str | None:
        """The tool named by ``tool_choice``, or None for auto, none and required."""
        return None if self.tool_choice in TOOL_CHOICE_MODES else self.tool_choice

    def prefix(self) -> list[ChatMessage]:
        """Messages sent before memory on every model call; never stored."""
        if self.system_prompt is not None:
            return [ChatMessage(role="system", content=self.system_prompt)]
        return list(self.prefix_messages or [])


class StartTurn(Strict):
    """Body of the ``agents.turn.start`` task message."""

    schema_version: int = SCHEMA_VERSION
    job_id: str = Field(pattern=JOB_ID_PATTERN)
    request: ChatRequest
    deadline_at: float | None = Field(
        default=None, description="Unix time past which the job fails with a timeout"
    )

