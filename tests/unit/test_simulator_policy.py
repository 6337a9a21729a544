"""The demo policy is a pure function of (messages, tools, tool_choice)."""

from __future__ import annotations

from typing import Any

from simulator.demo_policy import Decision, PlannedCall, decide, derive_arguments
from simulator.text_extract import find_arithmetic, find_cities


def _tool(name: str, props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool",
            "parameters": {
                "type": "object",
                "properties": props,
                "required": list(props) if required is None else required,
            },
        },
    }


CALCULATOR = _tool("calculator", {"expression": {"type": "string"}})
WEATHER = _tool("get_weather", {"city": {"type": "string"}})
TOOLS = [CALCULATOR, WEATHER]


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant_calls(*calls: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            for cid, name, args in calls
        ],
    }


def tool_result(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def test_arithmetic_calls_calculator() -> None:
    decision = decide([user("What is 12 * (3 + 4)?")], TOOLS, "auto")
    assert decision == Decision(None, (PlannedCall("calculator", {"expression": "12 * (3 + 4)"}),))


def test_several_cities_are_parallel_calls_in_mention_order() -> None:
    text = "What's the weather in Tokyo, then Paris and Atlantis? Also Paris again."
    decision = decide([user(text)], TOOLS, None)
    assert decision.content is None
    assert decision.tool_calls == (
        PlannedCall("get_weather", {"city": "Tokyo"}),
        PlannedCall("get_weather", {"city": "Paris"}),
        PlannedCall("get_weather", {"city": "Atlantis"}),
    )


def test_parallel_tool_calls_false_keeps_only_the_first_call() -> None:
    decision = decide(
        [user("weather in Berlin and London")], TOOLS, "auto", parallel_tool_calls=False
    )
    assert decision.tool_calls == (PlannedCall("get_weather", {"city": "Berlin"}),)


def test_weather_needs_the_word_weather_and_the_tool() -> None:
    assert decide([user("I love Paris")], TOOLS, "auto").tool_calls == ()
    assert decide([user("weather in Paris")], [CALCULATOR], "auto").tool_calls == ()


def test_tool_results_are_quoted_in_a_final_answer() -> None:
    messages = [
        user("Weather in Paris and what is 6 * 7?"),
        assistant_calls(
            ("c1", "get_weather", '{"city": "Paris"}'),
            ("c2", "calculator", '{"expression": "6*7"}'),
        ),
        tool_result("c1", "Sunny, 18 °C"),
        tool_result("c2", "42"),
    ]
    decision = decide(messages, TOOLS, "auto")
    assert decision.tool_calls == ()
    assert decision.content is not None
    assert "get_weather(Paris): Sunny, 18 °C" in decision.content
    assert "calculator: 42" in decision.content


def test_error_results_are_acknowledged() -> None:
    messages = [
        user("What is the weather in Atlantis and London?"),
        assistant_calls(
            ("a", "get_weather", '{"city": "Atlantis"}'), ("b", "get_weather", '{"city": "London"}')
        ),
        tool_result("a", "Error: unknown city 'Atlantis'"),
        tool_result("b", "Rain, 11 °C"),
    ]
    content = decide(messages, TOOLS, "auto").content
    assert content is not None
    assert "I could not get the weather for Atlantis: Error: unknown city 'Atlantis'" in content
    assert "get_weather(London): Rain, 11 °C" in content
    assert "get_weather(Atlantis):" not in content


def test_results_from_an_earlier_turn_do_not_end_the_current_one() -> None:
    messages = [
        user("What is 1 + 1?"),
        assistant_calls(("c1", "calculator", '{"expression": "1 + 1"}')),
        tool_result("c1", "2"),
        {"role": "assistant", "content": "2"},
        user("And 5 * 5?"),
    ]
    decision = decide(messages, TOOLS, "auto")
    assert decision.tool_calls == (PlannedCall("calculator", {"expression": "5 * 5"}),)


def test_required_calls_again_after_results() -> None:
    messages = [
        user("What is 2 + 3?"),
        assistant_calls(("c1", "calculator", '{"expression": "2 + 3"}')),
        tool_result("c1", "5"),
    ]
    decision = decide(messages, TOOLS, "required")
    assert decision.tool_calls == (PlannedCall("calculator", {"expression": "2 + 3"}),)


def test_forced_function_derives_arguments_from_schema() -> None:
    lookup = _tool(
        "lookup",
        {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "verbose": {"type": "boolean"},
            "note": {"type": "string"},
        },
        required=["city", "days", "unit", "verbose"],
    )
    choice = {"type": "function", "function": {"name": "lookup"}}
    decision = decide(
        [user("Forecast for Rome over 3 days in fahrenheit")], [*TOOLS, lookup], choice
    )
    assert decision.tool_calls == (
        PlannedCall("lookup", {"city": "Rome", "days": 3, "unit": "fahrenheit"}),
    )


def test_forced_function_even_without_a_matching_message() -> None:
    choice = {"type": "function", "function": {"name": "calculator"}}
    decision = decide([user("hello there")], TOOLS, choice)
    assert decision.tool_calls == (PlannedCall("calculator", {"expression": "hello there"}),)


def test_required_picks_best_matching_tool_else_first() -> None:
    search = _tool("search_docs", {"query": {"type": "string"}})
    decision = decide([user("please search the docs for celery")], [CALCULATOR, search], "required")
    assert decision.tool_calls == (
        PlannedCall("search_docs", {"query": "please search the docs for celery"}),
    )
    first = decide([user("hello")], [CALCULATOR, search], "required")
    assert first.tool_calls == (PlannedCall("calculator", {"expression": "hello"}),)


def test_tool_choice_none_gives_text() -> None:
    decision = decide([user("What is 12 * (3 + 4)?")], TOOLS, "none")
    assert decision.tool_calls == ()
    assert decision.content == 'You said: "What is 12 * (3 + 4)?"'


def test_no_tools_gives_text_quoting_the_message() -> None:
    assert decide([user("  Tell me, simulator  ")], None, None) == Decision(
        'You said: "Tell me, simulator"'
    )
    assert decide([user("weather in Paris")], [], None).tool_calls == ()


def test_name_memory() -> None:
    assert decide([user("Hi, my name is Ada Lovelace.")], None, None).content == (
        "Nice to meet you, Ada Lovelace."
    )
    messages = [
        user("my name is Grace"),
        {"role": "assistant", "content": "Nice to meet you, Grace."},
        user("I like tea"),
        {"role": "assistant", "content": "ok"},
        user("What is my name?"),
    ]
    assert decide(messages, TOOLS, "auto").content == "Your name is Grace."
    assert decide([user("What is my name?")], None, None).content == "I don't know your name yet."


def test_weather_without_a_city_asks() -> None:
    decision = decide([user("How is the weather?")], TOOLS, "auto")
    assert decision == Decision("Which city would you like the weather for?")


def test_content_parts_are_read() -> None:
    message = {"role": "user", "content": [{"type": "text", "text": "What is 2 + 2?"}]}
    decision = decide([message], TOOLS, "auto")
    assert decision.tool_calls == (PlannedCall("calculator", {"expression": "2 + 2"}),)


def test_extractors() -> None:
    assert find_arithmetic("What is 12 * (3 + 4)?") == "12 * (3 + 4)"
    assert find_arithmetic("(so 5*3) ok") == "5*3"
    assert find_arithmetic("In 2023 - the year") is None
    assert find_arithmetic("Is 7 prime?") is None
    assert find_cities("new york, paris and New York") == ["New York", "Paris"]
    assert find_cities("weather in Springfield please") == ["Springfield"]
    assert derive_arguments(WEATHER, "Is it cold?") == {"city": "Is it cold?"}
    assert derive_arguments({"type": "function", "function": {"name": "x"}}, "hi") == {}


def test_policy_is_deterministic() -> None:
    messages = [user("Weather in Oslo? no, Vienna and Madrid. And 3*3")]
    assert decide(messages, TOOLS, "auto") == decide(messages, TOOLS, "auto")


def test_simulator_knows_every_city_the_weather_tool_knows() -> None:
    """The demo asks for cities by name: each must reach the tool as a call."""
    from simulator.text_extract import KNOWN_CITIES
    from worker.tools.builtin import _WEATHER

    known = {city.lower() for city in KNOWN_CITIES}
    assert set(_WEATHER) <= known, sorted(set(_WEATHER) - known)


def test_greeting_gets_an_introduction_not_an_echo() -> None:
    reply = decide([user("Hello! What can you do?")], [], None)
    assert reply.content is not None and reply.content.startswith("Hello! I am")
    assert decide([user("hiking trails?")], [], None).content == 'You said: "hiking trails?"'
