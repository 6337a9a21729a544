"""The API key lives in the worker's environment only: never in Redis or in any log."""

from __future__ import annotations

import os

import pytest
import redis

from producer.client import AgentClient
from producer.devstack import DevStack
from tests.integration.conftest import (
    API_KEY,
    OUTPUT_DIR,
    WEBHOOK_HOSTS,
    WEBHOOK_SECRET,
    Simulator,
    tool_call,
)
from tests.integration.webhook_receiver import Receiver, verify

pytestmark = pytest.mark.integration


def stored_values(r: redis.Redis, key: bytes) -> list[bytes]:
    kind = r.type(key)
    if kind == b"string":
        return [r.get(key) or b""]
    if kind == b"list":
        return list(r.lrange(key, 0, -1))
    if kind == b"hash":
        return list(r.hgetall(key).values())
    if kind == b"set":
        return list(r.smembers(key))
    if kind == b"zset":
        return list(r.zrange(key, 0, -1))
    if kind == b"stream":
        return [value for _, fields in r.xrange(key) for value in fields.values()]
    return [r.dump(key) or b""]


def test_api_key_never_reaches_redis_or_logs(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str
) -> None:
    # jobs that touch every path: tools, a tool error, a failed model call
    sim.script(model, {"tool_calls": [tool_call("echo", {"text": "x"}, "c1"),
                                      tool_call("fail_always", {"reason": "r"}, "c2")]},
               {"content": "ok"},
               {"error": {"status": 401, "message": "Incorrect API key", "type": "auth"}})
    assert client.run({"session_id": session, "message": "a", "model": model}).response == "ok"
    assert client.run({"session_id": session, "message": "b", "model": model}).error
    assert stack.redis_url
    r = redis.Redis.from_url(stack.redis_url)
    needle = API_KEY.encode()
    keys = list(r.scan_iter("*"))
    assert len(keys) > 10, "the scan must see the jobs' keys"
    for key in keys:
        assert not any(needle in value for value in stored_values(r, key)), key
    for proc in stack.processes:
        assert API_KEY not in proc.log_text(), f"API key found in the {proc.name} log"


def test_webhook_secret_never_reaches_redis_logs_or_the_receiver(
    stack: DevStack, client: AgentClient, sim: Simulator, model: str, session: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AGENT_WEBHOOK_SECRET lives in the workers' environment: a signed delivery (and a
    retried one) leaves it in no Redis value, no log and no request the receiver got."""
    monkeypatch.setenv("AGENT_WEBHOOK_ALLOWED_HOSTS", WEBHOOK_HOSTS)
    sim.script(model, {"content": "ok"})
    with Receiver(statuses=(500, 200)) as receiver:
        client.run({"session_id": session, "message": "a", "model": model,
                    "webhook_url": receiver.url + "/h"}, 30)
        hooks = receiver.wait_for(2)
    assert all(verify(WEBHOOK_SECRET, hook) for hook in hooks)  # it was used
    needle = WEBHOOK_SECRET.encode()
    for hook in hooks:
        assert needle not in hook.body and WEBHOOK_SECRET not in str(hook.headers)
    assert stack.redis_url
    r = redis.Redis.from_url(stack.redis_url)
    for key in r.scan_iter("*"):
        assert not any(needle in value for value in stored_values(r, key)), key
    for proc in stack.processes:
        assert WEBHOOK_SECRET not in proc.log_text(), f"secret found in the {proc.name} log"


def test_api_key_never_reaches_any_file_of_this_run(stack: DevStack) -> None:
    """Runs after every other integration test (see conftest): the logs of every stack
    this run started (shared, worker-kill, Redis-restart, TLS) and the data those stacks'
    Redis servers persisted (append-only files) hold no trace of the key."""
    files = [f for run in OUTPUT_DIR.glob(f"*-{os.getpid()}") for f in run.rglob("*")
             if f.is_file()]
    assert any(f.name == "agents.log" for f in files), "the scan must see the worker logs"
    needle = API_KEY.encode()
    for path in files:
        data = path.read_bytes()
        assert needle not in data, f"API key found in {path}"
        assert WEBHOOK_SECRET.encode() not in data, f"webhook secret found in {path}"



def test_gateway_approver_tokens_never_reach_any_file_of_this_run(stack: DevStack) -> None:
    """The approval test's gateway tokens (AGENT_GATEWAY_APPROVER_TOKENS) are in no log
    and no persisted Redis file either; only the token's name is recorded."""
    from tests.integration.test_approval_gateway import APPROVER_TOKEN

    files = [f for run in OUTPUT_DIR.glob(f"*-{os.getpid()}") for f in run.rglob("*")
             if f.is_file()]
    for path in files:
        assert APPROVER_TOKEN.encode() not in path.read_bytes(), f"token found in {path}"


def test_mcp_secrets_never_reach_any_file_of_this_run(stack: DevStack) -> None:
    """MCP env and header values (``${MCP_TEST_SECRET}`` in test_mcp_tools.py's config)
    stay in the tools worker's environment: no log, no persisted Redis data, no file of
    any stack holds them (test_mcp_tools.py scans its live Redis itself)."""
    from tests.mcp_fixtures import MCP_TEST_SECRET

    files = [f for run in OUTPUT_DIR.glob(f"*-{os.getpid()}") for f in run.rglob("*")
             if f.is_file()]
    for path in files:
        assert MCP_TEST_SECRET.encode() not in path.read_bytes(), f"MCP secret found in {path}"
