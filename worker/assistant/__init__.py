"""Assistant mode: server-side runs (Assistants API, or the Responses API in background
mode) polled by self-rescheduling tasks.

Modules: ``state`` (the stored RunState), ``logic`` (pure transitions), ``store`` (Redis),
``api`` (error classification), ``files`` (uploads), ``responses_api`` and
``assistants_api`` (the two protocol adapters), ``protocol`` (their common interface),
``flow`` (what the tasks do with a saved state: dispatch tools, end the job, cancel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.context import WorkerContext


def cancel_server_side(ctx: WorkerContext, job_id: str) -> None:
    """Cancel the job's run or response server-side if it has one that may be active.

    Tolerant of runs that ended already; called by the deadline watchdog and by cancel.
    """
    from worker.assistant.flow import cancel_server_side as cancel

    cancel(ctx, job_id)
