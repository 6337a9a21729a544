"""How many tokens of a conversation a model can take: its context window.

Built-in figures for OpenAI's models; ``AGENT_CONTEXT_WINDOWS="model=tokens,..."``
overrides or adds models (a dated or suffixed name matches its family by prefix, the
longest prefix wins), and ``AGENT_CONTEXT_WINDOW`` is the window of any other model
(self-hosted vLLM, Ollama, ... names), 4000 by default. A turn sends at most 75% of the
window (history plus the new turn) unless the request sets ``token_limit``.

Which window a worker assumed for a model is logged once per worker process and model,
so an operator can see that a self-hosted model got the small default.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from typing import Literal

__all__ = [
    "BUILTIN_CONTEXT_WINDOWS",
    "DEFAULT_CONTEXT_WINDOW",
    "HISTORY_SHARE",
    "WindowSource",
    "context_window",
    "parse_context_windows",
    "window_for",
]

logger = logging.getLogger("worker.context_windows")

# Context windows of well-known models; a dated variant matches its family by prefix.
BUILTIN_CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-3.5-turbo": 16_385,
    "gpt-4": 8_192,
    "gpt-4-32k": 32_768,
    "gpt-4-turbo": 128_000,
    "gpt-4o": 128_000,
    "gpt-4o-mini": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4.1-mini": 1_047_576,
    "gpt-4.1-nano": 1_047_576,
    "gpt-5": 400_000,
    "o1": 200_000,
    "o3": 200_000,
    "o3-mini": 200_000,
    "o4-mini": 200_000,
}
# Small on purpose: too large a guess makes the server refuse or truncate the prompt
# (Ollama's default num_ctx is 2048-4096), too small only shortens the memory sent.
DEFAULT_CONTEXT_WINDOW = 4000
HISTORY_SHARE = 0.75  # of the window; the rest is left for the answer

WindowSource = Literal["AGENT_CONTEXT_WINDOWS", "built-in table", "AGENT_CONTEXT_WINDOW"]

_logged: set[str] = set()
_logged_lock = threading.Lock()  # the agents worker runs turns on many threads


@lru_cache(maxsize=8)
def parse_context_windows(spec: str) -> dict[str, int]:
    """``"model=tokens,model=tokens"`` -> {model: tokens}; ValueError naming the entry."""
    windows: dict[str, int] = {}
    for entry in spec.split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, value = entry.rpartition("=")
        name = name.strip()
        try:
            tokens = int(value.strip())
        except ValueError:
            tokens = 0
        if not sep or not name or tokens <= 0:
            raise ValueError(
                f"AGENT_CONTEXT_WINDOWS: {entry!r} is not model=tokens with tokens > 0"
            )
        windows[name] = tokens
    return windows


def _default_window() -> int:
    raw = os.environ.get("AGENT_CONTEXT_WINDOW", "").strip()
    if not raw:
        return DEFAULT_CONTEXT_WINDOW
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"AGENT_CONTEXT_WINDOW: {raw!r} is not a positive number of tokens")
    return value


def _longest_prefix(model: str, table: dict[str, int]) -> int | None:
    best = max((name for name in table if model.startswith(name)), key=len, default=None)
    return None if best is None else table[best]


def context_window(model: str) -> tuple[int, WindowSource]:
    """The window of ``model`` and where that figure came from (nothing logged)."""
    overrides = parse_context_windows(os.environ.get("AGENT_CONTEXT_WINDOWS", ""))
    found = _longest_prefix(model, overrides)
    if found is not None:
        return found, "AGENT_CONTEXT_WINDOWS"
    found = _longest_prefix(model, BUILTIN_CONTEXT_WINDOWS)
    if found is not None:
        return found, "built-in table"
    return _default_window(), "AGENT_CONTEXT_WINDOW"


def window_for(model: str) -> int:
    """:func:`context_window`, logging the assumption the first time a model is seen."""
    window, source = context_window(model)
    with _logged_lock:
        first = model not in _logged
        _logged.add(model)
    if first:
        limit = int(window * HISTORY_SHARE)
        if source == "AGENT_CONTEXT_WINDOW":
            logger.warning(
                "context window of model %r: %d tokens assumed (AGENT_CONTEXT_WINDOW; the "
                "model is not in the built-in table); turns send at most %d tokens of "
                "history. Set AGENT_CONTEXT_WINDOWS=%s=<tokens> if it takes more",
                model, window, limit, model,
            )
        else:
            logger.info("context window of model %r: %d tokens (%s); turns send at most %d "
                        "tokens of history", model, window, source, limit)
    return window
