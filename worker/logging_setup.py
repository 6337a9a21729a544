"""Optional JSON log lines for workers: ``AGENT_LOG_FORMAT=json``.

Hooked to Celery's ``after_setup_logger`` and ``after_setup_task_logger`` signals, so it
replaces the formatter of the handlers Celery itself configured (stderr or --logfile).
Each line is one JSON object: time, level, logger, process, message, the worker's
hostname, the task's name and id when logged inside a task, and the ``key=value`` pairs
of the one-line-per-step record (job, session, step, task, duration_ms) as fields.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from datetime import UTC, datetime
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger

_PAIR = re.compile(r"(\w+)=(\S+)")
_HOSTNAME = socket.gethostname()


def json_logs_enabled() -> bool:
    return os.environ.get("AGENT_LOG_FORMAT", "").strip().lower() == "json"


def _value(text: str) -> Any:
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never raises on odd arguments."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "host": _HOSTNAME,
            "message": message,
        }
        task = _current_task()
        if task is not None:
            doc["task_name"], doc["task_id"] = task
        pairs = _PAIR.findall(message)
        if pairs and message.startswith(pairs[0][0] + "="):  # a key=value record
            doc["fields"] = {key: _value(val) for key, val in pairs}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def _current_task() -> tuple[str, str] | None:
    from celery._state import get_current_task

    task = get_current_task()
    if task is None or task.request is None or task.request.id is None:
        return None
    return str(task.name), str(task.request.id)


def use_json(logger: logging.Logger | None = None, **_: Any) -> None:
    """Give every handler of ``logger`` the JSON formatter when JSON logs are enabled."""
    if logger is None or not json_logs_enabled():
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())


after_setup_logger.connect(use_json, weak=False)
after_setup_task_logger.connect(use_json, weak=False)
