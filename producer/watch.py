"""``celery-agents watch JOB``: follow a job's events live with a progress display.

The same events the gateway streams. Each event prints as a line (see
:mod:`producer.progress`); on a terminal a status line under them shows the model step,
the tools in flight, the polls of a server-side run and the elapsed time.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from producer.client import AgentClient
from producer.contracts import JobEvent
from producer.exit_codes import EXIT_TIMEOUT, EXIT_UNKNOWN_JOB, exit_code_for
from producer.progress import describe_event, describe_result


@dataclass
class Progress:
    """What a job is doing now, folded from its events."""

    started_at: float | None = None
    step: int | None = None
    model_calls: int = 0
    tools_in_flight: dict[str, str] = field(default_factory=dict)  # tool_call_id -> tool
    tools_done: int = 0
    tool_errors: int = 0
    polls: int = 0
    awaiting: dict[str, str] = field(default_factory=dict)  # call_id -> tool (approvals)
    state: str = "waiting"

    def apply(self, event: JobEvent) -> None:
        d = event.detail
        if self.started_at is None:
            self.started_at = event.at
        if event.step is not None:
            self.step = event.step
        match event.kind:
            case "model_call":
                self.model_calls += 1
                self.state = "calling the model"
            case "tool_started":
                self.tools_in_flight[str(d.get("tool_call_id"))] = str(d.get("tool"))
                self.state = "running tools"
            case "tool_finished":
                self.tools_in_flight.pop(str(d.get("tool_call_id")), None)
                self.tools_done += 1
                self.tool_errors += bool(d.get("is_error"))
            case "approval_required":
                self.awaiting[str(d.get("call_id"))] = str(d.get("tool_name"))
                self.state = "waiting for approval"
            case "approval_decided":
                self.awaiting.pop(str(d.get("call_id")), None)
                self.state = "waiting for approval" if self.awaiting else "approved/declined"
            case "run_polled":
                self.polls += 1
                self.state = f"run {d.get('status', 'polled')}"
            case "delta" | "delta_reset":  # streamed text: the model is still answering
                self.state = "streaming the answer"
            case kind:
                self.state = kind

    def line(self, now: float | None = None) -> str:
        """The status line: step, tools in flight, polls, elapsed seconds."""
        parts = [self.state]
        if self.step is not None:
            parts.append(f"step {self.step}")
        parts.append(f"model calls {self.model_calls}")
        if self.tools_in_flight:
            names = ", ".join(sorted(self.tools_in_flight.values()))
            parts.append(f"tools in flight {len(self.tools_in_flight)} ({names})")
        parts.append(f"tools done {self.tools_done}"
                     + (f" ({self.tool_errors} errors)" if self.tool_errors else ""))
        if self.polls:
            parts.append(f"polls {self.polls}")
        if self.awaiting:
            calls = ", ".join(f"{tool} {cid}" for cid, tool in sorted(self.awaiting.items()))
            parts.append(f"awaiting approval {len(self.awaiting)} ({calls})")
        if self.started_at is not None:
            parts.append(f"{(now or time.time()) - self.started_at:.1f}s")
        return " | ".join(parts)


def watch(client: AgentClient, job_id: str, timeout: float = 300.0,
          out: TextIO | None = None, live: bool | None = None) -> int:
    """Print the job's events until it ends; returns the CLI exit code."""
    out = out or sys.stdout
    live = out.isatty() if live is None else live
    if client.status(job_id) is None:
        print(f"error: unknown job {job_id} (never submitted, or expired)", file=sys.stderr)
        return EXIT_UNKNOWN_JOB
    progress = Progress()
    print(f"job {job_id}", file=out)
    for event in client.events(job_id, timeout=timeout):
        progress.apply(event)
        if live:
            out.write("\r\x1b[2K")  # clear the status line, print the event above it
        print(f"  {describe_event(event)}", file=out)
        if live and not event.terminal:
            out.write(progress.line())
        out.flush()
    result = client.status(job_id)
    if result is None or not result.status.terminal:
        print(f"\ntimed out after {timeout:g} s; job {job_id} goes on", file=sys.stderr)
        return EXIT_TIMEOUT
    print(progress.line(now=result.updated_at), file=out)
    print(describe_result(result), file=out)
    return exit_code_for(result.status)
