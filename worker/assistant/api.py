"""Calls to the server-side run APIs, with errors classified as for chat completions.

A transient error (429, 408, 409, 5xx, timeout, connection) becomes a ModelError with
``retry_after`` set, which the tasks turn into a rescheduled task; any other 4xx a
ModelError without it, which fails the job with the server's message.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import openai

from worker.model_client import ModelError, classify_status_error


@contextmanager
def classified(action: str) -> Iterator[None]:
    """Raise ModelError (naming ``action``) for any failure of the API call inside."""
    try:
        yield
    except openai.APIStatusError as exc:
        error = classify_status_error(exc)
        raise ModelError(f"{action}: {error}", retry_after=error.retry_after) from None
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        raise ModelError(f"{action}: API unreachable: {exc}", retry_after=0.0) from None


def is_not_found(error: ModelError) -> bool:
    return " 404:" in str(error)
