"""The tool registry's logic (producer/tool_registry.py, worker/tool_catalog.py) on
fakeredis with its Lua support: leases, conflicts, withdrawal, the per-process cache."""

from __future__ import annotations

import fakeredis
import pytest

from producer.contracts import ToolSpec
from producer.tool_registry import (
    SubmissionCheck,
    ToolRegistryStore,
    UnknownTools,
    check_submission,
)
from worker.tool_announce import Announcer, python_specs
from worker.tool_catalog import LiveCatalog
from worker.tools import ToolRegistry, UnknownToolError, tool

NOW = 1_800_000_000.0


def spec(name: str = "echo", queue: str = "tools", **fields: object) -> ToolSpec:
    params = fields.pop("parameters", {"type": "object", "properties": {}})
    return ToolSpec(name=name, parameters=params, queue=queue, **fields)  # type: ignore[arg-type]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> ToolRegistryStore:
    monkeypatch.setenv("AGENT_TOOL_HEARTBEAT", "5")  # leases of 15 s
    return ToolRegistryStore(fakeredis.FakeRedis())


def test_a_lease_lapses_without_heartbeat_and_a_withdrawal_ends_it_at_once(
    store: ToolRegistryStore,
) -> None:
    assert store.announce("w1", [spec("echo"), spec("calc")], now=NOW) == []
    assert store.announce("w2", [spec("echo")], now=NOW + 5) == []
    assert store.live(now=NOW + 10)["echo"].servers == ["w1", "w2"]
    assert store.live(now=NOW + 16)["echo"].servers == ["w2"]  # w1 missed its beats
    assert "calc" not in store.live(now=NOW + 16)
    store.withdraw("w2", ["echo"], now=NOW + 17)
    assert store.live(now=NOW + 17) == {}
    # The spec outlives its servers: a turn started earlier still shows it to the model.
    assert store.stored_specs(["echo", "nope"]).keys() == {"echo"}


def test_a_different_spec_is_refused_while_another_worker_serves_the_first(
    store: ToolRegistryStore,
) -> None:
    v1, v2 = spec(description="v1"), spec(description="v2")
    assert store.announce("old", [v1], now=NOW) == []
    for beat in range(5):  # both keep beating: the first definition holds, no flip-flop
        t = NOW + 5 * beat
        assert store.announce("new", [v2], now=t) == ["echo"]
        assert store.announce("old", [v1], now=t) == []
        entry = store.live(now=t)["echo"]
        assert entry.description == "v1" and entry.servers == ["old"]
        assert entry.refused == ["new"]  # listed as a conflict
    # Once the old servers are gone, the new definition takes over (a deployment).
    store.withdraw("old", ["echo"], now=NOW + 30)
    assert store.announce("new", [v2], now=NOW + 30) == []
    assert store.live(now=NOW + 30)["echo"].description == "v2"
    # ...and the old one coming back is now the refused one.
    assert store.announce("old", [v1], now=NOW + 31) == ["echo"]


def test_the_only_server_may_change_its_own_spec(store: ToolRegistryStore) -> None:
    store.announce("w1", [spec(description="v1")], now=NOW)
    assert store.announce("w1", [spec(description="v2")], now=NOW + 1) == []  # a restart
    assert store.live(now=NOW + 1)["echo"].description == "v2"


