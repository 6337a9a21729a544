"""The HTTP gateway as a real process (uvicorn) in front of the session's real stack."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from producer.devstack import DevStack
from producer.devstack_services import start_gateway
from tests.integration.conftest import OUTPUT_DIR, Simulator, tool_call

pytestmark = pytest.mark.integration

TOKEN = "gw-test-" + uuid.uuid4().hex


class Gateway:
    """A requests session against the gateway, with the bearer token set."""

    def __init__(self, url: str, token: str | None = TOKEN) -> None:
        self.url = url
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.http.request(method, self.url + path, **kwargs)

    def events(self, job_id: str, **headers: str) -> list[tuple[str, str | None, Any]]:
        """(event name, id, parsed data) of the whole SSE stream, as a client reads it."""
        found: list[tuple[str, str | None, Any]] = []
        with self.call("GET", f"/v1/jobs/{job_id}/events", stream=True, headers=headers) as rsp:
            assert rsp.status_code == 200, rsp.text
            assert rsp.headers["content-type"].startswith("text/event-stream")
            name, event_id, data = "message", None, None
            for line in rsp.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and data is not None:
                    found.append((name, event_id, data))
                    name, event_id, data = "message", None, None
        return found


@pytest.fixture(scope="module")
def gateway(stack: DevStack) -> Iterator[Gateway]:
    # Workers answer the health check's broadcast within a second or two, even on a busy
    # CI machine; /healthz is kept out of the schemathesis run, so this costs no time.
    url = start_gateway(stack, token=TOKEN, env={"AGENT_GATEWAY_HEALTH_TIMEOUT": "2"})
    yield Gateway(url)
    proc = next(p for p in stack.processes if p.name.startswith("gateway") and p.alive)
    proc.stop()


def submit(gw: Gateway, body: dict[str, Any], **headers: str) -> requests.Response:
    return gw.call("POST", "/v1/jobs", json=body, headers=headers)


def test_submit_status_and_live_events_end_with_the_result(
    gateway: Gateway, sim: Simulator, model: str, session: str
) -> None:
    sim.script(
        model,
        {"tool_calls": [tool_call("calculator", {"expression": "6 * 7"}, "c1")]},
        {"content": "It is 42."},
    )
    rsp = submit(gateway, {"session_id": session, "message": "6 times 7?", "model": model})
    assert rsp.status_code == 202, rsp.text
    job = rsp.json()
    # The record as it is when the gateway answers: a fast turn may have ended already.
    assert job["status"] in ("queued", "running", "succeeded") and job["session_id"] == session
    assert rsp.headers["location"] == f"/v1/jobs/{job['job_id']}"

    stream = gateway.events(job["job_id"])
    kinds = [name for name, _, _ in stream]
    assert kinds[0] == "queued"
    assert kinds[-2:] == ["succeeded", "result"]
    assert {"model_call", "tool_started", "tool_finished", "model_reply"} <= set(kinds)
    assert all(event_id for name, event_id, _ in stream if name != "result")
    result = stream[-1][2]
    assert result["status"] == "succeeded" and result["response"] == "It is 42."
    assert result["sources"][0]["content"] == "42"

    status = gateway.call("GET", f"/v1/jobs/{job['job_id']}")
    assert status.status_code == 200 and status.json() == result

    # resuming after the next-to-last event replays only the rest
    last_ids = [event_id for _, event_id, _ in stream if event_id]
    rest = gateway.events(job["job_id"], **{"Last-Event-ID": last_ids[-2]})
    assert [name for name, _, _ in rest] == ["succeeded", "result"]


def test_idempotency_key_returns_the_same_job(
    gateway: Gateway, sim: Simulator, model: str, session: str
) -> None:
    sim.script(model, {"content": "once"})
    body = {"session_id": session, "message": "only once please", "model": model}
    key = f"key-{uuid.uuid4()}"
    with ThreadPoolExecutor(4) as pool:  # concurrent retries with one key: one job
        replies = list(pool.map(lambda _: submit(gateway, body, **{"Idempotency-Key": key}),
                                range(4)))
    assert sorted(r.status_code for r in replies) == [200, 200, 200, 202]
    assert len({r.json()["job_id"] for r in replies}) == 1
    again = submit(gateway, body, **{"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["job_id"] == replies[0].json()["job_id"]
    # the key with another body is a conflict, not a silent second job
    other = submit(gateway, {**body, "message": "something else"}, **{"Idempotency-Key": key})
    assert other.status_code == 409 and "different request" in other.json()["detail"]
    # without a key every POST is a new job
    a, b = submit(gateway, body), submit(gateway, body)
    assert a.json()["job_id"] != b.json()["job_id"]
    assert len(sim.requests(model)) <= 3  # the keyed job ran once (+ a and b)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"message": "hi"}, ["body", "session_id"]),
        ({"session_id": "bad session!", "message": "hi"}, ["body", "session_id"]),
        ({"session_id": "s1", "message": "   "}, ["body", "message"]),
        ({"session_id": "s1", "message": "hi", "max_function_calls": -1},
         ["body", "max_function_calls"]),
        ({"session_id": "s1", "message": "hi", "surprise": 1}, ["body", "surprise"]),
        ({"session_id": "s1", "message": "hi", "mode": "assistant", "files": ["/etc/passwd"]},
         ["body", "files"]),  # paths on the workers' disks: refused by default
    ],
)
def test_bad_requests_are_422_with_field_errors(
    gateway: Gateway, body: dict[str, Any], where: list[str]
) -> None:
    rsp = submit(gateway, body)
    assert rsp.status_code == 422, rsp.text
    assert where in [error["loc"] for error in rsp.json()["detail"]]


def test_malformed_json_and_idempotency_key_are_422(gateway: Gateway) -> None:
    rsp = gateway.call("POST", "/v1/jobs", data=b"{not json",
                       headers={"Content-Type": "application/json"})
    assert rsp.status_code == 422
    bad_key = submit(gateway, {"session_id": "s1", "message": "hi"},
                     **{"Idempotency-Key": "has spaces in it"})
    assert bad_key.status_code == 422


def test_bearer_token_is_required_except_for_healthz(gateway: Gateway) -> None:
    anonymous = Gateway(gateway.url, token=None)
    wrong = Gateway(gateway.url, token="not-the-token")
    for client in (anonymous, wrong):
        for method, path in [("GET", "/v1/jobs/unknown-job-1"), ("POST", "/v1/jobs"),
                             ("GET", "/v1/sessions/s1/messages"), ("DELETE", "/v1/sessions/s1"),
                             ("DELETE", "/v1/jobs/unknown-job-1"),
                             ("GET", "/v1/jobs/unknown-job-1/events")]:
            rsp = client.call(method, path, json={"session_id": "s1", "message": "hi"})
            assert rsp.status_code == 401, (method, path, rsp.text)
            assert rsp.headers["www-authenticate"] == "Bearer"
    # no token needed (200, or 503 if a busy worker answered late; never 401)
    assert anonymous.call("GET", "/healthz").status_code in (200, 503)
    assert anonymous.call("GET", "/openapi.json").status_code == 200


def test_unknown_jobs_are_404(gateway: Gateway) -> None:
    unknown = str(uuid.uuid4())
    for method, path in [("GET", f"/v1/jobs/{unknown}"), ("DELETE", f"/v1/jobs/{unknown}"),
                         ("GET", f"/v1/jobs/{unknown}/events")]:
        rsp = gateway.call(method, path)
        assert rsp.status_code == 404, (method, path)
        assert unknown in rsp.json()["detail"]


def test_healthz_reports_redis_and_the_workers_of_each_queue(
    gateway: Gateway, stack: DevStack
) -> None:
    rsp = gateway.call("GET", "/healthz")
    for _ in range(3):  # a worker busy with a task answers the broadcast a little later
        if rsp.status_code == 200:
            break
        rsp = gateway.call("GET", "/healthz")
    assert rsp.status_code == 200, rsp.text
    health = rsp.json()
    assert health["status"] == "ok" and health["redis"] is True
    assert health["missing_queues"] == []
    assert any(w.startswith("agents@") for w in health["queues"]["agents"])
    assert any(w.startswith("tools@") for w in health["queues"]["tools"])

    # a gateway whose Redis is unreachable says so with 503
    down = Gateway(start_gateway(stack, env={"REDIS_URL": "redis://127.0.0.1:9/0"}), token=None)
    try:
        rsp = down.call("GET", "/healthz")
        assert rsp.status_code == 503
        assert rsp.json()["redis"] is False and rsp.json()["redis_error"]
    finally:
        next(p for p in reversed(stack.processes) if p.name.startswith("gateway")).stop()


def test_history_and_reset(gateway: Gateway, sim: Simulator, model: str, session: str) -> None:
    sim.script(model, {"content": "Nice to meet you, Ada."})
    job = submit(gateway, {"session_id": session, "message": "I am Ada", "model": model}).json()
    assert gateway.events(job["job_id"])[-1][2]["status"] == "succeeded"
    messages = gateway.call("GET", f"/v1/sessions/{session}/messages").json()
    assert [(m["role"], m["content"]) for m in messages] == [
        ("user", "I am Ada"), ("assistant", "Nice to meet you, Ada.")]
    reset = gateway.call("DELETE", f"/v1/sessions/{session}")
    assert reset.json() == {"session_id": session, "deleted": True}
    assert gateway.call("GET", f"/v1/sessions/{session}/messages").json() == []
    again = gateway.call("DELETE", f"/v1/sessions/{session}")
    assert again.json()["deleted"] is False
    assert gateway.call("GET", "/v1/sessions/bad%20id/messages").status_code == 422


def test_cancel_a_running_job_and_a_finished_one(
    gateway: Gateway, sim: Simulator, model: str, session: str
) -> None:
    sim.script(
        model,
        {"tool_calls": [tool_call("sleep_for", {"seconds": 2}, "slow")]},
        {"content": "too late"},
    )
    job = submit(gateway, {"session_id": session, "message": "slow", "model": model}).json()
    cancelled = gateway.call("DELETE", f"/v1/jobs/{job['job_id']}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    stream = gateway.events(job["job_id"])
    assert [name for name, _, _ in stream][-2:] == ["cancelled", "result"]
    assert stream[-1][2]["status"] == "cancelled"
    # cancelling an ended job changes nothing
    again = gateway.call("DELETE", f"/v1/jobs/{job['job_id']}")
    assert again.status_code == 200 and again.json() == cancelled.json()


def test_schemathesis_finds_no_server_errors_or_schema_violations(gateway: Gateway) -> None:
    """Property-based run of the live OpenAPI schema (few examples: under a minute)."""
    report = OUTPUT_DIR / "schemathesis"
    report.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{gateway.url}/openapi.json",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,response_headers_conformance,"
            "negative_data_rejection,ignored_auth",
            "--header", f"Authorization: Bearer {TOKEN}",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", "10",
            "--max-time", "20",
            "--workers", "1",
            "--request-timeout", "10",
            "--generation-database", "none",
            # /healthz takes no input and waits for workers' replies; tested on its own above
            "--exclude-path", "/healthz",
            # answers with a whole model turn (500 when it fails, as OpenAI does); driven
            # by the openai client in test_gateway_streaming.py
            "--exclude-path", "/v1/chat/completions",
            "--report", "junit", "--report-dir", str(report),
        ],
        capture_output=True, text=True, timeout=90,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
