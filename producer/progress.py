"""Human-readable lines for job events and results (the CLI's and the demo's output)."""

from __future__ import annotations

from producer.contracts import JobEvent, JobResult


def describe_event(event: JobEvent) -> str:
    """One short line saying what happened."""
    d = event.detail
    step = f"step {event.step}" if event.step is not None else ""
    match event.kind:
        case "queued":
            return "queued"
        case "started":
            tools = ", ".join(d.get("tools", [])) or "no tools"
            return f"started on {d.get('model')} ({tools})"
        case "model_call":
            return f"{step}: calling the model"
        case "model_reply":
            calls = d.get("tool_calls") or []
            if calls:
                return f"{step}: model asks for {len(calls)} tool call(s): {', '.join(calls)}"
            return f"{step}: model answered"
        case "tool_started":
            return f"  tool {d.get('tool')} running ({d.get('tool_call_id')})"
        case "tool_finished":
            outcome = "error" if d.get("is_error") else "ok"
            return f"  tool {d.get('tool')} finished: {outcome}"
        case "succeeded":
            return f"succeeded after {d.get('model_calls')} model call(s)"
        case "failed":
            return f"failed: {d.get('error')}"
        case "cancelled":
            return f"cancelled: {d.get('error')}"
        case "run_created":
            server_object = d.get("run_id") or d.get("response_id")
            return f"run created on the server ({server_object})"
        case "run_polled":
            return f"  poll {d.get('poll')}: {d.get('status')}"
        case "approval_required":
            return (f"  waiting for approval: {d.get('tool_name')}({d.get('arguments')}) "
                    f"call {d.get('call_id')}")
        case "approval_decided":
            verdict = "approved" if d.get("approved") else "declined"
            why = f": {d.get('reason')}" if d.get("reason") else ""
            who = d.get("decided_by")
            return f"  {d.get('tool_name')} ({d.get('call_id')}) {verdict} by {who}{why}"
        case "tool_outputs_submitted":
            return f"  {d.get('outputs')} tool output(s) submitted"
        case "delta":
            return f"{step}: {d.get('text', '')!r}"
        case "delta_reset":
            return f"{step}: the streamed text so far is dropped (the step runs again)"
    return event.kind


def describe_result(result: JobResult) -> str:
    """The answer (or the error) with its tool sources and token usage."""
    lines = [f"status: {result.status}"]
    if result.response is not None:
        lines.append(f"response: {result.response}")
    if result.error:
        lines.append(f"error: {result.error}")
    for source in result.sources:
        flag = " [error]" if source.is_error else ""
        lines.append(f"  source {source.tool_name}({source.arguments}){flag}: {source.content}")
    usage = result.usage
    lines.append(
        f"usage: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion"
        f" = {usage.total_tokens} tokens"
    )
    return "\n".join(lines)
