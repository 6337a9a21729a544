"""producer.devstack: real child processes (redis-server, small Python scripts)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import redis

from producer.devstack import (
    DEFAULT_OPENAI_API_KEY,
    DevStack,
    ManagedProcess,
    ProcessExitedError,
    free_port,
    redis_ping,
)

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server not installed (scripts/setup.sh)"
)


def pid_running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
        except (OSError, IndexError):
            return False
    return True


def python_proc(
    tmp_path: Path, name: str, code: str, echo_prefix: str | None = None
) -> ManagedProcess:
    return ManagedProcess(
        name,
        [sys.executable, "-u", "-c", code],
        log_path=tmp_path / f"{name}.log",
        echo_prefix=echo_prefix,
    ).start()


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535


@needs_redis
def test_redis_starts_answers_ping_and_stops(tmp_path: Path) -> None:
    with DevStack(tmp_path) as stack:
        url = stack.start_redis()
        assert url == f"redis://127.0.0.1:{stack.redis_port}/0"
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.close()
        assert stack.redis is not None
        pid = stack.redis.pid
        assert pid_running(pid)
        assert stack.env()["REDIS_URL"] == url
        stack.stop_all()
        assert not stack.redis.alive
        assert not pid_running(pid)
    assert tmp_path.exists()  # a given run dir is kept


@needs_redis
def test_redis_with_password_and_restart(tmp_path: Path) -> None:
    with DevStack(tmp_path) as stack:
        url = stack.start_redis(appendonly=True, password="s3cret/pw")
        assert url.startswith("redis://:s3cret%2Fpw@127.0.0.1:")
        assert stack.redis_port is not None
        assert not redis_ping(stack.redis_port)  # AUTH required
        assert redis_ping(stack.redis_port, "s3cret/pw")
        client = redis.Redis(port=stack.redis_port, password="s3cret/pw")
        client.set("k", "v")
        assert stack.restart_redis(kill=True) == url
        assert client.get("k") == b"v"  # appendonly survives a crash
        client.close()


def test_temp_run_dir_removed_on_close() -> None:
    stack = DevStack()
    run_dir = stack.run_dir
    proc = stack.start_process(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], echo=False
    )
    assert run_dir.is_dir() and proc.alive
    stack.close()
    assert not proc.alive
    assert not run_dir.exists()
    stack.close()  # idempotent


def test_wait_for_log_fails_fast_with_tail(tmp_path: Path) -> None:
    proc = python_proc(tmp_path, "boom", "print('x-marks-the-spot'); raise SystemExit(3)")
    started = time.monotonic()
    with pytest.raises(ProcessExitedError) as info:
        proc.wait_for_log("never printed", timeout=30)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "boom exited with status 3" in message
    assert "x-marks-the-spot" in message
    assert proc.returncode == 3


def test_wait_for_log_finds_line_and_echoes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = "import time; print('starting'); time.sleep(0.3); print('server ready.'); time.sleep(60)"
    proc = python_proc(tmp_path, "srv", code, echo_prefix="[srv] ")
    try:
        assert proc.wait_for_log(r"ready\.", timeout=20) == "server ready."
        with pytest.raises(TimeoutError, match="server ready"):
            proc.wait_for_log("not there", timeout=0.3)
    finally:
        proc.stop()
    out = capsys.readouterr().out
    assert "[srv] starting\n" in out
    assert "[srv] server ready.\n" in out
    assert proc.log_tail(1) == "server ready."


def test_stop_escalates_to_sigkill_and_reaps_group(tmp_path: Path) -> None:
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('child', child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = python_proc(tmp_path, "stubborn", code)
    child_pid = int(proc.wait_for_log(r"^child \d+$", timeout=20).split()[1])
    assert pid_running(child_pid)
    started = time.monotonic()
    assert proc.stop(timeout=0.5) == -9
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while pid_running(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_running(child_pid)


def test_kill_is_immediate(tmp_path: Path) -> None:
    proc = python_proc(tmp_path, "victim", "import time; print('up'); time.sleep(60)")
    proc.wait_for_log("up", timeout=20)
    assert proc.kill() == -9
    assert not proc.alive


def test_env_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with DevStack(tmp_path) as stack:
        assert stack.env() == {"OPENAI_API_KEY": DEFAULT_OPENAI_API_KEY}
        monkeypatch.setenv("OPENAI_API_KEY", "sk-real")
        stack.extra_env["AGENT_X"] = "1"
        assert stack.env() == {"AGENT_X": "1"}


def test_start_process_failure_is_cleaned_up(tmp_path: Path) -> None:
    with DevStack(tmp_path) as stack:
        with pytest.raises(ProcessExitedError, match="oops"):
            stack.start_process(
                "bad",
                [sys.executable, "-c", "import sys; sys.exit('oops')"],
                ready_log="never",
            )
        assert stack.processes == []
