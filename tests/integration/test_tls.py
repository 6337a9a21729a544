"""Redis with a password and TLS only: workers and producer work from a ``rediss://`` URL."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from producer.client import AgentClient
from producer.contracts import JobStatus
from producer.devstack import DevStack, RedisTLS, redis_ping
from tests.integration.conftest import Simulator, tool_call
from tests.integration.stacks import new_stack

pytestmark = pytest.mark.integration

PASSWORD = "s3cret/pass word"  # characters that need quoting in a URL


def make_certificates(folder: Path) -> RedisTLS:
    """A throwaway CA and a server certificate for 127.0.0.1 it signed (openssl CLI)."""
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-new", "-nodes", "-newkey", "rsa:2048", "-days", "1",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=celery-agents test CA")
    openssl("req", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-out", "server.crt", "-extfile", "san.ext")
    return RedisTLS(folder / "server.crt", folder / "server.key", folder / "ca.crt")


@pytest.fixture(scope="module")
def tls_stack() -> Iterator[DevStack]:
    with new_stack("stack-tls") as stack:
        tls = make_certificates(stack.run_dir / "certs")
        stack.start_redis(password=PASSWORD, tls=tls)
        stack.start_simulator()
        stack.start_worker(["agents"], 1, "agents")
        stack.start_worker(["tools"], 1, "tools")
        yield stack


def test_a_job_runs_over_tls_with_a_password(tls_stack: DevStack) -> None:
    url = tls_stack.redis_url or ""
    assert url.startswith("rediss://:s3cret%2Fpass%20word@127.0.0.1:")
    assert "ssl_cert_reqs=required" in url and "ssl_ca_certs=" in url
    sim = Simulator(tls_stack.simulator_url or "")
    sim.script("tls-model", {"tool_calls": [tool_call("echo", {"text": "sealed"}, "c1")]},
               {"content": "over TLS"})
    with AgentClient(url) as client:
        result = client.run({"session_id": "tls-s", "message": "x", "model": "tls-model"},
                            timeout=30)
        assert result.status == JobStatus.SUCCEEDED, result.error
        assert result.response == "over TLS" and result.sources[0].content == "sealed"
        assert [m.role for m in client.history("tls-s")] == ["user", "assistant", "tool",
                                                             "assistant"]


def test_the_async_client_streams_over_tls_with_a_password(tls_stack: DevStack) -> None:
    import asyncio

    from producer.client import AsyncAgentClient

    sim = Simulator(tls_stack.simulator_url or "")
    sim.script("tls-stream", {"content": "streamed over TLS, word by word"})

    async def main() -> tuple[list[object], str | None]:
        async with AsyncAgentClient(tls_stack.redis_url) as aclient:
            job_id = await aclient.submit({"session_id": "tls-a", "message": "x",
                                           "model": "tls-stream", "stream": True})
            pieces = [piece async for piece in aclient.stream(job_id, timeout=30)]
            return pieces, (await aclient.wait(job_id, timeout=5)).response

    pieces, response = asyncio.run(main())
    assert response == "streamed over TLS, word by word"
    assert "".join(str(p) for p in pieces) == response


def test_plain_connections_and_wrong_passwords_are_refused(tls_stack: DevStack) -> None:
    port = tls_stack.redis_port
    assert port is not None and tls_stack.redis_tls is not None
    assert not redis_ping(port, PASSWORD)  # no TLS: no answer
    assert not redis_ping(port, "wrong", tls=tls_stack.redis_tls)
    assert redis_ping(port, PASSWORD, tls=tls_stack.redis_tls)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(
            (tls_stack.redis_url or "").replace("s3cret%2Fpass%20word", "wrong")
        ).ping()
