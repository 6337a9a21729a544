"""Tasks that drive a chat turn: start it, one task per model call, abort."""

from __future__ import annotations

import time
from typing import Any

from celery import Task
from celery.utils.log import get_task_logger
from pydantic import ValidationError

from producer.contracts import (
    TASK_ABORT_TURN,
    TASK_MODEL_STEP,
    TASK_START_TURN,
    JobEvent,
    JobResult,
    JobStatus,
    StartTurn,
    ToolOutput,
    describe_validation_error,
)
from worker.app import app
from worker.approval_flow import tools_needing_approval
from worker.context import WorkerContext, get_context
from worker.model_client import ModelError, backoff_seconds, complete
from worker.orchestrate import ensure_dispatched, redispatch_fanout, transition_of
from worker.stream_step import settle, stream_reply
from worker.tasks.base import (
    InvalidTaskMessage,
    JobTask,
    deadline_error,
    log_step,
    redis_down,
    reschedule,
)
from worker.tokens import default_token_limit
from worker.tools import UnknownToolError
from worker.turn import (
    ModelReply,
    TurnState,
    apply_model_reply,
    apply_tool_outputs,
    build_model_call,
    new_turn,
)

logger = get_task_logger("celery_agents")


@app.task(name=TASK_START_TURN, base=JobTask, bind=True, ignore_result=True)
def start_turn(self: Task, *args: Any, **kwargs: Any) -> str:
    """Validate the request, create the turn state and enqueue the first model step."""
    started = time.perf_counter()
    raw = kwargs.get("message", args[0] if args else None)
    try:
        message = StartTurn.model_validate(raw)
    except ValidationError as exc:
        raise InvalidTaskMessage(
            f"invalid {TASK_START_TURN} message: {describe_validation_error(exc)}"
        ) from None
    if message.request.mode == "assistant":  # a server-side run, polled (assistant_tasks)
        from worker.tasks.assistant_tasks import start_run

        return start_run(self, message)
    ctx = get_context()
    job_id = message.job_id
    final, state, job, memory_length = ctx.turns.load_start(job_id, message.request.session_id)
    if final:  # cancelled or timed out while queued, or a duplicate of an ended job
        ctx.jobs.released(job_id, message.request.session_id)
        return "already ended"
    fresh = False
    if state is None:
        state, fresh = _create_turn(ctx, message, job, memory_length)
        if state is None:
            return "failed"
    if state.phase == "model" and state.step == 0 and (
        fresh or not ctx.turns.was_dispatched(job_id, transition_of(state))
    ):
        # The first model call runs in this task: one queue hop less per turn, and a new
        # turn's first step waits only for a free slot (starts have the lowest priority).
        reply = None if fresh else ctx.turns.cached_reply(job_id, 0)
        return _advance(self, ctx, state, step=0, reply=reply, fresh=fresh, started=started,
                        announced=fresh)  # a fresh start wrote the model_call event
    ensure_dispatched(ctx, state, fresh=fresh)
    log_step(job_id, state.session_id, "start", self.name, started)
    return "started"


def _create_turn(
    ctx: WorkerContext, message: StartTurn, job: JobResult | None, memory_length: int
) -> tuple[TurnState | None, bool]:
    """The turn's first state and whether this task created it; None if the job failed."""
    request = message.request
    try:
        names = ctx.catalog.for_request(request.tools, request.forced_tool)  # live registry
        approval_tools = tools_needing_approval(ctx, request, names)
    except UnknownToolError as exc:
        ctx.jobs.fail(message.job_id, str(exc))
        return None, False
    model = request.model or ctx.settings.default_model
    now = time.time()
    state = new_turn(
        job_id=message.job_id,
        request=request,
        model=model,
        token_limit=request.token_limit or default_token_limit(model),
        tool_names=list(names),
        memory_length=memory_length,
        created_at=job.created_at if job else now,
        deadline_at=message.deadline_at,
        approval_tools=approval_tools,
    )
    if job is None:  # sent by a producer that did not create a record
        job = JobResult(job_id=message.job_id, session_id=request.session_id,
                        status=JobStatus.QUEUED, created_at=now, updated_at=now)
    running = job.model_copy(
        update={"status": JobStatus.RUNNING, "model": model, "updated_at": now}
    )
    started = JobEvent(job_id=message.job_id, kind="started", at=now,
                       detail={"model": model, "tools": list(names)})
    outcome = ctx.turns.start(state, running, started, _model_call_event(state))  # one trip
    if outcome == 2:  # a redelivered copy created it first
        return ctx.turns.load(message.job_id), False
    if outcome == 0:  # cancelled (or timed out) while queued
        ctx.jobs.released(message.job_id, request.session_id)
        return None, False
    return state, True


