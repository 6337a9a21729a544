"""Fuzzing the producer's request validation (hypothesis).

Any payload, however malformed, ends as a valid ChatRequest or a pydantic
ValidationError whose text names the problem; never another exception.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from producer.contracts import ChatRequest, StartTurn, describe_validation_error

FIELDS = sorted(ChatRequest.model_fields)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
plausible = {
    "session_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)
    | st.text(max_size=20),
    "message": st.text(max_size=50),
    "tools": st.none() | st.lists(st.sampled_from(["calculator", "echo", "os.system", ""])),
    "tool_choice": st.sampled_from(["auto", "none", "required", "echo", "__import__", ""]),
    "max_function_calls": st.integers(-5, 2000),
    "token_limit": st.none() | st.integers(-10, 10**7),
    "mode": st.sampled_from(["chat", "assistant", "other"]),
    "protocol": st.sampled_from(["responses", "assistants", "x"]),
    "deadline_seconds": st.none() | st.floats(allow_nan=True, allow_infinity=True),
    "poll_interval": st.floats(allow_nan=True),
}
field_values = st.one_of(
    st.sampled_from(FIELDS).flatmap(lambda name: st.tuples(st.just(name), plausible.get(
        name, json_values))),
    st.tuples(st.sampled_from(FIELDS), json_values),
    st.tuples(st.text(max_size=12), json_values),
)
requests = st.lists(field_values, max_size=8).map(dict)
payloads = requests | json_values


def check(payload: Any) -> None:
    try:
        ChatRequest.model_validate(payload)
    except ValidationError as error:
        described = describe_validation_error(error)
        assert described and "Traceback" not in described
        assert all(": " in part for part in described.split("; "))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_any_payload_is_a_request_or_a_readable_validation_error(payload: Any) -> None:
    check(payload)


@settings(max_examples=100, deadline=None)
@given(payloads | st.text(max_size=40).map(lambda t: json.dumps(t)[:-1]))
def test_any_json_text_is_a_request_or_a_readable_validation_error(payload: Any) -> None:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    try:
        ChatRequest.model_validate_json(text)
    except ValidationError as error:
        assert describe_validation_error(error)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["job_id", "request", "extra"]), payloads, max_size=3)
       | json_values)
def test_any_start_message_is_valid_or_a_readable_validation_error(payload: Any) -> None:
    try:
        StartTurn.model_validate(payload)
    except ValidationError as error:
        assert describe_validation_error(error)
