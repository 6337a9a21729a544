"""Folding chat.completion.chunk deltas into one reply, and coalescing the text."""

from __future__ import annotations

from typing import Any

import pytest

from producer.contracts import ToolCall, Usage
from worker.stream_assembly import Coalescer, MalformedChunk, StreamAssembler


def _chunk(delta: dict[str, Any] | None = None, usage: dict[str, int] | None = None,
           finish: str | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "c1", "object": "chat.completion.chunk", "choices": choices, "usage": usage}


def test_text_deltas_and_usage_make_the_whole_reply() -> None:
    assembler = StreamAssembler()
    added = [assembler.add(_chunk({"role": "assistant", "content": ""})),
             assembler.add(_chunk({"content": "Hel"})),
             assembler.add(_chunk({"content": "lo"})),
             assembler.add(_chunk({}, finish="stop")),
             assembler.add(_chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 2,
                                               "total_tokens": 5}))]
    assert added == ["", "Hel", "lo", "", ""]
    reply = assembler.reply()
    assert reply.content == "Hello"
    assert reply.tool_calls == []
    assert reply.usage == Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)


def test_tool_call_deltas_are_assembled_by_index_in_order() -> None:
    assembler = StreamAssembler()
    # Two calls whose deltas interleave; index 1 arrives first.
    for delta in [
        {"tool_calls": [{"index": 1, "id": "b", "type": "function",
                         "function": {"name": "get_weather", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "id": "a", "type": "function",
                         "function": {"name": "calculator", "arguments": "{\"expr"}}]},
        {"tool_calls": [{"index": 1, "function": {"arguments": "{\"city\": \"Rome\"}"}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "ession\": \"1+2\"}"}}]},
    ]:
        assert assembler.add(_chunk(delta)) == ""
    reply = assembler.reply()
    assert reply.content is None
    assert reply.tool_calls == [
        ToolCall(id="a", name="calculator", arguments='{"expression": "1+2"}'),
        ToolCall(id="b", name="get_weather", arguments='{"city": "Rome"}'),
    ]


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        ({"choices": "nope"}, "'choices' is not a list"),
        (_chunk({"content": 5}), "delta.content is int"),
        (_chunk({"tool_calls": [{"function": {"name": "x"}}]}), "no integer 'index'"),
        (_chunk(None, usage={"prompt_tokens": "many"}), "usage.prompt_tokens"),
    ],
)
def test_malformed_chunks_are_named(chunk: dict[str, Any], message: str) -> None:
    with pytest.raises(MalformedChunk, match=message):
        StreamAssembler().add(chunk)


def test_a_call_without_a_name_or_an_empty_stream_is_malformed() -> None:
    assembler = StreamAssembler()
    assembler.add(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}))
    with pytest.raises(MalformedChunk, match="without an id or a name"):
        assembler.reply()
    with pytest.raises(MalformedChunk, match="without any chunk"):
        StreamAssembler().reply()


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_coalescer_sends_the_first_piece_at_once_then_every_interval() -> None:
    clock = _Clock()
    coalescer = Coalescer(interval=0.05, max_chars=200, clock=clock)
    assert coalescer.add("a") == "a"
    published = []
    for _ in range(200):  # 200 pieces 5 ms apart: one publish per 50 ms
        clock.now += 0.005
        ready = coalescer.add("x")
        if ready:
            published.append(ready)
    rest = coalescer.flush()
    assert rest is not None or published
    assert 18 <= len(published) <= 21
    assert "".join(published) + (rest or "") == "x" * 200
    assert coalescer.flush() is None


def test_coalescer_sends_early_when_enough_text_waits() -> None:
    clock = _Clock()
    coalescer = Coalescer(interval=10.0, max_chars=200, clock=clock)
    assert coalescer.add("first") == "first"
    assert coalescer.add("y" * 150) is None
    assert coalescer.add("z" * 60) == "y" * 150 + "z" * 60
    assert coalescer.add("") is None
    assert coalescer.flush() is None


def test_a_long_answer_is_published_less_often_as_it_goes() -> None:
    clock = _Clock()
    coalescer = Coalescer(clock=clock)
    published = []
    for _ in range(12_000):  # a minute of text, one 4-character token every 5 ms
        clock.now += 0.005
        ready = coalescer.add("abcd")
        if ready:
            published.append(ready)
    rest = coalescer.flush()
    assert "".join(published) + (rest or "") == "abcd" * 12_000
    assert 150 < len(published) < 400  # far below the event stream's 1000 entries
