"""Stopping what ``celery-agents dev``, the demo and any DevStack user started (issue 12).

SIGTERM and SIGHUP stop everything cleanly; a SIGKILL of the parent takes the children
down too (the kernel's parent-death signal). Real processes, free ports; every pid the
command started (and their pool processes) must be gone and every port free.
"""

from __future__ import annotations

import signal
import socket
import sys
import textwrap
from pathlib import Path

import pytest

from producer.devstack import PROJECT_ROOT, ManagedProcess, free_port
from tests.integration.conftest import OUTPUT_DIR
from tests.integration.stacks import wait_for

pytestmark = pytest.mark.integration


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> set[int]:
    """Live (not zombie) processes below ``pid``, at any depth."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields and fields[0] not in "ZX":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if (fields := _stat(pid)) and fields[0] not in "ZX"}


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def start_dev(name: str) -> tuple[ManagedProcess, list[int]]:
    ports = [free_port(), free_port(), free_port()]
    log = OUTPUT_DIR / f"{name}.log"
    log.unlink(missing_ok=True)
    dev = ManagedProcess(
        name,
        [sys.executable, "-m", "producer.cli", "dev", "--redis-port", str(ports[0]),
         "--gateway-port", str(ports[1]), "--flower-port", str(ports[2]),
         "--agents-concurrency", "1", "--tools-concurrency", "1", "--simulator"],
        # No key of our own: the banner then shows the simulator's placeholder key.
        log_path=log, env={"AGENT_GATEWAY_TOKEN": "", "OPENAI_API_KEY": ""}, cwd=PROJECT_ROOT,
    ).start()
    dev.wait_for_log(r"stack is up", timeout=180)
    return dev, ports


def assert_all_gone(pids: set[int], ports: list[int], timeout: float = 15) -> None:
    wait_for(lambda: not alive(pids), timeout, f"processes {sorted(alive(pids))} to end")
    wait_for(lambda: all(port_free(p) for p in ports), timeout, f"ports {ports} to be free")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_dev_stops_everything_it_started(sig: signal.Signals) -> None:
    dev, ports = start_dev(f"dev-stop-{sig.name}")
    try:
        pids = descendants(dev.pid)
        # redis, simulator, two workers (and the tools worker's pool), flower, gateway
        assert len(pids) >= 6, pids
        text = dev.log_text()
        assert "export REDIS_URL=redis://127.0.0.1:" in text
        assert "the simulator; API key sk-sim-local-not-a-secret" in text
        dev.send_signal(sig)
        status = dev.wait(timeout=60)
        assert_all_gone(pids, ports)
    finally:
        dev.stop()
    if sig == signal.SIGTERM:
        assert status == 0 and "SIGTERM: stopping" in dev.log_text()
    else:
        assert status == -signal.SIGKILL  # nothing of it ran: the kernel stopped the rest


def test_demo_stops_everything_on_sighup() -> None:
    log = OUTPUT_DIR / "demo-sighup.log"
    log.unlink(missing_ok=True)
    demo = ManagedProcess("demo", [sys.executable, "-m", "producer.cli", "demo"],
                          log_path=log, cwd=PROJECT_ROOT).start()
    try:
        demo.wait_for_log(r"stack ready", timeout=180)
        pids = descendants(demo.pid)
        assert len(pids) >= 4, pids
        demo.send_signal(signal.SIGHUP)
        status = demo.wait(timeout=60)
        assert_all_gone(pids, [])
    finally:
        demo.stop()
    assert status == 1 and "SIGHUP: the demo and everything it started are stopped" in (
        demo.log_text())


def test_a_devstack_user_killed_outright_takes_its_children_along() -> None:
    """Any DevStack user (a test run, a benchmark): its children die with it, including
    one started from a thread that ended long before (the kernel's parent is a thread)."""
    script = textwrap.dedent("""
        import threading, time
        from producer.devstack import DevStack
        stack = DevStack()
        stack.start_redis()
        t = threading.Thread(target=stack.start_simulator)
        t.start(); t.join()
        time.sleep(1.0)  # a child tied to the ended thread would be gone by now
        print("ready", stack.redis_port, stack.simulator_url, flush=True)
        time.sleep(600)
    """)
    log = OUTPUT_DIR / "devstack-user-killed.log"
    log.unlink(missing_ok=True)
    user = ManagedProcess("user", [sys.executable, "-c", script], log_path=log,
                          cwd=PROJECT_ROOT, env={"PYTHONPATH": str(PROJECT_ROOT)}).start()
    try:
        line = user.wait_for_log(r"^ready ", timeout=60)
        pids = descendants(user.pid)
        assert len(pids) == 2, pids  # redis and the simulator, both still alive
        redis_port = int(line.split()[1])
        sim_port = int(line.split()[2].rsplit(":", 1)[1].split("/")[0])
        user.send_signal(signal.SIGKILL)
        user.wait(timeout=10)
        assert_all_gone(pids, [redis_port, sim_port], timeout=10)
    finally:
        user.stop()

