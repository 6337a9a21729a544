"""Pure helpers of the operations tools: the watch progress line, SSE framing, JSON logs."""

from __future__ import annotations

import json
import logging

import pytest

from producer.contracts import ChatRequest, JobEvent
from producer.gateway_support import fingerprint, sse
from producer.watch import Progress
from worker.logging_setup import JsonFormatter, use_json


def event(kind: str, step: int | None = None, **detail: object) -> JobEvent:
    return JobEvent(job_id="job-12345678", kind=kind, at=100.0, step=step,  # type: ignore[arg-type]
                    detail=detail)


def test_progress_tracks_steps_tools_in_flight_and_polls() -> None:
    progress = Progress()
    for e in (event("queued"), event("started"), event("model_call", 0),
              event("tool_started", tool="get_weather", tool_call_id="a"),
              event("tool_started", tool="calculator", tool_call_id="b"),
              event("tool_finished", tool="calculator", tool_call_id="b", is_error=True)):
        progress.apply(e)
    line = progress.line(now=101.5)
    assert "step 0" in line and "model calls 1" in line
    assert "tools in flight 1 (get_weather)" in line
    assert "tools done 1 (1 errors)" in line and line.endswith("1.5s")
    progress.apply(event("run_polled", 1, status="in_progress"))
    assert "polls 1" in progress.line() and "run in_progress" in progress.line()


def test_sse_framing_and_request_fingerprint() -> None:
    assert sse('{"a": 1}', event="queued", event_id="1-0") == (
        'id: 1-0\nevent: queued\ndata: {"a": 1}\n\n')
    a = ChatRequest(session_id="s", message="hi")
    assert fingerprint(a) == fingerprint(ChatRequest(session_id="s", message="hi"))
    assert fingerprint(a) != fingerprint(ChatRequest(session_id="s", message="ho"))


def test_json_log_lines_carry_step_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    record = logging.LogRecord("celery_agents", logging.INFO, __file__, 1,
                               "job=%s session=%s step=%s duration_ms=%.1f",
                               ("j1", "s1", "model:2", 12.34), None)
    doc = json.loads(JsonFormatter().format(record))
    assert doc["level"] == "INFO" and doc["message"].startswith("job=j1")
    assert doc["fields"] == {"job": "j1", "session": "s1", "step": "model:2",
                             "duration_ms": 12.3}
    logger = logging.getLogger("test-json-logs")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        monkeypatch.delenv("AGENT_LOG_FORMAT", raising=False)
        use_json(logger)
        assert not isinstance(handler.formatter, JsonFormatter)
        monkeypatch.setenv("AGENT_LOG_FORMAT", "json")
        use_json(logger)
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        logger.removeHandler(handler)
