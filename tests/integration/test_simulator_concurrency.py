"""The simulator holds 1000 concurrent chat completions at its latency setting, so it is
never what limits a benchmark of 1000 turns in flight (bench/concurrency.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from producer.devstack import DevStack

pytestmark = pytest.mark.integration

CONNECTIONS = 1000
LATENCY_MS = 1000


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with DevStack() as stack:
        yield stack.start_simulator(latency_ms=LATENCY_MS)


async def one_completion(port: int, i: int) -> int:
    body = json.dumps({"model": "gpt-4o-mini",
                       "messages": [{"role": "user", "content": f"hello {i}"}]}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer sk-test\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    status_line = await reader.readline()
    await reader.read()
    writer.close()
    return int(status_line.split()[1])


async def all_at_once(port: int) -> list[int]:
    return await asyncio.gather(*(one_completion(port, i) for i in range(CONNECTIONS)))


def test_a_thousand_concurrent_completions_take_about_the_latency(sim_url: str) -> None:
    port = int(sim_url.rsplit(":", 1)[1].split("/")[0])
    started = time.monotonic()
    statuses = asyncio.run(all_at_once(port))
    elapsed = time.monotonic() - started
    assert statuses == [200] * CONNECTIONS
    print(f"\n{CONNECTIONS} concurrent completions at {LATENCY_MS} ms: {elapsed:.2f} s")
    # side by side: one after another would take 1000 s, through 100 threads 10 s
    assert elapsed < LATENCY_MS / 1000 * 4
