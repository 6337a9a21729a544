"""Model parameters, content parts and webhook URLs on the request: validation names the
field; the worker sends only what was set; JSON answers are parsed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from producer.contracts import ChatMessage, ChatRequest, describe_validation_error
from producer.webhook_policy import AllowedHosts, webhook_refusal
from worker.content_tokens import HIGH_DETAIL_IMAGE_TOKENS, LOW_DETAIL_IMAGE_TOKENS
from worker.memory_window import select_window
from worker.model_params import UnparsableAnswer, call_options, parse_answer
from worker.tokens import message_tokens

BASE = {"session_id": "s1", "message": "hi"}


def problem(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        ChatRequest.model_validate({**BASE, **fields})
    return describe_validation_error(caught.value)


@pytest.mark.parametrize(("fields", "named"), [
    ({"temperature": 2.5}, "temperature: Input should be less than or equal to 2"),
    ({"temperature": -0.1}, "temperature: Input should be greater than or equal to 0"),
    ({"top_p": 1.5}, "top_p: Input should be less than or equal to 1"),
    ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1"),
    ({"seed": 2**63}, "seed: Input should be less than or equal to"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop: Value error, give 1 to 4 stop sequences"),
    ({"stop": ""}, "stop: Value error, stop sequences must not be empty"),
    ({"parallel_tool_calls": "maybe"}, "parallel_tool_calls: Input should be a valid boolean"),
    ({"response_format": {"type": "xml"}}, "response_format: Value error, type must be"),
    ({"response_format": {"type": "json_schema"}}, "response_format: Value error, type "
     "'json_schema' needs json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
     "response_format: Value error, json_schema.name must match"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata: Value error, 17 pairs"),
    ({"metadata": {"k": "v" * 513}}, "metadata: Value error, value of 'k' is 513"),
    ({"webhook_url": "ftp://example.com/x"}, "webhook_url: Value error, must be an http"),
    ({"webhook_url": "https://u:p@example.com/x"}, "webhook_url: Value error, must not carry"),
    ({"message": []}, "message: Value error, a list of content parts must not be empty"),
    ({"message": [{"type": "text", "text": "  "}]}, "message: Value error, content parts hold"),
    ({"message": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]},
     "message.list[tagged-union[TextPart,ImagePart]].0.image_url.image_url.url"),
    ({"message": [{"type": "audio", "audio": "x"}]}, "does not match any of the expected tags"),
    ({"mode": "assistant", "temperature": 1}, "temperature is only for mode 'chat'"),
])
def test_each_parameter_is_validated_with_its_field_named(
    fields: dict[str, Any], named: str
) -> None:
    assert named in problem(**fields)


def test_valid_parameters_and_parts_are_kept_as_given() -> None:
    parts = [{"type": "text", "text": "what is this?"},
             {"type": "image_url", "image_url": {"url": "https://example.com/a.png",
                                                  "detail": "low"}},
             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    request = ChatRequest.model_validate({
        **BASE, "message": parts, "temperature": 0, "top_p": 1, "max_tokens": 50, "seed": -3,
        "stop": "END", "parallel_tool_calls": False, "metadata": {"ticket": "T-1"},
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "schema": {"type": "object"}, "strict": True}},
        "webhook_url": "https://hooks.example.com/agents?x=1",
    })
    assert request.model_dump(mode="json", exclude_none=True)["message"] == parts
    assert request.metadata == {"ticket": "T-1"}
    # A message with parts travels in the task message and comes back equal.
    again = ChatRequest.model_validate(request.model_dump(mode="json"))
    assert again == request


def test_only_parameters_that_were_set_are_sent_and_max_tokens_gets_the_new_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = ChatRequest.model_validate(BASE)
    assert call_options(plain, with_tools=True) == {}
    full = ChatRequest.model_validate({**BASE, "temperature": 0.2, "max_tokens": 9, "seed": 1,
                                       "parallel_tool_calls": False, "stop": ["x"],
                                       "metadata": {"a": "b"}})
    assert call_options(full, with_tools=True) == {
        "temperature": 0.2, "max_completion_tokens": 9, "seed": 1, "stop": ["x"],
        "parallel_tool_calls": False,
    }  # metadata is stored with the job, never sent
    assert "parallel_tool_calls" not in call_options(full, with_tools=False)
    monkeypatch.setenv("AGENT_MAX_TOKENS_PARAM", "max_tokens")
    assert call_options(full, with_tools=False)["max_tokens"] == 9


def test_a_json_format_parses_the_answer_or_fails_naming_response_format() -> None:
    asks = ChatRequest.model_validate({**BASE, "response_format": {"type": "json_object"}})
    assert parse_answer(asks, '{"city": "Paris", "n": 2}') == {"city": "Paris", "n": 2}
    with pytest.raises(UnparsableAnswer, match=r"response_format: .* not valid JSON"):
        parse_answer(asks, "Paris, I think")
    with pytest.raises(UnparsableAnswer, match="not an object"):
        parse_answer(asks, "[1, 2]")
    assert parse_answer(ChatRequest.model_validate(BASE), "Paris") is None


def count_chars(text: str) -> int:
    return len(text)


def test_image_parts_are_counted_by_the_token_window() -> None:
    image = ChatMessage(role="user", content=[
        {"type": "text", "text": "abc"},
        {"type": "image_url", "image_url": {"url": "https://x.example/i.png"}}])
    low = ChatMessage(role="user", content=[
        {"type": "image_url", "image_url": {"url": "https://x.example/i.png", "detail": "low"}}])
    text = ChatMessage(role="user", content="abc")
    assert message_tokens(image, count_chars) >= message_tokens(text, count_chars) + \
        HIGH_DETAIL_IMAGE_TOKENS
    assert message_tokens(low, count_chars) >= LOW_DETAIL_IMAGE_TOKENS
    # An image turn in memory costs its estimate: a budget for text only leaves it out.
    history = [image, ChatMessage(role="assistant", content="a cat"), text,
               ChatMessage(role="assistant", content="ok")]
    window = select_window(history, 100, lambda m: message_tokens(m, count_chars))
    assert window == history[2:]


def test_webhook_hosts_must_be_listed() -> None:
    allowed = AllowedHosts.parse("hooks.example.com, *.corp.example:8443, 10.0.5.0/24")
    assert webhook_refusal("https://hooks.example.com/x", allowed) is None
    assert webhook_refusal("https://a.corp.example:8443/x", allowed) is None
    assert webhook_refusal("http://10.0.5.7/x", allowed) is None
    for url in ("https://a.corp.example/x", "https://evil.example/x", "http://10.0.6.1/",
                "http://169.254.169.254/latest/meta-data", "https://hooks.example.com.evil/"):
        assert "not in AGENT_WEBHOOK_ALLOWED_HOSTS" in (webhook_refusal(url, allowed) or ""), url
    off = webhook_refusal("https://hooks.example.com/x", AllowedHosts.parse(""))
    assert off is not None and "webhooks are off" in off
