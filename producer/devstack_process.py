"""One child process with its own log file: the building block of :mod:`producer.devstack`.

Standard library only. A :class:`ManagedProcess` runs in its own process group
(``start_new_session=True``) so that stopping it also reaches the children it forked
(Celery's pool processes), and so that a Ctrl-C in our terminal does not reach it
before we decide to stop it.

Its own session also means nothing reaches it when *we* die: a SIGKILL, an OOM kill or
a SIGTERM that nobody handles ends only us, and the children lived on under PID 1,
holding their ports. So on Linux each child asks the kernel, before it execs, for a
SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``). That is exact and costs
no process, unlike a watchdog, which could itself be killed. Two details:

- the kernel means the parent *thread*: a child started from a thread that then ends
  would be killed at once, so children are started from the main thread or from one
  long-lived spawner thread (a test restarts Redis from a ``threading.Timer``);
- a Celery worker's pool processes are the worker's children, not ours: billiard
  gives them the same death signal towards the worker (celery/concurrency/prefork.py).
"""

from __future__ import annotations

import ctypes
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

__all__ = ["ManagedProcess", "ProcessExitedError", "free_port"]

_POLL_S = 0.05
_STDOUT_LOCK = threading.Lock()


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _death_signal_setup() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when we die (Linux only).

    Runs in the forked child: only async-signal-safe work (one prctl, one getppid).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # we died between fork and prctl: no signal will come
            os._exit(1)

    return in_child