@app.task(name=TASK_MODEL_STEP, base=JobTask, bind=True, ignore_result=True)
def model_step(
    self: Task, tool_outputs: list[Any] | dict[str, Any] | None = None, *, job_id: str,
    step: int,
) -> str:
    """Model call number ``step`` of the turn; record the reply and enqueue what follows.

    As the callback of a tool fan-out it first records the tools' outputs in call
    order. Folding that into the next model call saves one queue hop per tool round.
    """
    started = time.perf_counter()
    ctx = get_context()
    state, final, reply = ctx.turns.load_step(job_id, step)
    if state is None:
        return "nothing to do"
    if final:  # cancelled or failed elsewhere: stop here and let the session go on
        ctx.jobs.released(job_id, state.session_id)
        return "already ended"
    if state.deadline_at is not None and time.time() > state.deadline_at:
        ctx.jobs.fail(job_id, deadline_error(state.created_at, state.deadline_at), step=step)
        return "timed out"
    fresh = False  # did this task save the state it is about to dispatch?
    if tool_outputs is not None and state.step == step and state.phase == "tools":
        if isinstance(tool_outputs, dict):  # a single call arrives through a plain link
            tool_outputs = [tool_outputs]
        state, fresh = _record_tool_outputs(ctx, state, tool_outputs)
    announced = fresh and state.phase == "model"  # the outputs' save wrote model_call
    return _advance(self, ctx, state, step=step, reply=reply, fresh=fresh, started=started,
                    announced=announced)


def _advance(
    task: Task, ctx: WorkerContext, state: TurnState, *, step: int, reply: ModelReply | None,
    fresh: bool, started: float, announced: bool = False,
) -> str:
    """Model call ``step`` (unless its reply is stored already), then what follows it.

    ``announced``: this task already wrote the step's ``model_call`` event along with the
    state it saved (one round trip less)."""
    if state.step == step and state.phase == "model":
        kept = reply is not None  # a reply read back from Redis
        if reply is None:
            reply = _call_model(task, ctx, state, announced)
            if reply is None:
                return "failed"
            kept = state.request.stream  # a streamed reply is kept as its stream settles
        state, fresh = _record_reply(ctx, state, reply, kept)
    ended_here = state.step == step and state.phase == "done"  # a return_direct tool
    if ended_here or (state.step == step + 1 and state.phase in ("tools", "approval", "done")):
        ensure_dispatched(ctx, state, fresh=fresh)
    log_step(state.job_id, state.session_id, f"model:{step}", task.name, started)
    return state.phase


def _record_tool_outputs(
    ctx: WorkerContext, state: TurnState, outputs: list[Any]
) -> tuple[TurnState, bool]:
    """The state with the outputs applied, and whether this task saved it."""
    parsed = [ToolOutput.model_validate(item) for item in outputs]  # chord: in call order
    new = apply_tool_outputs(state, parsed, ctx.return_direct_tools)
    # The next model call's event goes out with the state that leads to it.
    return _save(ctx, state, new, _model_call_event(new) if new.phase == "model" else None)


def _model_call_event(state: TurnState) -> JobEvent:
    return JobEvent(job_id=state.job_id, kind="model_call", at=time.time(), step=state.step,
                    detail={"model": state.model})


