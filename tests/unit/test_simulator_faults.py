"""Simulator fault injection, driven by the real ``openai`` client over HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from simulator import SimulatorServer, start_server
from simulator.__main__ import _parser
from simulator.faults import FaultConfig, Faults, fault_config_from_args, parse_config

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    sim = start_server()
    yield sim
    sim.stop()


@pytest.fixture
def client(server: SimulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="sk-x", max_retries=0, timeout=5)


def control(server: SimulatorServer, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.root_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def chat(client: openai.OpenAI) -> str | None:
    return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES) \
        .choices[0].message.content


def test_error_rate_one_answers_the_configured_status(
    server: SimulatorServer, client: openai.OpenAI
) -> None:
    control(server, "POST", "/_sim/faults", {"error_rate": 1.0, "error_status": 503})
    with pytest.raises(openai.InternalServerError) as raised:
        chat(client)
    assert raised.value.status_code == 503
    assert "Injected fault" in raised.value.message
    stats = control(server, "GET", "/_sim/faults")["stats"]
    assert (stats["requests"], stats["error"]) == (1, 1)


def test_rate_limit_sends_retry_after_headers(
    server: SimulatorServer, client: openai.OpenAI
) -> None:
    control(server, "POST", "/_sim/faults", {"rate_limit_rate": 1.0, "retry_after_ms": 1500})
    with pytest.raises(openai.RateLimitError) as raised:
        chat(client)
    headers = raised.value.response.headers
    assert headers["retry-after-ms"] == "1500" and headers["retry-after"] == "2"
    assert raised.value.code == "rate_limit_exceeded"


def test_drop_closes_the_connection_without_a_response(
    server: SimulatorServer, client: openai.OpenAI
) -> None:
    control(server, "POST", "/_sim/faults", {"drop_rate": 1.0})
    with pytest.raises(openai.APIConnectionError):
        chat(client)
    control(server, "POST", "/_sim/faults", {})  # all off: the next call works
    assert chat(client)


def test_slow_rate_delays_the_answer(server: SimulatorServer, client: openai.OpenAI) -> None:
    control(server, "POST", "/_sim/faults", {"slow_rate": 1.0, "slow_ms": 300})
    started = time.monotonic()
    assert chat(client)
    assert time.monotonic() - started >= 0.3
    assert control(server, "GET", "/_sim/faults")["stats"]["slow"] == 1


def test_control_paths_and_other_paths_are_never_faulted(
    server: SimulatorServer, client: openai.OpenAI
) -> None:
    control(server, "POST", "/_sim/faults", {"error_rate": 1.0})
    assert control(server, "GET", "/_sim/health") == {"status": "ok"}
    assert client.models.list().data  # /v1/models is not a model endpoint
    control(server, "POST", "/_sim/faults", {"error_rate": 1.0, "paths": ["/v1/models"]})
    assert chat(client)
    with pytest.raises(openai.InternalServerError):
        client.models.list()


def test_reset_clears_faults(server: SimulatorServer, client: openai.OpenAI) -> None:
    control(server, "POST", "/_sim/faults", {"error_rate": 1.0})
    control(server, "POST", "/_sim/reset")
    assert chat(client)
    assert control(server, "GET", "/_sim/faults")["config"] == FaultConfig().to_json()


def test_a_seed_makes_the_draws_repeatable() -> None:
    def outcomes() -> list[str | None]:
        faults = Faults(FaultConfig(error_rate=0.3, rate_limit_rate=0.2, drop_rate=0.1, seed=7))
        return [f.outcome if (f := faults.decide("/v1/chat/completions")) else None
                for _ in range(200)]

    first = outcomes()
    assert first == outcomes()
    share = {kind: first.count(kind) / 200 for kind in ("error", "rate_limit", "drop")}
    assert 0.2 < share["error"] < 0.4 and 0.1 < share["rate_limit"] < 0.3
    assert 0.03 < share["drop"] < 0.2


def test_paths_are_prefixes_of_whole_segments() -> None:
    config = FaultConfig()
    assert config.applies_to("/v1/chat/completions")
    assert config.applies_to("/v1/threads/t1/runs/r1")
    assert config.applies_to("/v1/responses/resp_1")
    assert not config.applies_to("/v1/threadsX")
    assert not config.applies_to("/_sim/script")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error_rate": 1.5}, "error_rate must be between 0 and 1"),
        ({"error_rate": 0.6, "drop_rate": 0.6}, "must not exceed 1"),
        ({"error_status": 200}, "error_status must be an HTTP error status"),
        ({"paths": ["/_sim"]}, "not be /_sim"),
        ({"bogus": 1}, "unknown fault keys: ['bogus']"),
        ({"seed": "x"}, "'seed' must be an integer"),
        ({"slow_ms": "fast"}, "'slow_ms' must be a number"),
    ],
)
def test_bad_configuration_is_a_readable_400(
    server: SimulatorServer, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        control(server, "POST", "/_sim/faults", body)
    assert raised.value.code == 400
    assert message in json.loads(raised.value.read())["error"]["message"]
    with pytest.raises(ValueError, match="must be a JSON object"):
        parse_config([1])


def test_cli_flags_build_the_configuration() -> None:
    args = _parser().parse_args([
        "--error-rate", "0.2", "--rate-limit-rate", "0.1", "--retry-after-ms", "250",
        "--slow-rate", "0.5", "--slow-ms", "40", "--drop-rate", "0.05", "--fault-seed", "3",
        "--fault-paths", "/v1/chat/completions",
    ])  # fmt: skip
    assert fault_config_from_args(args) == FaultConfig(
        error_rate=0.2, rate_limit_rate=0.1, retry_after_ms=250, slow_rate=0.5, slow_ms=40,
        drop_rate=0.05, seed=3, paths=("/v1/chat/completions",),
    )  # fmt: skip
    with pytest.raises(ValueError):
        fault_config_from_args(_parser().parse_args(["--error-rate", "2"]))