class _Spawner:
    """One daemon thread that lives as long as the process and starts the children of
    other threads, so that a child's death signal is tied to a thread that does not end."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:  # a forked copy of us has no spawner thread
        self._thread = None
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()

    def run(self, fn: Callable[[], Any]) -> Any:
        if threading.current_thread() is threading.main_thread():
            return fn()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="devstack-spawner",
                                                daemon=True)
                self._thread.start()
        done: Future[Any] = Future()
        self._jobs.put((fn, done))
        return done.result()

    def _loop(self) -> None:
        while True:
            fn, done = self._jobs.get()
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed to the caller
                done.set_exception(exc)


_SPAWNER = _Spawner()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, then release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ProcessExitedError(RuntimeError):
    """The process exited while we were waiting for it; the message ends with its log tail."""


class ManagedProcess:
    """A child process whose stdout and stderr go, merged, to ``log_path``.

    ``env`` holds variables merged over ``os.environ``. With ``echo_prefix`` set, a
    reader thread also copies each log line to our stdout, prefixed with it.
    Nothing runs until :meth:`start`.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: str | Path,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        echo_prefix: str | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env or {})
        self.cwd = Path(cwd) if cwd is not None else None
        self.log_path = Path(log_path)
        self.echo_prefix = echo_prefix
        self.log_start = 0  # size of the log file when this run started (it is appended to)
        self._popen: subprocess.Popen[bytes] | None = None
        self._echo_thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "not started" if self._popen is None else f"pid={self.pid} alive={self.alive}"
        return f"<ManagedProcess {self.name} {state}>"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> ManagedProcess:
        """Start the process; returns self. A process object starts only once."""
        if self._popen is not None:
            raise RuntimeError(f"{self.name}: already started (pid {self._popen.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.log_start = log.tell()
            self._popen = _SPAWNER.run(lambda: subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_death_signal_setup(),  # dies with us; see the module's doc
            ))
        if self.echo_prefix is not None:
            self._echo_thread = threading.Thread(
                target=self._echo_loop, name=f"echo-{self.name}", daemon=True
            )
            self._echo_thread.start()
        return self

    @property
    def pid(self) -> int:
        return self._require().pid

    @property
    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status once exited (negative: killed by that signal), else None."""
        return None if self._popen is None else self._popen.poll()

    def send_signal(self, sig: int, *, group: bool = False) -> None:
        """Send ``sig`` to the process, or to its whole process group; no-op once reaped."""
        popen = self._require()
        if popen.poll() is not None and not group:
            return
        try:
            if group:
                os.killpg(popen.pid, sig)
            else:
                popen.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop gracefully: SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the status.

        SIGTERM goes to the process itself only, so a Celery worker does its warm shutdown
        (its pool children reset SIGTERM to the default, and terminating them directly would
        lose running tasks). Whatever is left in the process group afterwards is then
        terminated too, so nothing is left behind.
        """
        if self._popen is None:
            return None
        popen = self._popen
        if popen.poll() is None:
            self.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL, group=True)
                popen.wait()
        self._reap_group(grace=min(2.0, max(timeout, 0.1)))
        self._join_echo()
        return popen.returncode

    def kill(self) -> int | None:
        """SIGKILL the whole process group now (a crash, for reliability tests); waits for it."""
        if self._popen is None:
            return None
        self.send_signal(signal.SIGKILL, group=True)
        self._popen.wait()
        self._join_echo()
        return self._popen.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit by itself; raises subprocess.TimeoutExpired."""
        return self._require().wait(timeout)

    # -- logs ----------------------------------------------------------------------------

    def log_size(self) -> int:
        """Current size of the log file in bytes: a ``since`` for :meth:`wait_for_log`."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        """The last ``n`` lines of the log file."""
        try:
            with open(self.log_path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                fh.seek(max(0, size - 256 * max(n, 1)))
                data = fh.read()
        except FileNotFoundError:
            return ""
        lines = data.decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:]) if n > 0 else ""

    def wait_for_log(self, pattern: str, timeout: float = 30.0, *, since: int | None = None) -> str:
        """Wait until a log line matches regex ``pattern``; returns that line.

        Searches from ``since`` (a byte offset; default: where this run's output began).
        Raises :class:`ProcessExitedError` as soon as the process exits without a match,
        and ``TimeoutError`` after ``timeout`` seconds; both messages carry the log tail.
        """
        popen = self._require()
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        pos = self.log_start if since is None else since
        partial = b""
        while True:
            exited = popen.poll() is not None  # before reading, so the last read is complete
            try:
                with open(self.log_path, "rb") as fh:
                    fh.seek(pos)
                    data = fh.read()
            except FileNotFoundError:
                data = b""
            pos += len(data)
            *lines, partial = (partial + data).split(b"\n")
            for raw in [*lines, partial]:
                line = raw.decode("utf-8", "replace").rstrip("\r")
                if regex.search(line):
                    return line
            if exited:
                raise ProcessExitedError(
                    f"{self.name} exited with status {popen.returncode} before its log "
                    f"matched {pattern!r}; log {self.log_path} ends:\n{self.log_tail()}"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.name}: no log line matched {pattern!r} within {timeout:g}s; "
                    f"log {self.log_path} ends:\n{self.log_tail()}"
                )
            time.sleep(_POLL_S)

    # -- internals -----------------------------------------------------------------------

    def _require(self) -> subprocess.Popen[bytes]:
        if self._popen is None:
            raise RuntimeError(f"{self.name}: not started")
        return self._popen

    def _group_exists(self) -> bool:
        """Whether a live (not zombie) process remains in our process group."""
        pgid = self._require().pid
        proc = Path("/proc")
        if proc.is_dir():  # Linux: skip zombies, which linger until init reaps them
            for stat in proc.glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in "ZX":
                    return True
            return False
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _reap_group(self, grace: float) -> None:
        """After the leader exited: SIGTERM what is left in its group, then SIGKILL."""
        if not self._group_exists():
            return
        self.send_signal(signal.SIGTERM, group=True)
        deadline = time.monotonic() + grace
        while self._group_exists() and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        if self._group_exists():
            self.send_signal(signal.SIGKILL, group=True)

    def _join_echo(self) -> None:
        if self._echo_thread is not None:
            self._echo_thread.join(timeout=2.0)

    def _echo_loop(self) -> None:
        popen = self._require()
        prefix = self.echo_prefix or ""
        partial = b""
        with open(self.log_path, "rb") as fh:
            fh.seek(self.log_start)
            while True:
                exited = popen.poll() is not None
                data = fh.read()
                *lines, partial = (partial + data).split(b"\n")
                for raw in lines:
                    _emit(prefix, raw)
                if exited and not data:
                    if partial:
                        _emit(prefix, partial)
                    return
                if not data:
                    time.sleep(_POLL_S)


def _emit(prefix: str, raw: bytes) -> None:
    line = raw.decode("utf-8", "replace").rstrip("\r")
    with _STDOUT_LOCK:
        try:
            sys.stdout.write(f"{prefix}{line}\n")
            sys.stdout.flush()
        except (ValueError, OSError):  # stdout closed at interpreter shutdown
            pass
