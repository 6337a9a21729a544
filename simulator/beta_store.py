"""In-memory store of the Assistants API objects: assistants, threads, messages, runs.

One lock guards everything; each operation is short (no sleeps, no I/O). Runs advance
lazily (:mod:`simulator.run_state`) whenever they are read. At most ``max_threads``
threads are kept (the oldest, with its runs, is dropped first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from simulator.common import new_id, not_found
from simulator.errors import bad_request
from simulator.run_state import Run, advance

MAX_THREADS = 100_000
MAX_ASSISTANTS = 10_000


@dataclass
class Assistant:
    id: str
    created_at: int
    model: str
    fields: dict[str, Any]  # name, description, instructions, tools, metadata, ...

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "assistant",
            "created_at": self.created_at,
            "model": self.model,
            **self.fields,
        }


@dataclass(frozen=True)
class MessageSpec:
    """A validated message to add: ``content`` already in the output block shape."""

    role: str
    content: list[dict[str, Any]]
    text: str
    attachments: list[dict[str, Any]]
    metadata: dict[str, str]


@dataclass
class ThreadMessage:
    id: str
    thread_id: str
    created_at: int
    spec: MessageSpec
    assistant_id: str | None = None
    run_id: str | None = None

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "thread.message",
            "created_at": self.created_at,
            "thread_id": self.thread_id,
            "role": self.spec.role,
            "content": self.spec.content,
            "attachments": self.spec.attachments,
            "metadata": self.spec.metadata,
            "assistant_id": self.assistant_id,
            "run_id": self.run_id,
            "status": "completed",
            "completed_at": self.created_at,
            "incomplete_at": None,
            "incomplete_details": None,
        }


@dataclass
class Thread:
    id: str
    created_at: int
    metadata: dict[str, str]
    tool_resources: Any
    messages: list[ThreadMessage] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "thread",
            "created_at": self.created_at,
            "metadata": self.metadata,
            "tool_resources": self.tool_resources,
        }

    def chat_messages(self) -> list[dict[str, Any]]:
        return [{"role": m.spec.role, "content": m.spec.text} for m in self.messages]


def text_message_spec(text: str) -> MessageSpec:
    return MessageSpec(
        role="assistant",
        content=[{"type": "text", "text": {"value": text, "annotations": []}}],
        text=text,
        attachments=[],
        metadata={},
    )


class BetaStore:
    def __init__(self, max_threads: int = MAX_THREADS) -> None:
        self.lock = threading.RLock()
        self._max_threads = max_threads
        self.assistants: OrderedDict[str, Assistant] = OrderedDict()
        self.threads: OrderedDict[str, Thread] = OrderedDict()
        self.runs: dict[str, Run] = {}

    # -- assistants -----------------------------------------------------------------------
    def add_assistant(self, model: str, fields: dict[str, Any]) -> Assistant:
        assistant = Assistant(new_id("asst_"), int(time.time()), model, fields)
        with self.lock:
            self.assistants[assistant.id] = assistant
            while len(self.assistants) > MAX_ASSISTANTS:
                self.assistants.popitem(last=False)
        return assistant

    def assistant(self, assistant_id: str) -> Assistant:
        with self.lock:
            found = self.assistants.get(assistant_id)
        if found is None:
            raise not_found("assistant", assistant_id)
        return found

    # -- threads and messages -------------------------------------------------------------
    def add_thread(
        self, metadata: dict[str, str], tool_resources: Any, messages: list[MessageSpec]
    ) -> Thread:
        now = int(time.time())
        thread = Thread(new_id("thread_"), now, metadata, tool_resources)
        thread.messages = [ThreadMessage(new_id("msg_"), thread.id, now, m) for m in messages]
        with self.lock:
            self.threads[thread.id] = thread
            while len(self.threads) > self._max_threads:
                _, dropped = self.threads.popitem(last=False)
                for run in dropped.runs:
                    self.runs.pop(run.id, None)
        return thread

    def thread(self, thread_id: str) -> Thread:
        """The thread (lock held by the caller or not: the object is shared)."""
        with self.lock:
            found = self.threads.get(thread_id)
        if found is None:
            raise not_found("thread", thread_id)
        return found

    def delete_thread(self, thread_id: str) -> None:
        with self.lock:
            thread = self.threads.pop(thread_id, None)
            if thread is None:
                raise not_found("thread", thread_id)
            for run in thread.runs:
                self.runs.pop(run.id, None)

    def active_run(self, thread: Thread, now: float) -> Run | None:
        """The thread's active run after settling it (caller holds the lock)."""
        if thread.runs:
            last = thread.runs[-1]
            self.settle(last, now)
            if last.active:
                return last
        return None

    def add_message(self, thread_id: str, spec: MessageSpec) -> ThreadMessage:
        with self.lock:
            thread = self.thread(thread_id)
            run = self.active_run(thread, time.time())
            if run is not None:
                raise bad_request(
                    f"Can't add messages to {thread_id} while a run {run.id} is active."
                )
            message = ThreadMessage(new_id("msg_"), thread_id, int(time.time()), spec)
            thread.messages.append(message)
            return message

    # -- runs -----------------------------------------------------------------------------
    def settle(self, run: Run, now: float) -> None:
        """Advance ``run`` to ``now``; a final answer becomes an assistant message."""
        answer = advance(run, now)
        if answer is not None:
            thread = self.threads.get(run.thread_id)
            if thread is not None:
                message = ThreadMessage(
                    new_id("msg_"),
                    thread.id,
                    int(run.ended_at or now),
                    text_message_spec(answer),
                    assistant_id=run.assistant_id,
                    run_id=run.id,
                )
                thread.messages.append(message)

    def run(self, thread_id: str, run_id: str) -> Run:
        """The run (not settled); 404 for an unknown thread or run."""
        with self.lock:
            thread = self.threads.get(thread_id)
            if thread is None:
                raise not_found("thread", thread_id)
            run = self.runs.get(run_id)
        if run is None or run.thread_id != thread_id:
            raise not_found("run", run_id)
        return run

    def add_run(self, thread: Thread, run: Run) -> None:
        """Attach ``run`` (caller holds the lock and checked for an active run)."""
        thread.runs.append(run)
        self.runs[run.id] = run