def _call_model(
    task: Task, ctx: WorkerContext, state: TurnState, announced: bool = False
) -> ModelReply | None:
    """The model's reply; None when the job failed instead. A streamed reply is kept
    here (its stream settles against the kept one), a plain one with the state it leads
    to (``_record_reply``).

    Transient errors reschedule this task with a countdown (no worker sleeps), and so
    does a wait for the shared model rate limit; those waits are not failed attempts, so
    they are subtracted from the task's retry count.
    """
    wait, rate_waits = ctx.rate_limiter.before_model_call(state.job_id, state.step, state.model)
    if wait > 0:
        logger.info("job %s step %s: model %s rate limit; waiting %.2fs",
                    state.job_id, state.step, state.model, wait)
        reschedule(task, wait)
    call = build_model_call(
        state,
        ctx.jobs.history(state.session_id, state.memory_length),
        ctx.catalog.schemas(state.tool_names),
        ctx.count_message,
        ctx.bound_message,
    )
    if not announced:
        ctx.jobs.emit(state.job_id, "model_call", step=state.step, model=state.model)
    try:
        if state.request.stream:  # text published as delta events (worker/stream_step.py)
            reply = stream_reply(ctx.jobs.redis, ctx.model, state.job_id, state.step, call)
        else:
            reply = complete(ctx.model, call)
    except ModelError as exc:
        attempt = task.request.retries - rate_waits
        if exc.transient and attempt < ctx.settings.model_max_retries:
            countdown = backoff_seconds(attempt, exc.retry_after or 0.0)
            logger.warning("job %s step %s: %s; retry %d in %.1fs",
                           state.job_id, state.step, exc, attempt + 1, countdown)
            reschedule(task, countdown)
        ctx.jobs.fail(state.job_id, str(exc), step=state.step)
        return None
    if not state.request.stream:
        return reply
    kept = ctx.turns.reply_once(state.job_id, state.step, reply)
    settle(ctx.jobs.redis, state.job_id, state.step, reply, kept)
    return kept


def _record_reply(
    ctx: WorkerContext, state: TurnState, reply: ModelReply, kept: bool
) -> tuple[TurnState, bool]:
    """The state with the reply applied, and whether this task saved it, with its
    ``model_reply`` event and (unless ``kept`` already) the reply itself, in one round
    trip. A redelivered step whose first reply was kept applies that one instead."""
    new = apply_model_reply(state, reply)
    event = JobEvent(
        job_id=state.job_id, kind="model_reply", at=time.time(), step=state.step,
        detail={"tool_calls": [c.name for c in reply.tool_calls],
                "final": new.phase == "done"},
    )
    if kept:
        return _save(ctx, state, new, event)
    saved, earlier = ctx.turns.record_reply(state, new, reply, event)
    if earlier is not None:
        return _record_reply(ctx, state, earlier, kept=True)
    if saved:
        return new, True
    return ctx.turns.load(state.job_id) or new, False


def _save(
    ctx: WorkerContext, state: TurnState, new: TurnState, event: JobEvent | None = None
) -> tuple[TurnState, bool]:
    """Replace ``state`` by ``new``; if another copy of the task got there first, its state."""
    if ctx.turns.advance(state, new, event):
        return new, True
    return ctx.turns.load(state.job_id) or new, False


# Not bound: Celery passes (request, exc, traceback) only to errbacks that are not.
@app.task(name=TASK_ABORT_TURN, ignore_result=True)
def abort_turn(
    request: Any, exc: BaseException, traceback: Any, job_id: str, version: int | None = None
) -> None:
    """Errback of a tool fan-out: only infrastructure failures end up here.

    A Redis outage (a chord part or the next step that could not be stored or sent) is
    no job failure: the round is sent again, a bounded number of times.
    """
    ctx = get_context()
    if redis_down(exc) and redispatch_fanout(ctx, job_id, version):
        logger.warning("job %s: tool fan-out broken by Redis unreachable (%s); sent again",
                       job_id, exc)
        return
    ctx.jobs.fail(job_id, f"tool fan-out failed: {type(exc).__name__}: {exc}")