def test_check_submission_refuses_named_tools_nobody_serves(store: ToolRegistryStore) -> None:
    store.announce("w1", [spec("echo"), spec("calc")])
    check_submission(store.redis, {"tools": None, "tool_choice": "auto"})  # no look-up
    check_submission(store.redis, {"tools": ["echo"], "tool_choice": "echo"})
    with pytest.raises(UnknownTools, match=r"unknown tools: nope .*known tools: calc, echo"):
        check_submission(store.redis, {"tools": ["echo", "nope"], "tool_choice": "auto"})
    with pytest.raises(UnknownTools, match="unknown tools: gone"):
        check_submission(store.redis, {"tools": None, "tool_choice": "gone"})


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_catalog_caches_briefly_and_refreshes_on_a_miss(store: ToolRegistryStore) -> None:
    clock = Clock()
    catalog = LiveCatalog(store, max_age=1.0, clock=clock)
    store.announce("w1", [spec("echo", return_direct=True)])
    assert catalog.for_request(None, None) == ["echo"]
    store.announce("w2", [spec("billing", queue="tools.billing", idempotent=False)])
    assert catalog.for_request(None, None) == ["echo"]  # cached: "all tools" waits 1 s
    assert catalog.queue_for("billing") == "tools.billing"  # named: refreshed at once
    assert catalog.return_direct() == {"echo"} and not catalog.idempotent("billing")
    with pytest.raises(UnknownToolError, match="unknown tools: nope"):
        catalog.for_request(["echo", "nope"], None)
    store.withdraw("w2", ["billing"])
    clock.t = 2.0
    assert catalog.queue_for("billing") is None  # not served: the call gets an error output
    # ...but its schema is still shown to a turn that started with it.
    names = [s["function"]["name"] for s in catalog.schemas(["echo", "billing", "never"])]
    assert names == ["echo", "billing"]


def test_announcer_serves_the_tools_of_its_queues_and_withdraws_what_it_dropped(
    store: ToolRegistryStore,
) -> None:
    registry = ToolRegistry()

    @tool(registry=registry)
    def ping() -> str:
        """Answer pong."""
        return "pong"

    @tool(registry=registry, queue="tools.billing")
    def charge(amount: int) -> str:
        """Charge an amount."""
        return "ok"

    extra: list[ToolSpec] = [spec("mcp__x", source="mcp:mcp")]
    announcer = Announcer(store, "w1", ["tools"],
                          [lambda: python_specs(registry, 300), lambda: list(extra)])
    assert announcer.announce() == []
    assert set(store.live()) == {"ping", "mcp__x"}  # charge: a queue it does not consume
    assert store.live()["ping"].time_limit == 300
    extra.clear()  # the MCP server went down
    announcer.announce()
    assert set(store.live()) == {"ping"}
    announcer.withdraw()
    assert store.live() == {}


def test_the_async_check_reads_the_same_registry() -> None:
    import asyncio

    from producer.tool_registry import check_submission_async

    server = fakeredis.FakeServer()
    ToolRegistryStore(fakeredis.FakeRedis(server=server)).announce("w1", [spec("echo")])
    client = fakeredis.FakeAsyncRedis(server=server)
    asyncio.run(check_submission_async(client, {"tools": ["echo"], "tool_choice": "auto"}))
    with pytest.raises(UnknownTools, match=r"unknown tools: nope.*known tools: echo"):
        asyncio.run(check_submission_async(client, {"tools": ["nope"], "tool_choice": "auto"}))


def test_a_clients_check_keeps_the_names_briefly_and_looks_again_on_a_miss(
    store: ToolRegistryStore,
) -> None:
    clock = Clock()
    check = SubmissionCheck(store.redis, max_age=1.0, clock=clock)
    store.announce("w1", [spec("echo")])
    check({"tools": ["echo"]})
    lookups = []
    original = check.store.live
    check.store.live = lambda: (lookups.append(1), original())[1]  # type: ignore[method-assign]
    check({"tools": ["echo"]})
    assert lookups == []  # served from the kept names
    store.announce("w2", [spec("calc")])
    check({"tools": ["calc"]})  # missing from the kept names: looked up again, found
    assert lookups == [1]
    with pytest.raises(UnknownTools, match="unknown tools: nope"):
        check({"tools": ["echo", "nope"]})
    check({"message": "no tools named"})  # nothing to look up
    assert lookups == [1, 1]
    clock.t = 5.0  # the kept names are old now: looked up again even for a known name
    check({"tools": ["echo"]})
    assert lookups == [1, 1, 1]
