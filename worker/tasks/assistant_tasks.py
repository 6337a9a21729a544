"""Tasks of assistant-mode jobs: start a server-side run, poll runs, submit tool outputs,
and read or reset an Assistants-API session.

``agents.turn.start`` hands assistant-mode requests to :func:`start_run`, so producers
use one task name for both modes. No task waits for a run: polling is a task that
re-enqueues itself with a countdown, and a worker slot is free while runs are in progress.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger
from pydantic import ValidationError

from producer.contracts import (
    TASK_ABORT_RUN,
    TASK_POLL_RUN,
    TASK_SESSION_HISTORY,
    TASK_SESSION_RESET,
    TASK_START_RUN,
    TASK_SUBMIT_TOOL_OUTPUTS,
    JobResult,
    JobStatus,
    StartTurn,
    ToolOutput,
    describe_validation_error,
)
from worker.app import app
from worker.approval_flow import tools_needing_approval
from worker.assistant.assistants_api import AssistantBeingCreated
from worker.assistant.config import RunSettings
from worker.assistant.files import FileProblem, check_files, upload_files
from worker.assistant.flow import (
    adapter_for,
    assistants_adapter,
    cancel_server_side,
    follow_up,
    redispatch_tools,
)
from worker.assistant.logic import (
    apply_submitted,
    failed,
    ordered_outputs,
    start_polling,
    timed_out,
)
from worker.assistant.poller import run_poll_task
from worker.assistant.state import RunState, new_run_state
from worker.assistant.store import SessionIds, Transition
from worker.context import WorkerContext, get_context
from worker.model_client import ModelError, backoff_seconds
from worker.tasks.base import (
    InvalidTaskMessage,
    JobTask,
    deadline_error,
    log_step,
    redis_down,
    reschedule,
)
from worker.tools import UnknownToolError

logger = get_task_logger("celery_agents")
SETTINGS = RunSettings.from_env()


class LostRace(Exception):
    """Another copy of this task saved a newer state first; this copy stops."""


# Start
@app.task(name=TASK_START_RUN, base=JobTask, bind=True, ignore_result=True)
def start_run_task(self: Task, *args: Any, **kwargs: Any) -> str:
    """The same message as ``agents.turn.start``, for producers that name it directly."""
    raw = kwargs.get("message", args[0] if args else None)
    try:
        message = StartTurn.model_validate(raw)
    except ValidationError as exc:
        raise InvalidTaskMessage(
            f"invalid {TASK_START_RUN} message: {describe_validation_error(exc)}"
        ) from None
    return start_run(self, message)


def start_run(task: Task, message: StartTurn) -> str:
    """Create the run's state, then its server-side objects (ids saved as they appear,
    so a redelivered start resumes), then schedule the first poll."""
    started = time.perf_counter()
    ctx = get_context()
    job_id, session_id = message.job_id, message.request.session_id
    final, state, job, session = ctx.runs.load_start(job_id, session_id)
    if final:
        ctx.jobs.released(job_id, session_id)
        return "already ended"
    if state is None:
        state = _create_state(ctx, message, job, session)
        if state is None:
            return "failed"
    if state.phase == "starting":
        try:
            state = _start_server_side(ctx, state)
        except LostRace:
            return "duplicate"
        except FileProblem as exc:
            _end(ctx, state, failed(state, str(exc)))
            return "failed"
        except AssistantBeingCreated as exc:
            reschedule(task, exc.RETRY_SECONDS)  # bounded by the creator's lock and the deadline
        except ModelError as exc:
            attempt = task.request.retries - ctx.runs.assistant_waits(job_id)
            if exc.transient and attempt < ctx.settings.model_max_retries:
                countdown = backoff_seconds(attempt, exc.retry_after or 0.0)
                logger.warning("job %s start: %s; retry %d in %.1fs",
                               job_id, exc, attempt + 1, countdown)
                reschedule(task, countdown)
            _end(ctx, state, failed(state, str(exc)))
            return "failed"
    follow_up(ctx, SETTINGS, state)
    log_step(job_id, session_id, "run:start", task.name, started)
    return state.phase


def _create_state(
    ctx: WorkerContext, message: StartTurn, job: JobResult | None, session: SessionIds
) -> RunState | None:
    request = message.request
    problem = None
    names: list[str] = []
    approval_tools: list[str] = []
    try:
        names = ctx.catalog.for_request(request.tools, request.forced_tool)  # live registry
        approval_tools = tools_needing_approval(ctx, request, names)
        check_files(request.files, SETTINGS.max_upload_bytes)  # before anything is created
    except (UnknownToolError, FileProblem) as exc:
        problem = str(exc)
    if problem:
        ctx.jobs.fail(message.job_id, problem)
        return None
    spec = request.assistant
    model = request.model or (spec.model if spec else None) or ctx.settings.default_model
    now = time.time()
    state = new_run_state(
        job_id=message.job_id, request=request, model=model, tool_names=list(names),
        created_at=job.created_at if job else now, approval_tools=approval_tools,
    )
    if message.deadline_at is not None:
        state.deadline_at = message.deadline_at
    if request.protocol == "responses":
        state.previous_response_id = session.response_id
    if not ctx.runs.save(Transition.of(None, state)):  # a redelivered copy created it first
        return ctx.runs.load(message.job_id)
    if session.mode != request.protocol:
        ctx.runs.set_session_mode(request.session_id, request.protocol)
    if job is None:
        job = JobResult(job_id=message.job_id, session_id=request.session_id,
                        status=JobStatus.QUEUED, created_at=now, updated_at=now)
    running = job.model_copy(update={
        "status": JobStatus.RUNNING, "mode": "assistant", "protocol": request.protocol,
        "model": model, "updated_at": now,
    })
    if not ctx.jobs.mark_running(running, model=model, tools=list(names),
                                 protocol=request.protocol):
        ctx.jobs.released(message.job_id, request.session_id)  # cancelled meanwhile
        return None
    return state


def _start_server_side(ctx: WorkerContext, state: RunState) -> RunState:
    def save(new: RunState) -> RunState:
        if not ctx.runs.save(Transition(new.version - 1, new)):
            raise LostRace()
        return new

    request = state.request
    if request.files and len(state.files) < len(request.files):
        new = state.next_version()
        new.files = upload_files(ctx.model, request.files, SETTINGS.max_upload_bytes, state.files)
        state = save(new)
    created = adapter_for(ctx, state).create(state, save)
    polling = start_polling(created, time.time())
    ids = {k: v for k, v in (("run_id", created.run_id), ("response_id", created.response_id),
                             ("thread_id", created.thread_id),
                             ("assistant_id", created.assistant_id)) if v}
    transition = Transition.of(state, polling, "run_created", protocol=state.protocol, **ids)
    # ``created`` is one version past the last state the adapter saved
    if not ctx.runs.save(replace(transition, expected=created.version - 1)):
        raise LostRace()
    return polling


def _end(ctx: WorkerContext, state: RunState, new: RunState) -> None:
    if ctx.runs.save(Transition.of(state, new)):
        follow_up(ctx, SETTINGS, new)
    else:  # another copy moved on; make sure its follow-up happened
        current = ctx.runs.load(state.job_id)
        if current is not None:
            follow_up(ctx, SETTINGS, current)


# Polling
@app.task(name=TASK_POLL_RUN, base=JobTask, bind=True, ignore_result=True)
def poll_runs(self: Task, slot: int | None = None) -> str:
    """Poll every run that is due (a batch), then re-enqueue itself with a countdown
    for the next one that is due. Never sleeps."""
    started = time.perf_counter()
    report = run_poll_task(get_context(), SETTINGS)
    if report.claimed:
        logger.info("task=%s slot=%s claimed=%d polled=%d saved=%d duration_ms=%.1f",
                    self.name, slot, report.claimed, report.polled, report.saved,
                    (time.perf_counter() - started) * 1000)
    return f"polled {report.polled}"


# Tool outputs
@app.task(name=TASK_SUBMIT_TOOL_OUTPUTS, base=JobTask, bind=True, ignore_result=True)
def submit_outputs(
    self: Task, tool_outputs: list[Any] | dict[str, Any] | None = None, *, job_id: str,
    tool_round: int,
) -> str:
    """Callback of a tool fan-out: submit all outputs in call order, once per round."""
    started = time.perf_counter()
    ctx = get_context()
    state = ctx.runs.load(job_id)
    if state is None:
        return "nothing to do"
    if ctx.jobs.is_final(job_id):  # cancelled or failed elsewhere: stop the run too
        cancel_server_side(ctx, job_id)
        ctx.jobs.released(job_id, state.session_id)
        return "already ended"
    if state.phase != "tools" or state.tool_rounds != tool_round:
        follow_up(ctx, SETTINGS, state)  # a duplicate: the round was submitted already
        return "already submitted"
    if timed_out(state, time.time()):
        cancel_server_side(ctx, job_id)
        _end(ctx, state, failed(state, deadline_error(state.created_at, state.deadline_at or 0)))
        return "timed out"
    if isinstance(tool_outputs, dict):  # a single call arrives through a plain link
        tool_outputs = [tool_outputs]
    ordered = ordered_outputs(state, [ToolOutput.model_validate(o) for o in tool_outputs or []])
    marker = ctx.runs.submitted(job_id, tool_round)
    if marker is None:
        try:
            response_id = adapter_for(ctx, state).submit(state, ordered)
        except ModelError as exc:
            attempt = self.request.retries
            if exc.transient and attempt < ctx.settings.model_max_retries:
                reschedule(self, backoff_seconds(attempt, exc.retry_after or 0.0))
            _end(ctx, state, failed(state, str(exc)))
            return "failed"
        ctx.runs.mark_submitted(job_id, tool_round, response_id or "-")
        marker = ctx.runs.submitted(job_id, tool_round) or "-"
    new = apply_submitted(state, ordered, time.time(), None if marker == "-" else marker)
    transition = Transition.of(state, new, "tool_outputs_submitted", round=tool_round,
                               outputs=len(ordered), errors=sum(o.is_error for o in ordered))
    if ctx.runs.save(transition):
        follow_up(ctx, SETTINGS, new)
    log_step(job_id, state.session_id, f"run:submit:{tool_round}", self.name, started)
    return "submitted"


# Not bound: Celery passes (request, exc, traceback) only to errbacks that are not.
@app.task(name=TASK_ABORT_RUN, ignore_result=True)
def abort_run(
    request: Any, exc: BaseException, traceback: Any, job_id: str, tool_round: int | None = None
) -> None:
    """Errback of a run's tool fan-out: only infrastructure failures end up here.

    A Redis outage is no job failure: the round is sent again, a bounded number of times.
    """
    ctx = get_context()
    if redis_down(exc) and redispatch_tools(ctx, job_id, tool_round):
        logger.warning("job %s: tool round broken by Redis unreachable (%s); sent again",
                       job_id, exc)
        return
    ctx.jobs.fail(job_id, f"tool fan-out failed: {type(exc).__name__}: {exc}")
    cancel_server_side(ctx, job_id)


# Sessions (these two store their results: the producer waits for them)
@app.task(name=TASK_SESSION_HISTORY, ignore_result=False)
def session_history(session_id: str) -> list[dict[str, Any]]:
    """An Assistants-API session's thread messages, oldest first; else stored memory."""
    ctx = get_context()
    ids = ctx.runs.session(session_id)
    if ids.mode == "assistants" and ids.thread_id:
        messages = assistants_adapter(ctx).history(ids.thread_id)
    else:
        messages = ctx.jobs.history(session_id)
    return [m.model_dump(mode="json", exclude_none=True) for m in messages]


@app.task(name=TASK_SESSION_RESET, ignore_result=False)
def session_reset(session_id: str) -> bool:
    """Delete the session's thread server-side and forget its ids and memory."""
    ctx = get_context()
    ids = ctx.runs.session(session_id)
    deleted = False
    if ids.thread_id:
        deleted = assistants_adapter(ctx).delete_thread(ids.thread_id)
    return ctx.runs.forget_session(session_id) > 0 or deleted
