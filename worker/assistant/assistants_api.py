"""The Assistants API (``client.beta``): assistant, thread, message, run.

One assistant per distinct definition (name, instructions, model, tools, server), created
once and remembered in Redis; a request may name an existing ``assistant_id`` instead.
One thread per session (or the request's ``thread_id``). ``run_instructions`` are sent as
the run's ``instructions``, which *replace* the assistant's instructions for that run
(LlamaIndex passed its ``instructions_prefix`` the same way).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import openai

from producer.contracts import ChatMessage, ToolCall, ToolOutput, Usage
from worker.assistant.api import classified, is_not_found
from worker.assistant.logic import RunSnapshot
from worker.assistant.protocol import Save, Schemas, function_tools
from worker.assistant.state import RunState
from worker.assistant.store import RunStore
from worker.model_client import ModelError

if TYPE_CHECKING:  # the Assistants types (13 MB) load only when the API is used
    from openai.types.beta.threads import Message

TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
DEFAULT_ASSISTANT_NAME = "celery-agents"


class AssistantBeingCreated(ModelError):
    """Another job is creating the assistant of this definition right now.

    The start tries again shortly, as a task retry that is no failed attempt: the wait
    ends when the other job stores the id, or when its creation lock lapses and this
    job may create the assistant itself."""

    RETRY_SECONDS = 0.25

    def __init__(self) -> None:
        super().__init__("the assistant is being created by another job",
                         retry_after=self.RETRY_SECONDS)


class AssistantsAdapter:
    def __init__(self, client: openai.OpenAI, store: RunStore, schemas: Schemas) -> None:
        self.client = client
        self.store = store
        self.schemas = schemas  # built only when needed (not for a poll)

    # Starting a run
    def create(self, state: RunState, save: Save) -> RunState:
        if state.assistant_id is None:
            new = state.next_version()
            new.assistant_id = self._assistant(state)
            state = save(new)
        if state.thread_id is None:
            new = state.next_version()
            new.thread_id = self._thread(state)
            state = save(new)
        if state.message_id is None:
            new = state.next_version()
            new.message_id = self._message(state)
            state = save(new)
        assert state.thread_id is not None and state.assistant_id is not None
        params: dict[str, Any] = {
            "assistant_id": state.assistant_id, "metadata": {"job_id": state.job_id},
        }
        request = state.request
        if request.run_instructions is not None:
            params["instructions"] = request.run_instructions  # replaces, for this run
        if request.model is not None:
            params["model"] = request.model
        if request.forced_tool:
            params["tool_choice"] = {"type": "function", "function": {"name": request.forced_tool}}
        elif request.tool_choice != "auto":
            params["tool_choice"] = request.tool_choice
        with classified("creating the run"):
            run = self.client.beta.threads.runs.create(state.thread_id, **params)
        new = state.next_version()
        new.run_id = run.id
        return new

    def definition(self, state: RunState) -> dict[str, Any]:
        spec = state.request.assistant
        tools: list[dict[str, Any]] = function_tools(self.schemas())
        tools += [{"type": name} for name in (spec.builtin_tools if spec else [])]
        return {
            "name": (spec.name if spec else None) or DEFAULT_ASSISTANT_NAME,
            "instructions": spec.instructions if spec else None,
            "model": (spec.model if spec else None) or state.model,
            "tools": tools,
        }

    def _assistant(self, state: RunState) -> str:
        spec = state.request.assistant
        if spec is not None and spec.assistant_id is not None:
            return spec.assistant_id
        definition = self.definition(state)
        canonical = json.dumps([str(self.client.base_url), definition], sort_keys=True)
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        outcome, known = self.store.claim_assistant(digest, state.job_id)
        if known is not None:
            return known
        if outcome == "wait":
            raise AssistantBeingCreated()
        params = {k: v for k, v in definition.items() if v is not None}
        with classified("creating the assistant"):
            assistant = self.client.beta.assistants.create(**params)
        return self.store.remember_assistant(digest, assistant.id)

    def _thread(self, state: RunState) -> str:
        explicit = state.request.thread_id
        if explicit is not None:
            return self.store.claim_thread(state.session_id, explicit, replace=True)
        known = self.store.session(state.session_id).thread_id
        if known:
            return known
        with classified("creating the thread"):
            thread = self.client.beta.threads.create(metadata={"session_id": state.session_id})
        return self.store.claim_thread(state.session_id, thread.id)

    def _message(self, state: RunState) -> str:
        assert state.thread_id is not None
        request = state.request
        file_ids = [*request.file_ids, *state.files]
        params: dict[str, Any] = {
            "role": "user", "content": request.message, "metadata": {"job_id": state.job_id},
        }
        if file_ids:
            params["attachments"] = [
                {"file_id": f, "tools": [{"type": "file_search"}]} for f in file_ids
            ]
        with classified("adding the message"):
            message = self.client.beta.threads.messages.create(state.thread_id, **params)
        return message.id

    # Polling, tool outputs, cancelling
    def retrieve(self, state: RunState) -> RunSnapshot:
        assert state.run_id is not None and state.thread_id is not None
        with classified("retrieving the run"):  # raw JSON: cheaper than the typed model
            raw = self.client.beta.threads.runs.with_raw_response.retrieve(
                state.run_id, thread_id=state.thread_id
            )
            run = raw.http_response.json()
        text = self.newest_text(state) if run.get("status") == "completed" else None
        return snapshot(run, text)

    def newest_text(self, state: RunState) -> str | None:
        assert state.thread_id is not None
        with classified("reading the run's messages"):
            page = self.client.beta.threads.messages.list(
                state.thread_id, order="desc", limit=20, run_id=state.run_id or openai.omit
            )
        for message in page.data:
            if message.role == "assistant":
                return message_text(message) or None
        return None

    def submit(self, state: RunState, outputs: Sequence[ToolOutput]) -> str | None:
        assert state.run_id is not None and state.thread_id is not None
        with classified("submitting tool outputs"):
            self.client.beta.threads.runs.submit_tool_outputs(
                state.run_id,
                thread_id=state.thread_id,
                tool_outputs=[
                    {"tool_call_id": o.tool_call_id, "output": o.content} for o in outputs
                ],
            )
        return None

    def cancel(self, state: RunState) -> None:
        if state.run_id is None or state.thread_id is None:
            return
        with classified("cancelling the run"):
            self.client.beta.threads.runs.cancel(state.run_id, thread_id=state.thread_id)

    # Sessions
    def history(self, thread_id: str) -> list[ChatMessage]:
        """The thread's messages, oldest first, text blocks joined."""
        with classified("reading the thread"):
            messages = list(
                self.client.beta.threads.messages.list(thread_id, order="asc", limit=100)
            )
        return [
            ChatMessage(role="assistant" if m.role == "assistant" else "user",
                        content=message_text(m))
            for m in messages
        ]

    def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread server-side; False when it was gone already."""
        try:
            with classified("deleting the thread"):
                self.client.beta.threads.delete(thread_id)
        except ModelError as exc:
            if is_not_found(exc):
                return False
            raise
        return True


def message_text(message: Message) -> str:
    return "\n".join(block.text.value for block in message.content if block.type == "text")


def snapshot(run: dict[str, Any], text: str | None) -> RunSnapshot:
    """A run (its JSON, as the API returns it) in protocol-neutral terms."""
    status = str(run.get("status"))
    calls: tuple[ToolCall, ...] = ()
    action = run.get("required_action") or {}
    if status == "requires_action" and action:
        calls = tuple(
            ToolCall(id=c["id"], name=c["function"]["name"],
                     arguments=c["function"].get("arguments") or "")
            for c in action["submit_tool_outputs"]["tool_calls"]
        )
    error = None
    if run.get("last_error"):
        error = f"{run['last_error'].get('code')}: {run['last_error'].get('message')}"
    elif (run.get("incomplete_details") or {}).get("reason"):
        error = str(run["incomplete_details"]["reason"])
    usage = None
    counts = run.get("usage")
    if counts and status in TERMINAL:
        usage = Usage(
            prompt_tokens=counts.get("prompt_tokens", 0),
            completion_tokens=counts.get("completion_tokens", 0),
            total_tokens=counts.get("total_tokens", 0),
        )
    return RunSnapshot(status=status, tool_calls=calls, error=error, usage=usage, text=text)
