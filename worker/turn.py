"""Pure turn logic of a chat job: state + model reply -> what happens next.

Nothing here knows Celery or Redis. The tasks load a TurnState, call one of the
transition functions, save the new state and enqueue what its ``phase`` says.
The behaviour re-creates LlamaIndex's ``OpenAIAgent`` with its rough edges fixed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from producer.contracts import (
    SCHEMA_VERSION,
    Approval,
    ChatMessage,
    ChatRequest,
    ToolCall,
    ToolOutput,
    Usage,
)
from worker.approval import calls_awaiting, settle
from worker.memory_window import MessageCounter, select_window
from worker.model_params import call_options
from worker.tool_outputs import budget_refusal

# approval: some calls wait for a person (worker/approval.py); no task runs meanwhile.
Phase = Literal["model", "tools", "approval", "done"]


class ModelReply(BaseModel):
    """What one chat completion returned, reduced to what the turn needs."""

    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)


class ModelCall(BaseModel):
    """Everything one chat completion request sends."""

    model: str
    messages: list[ChatMessage]
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    # The request's model parameters (temperature, ...), only those it set.
    options: dict[str, Any] = Field(default_factory=dict)


class TurnState(BaseModel):
    """Progress of one turn, stored in Redis between tasks.

    ``step`` counts model replies applied so far. ``phase`` says what comes next:
    another model call, the pending tool calls, or the end of the turn.
    ``version`` increases with every saved transition so that a duplicate task
    cannot overwrite newer progress.
    """

    schema_version: int = SCHEMA_VERSION
    version: int = 0
    job_id: str
    session_id: str
    request: ChatRequest
    model: str
    token_limit: int
    tool_names: list[str]
    memory_length: int
    created_at: float = 0.0
    deadline_at: float | None = None
    step: int = 0
    phase: Phase = "model"
    messages: list[ChatMessage] = Field(default_factory=list)
    pending_calls: list[ToolCall] = Field(default_factory=list)
    refused: dict[str, ToolOutput] = Field(default_factory=dict)
    # Human approval: the tools whose calls need it, the calls of this round waiting for
    # a decision, and outputs known before the fan-out (declined calls, calls run early).
    approval_tools: list[str] = Field(default_factory=list)
    awaiting: list[str] = Field(default_factory=list)
    settled: dict[str, ToolOutput] = Field(default_factory=dict)
    sources: list[ToolOutput] = Field(default_factory=list)
    function_calls: int = 0
    usage: Usage = Field(default_factory=Usage)
    response: str | None = None

    def runnable_calls(self) -> list[ToolCall]:
        """Pending calls that the budget allows to run and whose output is not known yet."""
        return [
            call for call in self.pending_calls
            if call.id not in self.refused and call.id not in self.settled
        ]


def successor(state: TurnState) -> TurnState:
    """A copy of ``state`` to build the next transition on.

    Its lists and dicts are new, so appending to them leaves ``state`` as it was; the
    messages, calls and outputs inside are shared, since no transition changes one once
    made. (A deep copy of the whole state cost 6% of the agents worker's CPU.)
    """
    return state.model_copy(update={
        "messages": list(state.messages),
        "pending_calls": list(state.pending_calls),
        "refused": dict(state.refused),
        "approval_tools": list(state.approval_tools),
        "awaiting": list(state.awaiting),
        "settled": dict(state.settled),
        "sources": list(state.sources),
    })


def new_turn(
    job_id: str,
    request: ChatRequest,
    model: str,
    token_limit: int,
    tool_names: list[str],
    memory_length: int,
    created_at: float = 0.0,
    deadline_at: float | None = None,
    approval_tools: list[str] | None = None,
) -> TurnState:
    """The state of a turn that is about to make its first model call."""
    return TurnState(
        job_id=job_id,
        session_id=request.session_id,
        request=request,
        model=model,
        token_limit=token_limit,
        tool_names=tool_names,
        memory_length=memory_length,
        created_at=created_at,
        deadline_at=deadline_at,
        approval_tools=approval_tools or [],
        messages=[ChatMessage(role="user", content=request.message)],
    )


def tool_choice_for(state: TurnState) -> str | dict[str, Any]:
    """The tool_choice of the next model call.

    A spent budget forces ``none`` so the turn ends with a real answer. The requested
    choice applies to the first call only; later calls are ``auto``, otherwise a
    forced function would be called again and again.
    """
    if state.function_calls >= state.request.max_function_calls:
        return "none"
    if state.step > 0:
        return "auto"
    forced = state.request.forced_tool
    if forced is None:
        return state.request.tool_choice
    return {"type": "function", "function": {"name": forced}}


def build_model_call(
    state: TurnState,
    history: Sequence[ChatMessage],
    tool_schemas: list[dict[str, Any]],
    count: MessageCounter,
    bound: MessageCounter | None = None,
) -> ModelCall:
    """Prefix + the memory window that fits + this turn's messages + tool schemas.

    ``bound``: a cheap count that is never below ``count``. When every message fits at
    its bound, exact counts would fit them all too and choose the same window, so
    ``count`` (a tokenizer) is not needed at all.
    """
    prefix = state.request.prefix()
    if bound is not None and sum(map(bound, [*prefix, *state.messages, *history])) <= (
        state.token_limit
    ):
        count = bound
    fixed_cost = sum(count(m) for m in prefix) + sum(count(m) for m in state.messages)
    window = select_window(history, max(state.token_limit - fixed_cost, 0), count)
    call = ModelCall(model=state.model, messages=[*prefix, *window, *state.messages])
    if tool_schemas:  # no tools -> neither tools nor tool_choice is sent
        call.tools = tool_schemas
        call.tool_choice = tool_choice_for(state)
    call.options = call_options(state.request, with_tools=bool(tool_schemas))
    return call


def apply_model_reply(state: TurnState, reply: ModelReply) -> TurnState:
    """Record a model reply; the new phase is ``tools`` or ``done``."""
    new = successor(state)
    new.step += 1
    new.version += 1
    new.usage = new.usage.plus(reply.usage)
    if not reply.tool_calls:
        new.messages.append(ChatMessage(role="assistant", content=reply.content or ""))
        new.response = reply.content or ""
        new.phase = "done"
        return new
    new.messages.append(
        ChatMessage(role="assistant", content=reply.content, tool_calls=list(reply.tool_calls))
    )
    budget = new.request.max_function_calls
    remaining = max(budget - new.function_calls, 0)
    new.pending_calls = list(reply.tool_calls)
    # Every call gets an output, so memory never holds a call without its result.
    new.refused = {c.id: budget_refusal(c, budget, "turn") for c in reply.tool_calls[remaining:]}
    new.awaiting = calls_awaiting(new.runnable_calls(), new.approval_tools)
    new.phase = "approval" if new.awaiting else "tools"
    return new


def apply_decisions(
    state: TurnState, decisions: Mapping[str, Approval], early: Mapping[str, ToolOutput]
) -> TurnState:
    """Every awaited call is decided and the calls run early have outputs: declined calls
    and early outputs are settled, approved calls run next (phase ``tools``).

    Raises ValueError when a decision or an early output is missing."""
    new = successor(state)
    new.version += 1
    new.settled = settle(state.runnable_calls(), state.awaiting, decisions, early)
    new.awaiting = []
    new.phase = "tools"
    return new


def apply_tool_outputs(
    state: TurnState, outputs: Sequence[ToolOutput], return_direct_tools: Collection[str]
) -> TurnState:
    """Record the outputs of the runnable calls (in call order); next is ``model`` or ``done``."""
    runnable = state.runnable_calls()
    by_id = {o.tool_call_id: o for o in outputs}
    missing = [c.id for c in runnable if c.id not in by_id]
    if missing:
        raise ValueError(f"tool outputs missing for calls {missing}")
    new = successor(state)
    new.version += 1
    known = {**state.refused, **state.settled}
    ordered = [by_id.get(c.id) or known[c.id] for c in state.pending_calls]
    for output in ordered:
        new.messages.append(
            ChatMessage(role="tool", content=output.content, tool_call_id=output.tool_call_id)
        )
    new.sources.extend(ordered)
    new.function_calls += len(runnable) + len(state.settled)
    new.pending_calls = []
    new.refused = {}
    new.settled = {}
    only = ordered[0] if len(ordered) == 1 else None
    if only and only.tool_name in return_direct_tools and not only.is_error:
        # return_direct: the tool's output is the answer; no further model call.
        new.messages.append(ChatMessage(role="assistant", content=only.content))
        new.response = only.content
        new.phase = "done"
    else:
        new.phase = "model"
    return new
