"""The gateway's limits and manners (issue 12): body cap, short error bodies, the model
in the 202 record, described request fields. A real uvicorn process on the session stack."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from producer.devstack import DevStack
from producer.devstack_services import start_gateway

pytestmark = pytest.mark.integration

LIMIT = 256 * 1024  # small, so that the tests send little


@pytest.fixture(scope="module")
def gateway(stack: DevStack) -> Iterator[str]:
    url = start_gateway(stack, env={"AGENT_GATEWAY_MAX_BODY_BYTES": str(LIMIT),
                                    "AGENT_GATEWAY_TOKEN": ""})
    yield url
    proc = next(p for p in reversed(stack.processes) if p.name.startswith("gateway"))
    proc.stop()


def connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)


def test_a_declared_large_body_gets_413_before_it_is_sent(gateway: str) -> None:
    conn = connection(gateway)
    conn.putrequest("POST", "/v1/jobs")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(50 * 1024 * 1024))  # 50 MB announced, none sent
    conn.endheaders()
    rsp = conn.getresponse()
    body = json.loads(rsp.read())
    conn.close()
    assert rsp.status == 413, body
    assert "AGENT_GATEWAY_MAX_BODY_BYTES" in body["detail"] and str(LIMIT) in body["detail"]


def test_a_chunked_body_is_counted_as_it_arrives(gateway: str) -> None:
    conn = connection(gateway)
    conn.putrequest("POST", "/v1/jobs")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b"x" * 65536
    try:
        for _ in range(LIMIT // len(chunk) + 2):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the gateway may answer and close before the last chunk
    rsp = conn.getresponse()
    status, body = rsp.status, rsp.read()
    conn.close()
    assert status == 413, body[:300]


def test_a_422_does_not_echo_large_input(gateway: str, session: str) -> None:
    message = "word " * 40_000  # 200 kB: under the body cap, over AGENT_MAX_MESSAGE_CHARS
    rsp = requests.post(f"{gateway}/v1/jobs", timeout=30,
                        json={"session_id": session, "message": message})
    assert rsp.status_code == 422
    assert len(rsp.content) < 4000, len(rsp.content)  # it was the whole input and more
    detail = rsp.json()["detail"]
    assert detail[0]["loc"] == ["body", "message"]
    assert "the limit is" in detail[0]["msg"]
    assert detail[0]["input"].endswith("(200000 characters, truncated)")

    # A model-level error's input is the whole body: every part of it is cut too.
    rsp = requests.post(f"{gateway}/v1/jobs", timeout=30, json={
        "session_id": session, "message": "hi", "system_prompt": "s" * 100_000,
        "prefix_messages": [{"role": "system", "content": "p"}] * 500})
    assert rsp.status_code == 422 and len(rsp.content) < 8000, len(rsp.content)
    assert "either system_prompt or prefix_messages" in rsp.text


def test_the_202_record_names_the_model_that_will_be_used(gateway: str, session: str) -> None:
    rsp = requests.post(f"{gateway}/v1/jobs", timeout=30,
                        json={"session_id": session, "message": "hello", "tools": []})
    assert rsp.status_code == 202, rsp.text
    assert rsp.json()["model"] == "gpt-4o-mini"  # AGENT_MODEL of the stack; was null
    named = requests.post(f"{gateway}/v1/jobs", timeout=30, json={
        "session_id": session + "-b", "message": "hello", "tools": [], "model": "gpt-4.1"})
    assert named.json()["model"] == "gpt-4.1"


def test_every_request_field_is_described_in_the_openapi_schema(gateway: str) -> None:
    schema = requests.get(f"{gateway}/openapi.json", timeout=30).json()
    request = schema["components"]["schemas"]["ChatRequest"]
    undescribed = [name for name, prop in request["properties"].items()
                   if not prop.get("description")]
    assert undescribed == []
    post = schema["paths"]["/v1/jobs"]["post"]
    assert "413" in post["responses"]
