"""Choosing which stored messages of a session are sent to the model.

Storage is never truncated; only the window sent with each model call is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from producer.contracts import ChatMessage

MessageCounter = Callable[[ChatMessage], int]


def select_window(
    history: Sequence[ChatMessage], budget: int, count: MessageCounter
) -> list[ChatMessage]:
    """The newest messages of ``history`` whose tokens fit in ``budget``.

    The window never starts with an assistant or tool message: a tool result without the
    call that asked for it is rejected by the API, and a reply without its question
    misleads the model.
    """
    start = len(history)
    used = 0
    while start > 0:
        cost = count(history[start - 1])
        if used + cost > budget:
            break
        used += cost
        start -= 1
    while start < len(history) and history[start].role in ("assistant", "tool"):
        start += 1
    return list(history[start:])
